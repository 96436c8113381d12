// Running `netkit file fetch`: the bar on a terminal, one line per retry, then one summary line (or one JSON object) on stdout.
import { FETCH_DEFAULTS, fetchFile, type FetchResult, type RetryNotice } from '../../services/file/fetch/session.js';
import { parseFetchSource, parseHttpUrl, type HttpUrlSource } from '../../services/target.js';
import { tcpTransport, type StreamTransport } from '../../transport/tcp.js';
import { formatBytes, formatDuration, formatRate, jsonLine, sanitize } from '../../cli/output.js';
import { createProgressBar, type Progress } from '../../cli/progress.js';
import { onInterrupt } from '../../cli/signals.js';
import { NetkitError, isNetkitError } from '../../errors.js';
import { loadCliSecret } from '../secret-option.js';
import { locateFileServer } from '../discover/locate.js';

export interface FetchRunOptions {
  name: string;
  /** -H as given (HOST, HOST:PORT, [v6], [v6]:PORT); undefined: localhost, or the server named in NAME. */
  host?: string | undefined;
  port?: number | undefined;
  outDir: string;
  force: boolean;
  json: boolean;
  quiet: boolean;
  timeoutMs: number;
  retries?: number;
  classic: boolean;
  /** Flush to disk before the final rename (default true). */
  fsync?: boolean;
  tls?: boolean;
  tlsFingerprint?: string | undefined;
  tlsCa?: string | undefined;
  /** --token-file; without it NETKIT_TOKEN is used if set. */
  tokenFile?: string | undefined;
  /** Fetch from the one file server that announces itself (`--discover`), listening this long. */
  discover?: boolean;
  discoverTimeoutMs?: number;
}

function summary(r: FetchResult): string {
  const where = sanitize(r.path);
  const rate = formatRate(r.received, r.durationMs);
  const resumed = r.resumedFrom > 0 ? `, resumed at ${formatBytes(r.resumedFrom)}` : '';
  const retried = r.retries > 0 ? `, ${r.retries} ${r.retries === 1 ? 'retry' : 'retries'}` : '';
  if (!r.verified) {
    const why = r.protocol === 'http' ? 'the server sent no digest (Repr-Digest or Digest)' : 'the classic protocol has no checksum';
    return `saved ${where} (${formatBytes(r.size)}, UNVERIFIED: ${why}; sha256 of what arrived ${r.sha256}, ${rate}${resumed}${retried})\n`;
  }
  return `saved ${where} (${formatBytes(r.size)}, sha256 ${r.sha256} verified, ${rate}${resumed}${retried})\n`;
}

/** `connection lost after 16M of 64M; retrying in 4s (2/5)` */
export function retryLine(r: RetryNotice): string {
  const where = r.size === undefined ? (r.have > 0 ? ` after ${formatBytes(r.have)}` : '') : ` after ${formatBytes(r.have)} of ${formatBytes(r.size)}`;
  const dropped = r.discarded > 0 ? `; discarding the ${formatBytes(r.discarded)} received` : '';
  return `${r.reason}${dropped ? '' : where}${dropped}; retrying in ${formatDuration(r.delayMs).replace(/\.0s$/, 's')} (${r.attempt}/${r.of})`;
}

/** An http(s):// URL names the server itself: the options that name one too, or another protocol, cannot go with it. */
function checkUrlOptions(url: HttpUrlSource, o: FetchRunOptions): void {
  const clash = o.host !== undefined ? '-H/--host' : o.port !== undefined ? '--port' : o.classic ? '--classic' : o.discover ? '--discover' : undefined;
  if (clash) throw new NetkitError('USAGE', `${clash} does not go with a URL: the URL names the server and the protocol`, 'give the URL alone, or a NAME with -H HOST[:PORT]');
  if (url.scheme === 'http' && (o.tls || o.tlsFingerprint !== undefined || o.tlsCa !== undefined)) {
    throw new NetkitError('USAGE', 'the TLS options go with an https:// URL, not http://', 'write https:// to fetch over TLS');
  }
}

export async function runFileFetch(o: FetchRunOptions): Promise<void> {
  const url = parseHttpUrl(o.name);
  if (url) checkUrlOptions(url, o);
  const source = url ?? parseFetchSource(o.name, o.host, o.port, FETCH_DEFAULTS, { discover: o.discover });
  const secret = await loadCliSecret(o.tokenFile);
  if (secret && o.classic) {
    throw new NetkitError('USAGE', `--classic cannot be used with a secret (${secret.source}): the classic protocol cannot authenticate`, 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  // -H NAME may be an announced name; --discover finds the one server. Either way TLS still decides trust.
  const { host, port, announced } = url ? { host: url.host, port: url.port, announced: undefined } : await locateFileServer({ ...o, host: source.host, port: source.port, instance: 'instance' in source && source.instance === true });
  let transport: StreamTransport = tcpTransport;
  if (o.tls || url?.scheme === 'https') {
    if (o.classic) throw new NetkitError('USAGE', '--classic and --tls do not go together: the seed programs have no TLS', "run 'netkit file fetch --help' for usage");
    const { tlsClientTransport } = await import('../../services/file-tls.js');
    transport = tlsClientTransport({
      fingerprint: o.tlsFingerprint,
      caFile: o.tlsCa,
      // An https:// URL is checked like a browser would (the system's CAs) unless --tls asks for TOFU.
      systemCa: url !== undefined && !o.tls,
      // Never silent, even with --quiet: accepting a new certificate is a trust decision.
      onFirstUse: (i) => {
        process.stderr.write(`netkit: first TLS connection to ${sanitize(i.host)}: trusting certificate ${i.fingerprint}; recorded in ${i.file}\n`);
        if (announced?.fingerprint && announced.fingerprint !== i.fingerprint) {
          process.stderr.write(`netkit: WARNING: that certificate is not the one "${sanitize(announced.name, 64)}" announced (${announced.fingerprint}): something else may be answering in its place\n`);
        }
      },
    });
  }
  const bar: Progress | undefined = o.quiet ? undefined : await createProgressBar(process.stderr, source.name.split('/').pop() ?? source.name);
  const say = (line: string): void => {
    bar?.clear();
    process.stderr.write(`netkit: ${sanitize(line)}\n`);
  };
  // Ctrl-C or SIGTERM: the fetch stops, keeps what arrived, and says so; a second signal ends at once.
  if (url?.scheme === 'http' && secret && !o.quiet) say(`not sending the secret (${secret.source}) over plain HTTP: only an https:// URL carries it`);
  const abort = new AbortController();
  const stopListening = onInterrupt((signal) => abort.abort(signal));
  try {
    const result = await fetchFile({
      name: source.name,
      host,
      port,
      outDir: o.outDir,
      force: o.force,
      timeoutMs: o.timeoutMs,
      retries: o.retries,
      classic: o.classic,
      fsync: o.fsync,
      secret: url ? undefined : secret?.key('file'),
      ...(url ? { http: { url: url.url, scheme: url.scheme, target: url.target, ...(secret && url.scheme === 'https' ? { bearer: secret.bearer() } : {}) } } : {}),
      transport,
      signal: abort.signal,
      onProgress: bar ? (received, total) => bar.update(received, total) : undefined,
      onNotice: o.quiet ? undefined : say,
      onRetry: o.quiet ? undefined : (r) => say(retryLine(r)),
    });
    bar?.stop();
    if (o.json) {
      process.stdout.write(jsonLine({ ok: true, ...result, durationMs: Math.round(result.durationMs) }));
    } else if (!o.quiet) {
      process.stdout.write(summary(result));
    }
  } catch (err) {
    bar?.stop();
    if (o.json && isNetkitError(err)) {
      process.stdout.write(jsonLine({ ok: false, error: { code: err.code, exitCode: err.exitCode, message: err.message } }));
    }
    throw err;
  } finally {
    stopListening();
  }
}
