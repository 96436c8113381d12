// Run tests/helpers/conn-flood.mjs as a child process: start it, wait for its "ready" line, stop it and read its counts.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./conn-flood.mjs', import.meta.url));

export interface FloodConfig {
  port: number;
  /** Local addresses to connect from (127.x.y.z need no setup on Linux). */
  sources: string[];
  /** Connections each source opens at first (and keeps open, with `reopen`). */
  perSource: number;
  /** idle: connect and send nothing; tls-stall: send the start of a ClientHello and stall. */
  mode: 'idle' | 'tls-stall';
  /** Open a new connection whenever the server closes one. */
  reopen: boolean;
  /** Hard bounds. */
  maxMs?: number;
  maxOpens?: number;
}

export interface FloodStats {
  opened: number;
  connected: number;
  closedByServer: number;
  errors: number;
  live: number;
  maxLive: number;
}

export interface Flood {
  /** Resolves once every source made its first `perSource` attempts. */
  ready: Promise<FloodStats>;
  /** Stop it (closing every connection) and resolve with its final counts. */
  stop(): Promise<FloodStats>;
}

export function startFlood(cfg: FloodConfig): Flood {
  const child = spawn(process.execPath, [SCRIPT, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const lines: Array<(line: Record<string, unknown>) => void> = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = JSON.parse(out.slice(0, nl)) as Record<string, unknown>;
      out = out.slice(nl + 1);
      for (const l of lines) l(line);
    }
  });
  const waitFor = (key: string): Promise<FloodStats> =>
    new Promise((resolve, reject) => {
      lines.push((line) => {
        if (line[key]) resolve(line as unknown as FloodStats);
      });
      child.once('exit', (code) => reject(new Error(`the flood exited (${code}) before "${key}"`)));
    });
  const ready = waitFor('ready');
  const done = waitFor('done');
  ready.catch(() => undefined);
  done.catch(() => undefined);
  return {
    ready,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const stats = await done;
      if (child.exitCode === null) await once(child, 'exit');
      return stats;
    },
  };
}
