// Running `netkit disk serve`: start the service, print the listening line, log queries, stop on a signal.
import { startDiskServer, type QueryEvent } from '../../services/disk/serve.js';
import { formatHostPort } from '../../transport/udp.js';
import { isLoopback } from '../../services/limits.js';
import { stopText, waitForShutdown } from '../../cli/signals.js';
import { sanitize } from '../../cli/output.js';
import { rateLimitedLog } from '../../cli/log.js';
import { loadCliSecret } from '../secret-option.js';
import { NetkitError } from '../../errors.js';
import type { MountFilterOptions } from '../../services/disk/mounts.js';
import { startServerAnnouncement } from '../announce-option.js';

export interface ServeRunOptions {
  port: number;
  host?: string;
  path: string;
  classic: boolean;
  quiet: boolean;
  rateLimit: number;
  exemptLoopback: boolean;
  tokenFile?: string | undefined;
  metrics?: { host: string; port: number } | undefined;
  mountTimeoutMs: number;
  filter: MountFilterOptions;
  /** Announce over DNS-SD (default true), as `name` (default the host name). */
  announce?: boolean;
  name?: string | undefined;
}

function queryLogger(write: (line: string) => void): (e: QueryEvent) => void {
  const log = rateLimitedLog(write, 'queries');
  return (e) =>
    log((now) => {
      const reply = e.replyBytes > 0 ? `${e.replyBytes}B` : 'no reply';
      const address = e.address.startsWith('::ffff:') ? e.address.slice(7) : e.address; // IPv4 via the dual-stack socket
      const outcome = e.reason ? `${e.outcome} ${e.reason}` : e.outcome;
      return `${now.toISOString()} ${formatHostPort(address, e.port)} ${e.kind} ${outcome} (${e.requestBytes}B -> ${reply})\n`;
    });
}

export async function runDiskServe(o: ServeRunOptions): Promise<void> {
  const write = (line: string): void => void process.stderr.write(line);
  const secret = await loadCliSecret(o.tokenFile);
  if (secret && o.classic) {
    throw new NetkitError('USAGE', `--classic cannot be used with a secret (${secret.source}): classic clients cannot authenticate`, 'leave out --classic, or run a second server without a secret for seed clients');
  }
  // Refusals (source and reason) are logged even with --quiet: they are what an operator needs to see. The
  // logger is rate-limited, so a flood of forged datagrams cannot flood the log.
  const log = queryLogger(write);
  const onQuery = !o.quiet ? log : secret ? (e: QueryEvent): void => void (e.outcome === 'refused' && log(e)) : undefined;
  const server = await startDiskServer({
    port: o.port,
    host: o.host,
    path: o.path,
    classic: o.classic,
    rateLimit: o.rateLimit,
    exemptLoopback: o.exemptLoopback,
    onQuery,
    secret: secret?.key('disk'),
    mountTimeoutMs: o.mountTimeoutMs,
    filter: o.filter,
    ...(o.metrics ? { metrics: { ...o.metrics, ...(secret ? { bearerToken: secret.bearer() } : {}) } } : {}),
    onWarning: (err) => write(`netkit: warning: ${sanitize(err.message)}\n`),
  });
  // Install the signal handlers before announcing, so a signal sent right after the line is handled.
  const shutdown = waitForShutdown();
  process.stdout.write(`listening udp ${formatHostPort(server.address.address, server.address.port)}\n`);
  if (server.metricsAddress) {
    process.stdout.write(`metrics http://${formatHostPort(server.metricsAddress.address, server.metricsAddress.port)}/metrics\n`);
    if (!isLoopback(server.metricsAddress.address)) write(`netkit: --metrics listens beyond this machine${secret ? '; scrapes must send the secret as a bearer token, in clear over HTTP' : ' without a secret: anyone who can reach it can read the figures'}\n`);
  }
  if (secret) write(`netkit: requiring the secret from ${secret.source}: unauthenticated, stale, replayed and classic queries get no reply\n`);
  if (o.classic && !o.quiet) {
    write('netkit: --classic: answering "y" queries; their replies are larger than the request (see docs/protocol.md)\n');
  }
  const announcer = await startServerAnnouncement(
    o.announce ?? true,
    { kind: 'disk', name: o.name, port: server.address.port, boundAddress: server.address.address, auth: secret !== undefined, tls: false },
    write,
    o.quiet,
  );
  const signal = await shutdown;
  if (!o.quiet) write(`netkit: ${stopText(signal)}: closing\n`);
  // Goodbyes first, so browsers drop this server at once rather than after their cache times out.
  await announcer?.close();
  await server.close();
}
