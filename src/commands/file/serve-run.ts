// Running `netkit file serve`: start the service, print where it listens, log each transfer, drain on a signal.
import { serverUrls, startFileServer, type TransferLog } from '../../services/file/serve/index.js';
import { formatHostPort, tcpTransport, type StreamTransport } from '../../transport/tcp.js';
import { stopText, waitForShutdown } from '../../cli/signals.js';
import { formatBytes, formatDuration, sanitize } from '../../cli/output.js';
import { loadCliSecret } from '../secret-option.js';
import { rateLimitedLog } from '../../cli/log.js';
import { startServerAnnouncement } from '../announce-option.js';

export interface ServeRunOptions {
  dir: string;
  port: number;
  host?: string;
  maxConnections: number;
  maxPerSource?: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  graceMs: number;
  quiet: boolean;
  tls?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  refuseHardLinks?: boolean;
  /** Serve HTTP on the port too (default true). */
  http?: boolean;
  /** --token-file; without it NETKIT_TOKEN is used if set. */
  tokenFile?: string | undefined;
  /** Announce over DNS-SD (default true), as `name` (default the host name). */
  announce?: boolean;
  name?: string | undefined;
}

export function formatTransfer(e: TransferLog, now = new Date()): string {
  const peer = e.peer.startsWith('[::ffff:') ? e.peer.replace(/^\[::ffff:([^\]]+)\]/, '$1') : e.peer;
  const quoted = e.name === undefined ? '-' : `"${sanitize(e.name, 200)}"`;
  if (e.requests !== undefined) {
    // A session: one line for the connection, its first name and the tally of its answers.
    const what = `session of ${e.requests} request${e.requests === 1 ? '' : 's'}${e.name !== undefined ? ` from ${quoted}` : ''}`;
    const detail = e.detail ? `: ${sanitize(e.detail, 300)}` : '';
    return `${now.toISOString()} ${peer} ${e.protocol} ${what} ${formatBytes(e.bytes)} in ${formatDuration(e.durationMs)} ${e.outcome}${detail}\n`;
  }
  const name = `${e.method === undefined ? '' : `${sanitize(e.method, 20)} `}${quoted}`;
  const range = e.offset ? ` from ${formatBytes(e.offset)}` : '';
  const of = e.size !== undefined && e.outcome === 'ok' ? '' : e.size !== undefined ? ` of ${formatBytes(e.size)}` : '';
  const detail = e.detail && e.outcome !== 'ok' ? `: ${sanitize(e.detail, 200)}` : '';
  const status = e.status === undefined ? '' : ` ${e.status}`;
  return `${now.toISOString()} ${peer} ${e.protocol} ${name} ${formatBytes(e.bytes)}${of}${range} in ${formatDuration(e.durationMs)} ${e.outcome}${status}${detail}\n`;
}

function transferLogger(write: (line: string) => void): (e: TransferLog) => void {
  const log = rateLimitedLog(write, 'connections');
  return (e) => log((now) => formatTransfer(e, now));
}

export async function runFileServe(o: ServeRunOptions): Promise<void> {
  const write = (line: string): void => void process.stderr.write(line);
  const secret = await loadCliSecret(o.tokenFile);
  // Refused proofs are logged even with --quiet: they are what an operator must see.
  const full = transferLogger(write);
  const logTransfer = !o.quiet ? full : secret ? (e: TransferLog): void => void (e.outcome === 'unauthorized' && full(e)) : undefined;
  let transport: StreamTransport = tcpTransport;
  let tlsLine = '';
  let fingerprint: string | undefined;
  if (o.tls) {
    const { tlsServerTransport } = await import('../../services/file-tls.js');
    const tls = tlsServerTransport({ certPath: o.tlsCert, keyPath: o.tlsKey });
    transport = tls.transport;
    const where = tls.identity.created ? `generated, kept in ${tls.identity.certPath}` : (tls.identity.certPath ?? '');
    tlsLine = `tls fingerprint ${tls.identity.fingerprint} (${where})\n`;
    fingerprint = tls.identity.fingerprint;
  }
  const server = await startFileServer({
    dir: o.dir,
    transport,
    host: o.host,
    port: o.port,
    maxConnections: o.maxConnections,
    maxPerSource: o.maxPerSource,
    headerTimeoutMs: o.headerTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs,
    refuseHardLinks: o.refuseHardLinks,
    http: o.http ?? true,
    onLog: logTransfer,
    secret: secret?.key('file'),
  });
  // Install the signal handlers before announcing, so a signal sent right after the line is handled.
  const shutdown = waitForShutdown();
  if (secret) {
    const http = !server.http ? '' : o.tls ? ', HTTPS requests without "Authorization: Bearer <secret>" 401' : ', HTTP requests 401 (HTTP carries the secret only with --tls)';
    write(`netkit: requiring the secret from ${secret.source}: requests without a valid proof get UNAUTHORIZED, classic requests -1${http}\n`);
  }
  const urls = server.http ? serverUrls(server.host, server.port, o.tls ? 'https' : 'http').map((u) => `url ${u}\n`).join('') : '';
  process.stdout.write(`listening ${server.transport} ${formatHostPort(server.host, server.port)}\nserving ${server.root}\n${tlsLine}${urls}`);
  const announcer = await startServerAnnouncement(
    o.announce ?? true,
    { kind: 'file', name: o.name, port: server.port, boundAddress: server.host, auth: secret !== undefined, tls: o.tls === true, ...(fingerprint ? { fingerprint } : {}) },
    write,
    o.quiet,
  );
  const signal = await shutdown;
  // Goodbyes first, so browsers drop this server at once while running transfers finish.
  await announcer?.close();
  if (!o.quiet) write(`netkit: ${stopText(signal)}: no longer accepting; letting running transfers finish (up to ${formatDuration(o.graceMs)})\n`);
  const { aborted } = await server.close(o.graceMs);
  if (!o.quiet && aborted > 0) write(`netkit: cut ${aborted} connection${aborted === 1 ? '' : 's'} at shutdown\n`);
}
