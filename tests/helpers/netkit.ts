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
  /** Run inside this network namespace (`ip netns exec`; the process keeps its pid). */
  netns?: string;
  /**
   * startServer only: a command that runs netkit, given netkit's argv after it, and execs it, so that
   * the child's pid is the server's (e.g. unshare and a shell that mounts something first, then `exec "$@"`).
   */
  prefix?: readonly string[];
}

/** The command line that runs netkit, inside a network namespace when asked. */
function command(args: readonly string[], netns: string | undefined): [string, string[]] {
  return netns ? ['ip', ['netns', 'exec', netns, process.execPath, BIN, ...args]] : [process.execPath, [BIN, ...args]];
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
  const [cmd, argv] = command(args, opts.netns);
  const child = spawn(cmd, argv, { cwd: opts.cwd, env: childEnv(opts.env) });
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
  const [first, rest0] = command(args, opts.netns);
  const [cmd, ...rest] = opts.prefix ? [...opts.prefix, first, ...rest0] : [first, ...rest0];
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

export interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolve with the first match of `re` in everything the stream has carried so far or will carry; reject if the process exits first. */
  waitFor(stream: 'stdout' | 'stderr', re: RegExp): Promise<RegExpExecArray>;
  /** Wait for the exit (killing it after `timeoutMs`, default 20 s) and collect everything. */
  done(timeoutMs?: number): Promise<RunResult>;
}

/** Start `netkit args…` and watch its output as it comes (for commands that print as they go). */
export function startNetkit(args: readonly string[], opts: RunOptions = {}): Running {
  const [cmd, argv] = command(args, opts.netns);
  const child = spawn(cmd, argv, { cwd: opts.cwd, env: childEnv(opts.env) });
  const text = { stdout: '', stderr: '' };
  const waiters = new Set<() => void>();
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  let ended = false;
  void exited.then(() => {
    ended = true;
    for (const w of [...waiters]) w();
  });
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream].setEncoding('utf8').on('data', (d: string) => {
      text[stream] += d;
      for (const w of [...waiters]) w();
    });
  }
  child.stdin.end(opts.input ?? '');
  return {
    child,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitFor: (stream, re) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(text[stream]);
          if (m) {
            waiters.delete(check);
            resolve(m);
          } else if (ended) {
            waiters.delete(check);
            reject(new Error(`netkit ${args.join(' ')} exited before printing ${re} on ${stream}:\n${text.stdout}\n${text.stderr}`));
          }
        };
        waiters.add(check);
        check();
      }),
    done: async (timeoutMs = 20_000) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const [code, signal] = await exited;
      clearTimeout(timer);
      return { code, signal, stdout: text.stdout, stderr: text.stderr };
    },
  };
}

/** Resolve once a running server has said `re` on stderr (its log is the event a test waits for); reject if it exits first. */
export function serverSaid(s: Server, re: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (re.test(s.stderr())) resolve();
      else if (s.child.exitCode !== null || s.child.signalCode !== null) reject(new Error(`server exited before saying ${re}: ${s.stderr()}`));
      else s.child.stderr.once('data', () => setImmediate(check));
    };
    check();
  });
}

export interface Spawned {
  child: ChildProcessWithoutNullStreams;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** The exit, with everything it printed (killed after `timeoutMs`, default 20 s). */
  done: Promise<RunResult>;
}

/** Start `netkit args…` without waiting for it (to signal it, or to race it against another). */
export function spawnNetkit(args: readonly string[], opts: RunOptions = {}): Spawned {
  const r = startNetkit(args, opts);
  return { child: r.child, stdout: r.stdout, stderr: r.stderr, done: r.done(opts.timeoutMs ?? 20_000) };
}
