// The mount table (Linux /proc/self/mountinfo, read without touching any mount) and which filesystems are reported: node_exporter's default exclusions, plus glob filters.
import picomatch from 'picomatch';

export interface MountEntry {
  mount: string;
  fstype: string;
  device: string;
  /** Mounted read-only (per-mount or superblock option "ro"). */
  readonly?: boolean;
  /** The device number, as stat(2)'s st_dev of a file on it (mountinfo's major:minor). */
  dev?: number;
}

/**
 * Filesystem types left out by default: node_exporter's `--collector.filesystem.fs-types-exclude`
 * default list, plus a few more kernel and desktop interfaces that hold no data. tmpfs is kept, as
 * node_exporter keeps it: a full /run or /dev/shm causes outages too. Listed in docs/protocol.md 1.5.
 */
export const DEFAULT_EXCLUDED_FS_TYPES: readonly string[] = [
  // node_exporter's defaults
  'autofs', 'binfmt_misc', 'bpf', 'cgroup', 'cgroup2', 'configfs', 'debugfs', 'devpts', 'devtmpfs', 'fusectl', 'hugetlbfs',
  'iso9660', 'mqueue', 'nsfs', 'overlay', 'proc', 'procfs', 'pstore', 'rpc_pipefs', 'securityfs', 'selinuxfs', 'squashfs',
  'erofs', 'sysfs', 'tracefs',
  // netkit's additions
  'aufs', 'devfs', 'efivarfs', 'fuse.gvfsd-fuse', 'fuse.lxcfs', 'fuse.portal', 'nullfs', 'overlayfs', 'ramfs', 'rootfs', 'none',
];

/** Mount points left out by default: node_exporter's `--collector.filesystem.mount-points-exclude` default. */
export const DEFAULT_EXCLUDED_MOUNTS: readonly string[] = ['/dev', '/dev/**', '/proc', '/proc/**', '/sys', '/sys/**', '/run/credentials/**', '/var/lib/docker/**', '/var/lib/containers/storage/**'];

export interface MountFilterOptions {
  /** Globs of filesystem types to report even if excluded by default (e.g. "overlay"). */
  fsInclude?: readonly string[];
  /** Globs of filesystem types to leave out, on top of the defaults. */
  fsExclude?: readonly string[];
  /** Globs of mount points to report even if excluded by default. */
  mountInclude?: readonly string[];
  /** Globs of mount points to leave out, on top of the defaults. */
  mountExclude?: readonly string[];
  /** Leave out the defaults (only the given excludes apply). */
  noDefaults?: boolean;
}

export type MountFilter = (m: { mount: string; fstype: string }) => boolean;

function matcher(globs: readonly string[] | undefined): (s: string) => boolean {
  if (!globs || globs.length === 0) return () => false;
  // dot: true so that "/run/*" matches "/run/.x"; nocase for types written in capitals.
  return picomatch(globs as string[], { dot: true });
}

/**
 * Which filesystems are reported. An include names what to keep despite an exclusion (a default one
 * or a given one); when only includes are given for a kind, they also narrow the report to what they name.
 */
export function mountFilter(o: MountFilterOptions = {}): MountFilter {
  const types = o.noDefaults ? [] : DEFAULT_EXCLUDED_FS_TYPES;
  const mounts = o.noDefaults ? [] : DEFAULT_EXCLUDED_MOUNTS;
  const fsDefault = new Set(types);
  const mountDefault = matcher(mounts);
  const fsIn = matcher(o.fsInclude);
  const fsOut = matcher(o.fsExclude);
  const mIn = matcher(o.mountInclude);
  const mOut = matcher(o.mountExclude);
  const narrowFs = (o.fsInclude?.length ?? 0) > 0;
  const narrowMount = (o.mountInclude?.length ?? 0) > 0;
  return ({ mount, fstype }) => {
    const t = fstype.toLowerCase();
    const typeIncluded = fsIn(t);
    const mountIncluded = mIn(mount);
    if (narrowFs && !typeIncluded) return false;
    if (narrowMount && !mountIncluded) return false;
    if (!typeIncluded && (fsDefault.has(t) || fsOut(t))) return false;
    if (!mountIncluded && (mountDefault(mount) || mOut(mount))) return false;
    return true;
  };
}

/** glibc's makedev(): how Linux packs major and minor into st_dev. */
export function makedev(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + (minor & ~0xff) * 0x1000 + Math.floor(major / 0x1000) * 0x1000 * 0x100000000;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Parse /proc/self/mountinfo (proc(5)): "id parent major:minor root mountpoint options [optional...] - fstype source superoptions".
 * A mount point listed twice (one mount over another) is reported once, as the one on top (listed last).
 */
export function parseMountinfo(text: string): MountEntry[] {
  const byMount = new Map<string, MountEntry>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const left = line.slice(0, dash).split(' ');
    const right = line.slice(dash + 3).split(' ');
    if (left.length < 6 || right.length < 3) continue;
    const mount = unescape(left[4]!);
    const options = left[5]!.split(',');
    const superOptions = right[2]!.split(',');
    const [major, minor] = left[2]!.split(':').map(Number) as [number, number];
    const entry: MountEntry = {
      mount,
      fstype: unescape(right[0]!),
      device: unescape(right[1]!),
      readonly: options.includes('ro') || superOptions.includes('ro'),
      dev: makedev(major, minor),
    };
    byMount.delete(mount); // keep insertion order of the one on top
    byMount.set(mount, entry);
  }
  return [...byMount.values()];
}
