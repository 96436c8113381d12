// The private staging directory OUT/.netkit/: partial downloads, their records and locks live there, and only verified bytes leave it, under their final names.
import fs, { constants as fsc, promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { NetkitError, errnoOf, fsError } from '../../../errors.js';
import { acquireLock, type HeldLock } from './lock.js';
import { STAGING_DIR, checkOutDir, nameTaken, stagingKey, targetSegments } from './staging-paths.js';
import type { PublishMeta } from './context.js';

export { STAGING_DIR, nameTaken, stagingKey, targetSegments } from './staging-paths.js';

const NOFOLLOW = fsc.O_NOFOLLOW ?? 0;
const NONBLOCK = fsc.O_NONBLOCK ?? 0;
/** Every file netkit creates in staging: new (never an existing file), never through a symbolic link. */
const CREATE = fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | NOFOLLOW;
/** Reopening our own files: never through a link, never waiting on a FIFO. */
const REOPEN = fsc.O_RDWR | NOFOLLOW | NONBLOCK;
const READ = fsc.O_RDONLY | NOFOLLOW | NONBLOCK;

/** What a resume needs to know about a partial download: written next to it when the server first answers. */
export interface PartInfo {
  netkit: 2;
  /** The target path under OUT, `/`-separated. */
  target: string;
  /** The name requested from the server. */
  name: string;
  /** The server it came from (host:port as typed), for messages only: the validator decides a resume. */
  server: string;
  size: number;
  /** The server's validator, hex. */
  validator: string;
}

/** What a previous run left for a target: an open descriptor on our own partial file, and its record if readable. */
export interface Leftover {
  fd: number;
  bytes: number;
  info: PartInfo | undefined;
}

const uid = (): number | undefined => process.getuid?.();

/** Where an open file is now, where the system tells (Linux /proc): after its directory was renamed, say. */
function pathOfFd(fd: number): string | undefined {
  try {
    const p = fs.readlinkSync(`/proc/self/fd/${fd}`);
    return p.startsWith('/') && !p.endsWith(' (deleted)') ? p : undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}
// Raw descriptors, not FileHandles: the partial file stays open across attempts, owned by the session.
const openFd = promisify(fs.open);
const fstatFd = promisify(fs.fstat);
const closeFd = promisify(fs.close);
const fchmodFd = promisify(fs.fchmod);
const futimesFd = promisify(fs.futimes);

/**
 * OUT/.netkit, checked once: a directory (not a symbolic link), owned by this user, mode 0700. Another
 * user who planted anything else there gets a refusal, never our data. Files inside are named by a
 * hash of their target, so a multi-file fetch can keep one entry per file (`file(target)`).
 */
export class Staging {
  private constructor(
    readonly outDir: string,
    readonly dir: string,
    private dev: number,
    private ino: number,
  ) {}

  static async open(outDir: string): Promise<Staging> {
    let out;
    try {
      out = await fsp.stat(outDir);
    } catch (err) {
      const errno = errnoOf(err);
      throw new NetkitError('LOCAL_IO', `--out ${outDir}: ${errno === 'ENOENT' ? 'no such directory' : (errno ?? String(err))}`, 'create it first, or choose another --out', { cause: err });
    }
    if (!out.isDirectory()) throw new NetkitError('LOCAL_IO', `--out ${outDir} is not a directory`, 'choose a directory with --out');
    checkOutDir(outDir);
    const dir = path.join(outDir, STAGING_DIR);
    try {
      await fsp.mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') {
        // ENOENT inside an existing directory: a file system that takes no new directory (/proc, /sys).
        if (errnoOf(err) === 'ENOENT') throw new NetkitError('LOCAL_IO', `cannot create the staging directory ${dir}: that file system takes no new files`, 'choose a directory on a disk with --out', { cause: err });
        throw fsError(err, `cannot create the staging directory ${dir}`);
      }
    }
    const st = await Staging.check(dir);
    return new Staging(outDir, dir, st.dev, st.ino);
  }

  /** lstat `dir` and insist it is our own private directory; a loose mode on our own directory is tightened. */
  private static async check(dir: string): Promise<{ dev: number; ino: number }> {
    let st;
    try {
      st = await fsp.lstat(dir);
    } catch (err) {
      throw fsError(err, `cannot check the staging directory ${dir}`);
    }
    const hint = `netkit keeps partial downloads in ${dir}; remove what is there (or choose another --out)`;
    if (st.isSymbolicLink()) throw new NetkitError('PERMISSION', `${dir} is a symbolic link, not netkit's staging directory: refusing to use it`, hint);
    if (!st.isDirectory()) throw new NetkitError('PERMISSION', `${dir} is not a directory: refusing to use it as netkit's staging directory`, hint);
    const me = uid();
    if (me !== undefined && st.uid !== me) {
      throw new NetkitError('PERMISSION', `${dir} belongs to another user (uid ${st.uid}): refusing to keep partial downloads there`, hint);
    }
    if (me !== undefined && (st.mode & 0o077) !== 0) {
      try {
        await fsp.chmod(dir, 0o700);
      } catch (err) {
        throw fsError(err, `cannot make ${dir} private`);
      }
    }
    return { dev: st.dev, ino: st.ino };
  }

  /** The directory at OUT/.netkit now is the one checked at the start (same device and inode, not a link). */
  private async same(): Promise<boolean> {
    try {
      const st = await fsp.lstat(this.dir);
      return st.isDirectory() && st.dev === this.dev && st.ino === this.ino;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return false;
      throw fsError(err, `cannot check the staging directory ${this.dir}`);
    }
  }

  /**
   * Before publishing: the staging directory must still be the one checked at the start. Replaced
   * (renamed away, another put in its place) is told as such before anything about the new one's owner,
   * with where the verified bytes are now when the open partial file `fd` tells.
   */
  async recheck(fd?: number): Promise<void> {
    if (!(await this.same())) {
      const now = fd === undefined ? undefined : pathOfFd(fd);
      const where = now === undefined ? '' : `; the verified data is in ${now}`;
      throw new NetkitError('PERMISSION', `${this.dir} was replaced during the download: refusing to publish from it${where}`, 'someone else can rename entries in the output directory; choose a private --out');
    }
    await Staging.check(this.dir);
  }

  /** The staging entry for `target` (a relative path under OUT, e.g. `big.iso` or `photos/2024/a.jpg`). */
  file(target: string): StagedFile {
    return new StagedFile(this, target, path.join(this.outDir, ...targetSegments(target)), path.join(this.dir, stagingKey(target)));
  }

  /**
   * The names in staging now, for a tree fetch to tell which targets have a partial download to resume
   * (KEY.part) without looking for each. Temporary files of small files (KEY.PID.new) that a killed
   * netkit left behind are removed on the way.
   */
  async names(): Promise<Set<string>> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (err) {
      throw fsError(err, `cannot read the staging directory ${this.dir}`);
    }
    for (const n of names) {
      const m = /\.(\d+)\.new$/.exec(n);
      if (m && Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) await fsp.unlink(path.join(this.dir, n)).catch(() => undefined);
    }
    return new Set(names);
  }

  /**
   * Remove the staging directory if nothing is left in it (another fetch's files keep it), and only if it
   * is still the one this fetch checked: a directory someone put in its place is not ours to remove.
   */
  async tidy(): Promise<void> {
    if (await this.same().catch(() => false)) await fsp.rmdir(this.dir).catch(() => undefined);
  }

  /** Create the staging directory again if a finishing fetch just tidied it away, and check it as at the start. */
  async reopen(): Promise<void> {
    await fsp.mkdir(this.dir, { mode: 0o700 }).catch(() => undefined);
    const st = await Staging.check(this.dir);
    this.dev = st.dev;
    this.ino = st.ino;
  }
}

/** One target's partial file (`KEY.part`), its record (`KEY.json`) and its lock (`KEY.lock`) in staging. */
export class StagedFile {
  readonly partPath: string;
  readonly infoPath: string;
  readonly lockPath: string;

  constructor(
    readonly staging: Staging,
    readonly target: string,
    readonly finalPath: string,
    key: string,
  ) {
    this.partPath = `${key}.part`;
    this.infoPath = `${key}.json`;
    this.lockPath = `${key}.lock`;
  }

  /** Lock this target for this process (LOCKED if a live netkit holds it); `what` completes "another netkit (pid N) is …". */
  async lock(what: string): Promise<HeldLock> {
    try {
      return await acquireLock(this.lockPath, what);
    } catch (err) {
      if (!(err instanceof NetkitError && err.code === 'NOT_FOUND')) throw err;
      await this.staging.reopen(); // tidied away by a fetch that just finished
      return acquireLock(this.lockPath, what);
    }
  }

  /** True when something (anything, even a dangling link or a FIFO) has the final name. */
  finalExists(): Promise<boolean> {
    return nameTaken(this.finalPath);
  }

  /**
   * Open what an earlier run left, if it is our own regular file with a single name; anything else
   * under the partial name is removed (its name only) and `dropped` tells why.
   */
  async leftover(): Promise<{ found?: Leftover; dropped?: string }> {
    let fd: number;
    try {
      fd = await openFd(this.partPath, REOPEN);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT') return {};
      if (errno === 'ELOOP' || errno === 'ENXIO' || errno === 'EISDIR') {
        await this.discard();
        return { dropped: `${this.partPath} was not a regular file` };
      }
      throw fsError(err, `cannot open ${this.partPath}`);
    }
    const st = await fstatFd(fd);
    const me = uid();
    // A second name (nlink > 1) would be a published copy: writing into it would change that file.
    if (!st.isFile() || (me !== undefined && st.uid !== me) || st.nlink !== 1) {
      await closeFd(fd);
      await this.discard();
      return { dropped: `${this.partPath} was not a private regular file of ours` };
    }
    return { found: { fd, bytes: st.size, info: await this.readInfo() } };
  }

  private async readInfo(): Promise<PartInfo | undefined> {
    try {
      const fh = await fsp.open(this.infoPath, READ);
      try {
        const st = await fh.stat();
        const me = uid();
        if (!st.isFile() || (me !== undefined && st.uid !== me) || st.size > 16 * 1024) return undefined;
        const info = JSON.parse(await fh.readFile('utf8')) as Partial<PartInfo>;
        if (
          info.netkit === 2 &&
          info.target === this.target &&
          typeof info.name === 'string' &&
          typeof info.server === 'string' &&
          Number.isSafeInteger(info.size) &&
          typeof info.validator === 'string' &&
          /^(?:[0-9a-f]{2})*$/.test(info.validator)
        ) {
          return info as PartInfo;
        }
      } finally {
        await fh.close();
      }
    } catch {
      // missing or unreadable: no resume
    }
    return undefined;
  }

  /** A new, empty partial file of our own (any old one is removed first); returns its descriptor. */
  async create(): Promise<number> {
    await this.discard();
    try {
      return await openFd(this.partPath, CREATE, 0o600);
    } catch (err) {
      throw fsError(err, `cannot create ${this.partPath}`);
    }
  }

  /** Record what a resume needs, replacing the old record whole (a new file renamed over it). */
  async writeInfo(info: PartInfo): Promise<void> {
    const tmp = `${this.infoPath}.tmp`;
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    try {
      const fh = await fsp.open(tmp, CREATE, 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(info)}\n`);
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.infoPath);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw fsError(err, `cannot write ${this.infoPath}`);
    }
  }

  /** Remove the partial file and its record (the names only: never anything they might point to). */
  async discard(): Promise<void> {
    for (const p of [this.partPath, this.infoPath]) await fsp.unlink(p).catch(() => undefined);
  }

  /**
   * Give the verified partial file (open as `fd`) its final name: without `force` through link(2),
   * which fails rather than replace anything that has the name by then; with `force` through rename(2),
   * which replaces the name itself (a symbolic link there is replaced, never followed). Afterwards the
   * final name must lead to the very file we verified, else it is removed again and the publish fails.
   * The mode (setuid, setgid and sticky never) and time are set on the descriptor before the name.
   */
  async publish(fd: number, force: boolean, meta: PublishMeta = {}): Promise<void> {
    await this.staging.recheck(fd);
    await this.makeParents();
    // Private while partial; published with the server's permission bits (less the umask), or the mode
    // any new file of the user's would have; and the server's modification time when it is kept.
    await fchmodFd(fd, (meta.mode ?? 0o666) & 0o777 & ~process.umask());
    if (meta.mtimeMs !== undefined) await futimesFd(fd, (meta.mtimeMs + 0.5) / 1000, (meta.mtimeMs + 0.5) / 1000);
    const verified = await fstatFd(fd);
    const kept = `the verified data is kept in ${this.partPath}`;
    if (force) {
      try {
        await fsp.rename(this.partPath, this.finalPath);
      } catch (err) {
        throw fsError(err, `cannot move ${this.partPath} to ${this.finalPath}`);
      }
    } else {
      try {
        await fsp.link(this.partPath, this.finalPath);
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === 'EEXIST') throw new NetkitError('EXISTS', `${this.finalPath} appeared during the download; ${kept}`, 'use --force to overwrite it');
        if (errno !== 'EPERM' && errno !== 'ENOTSUP' && errno !== 'EOPNOTSUPP' && errno !== 'EXDEV') throw fsError(err, `cannot create ${this.finalPath}`);
        await this.claimThenRename(kept);
      }
    }
    let landed;
    try {
      landed = await fsp.lstat(this.finalPath);
    } catch (err) {
      throw fsError(err, `cannot check ${this.finalPath}`);
    }
    if (landed.dev !== verified.dev || landed.ino !== verified.ino) {
      await fsp.unlink(this.finalPath).catch(() => undefined);
      throw new NetkitError('PERMISSION', `${this.partPath} was replaced before it was published; nothing was saved as ${this.finalPath}`, 'someone else can change the output directory; choose a private --out');
    }
    await fsp.unlink(this.partPath).catch(() => undefined);
    await fsp.unlink(this.infoPath).catch(() => undefined);
  }

  /** File systems without hard links: an exclusive create of the final name, then rename over our own claim. */
  private async claimThenRename(kept: string): Promise<void> {
    try {
      const claim = await fsp.open(this.finalPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | NOFOLLOW, 0o600);
      await claim.close();
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') throw new NetkitError('EXISTS', `${this.finalPath} appeared during the download; ${kept}`, 'use --force to overwrite it');
      throw fsError(err, `cannot create ${this.finalPath}`);
    }
    try {
      await fsp.rename(this.partPath, this.finalPath);
    } catch (err) {
      throw fsError(err, `cannot move ${this.partPath} to ${this.finalPath}`);
    }
  }

  /** Directories between OUT and a nested target: created as needed, and each must be a real directory. */
  private async makeParents(): Promise<void> {
    const segments = targetSegments(this.target).slice(0, -1);
    let dir = this.staging.outDir;
    for (const s of segments) {
      dir = path.join(dir, s);
      await fsp.mkdir(dir).catch((err: unknown) => {
        if (errnoOf(err) !== 'EEXIST') throw fsError(err, `cannot create ${dir}`);
      });
      const st = await fsp.lstat(dir);
      if (!st.isDirectory()) throw new NetkitError('PERMISSION', `${dir} is not a directory (a symbolic link?): refusing to save through it`);
    }
  }
}
