// Running `netkit file fetch`: the bar on a terminal, then one summary line (or one JSON object) on stdout.
import { fetchFile, type FetchResult } from '../../services/file/fetch/session.js';
import { tcpTransport, type StreamTransport } from '../../transport/tcp.js';
import { formatBytes, formatRate, sanitize } from '../../cli/output.js';
import { createProgressBar, type Progress } from '../../cli/progress.js';
import { NetkitError, isNetkitError } from '../../errors.js';
import { loadCliSecret } from '../secret-option.js';

export interface FetchRunOptions {
  name: string;
  host: string;
  port: number;
  outDir: string;
  force: boolean;
  json: boolean;
  quiet: boolean;
  timeoutMs: number;
  classic: boolean;
  /** Flush to disk before the final rename (default true). */
  fsync?: boolean;
  tls?: boolean;
  tlsFingerprint?: string;
  tlsCa?: string;
  /** --token-file; without it NETKIT_TOKEN is used if set. */
  tokenFile?: string | undefined;
}

function summary(r: FetchResult): string {
  const where = sanitize(r.path);
  const rate = formatRate(r.received, r.durationMs);
  const resumed = r.resumedFrom > 0 ? `, resumed at ${formatBytes(r.resumedFrom)}` : '';
  if (!r.verified) {
    return `saved ${where} (${formatBytes(r.size)}, UNVERIFIED: the classic protocol has no checksum; sha256 of what arrived ${r.sha256}, ${rate})\n`;
  }
  return `saved ${where} (${formatBytes(r.size)}, sha256 ${r.sha256} verified, ${rate}${resumed})\n`;
}

export async function runFileFetch(o: FetchRunOptions): Promise<void> {
  const secret = await loadCliSecret(o.tokenFile);
  if (secret && o.classic) {
    throw new NetkitError('USAGE', `--classic cannot be used with a secret (${secret.source}): the classic protocol cannot authenticate`, 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  let transport: StreamTransport = tcpTransport;
  if (o.tls) {
    if (o.classic) throw new NetkitError('USAGE', '--classic and --tls do not go together: the seed programs have no TLS', "run 'netkit file fetch --help' for usage");
    const { tlsClientTransport } = await import('../../services/file-tls.js');
    transport = tlsClientTransport({
      fingerprint: o.tlsFingerprint,
      caFile: o.tlsCa,
      // Never silent, even with --quiet: accepting a new certificate is a trust decision.
      onFirstUse: (i) =>
        void process.stderr.write(`netkit: first TLS connection to ${sanitize(i.host)}: trusting certificate ${i.fingerprint}; recorded in ${i.file}\n`),
    });
  }
  const bar: Progress | undefined = o.quiet ? undefined : await createProgressBar(process.stderr, o.name.split('/').pop() ?? o.name);
  try {
    const result = await fetchFile({
      name: o.name,
      host: o.host,
      port: o.port,
      outDir: o.outDir,
      force: o.force,
      timeoutMs: o.timeoutMs,
      classic: o.classic,
      fsync: o.fsync,
      secret: secret?.key('file'),
      transport,
      onProgress: bar ? (received, total) => bar.update(received, total) : undefined,
      onNotice: o.quiet ? undefined : (m) => void process.stderr.write(`netkit: ${sanitize(m)}\n`),
    });
    bar?.stop();
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, ...result, durationMs: Math.round(result.durationMs) })}\n`);
    } else if (!o.quiet) {
      process.stdout.write(summary(result));
    }
  } catch (err) {
    bar?.stop();
    if (o.json && isNetkitError(err)) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: { code: err.code, exitCode: err.exitCode, message: err.message } })}\n`);
    }
    throw err;
  }
}
