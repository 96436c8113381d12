// Starting `netkit disk serve --metrics` for tests: the server plus the URL of its /metrics endpoint.
import { startServer, type RunOptions, type Server } from './netkit.js';

export interface MetricsServer extends Server {
  metricsUrl: string;
}

/** Start a disk server with `--metrics 0` and wait for its "metrics http://…/metrics" line. */
export async function startMetricsServer(args: readonly string[], opts: RunOptions = {}): Promise<MetricsServer> {
  const s = await startServer(['disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--metrics', '0', ...args], opts);
  const metricsUrl = await new Promise<string>((resolve, reject) => {
    const check = (): boolean => {
      const m = /^metrics (http:\/\/\S+)$/m.exec(s.stdout());
      if (m) resolve(m[1]!);
      return m !== null;
    };
    if (check()) return;
    const onData = (): void => {
      setImmediate(() => {
        if (check()) s.child.stdout.off('data', onData);
      });
    };
    s.child.stdout.on('data', onData);
    s.child.once('exit', (code) => reject(new Error(`server exited (${code}) before the metrics line`)));
  });
  return Object.assign(s, { metricsUrl });
}
