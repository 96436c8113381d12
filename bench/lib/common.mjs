// Shared bench plumbing: child processes with a clean env, waiting for "listening" lines, stats, tool lookup.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync, mkdirSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BENCH = join(ROOT, 'bench');
export const OUT = join(BENCH, 'out');
export const BIN = join(ROOT, 'bin', 'netkit.js');
export const NODE = process.execPath;

/** The env every timed child gets: no extra CA bundle (it costs start-up time), no colours, no debug hooks. */
export function cleanEnv(extra = {}) {
  const env = { ...process.env, NO_COLOR: '1', ...extra };
  for (const k of ['NODE_EXTRA_CA_CERTS', 'FORCE_COLOR', 'NODE_OPTIONS', 'NODE_DEBUG']) delete env[k];
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return env;
}

/** Every child the bench starts, so an interrupted run can end them (by pid, nothing else). */
export const live = new Set();
function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}
export function killAll() {
  for (const c of live) c.kill('SIGKILL');
}

export const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

export function which(tool) {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export const APT = {
  nc: 'netcat-openbsd',
  snmpd: 'snmpd',
  hyperfine: 'hyperfine',
  curl: 'curl',
  cc: 'gcc',
  python3: 'python3',
};

export function skippedTool(tool) {
  return `skipped: ${tool} not installed (sudo apt-get install -y ${APT[tool] ?? tool})`;
}

export function median(xs) {
  const a = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (a.length === 0) return NaN;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

export function quantile(xs, q) {
  const a = [...xs].sort((p, r) => p - r);
  if (a.length === 0) return NaN;
  return a[Math.min(a.length - 1, Math.floor(q * (a.length - 1)))];
}

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Rotate the order each round (A B C, B C A, ...) so no contender always runs first or last. */
export function rotated(list, round) {
  const k = round % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

/**
 * Spawn a long-running server and resolve once a stdout line matches `re` (no sleeps: we wait for the line).
 * Rejects if the process exits first or if the line doesn't come within `timeoutMs`.
 */
export async function startProcess(cmd, args, { re = /^listening .*$/m, cwd, env = cleanEnv(), timeoutMs = 15000 } = {}) {
  const child = track(spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => {
    if (err.length < 65536) err += d;
  });
  child.stdout.setEncoding('utf8');
  const exited = once(child, 'exit');
  const match = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no line matching ${re} within ${timeoutMs} ms\n${out}${err}`));
    }, timeoutMs);
    const onData = (d) => {
      out += d;
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(' ')} exited (${code ?? sig}) before it was ready\n${out}${err}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  // Keep draining output so a chatty server never blocks on a full pipe.
  child.stdout.on('data', (d) => {
    if (out.length < 65536) out += d;
  });
  return {
    child,
    pid: child.pid,
    match,
    stdout: () => out,
    stderr: () => err,
    /** VmHWM (peak resident set) in KiB from /proc, read while the process is alive. */
    peakRssKiB() {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) : NaN;
      } catch {
        return NaN;
      }
    },
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const [code] = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Run a command to completion; resolves with code, output and wall time (spawn to exit). Bounded by timeoutMs. */
export function runTimed(cmd, args, { cwd, env = cleanEnv(), timeoutMs = 120000, stdin = 'ignore', stdout = 'pipe' } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const child = track(spawn(cmd, args, { cwd, env, stdio: [stdin, stdout, 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d) => {
      if (out.length < 1 << 20) out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      if (err.length < 1 << 20) err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: out, stderr: err, ms: nowMs() - t0, pid: child.pid });
    });
  });
}

/** A free loopback port for peers that cannot bind port 0 and report it (nc, snmpd). */
export async function freePort(kind = 'tcp') {
  if (kind === 'udp') {
    const s = createSocket('udp4');
    await new Promise((r) => s.bind(0, '127.0.0.1', r));
    const { port } = s.address();
    await new Promise((r) => s.close(r));
    return port;
  }
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** True once 127.0.0.1:port is in LISTEN state (read from /proc/net/tcp; nc prints nothing when ready). */
export function tcpListening(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      const lines = readFileSync(f, 'utf8').split('\n');
      if (lines.some((l) => l.includes(`:${hex} `) && / 0A /.test(l))) return true;
    } catch {
      /* no such table */
    }
  }
  return false;
}

/** Wait (bounded) until `check()` is true, yielding to the event loop between checks. */
export async function waitUntil(check, { timeoutMs = 5000, what = 'condition' } = {}) {
  const t0 = nowMs();
  while (!check()) {
    if (nowMs() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A process's user + system CPU time so far, in seconds (from /proc/<pid>/stat); NaN once it is gone. */
export function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime + stime, in USER_HZ (100/s)
  } catch {
    return NaN;
  }
}

export function machineFacts() {
  const cpu = cpus()[0]?.model?.trim() || 'unknown';
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    /* keep os.cpus() */
  }
  let kernel = '';
  try {
    kernel = execFileSync('uname', ['-sr'], { encoding: 'utf8' }).trim();
  } catch {
    /* unknown */
  }
  let commit = '';
  try {
    commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', 'src'], { encoding: 'utf8' }).trim();
    if (dirty) commit += ' (src/ has uncommitted changes)';
  } catch {
    /* not a repo */
  }
  let memGiB = NaN;
  try {
    memGiB = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) / 1048576;
  } catch {
    /* unknown */
  }
  let loadavg = '';
  try {
    loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    /* unknown */
  }
  return { date: new Date().toISOString(), nproc, cpu, node: process.version, kernel, memGiB: Math.round(memGiB * 10) / 10, loadavg, commit };
}

/** Does the built netkit know this command (and option)? Checked through --help, so it tracks what really exists. */
export function netkitHas(words, option) {
  if (!existsSync(BIN)) return false;
  const r = spawnSync(NODE, [BIN, ...words, '--help'], { encoding: 'utf8', env: cleanEnv(), timeout: 10000 });
  if (r.status !== 0) return false;
  const help = r.stdout + r.stderr;
  // A group's help for an unknown subcommand still exits 0 and lists its siblings: insist on the usage line.
  const first = help.split('\n').find((l) => l.trim() !== '') ?? '';
  if (!first.trim().startsWith(`netkit ${words.join(' ')}`)) return false;
  return option ? help.includes(option) : true;
}

export function ensureDir(d) {
  mkdirSync(d, { recursive: true });
  return d;
}

export function fileSize(p) {
  try {
    return statSync(p).size;
  } catch {
    return -1;
  }
}

export const fmt = {
  int: (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–'),
  ms: (x, d = 1) => (Number.isFinite(x) ? `${x.toFixed(d)} ms` : '–'),
  s: (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : '–'),
  ratio: (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–'),
  mbps: (bytes, ms) => (Number.isFinite(ms) && ms > 0 ? `${((bytes / 1e6) / (ms / 1000)).toFixed(0)} MB/s` : '–'),
  mib: (kib) => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : '–'),
};

export { dirname, track };
