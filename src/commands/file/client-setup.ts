// What `file fetch` and `file list` share before the first byte: which server (-H, HOST:NAME, netkit://, --discover), the secret, and the transport (TCP, or TLS with its trust policy).
import type { KeyObject } from 'node:crypto';
import type { HttpSource } from '../../services/file/fetch/context.js';
import { FETCH_DEFAULTS } from '../../services/file/fetch/context.js';
import { parseFetchSource, parseHttpUrl, type HttpUrlSource } from '../../services/target.js';
import { tcpTransport, type StreamTransport } from '../../transport/tcp.js';
import { sanitize } from '../../cli/output.js';
import { NetkitError } from '../../errors.js';
import { loadCliSecret } from '../secret-option.js';
import { locateFileServer } from '../discover/locate.js';

export interface ClientArgs {
  /** -H as given (HOST, HOST:PORT, [v6], [v6]:PORT); undefined: localhost, or the server named in a NAME. */
  host?: string | undefined;
  port?: number | undefined;
  quiet: boolean;
  classic?: boolean;
  tls?: boolean;
  tlsFingerprint?: string | undefined;
  tlsCa?: string | undefined;
  tokenFile?: string | undefined;
  discover?: boolean;
  discoverTimeoutMs?: number;
}

export interface Client {
  host: string;
  port: number;
  /** The names with any server part (HOST:NAME, netkit://HOST/NAME) taken off. */
  names: string[];
  transport: StreamTransport;
  key: KeyObject | undefined;
  /** An http(s):// URL given as the one NAME: fetched over HTTP from any web server. */
  http?: HttpSource;
}

/** An http(s):// URL names the server itself: the options that name one too, or another protocol, cannot go with it. */
function checkUrlOptions(url: HttpUrlSource, o: ClientArgs, names: readonly string[]): void {
  if (names.length > 1) throw new NetkitError('USAGE', 'a URL fetches one file: give it alone', 'several files or a directory come from a netkit server: NAME... -H HOST');
  const clash = o.host !== undefined ? '-H/--host' : o.port !== undefined ? '--port' : o.classic ? '--classic' : o.discover ? '--discover' : undefined;
  if (clash) throw new NetkitError('USAGE', `${clash} does not go with a URL: the URL names the server and the protocol`, 'give the URL alone, or a NAME with -H HOST[:PORT]');
  if (url.scheme === 'http' && (o.tls || o.tlsFingerprint !== undefined || o.tlsCa !== undefined)) {
    throw new NetkitError('USAGE', 'the TLS options go with an https:// URL, not http://', 'write https:// to fetch over TLS');
  }
}

/** Resolve the server and the names: the first NAME may carry the server (HOST:NAME, netkit://), and the others come from it. */
export async function setUpClient(o: ClientArgs, names: readonly string[], allowUrl = false): Promise<Client> {
  const url = allowUrl ? parseHttpUrl(names[0]!) : undefined;
  if (url) checkUrlOptions(url, o, names);
  const first = url ?? parseFetchSource(names[0]!, o.host, o.port, FETCH_DEFAULTS, { discover: o.discover });
  const others = names.slice(1).map((n) => (o.host !== undefined || o.port !== undefined || o.discover ? parseFetchSource(n, o.host, o.port, FETCH_DEFAULTS, { discover: o.discover }).name : n));
  const secret = await loadCliSecret(o.tokenFile);
  if (secret && o.classic) {
    throw new NetkitError('USAGE', `--classic cannot be used with a secret (${secret.source}): the classic protocol cannot authenticate`, 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  // -H NAME may be an announced name; --discover finds the one server. Either way TLS still decides trust.
  const { host, port, announced } = url ? { host: url.host, port: url.port, announced: undefined } : await locateFileServer({ ...o, host: first.host, port: first.port, instance: 'instance' in first && first.instance === true });
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
  if (url) {
    if (url.scheme === 'http' && secret && !o.quiet) process.stderr.write(`netkit: not sending the secret (${secret.source}) over plain HTTP: only an https:// URL carries it\n`);
    const http: HttpSource = { url: url.url, scheme: url.scheme, target: url.target, ...(secret && url.scheme === 'https' ? { bearer: secret.bearer() } : {}) };
    return { host, port, names: [url.name], transport, key: undefined, http };
  }
  return { host, port, names: [first.name, ...others], transport, key: secret?.key('file') };
}
