// Spawning the built netkit binary: run to completion, or start a server and wait for its "listening" line.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/netkit.js', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Hard cap so a hung child fails the test instead of hanging the suite. */
  timeoutMs?: number;
  /**
   * startServer only: a command that runs netkit, given netkit's argv after it, and execs it, so that
   * the child's pid is the server's (e.g. unshare and a shell that mounts something first, then `exec "$@"`).
   */
  prefix?: readonly string[];
}

function childEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // Tests read plain output: no colours unless a test asks for them.
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra };
  delete env.FORCE_COLOR;
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return env;
}

/** Run `netkit args…` to completion and collect its output. */
export async function runNetkit(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd, env: childEnv(opts.env) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

export interface Server {
  child: ChildProcessWithoutNullStreams;
  /** The "listening …" line. */
  line: string;
  host: string;
  port: number;
  stdout(): string;
  stderr(): string;
  /** Send a signal and wait for the exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Start `netkit args…` and resolve once it prints `listening <proto> <host>:<port>`.
 * Rejects (with its stderr) if the process exits first.
 */
export async function startServer(args: readonly string[], opts: RunOptions = {}): Promise<Server> {
  const argv = [process.execPath, BIN, ...args];
  const [cmd, ...rest] = opts.prefix ? [...opts.prefix, ...argv] : argv;
  const child = spawn(cmd!, rest, { cwd: opts.cwd, env: childEnv(opts.env) });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout.setEncoding('utf8');
  const exited = once(child, 'exit');
  const line = await new Promise<string>((resolve, reject) => {
    const onData = (d: string): void => {
      out += d;
      const m = /^listening .*$/m.exec(out);
      if (m) {
        child.stdout.off('data', onData);
        child.stdout.on('data', (more: string) => (out += more));
        resolve(m[0]);
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${err}`)));
  });
  const m = /^listening \w+ \[?([^\]\s]*?)\]?:(\d+)/.exec(line);
  if (!m) throw new Error(`cannot parse listening line: ${line}`);
  return {
    child,
    line,
    host: m[1]!,
    port: Number(m[2]),
    stdout: () => out,
    stderr: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}
