// Running `netkit disk serve`: start the service, print the listening line, log queries, stop on a signal.
import { startDiskServer, type QueryEvent } from '../../services/disk-serve.js';
import { formatHostPort } from '../../transport/udp.js';
import { waitForShutdown } from '../../cli/signals.js';
import { sanitize } from '../../cli/output.js';

export interface ServeRunOptions {
  port: number;
  host?: string;
  path: string;
  classic: boolean;
  quiet: boolean;
  rateLimit: number;
  exemptLoopback: boolean;
}

/** Most query lines per second on stderr; beyond that one summary line per second, so a flood cannot turn into a log flood. */
const LOG_LINES_PER_SECOND = 50;

function queryLogger(write: (line: string) => void): (e: QueryEvent) => void {
  let windowStart = 0;
  let lines = 0;
  let suppressed = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    if (suppressed > 0) write(`${new Date().toISOString()} ${suppressed} more queries not logged (over ${LOG_LINES_PER_SECOND}/s)\n`);
    suppressed = 0;
  };
  return (e) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      lines = 0;
    }
    if (lines >= LOG_LINES_PER_SECOND) {
      suppressed += 1;
      if (!timer) {
        timer = setTimeout(flush, 1000 - (now - windowStart));
        timer.unref();
      }
      return;
    }
    lines += 1;
    const reply = e.replyBytes > 0 ? `${e.replyBytes}B` : 'no reply';
    const address = e.address.startsWith('::ffff:') ? e.address.slice(7) : e.address; // IPv4 via the dual-stack socket
    write(`${new Date(now).toISOString()} ${formatHostPort(address, e.port)} ${e.kind} ${e.outcome} (${e.requestBytes}B -> ${reply})\n`);
  };
}

export async function runDiskServe(o: ServeRunOptions): Promise<void> {
  const write = (line: string): void => void process.stderr.write(line);
  const server = await startDiskServer({
    port: o.port,
    host: o.host,
    path: o.path,
    classic: o.classic,
    rateLimit: o.rateLimit,
    exemptLoopback: o.exemptLoopback,
    onQuery: o.quiet ? undefined : queryLogger(write),
    onWarning: (err) => write(`netkit: warning: ${sanitize(err.message)}\n`),
  });
  // Install the signal handlers before announcing, so a signal sent right after the line is handled.
  const shutdown = waitForShutdown();
  process.stdout.write(`listening udp ${formatHostPort(server.address.address, server.address.port)}\n`);
  if (o.classic && !o.quiet) {
    write('netkit: --classic: answering "y" queries; their replies are larger than the request (see docs/protocol.md)\n');
  }
  const signal = await shutdown;
  if (!o.quiet) write(`netkit: ${signal}: closing\n`);
  await server.close();
}
