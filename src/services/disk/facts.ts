// Where disk figures come from: fs.statfs for the numbers, systeminformation (in the background) for mount, type and device.
import { realpath, stat, statfs } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, sep } from 'node:path';
import { NetkitError, fsError } from '../../errors.js';
import type { FsFigures } from '../../protocol/disk-v1.js';

/** Which figures a query wants: the served path's filesystem, or every real one. */
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
  read(scope: FactsScope): Promise<DiskSnapshot>;
  close(): void;
}

export interface MountEntry {
  mount: string;
  fstype: string;
  device: string;
}

/**
 * Filesystem types that are not disks and are skipped by "all": kernel interfaces, RAM-backed
 * filesystems (tmpfs and friends hold no disk data), container layers and read-only images.
 * The served path's filesystem is always reported, whatever its type. Listed in docs/protocol.md.
 */
export const PSEUDO_FS_TYPES: ReadonlySet<string> = new Set([
  'autofs', 'binfmt_misc', 'bpf', 'cgroup', 'cgroup2', 'configfs', 'debugfs', 'devfs', 'devpts', 'devtmpfs',
  'efivarfs', 'fusectl', 'hugetlbfs', 'mqueue', 'nsfs', 'overlay', 'overlayfs', 'proc', 'pstore', 'ramfs',
  'rpc_pipefs', 'securityfs', 'selinuxfs', 'squashfs', 'sysfs', 'tmpfs', 'tracefs', 'aufs', 'nullfs',
  'fuse.gvfsd-fuse', 'fuse.portal', 'fuse.lxcfs', 'none', 'rootfs', 'iso9660', 'udev',
]);

export function isPseudoFs(fstype: string): boolean {
  return PSEUDO_FS_TYPES.has(fstype.toLowerCase());
}

/** The mount among `mounts` that holds `path`: the longest mount point that is a prefix of it. */
export function mountFor(path: string, mounts: readonly MountEntry[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    const mp = m.mount;
    const inside = mp === '/' || path === mp || path.startsWith(mp.endsWith(sep) ? mp : mp + sep);
    if (inside && (!best || mp.length > best.mount.length)) best = m;
  }
  return best;
}

/** Turn statfs numbers into the four exact figures (the same arithmetic as df). */
export function figuresFromStatfs(s: { bsize: bigint; blocks: bigint; bfree: bigint; bavail: bigint }): Pick<FsFigures, 'total' | 'used' | 'available' | 'free'> {
  const total = s.blocks * s.bsize;
  const free = s.bfree * s.bsize;
  const available = s.bavail * s.bsize;
  const used = total > free ? total - free : 0n;
  return { total, used, available, free };
}

/** Reject after ms; the timer is unref'd so a pending guard never keeps the process alive. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new NetkitError('TIMEOUT', `${what} took longer than ${ms}ms`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export interface SystemFactsOptions {
  path: string;
  /** How often the mount list is re-read in the background (ms). */
  mountsRefreshMs?: number;
  /** How long one systeminformation refresh or one statfs may take before it is given up on (ms). */
  ioTimeoutMs?: number;
  /** Replaces systeminformation's fsSize() (tests). */
  listMounts?: () => Promise<MountEntry[]>;
}

async function siMounts(): Promise<MountEntry[]> {
  // Loaded lazily: it is big, and only the server needs it.
  const mod = (await import('systeminformation')) as typeof import('systeminformation') & { default?: typeof import('systeminformation') };
  // A CommonJS module: bundled, its functions sit on `default`; under ts-jest, on the namespace.
  const si = mod.default ?? mod;
  const list = await si.fsSize();
  return list.map((f) => ({ mount: f.mount, fstype: f.type, device: f.fs }));
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

/**
 * Figures of the real machine. `path`'s filesystem is read with fs.statfs on every read() (the
 * server caches the result for under a second). The mount list comes from systeminformation,
 * refreshed in the background with a timeout so that a stuck network mount cannot hang anything.
 */
export async function createSystemFacts(opts: SystemFactsOptions): Promise<DiskFactsSource> {
  let real: string;
  try {
    real = await realpath(opts.path);
    await statfs(real);
  } catch (err) {
    throw fsError(err, `cannot serve --path ${opts.path}`);
  }
  const host = hostname();
  const ioTimeoutMs = opts.ioTimeoutMs ?? 3000;
  const listMounts = opts.listMounts ?? siMounts;
  const realDev = (await stat(real)).dev;

  let mounts: MountEntry[] = [];
  let served: MountEntry = { mount: await mountPointByDevice(real), fstype: '', device: '' };
  // statfs calls still running, by mount: a hung one is not started again (it would eat the thread pool).
  const inFlight = new Set<string>();
  let closed = false;

  const pickServed = async (): Promise<void> => {
    // Prefer the longest listed mount on the same device (right for bind mounts); else the walk-up.
    const candidates = mounts.filter((m) => mountFor(real, [m]) !== undefined).sort((a, b) => b.mount.length - a.mount.length);
    for (const m of candidates) {
      try {
        if ((await withTimeout(stat(m.mount), ioTimeoutMs, `stat ${m.mount}`)).dev === realDev) {
          served = m;
          return;
        }
      } catch {
        // unreadable or stuck mount point: not ours
      }
    }
    const listed = mounts.find((m) => m.mount === served.mount);
    if (listed) served = listed;
  };

  const refreshMounts = async (): Promise<void> => {
    try {
      mounts = await withTimeout(listMounts(), ioTimeoutMs, 'listing filesystems');
    } catch {
      // Keep the previous list; the served path is still reported from statfs.
    }
    await pickServed();
  };

  await refreshMounts();
  const timer = setInterval(() => {
    if (!closed) void refreshMounts();
  }, opts.mountsRefreshMs ?? 60_000);
  timer.unref();

  const readOne = async (target: string, entry: MountEntry, isServed: boolean): Promise<FsFigures | undefined> => {
    if (inFlight.has(target)) return undefined;
    inFlight.add(target);
    const call = statfs(target, { bigint: true }).finally(() => inFlight.delete(target));
    try {
      const s = await withTimeout(call, ioTimeoutMs, `statfs ${target}`);
      return { ...entry, ...figuresFromStatfs(s), served: isServed };
    } catch (err) {
      if (isServed) throw err instanceof NetkitError ? err : fsError(err, `cannot read the figures of ${target}`);
      return undefined; // a vanished or stuck mount is left out of "all"
    }
  };

  return {
    host,
    async read(scope) {
      const time = Date.now();
      const servedFs = await readOne(real, served, true);
      if (!servedFs) throw new NetkitError('INTERNAL', `statfs ${real} is still running`);
      if (scope === 'path') return { host, time, filesystems: [servedFs] };
      const others = mounts.filter((m) => m.mount !== served.mount && !isPseudoFs(m.fstype));
      const seen = new Set([served.mount]);
      const unique = others.filter((m) => (seen.has(m.mount) ? false : (seen.add(m.mount), true)));
      const rest = await Promise.all(unique.map((m) => readOne(m.mount, m, false)));
      const all = [servedFs, ...rest.filter((f): f is FsFigures => f !== undefined)];
      all.sort((a, b) => (a.mount < b.mount ? -1 : a.mount > b.mount ? 1 : 0));
      return { host, time, filesystems: all };
    },
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
