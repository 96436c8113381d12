// Where disk figures come from: statfs in worker threads (a hung mount never stalls the rest), the mount table for mount, type, device and read-only state.
import { readFile, realpath, stat } from 'node:fs/promises';
import { hostname, platform } from 'node:os';
import { dirname, sep } from 'node:path';
import { NetkitError, fsError } from '../../errors.js';
import { FsErrorCode, type FsFigures } from '../../protocol/disk-v1.js';
import { mountFilter, parseMountinfo, type MountEntry, type MountFilterOptions } from './mounts.js';
import { StatfsPool, type StatfsNumbers } from './statfs-pool.js';

export type { MountEntry } from './mounts.js';

/** Which figures a query wants: the served path's filesystem, or every reported one. */
export type FactsScope = 'path' | 'all';

export interface DiskSnapshot {
  host: string;
  /** Milliseconds since the epoch when the figures were read (when the read started). */
  time: number;
  filesystems: FsFigures[];
}

/**
 * A source of disk figures. The server only ever calls read(); tests inject a source with fixed
 * numbers, production uses createSystemFacts().
 */
export interface DiskFactsSource {
  readonly host: string;
  /** `patient`: wait for calls in flight up to the mount timeout (a scrape), not just the short answer wait (a datagram). */
  read(scope: FactsScope, opts?: { patient?: boolean }): Promise<DiskSnapshot>;
  close(): void;
}

/** The mount among `mounts` that holds `path`: the longest mount point that is a prefix of it. */
export function mountFor<M extends { mount: string }>(path: string, mounts: readonly M[]): M | undefined {
  let best: M | undefined;
  for (const m of mounts) {
    const mp = m.mount;
    const inside = mp === '/' || path === mp || path.startsWith(mp.endsWith(sep) ? mp : mp + sep);
    if (inside && (!best || mp.length > best.mount.length)) best = m;
  }
  return best;
}

/** Turn statfs numbers into the exact figures (the same arithmetic as df). */
export function figuresFromStatfs(s: { bsize: bigint; blocks: bigint; bfree: bigint; bavail: bigint; files?: bigint; ffree?: bigint }): Pick<FsFigures, 'total' | 'used' | 'available' | 'free' | 'files' | 'filesFree'> {
  const total = s.blocks * s.bsize;
  const free = s.bfree * s.bsize;
  const available = s.bavail * s.bsize;
  const used = total > free ? total - free : 0n;
  return { total, used, available, free, ...(s.files !== undefined && s.ffree !== undefined ? { files: s.files, filesFree: s.ffree } : {}) };
}

export interface SystemFactsOptions {
  path: string;
  /** How often the mount table is re-read in the background (ms, default 10 s). */
  mountsRefreshMs?: number;
  /** A statfs that has not returned after this long is reported as timed out (ms, default 2,000). */
  mountTimeoutMs?: number;
  /** How long read() waits for slow statfs calls before answering with what it has (ms, default 50). */
  answerWaitMs?: number;
  /** Which filesystems "all" reports (default: everything but node_exporter's default exclusions). */
  filter?: MountFilterOptions;
  /** Replaces the system's mount table (tests). */
  listMounts?: () => Promise<MountEntry[]>;
}

async function systemMounts(): Promise<MountEntry[]> {
  if (platform() === 'linux') {
    // Reading procfs never touches the mounts themselves, so a hung one cannot block it (df would).
    return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  }
  // Elsewhere systeminformation's fsSize(); loaded lazily, it is big.
  const mod = (await import('systeminformation')) as typeof import('systeminformation') & { default?: typeof import('systeminformation') };
  const si = mod.default ?? mod;
  const list = await si.fsSize();
  return list.map((f) => ({ mount: f.mount, fstype: f.type, device: f.fs, readonly: f.rw === false }));
}

/** The top directory of path's filesystem: walk up until the device id changes. */
async function mountPointByDevice(real: string): Promise<string> {
  let cur = real;
  const dev = (await stat(cur)).dev;
  for (;;) {
    const parent = dirname(cur);
    if (parent === cur) return cur;
    if ((await stat(parent)).dev !== dev) return cur;
    cur = parent;
  }
}

interface MountState {
  numbers?: StatfsNumbers;
  /** When `numbers` were read, or (without numbers) when the path was first asked. */
  at: number;
  error?: NetkitError;
}

/** Seconds for a short message: "3.2s". */
function secs(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

/** The least time the served path's first statfs gets before the server refuses to start. */
const STARTUP_TIMEOUT_MS = 2000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Figures of the real machine. Every read() asks statfs of each reported filesystem through a
 * StatfsPool and waits at most answerWaitMs for them: a filesystem that is slower keeps its last
 * figures, and one whose call is older than mountTimeoutMs is reported with error TIMEOUT until the
 * call returns. The mount table is re-read in the background.
 */
export async function createSystemFacts(opts: SystemFactsOptions): Promise<DiskFactsSource> {
  const states = new Map<string, MountState>();
  /** A call's outcome: fresh numbers replace everything; an error keeps the last numbers and their age. */
  const settle = (path: string, result: StatfsNumbers | NetkitError): void => {
    if (result instanceof NetkitError) states.set(path, { ...(states.get(path) ?? { at: Date.now() }), error: result });
    else states.set(path, { numbers: result, at: Date.now() });
  };
  const pool = new StatfsPool({
    timeoutMs: opts.mountTimeoutMs ?? 2000,
    onLate: (path, result) => settle(path, result),
  });
  let real: string;
  let realDev: number;
  try {
    real = await realpath(opts.path);
    realDev = (await stat(real)).dev;
    // The first call also waits for the first thread to start: a short --mount-timeout (tuned for
    // answers) must not make a slow start look like a hung served path.
    states.set(real, { numbers: await pool.statfs(real, Math.max(pool.timeoutMs, STARTUP_TIMEOUT_MS)), at: Date.now() });
  } catch (err) {
    pool.close();
    throw err instanceof NetkitError && err.code === 'TIMEOUT' ? err : fsError(err, `cannot serve --path ${opts.path}`, 'give an existing file or directory: the disk server reports the filesystem that holds it');
  }
  const host = hostname();
  const answerWaitMs = opts.answerWaitMs ?? 50;
  const listMounts = opts.listMounts ?? systemMounts;
  const include = mountFilter(opts.filter);

  let mounts: MountEntry[] = [];
  let served: MountEntry = { mount: await mountPointByDevice(real), fstype: '', device: '' };
  let closed = false;

  const refreshMounts = async (): Promise<void> => {
    try {
      // Bounded: systeminformation's fsSize() runs df, which a hung mount can stall.
      const listing = listMounts();
      mounts = await Promise.race([listing, delay(pool.timeoutMs).then(() => Promise.reject(new Error('mount listing timed out')))]);
    } catch {
      // Keep the previous list; the served path is still reported from statfs.
    }
    // The longest listed mount holding the path on the same device (right for bind mounts); else the walk-up.
    const holding = mounts.filter((m) => mountFor(real, [m]) !== undefined);
    served = mountFor(real, holding.filter((m) => m.dev === undefined || m.dev === realDev)) ?? mountFor(real, holding.filter((m) => m.mount === served.mount)) ?? served;
  };

  await refreshMounts();
  // A first round before serving, so the first answer has every filesystem that answers in time.
  const firstRound = (): string[] => mounts.filter((m) => m.mount !== served.mount && include(m)).map((m) => m.mount);
  await poll(firstRound(), pool.timeoutMs);
  const timer = setInterval(() => {
    if (!closed) void refreshMounts();
  }, opts.mountsRefreshMs ?? 10_000);
  timer.unref();

  /** Ask statfs of every target; settle when all answered or waitMs passed. */
  async function poll(targets: readonly string[], waitMs: number): Promise<void> {
    const now = Date.now();
    for (const t of targets) if (!states.has(t)) states.set(t, { at: now });
    const calls = targets.map((t) => pool.statfs(t).then((numbers) => settle(t, numbers), (err: unknown) => settle(t, err instanceof NetkitError ? err : fsError(err, `statfs ${t}`))));
    await Promise.race([Promise.all(calls), delay(waitMs)]);
  }

  /**
   * One filesystem's entry in an answer. Figures are shown as they are only when read within the
   * mount timeout; older ones (the call is slow, queued, hung or was not asked) carry error TIMEOUT
   * saying how old they are, so stale figures are never presented as fresh.
   */
  const figures = (target: string, entry: MountEntry, isServed: boolean, now: number): FsFigures | undefined => {
    // `now` is when the read began: figures read since then have age 0 or less.
    const st = states.get(target) ?? { at: now };
    const base = { mount: entry.mount, fstype: entry.fstype, device: entry.device, served: isServed, readonly: entry.readonly === true };
    const numbers = st.numbers ? figuresFromStatfs(st.numbers) : { total: 0n, used: 0n, available: 0n, free: 0n };
    const timeout = (message: string): FsFigures => ({ ...base, ...numbers, error: { code: FsErrorCode.TIMEOUT, message } });
    if (pool.isStuck(target)) return timeout(`statfs hung for ${secs(pool.runningFor(target))}`);
    if (st.error && st.error.code !== 'TIMEOUT') {
      if (st.error.code === 'NOT_FOUND' && !isServed) return undefined; // unmounted since the table was read
      return { ...base, ...numbers, error: { code: FsErrorCode.IO, message: st.error.message } };
    }
    if (st.error) return timeout(st.numbers ? `not asked; figures ${secs(now - st.at)} old` : 'not asked: other mounts hung');
    const age = now - st.at;
    if (age > pool.timeoutMs) return timeout(st.numbers ? `not refreshed for ${secs(age)}` : `no figures after ${secs(age)}`);
    if (!st.numbers) return undefined; // first call still running (or queued) and not yet timed out
    return { ...base, ...numbers };
  };

  return {
    host,
    async read(scope, readOpts) {
      const time = Date.now();
      const waitMs = readOpts?.patient ? Math.max(answerWaitMs, pool.timeoutMs) : answerWaitMs;
      if (scope === 'path') {
        await poll([real], waitMs);
        return { host, time, filesystems: [figures(real, served, true, time)!] };
      }
      const seen = new Set([served.mount]);
      const others = mounts.filter((m) => !seen.has(m.mount) && include(m) && (seen.add(m.mount), true));
      await poll([real, ...others.map((m) => m.mount)], waitMs);
      const all = [figures(real, served, true, time)!, ...others.map((m) => figures(m.mount, m, false, time)).filter((f): f is FsFigures => f !== undefined)];
      all.sort((a, b) => (a.mount < b.mount ? -1 : a.mount > b.mount ? 1 : 0));
      return { host, time, filesystems: all };
    },
    close() {
      closed = true;
      clearInterval(timer);
      pool.close();
    },
  };
}
