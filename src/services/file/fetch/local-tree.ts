// The local side of a tree fetch: directories under --out created one segment at a time and never through a symbolic link, what already sits at a target, and times and modes applied to what arrived.
import { createHash } from 'node:crypto';
import fs, { constants as fsc, promises as fsp, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { NetkitError, errnoOf, fsError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import type { Found } from './write-thread.js';

/** What sits at a target before the fetch. */
export type Present =
  | { kind: 'none' }
  | { kind: 'file'; size: number; mtimeMs: number; mode: number }
  | { kind: 'dir' }
  | { kind: 'other'; what: string };

/** Nothing at a target: one shared value (a tree of many files looks most of them up as this). */
const NONE: Present = Object.freeze({ kind: 'none' });

/** Whole milliseconds since the epoch, as the server counts them (ENTRY and RESPONSE MTIME). */
export function mtimeMsOfLocal(st: BigIntStats): number {
  return st.mtimeNs <= 0n ? 0 : Number(st.mtimeNs / 1_000_000n);
}

/**
 * The time to give a file so that mtimeMsOfLocal reads `ms` back: the middle of that millisecond, so
 * the conversion through a double (seconds) can never land in the millisecond before.
 */
export function timeFor(ms: number): number {
  return (ms + 0.5) / 1000;
}

/** The mode a received file or directory gets: the server's permission bits without setuid, setgid or sticky, less the umask. */
export function localMode(mode: number, umask: number): number {
  return mode & 0o777 & ~umask;
}

function describe(st: fs.BigIntStats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

function notADirectory(abs: string, st: fs.BigIntStats): NetkitError {
  return new NetkitError('PERMISSION', `${sanitize(abs)} is ${describe(st)}, not a directory: refusing to save anything through it`, 'move it out of the way, or choose another --out');
}

/**
 * The directories of one fetch under OUT. Each is made with mkdir(2) one segment at a time and then
 * checked with lstat(2): it must be a real directory, never a symbolic link, so nothing is ever
 * written through a link that sits (or is planted) on the way. A directory made by this fetch is known
 * to have been empty, which spares the look at each of its files.
 */
export class LocalTree {
  private readonly dirs = new Map<string, Promise<void>>();
  private readonly checks = new Map<string, Promise<'dir' | 'none'>>();
  /** Directories checkDir found missing (nothing in them to look up) and not made since. */
  private readonly absent = new Set<string>();
  private readonly made = new Set<string>();
  private readonly mine = new Set<string>();
  /** Each directory's path as pathOf begins its files' (a trailing separator, or '' for OUT `.`), by its relative path. */
  private readonly dirPaths = new Map<string, string>();

  constructor(readonly outDir: string) {}

  /** The absolute path of a target (relative, `/`-separated). */
  pathOf(target: string): string {
    const cut = target.lastIndexOf('/');
    const base = target.slice(cut + 1);
    // A plain last segment: its directory's path (joined once per directory) and the name.
    if (base === '' || base === '.' || base === '..' || (path.sep !== '/' && base.includes(path.sep))) return path.join(this.outDir, ...target.split('/'));
    const dir = cut < 0 ? '' : target.slice(0, cut);
    let d = this.dirPaths.get(dir);
    if (d === undefined) {
      // Joined with a stand-in last segment and cut before it: exactly what path.join gives with the real one.
      d = path.join(this.outDir, ...dir.split('/'), 'x').slice(0, -1);
      this.dirPaths.set(dir, d);
    }
    return d + base;
  }

  /** Make sure the directory `rel` ('' is OUT) exists as a real directory, creating what is missing. */
  ensureDir(rel: string): Promise<void> {
    if (rel === '') return Promise.resolve();
    let p = this.dirs.get(rel);
    if (!p) {
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      p = this.ensureDir(parent).then(() => this.makeOne(rel));
      this.dirs.set(rel, p);
      // A failure is reported to each caller; a later call tries again.
      p.catch(() => this.dirs.delete(rel));
    }
    return p;
  }

  /**
   * Look at the directory `rel` without creating anything (before the room for a listing is known):
   * 'dir' when it is a real directory, 'none' when it, or a directory above it, does not exist yet.
   * Anything else on the way (a symbolic link, a file) throws what ensureDir would.
   */
  checkDir(rel: string): Promise<'dir' | 'none'> {
    if (rel === '') return Promise.resolve('dir');
    const made = this.dirs.get(rel);
    if (made) return made.then(() => 'dir');
    let p = this.checks.get(rel);
    if (!p) {
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      p = this.checkDir(parent).then(async (up) => {
        if (up === 'dir') {
          const abs = this.pathOf(rel);
          let st;
          try {
            st = await fsp.lstat(abs, { bigint: true });
          } catch (err) {
            if (errnoOf(err) !== 'ENOENT') throw fsError(err, `cannot check ${abs}`);
          }
          if (st && !st.isDirectory()) throw notADirectory(abs, st);
          if (st) return 'dir';
        }
        this.absent.add(rel);
        return 'none';
      });
      this.checks.set(rel, p);
      p.catch(() => this.checks.delete(rel));
    }
    return p;
  }

  private async makeOne(rel: string): Promise<void> {
    const abs = this.pathOf(rel);
    try {
      await fsp.mkdir(abs);
      this.made.add(rel);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw fsError(err, `cannot create ${abs}`);
    }
    this.absent.delete(rel);
    this.checks.delete(rel);
    let st;
    try {
      st = await fsp.lstat(abs, { bigint: true });
    } catch (err) {
      throw fsError(err, `cannot check ${abs}`);
    }
    if (!st.isDirectory()) {
      this.made.delete(rel);
      throw notADirectory(abs, st);
    }
    const me = process.getuid?.();
    if (this.made.has(rel) && me !== undefined && Number(st.uid) === me && (st.mode & 0o022n) === 0n) this.mine.add(rel);
  }

  /**
   * True when this fetch made the directory `rel` and nobody else can write in it (ours, no group or
   * other write bit): nothing but this fetch has put a name there, so a verified file may be written
   * next to its final name and renamed onto it.
   */
  private(rel: string): boolean {
    return this.mine.has(rel);
  }

  /** True when this fetch created the directory `rel` (so it held nothing of its own before). */
  madeHere(rel: string): boolean {
    return this.made.has(rel);
  }

  /** What sits at `target` now (never following a symbolic link). */
  async present(target: string): Promise<Present> {
    const dir = target.includes('/') ? target.slice(0, target.lastIndexOf('/')) : '';
    if (dir !== '' && (this.madeHere(dir) || this.absent.has(dir))) return { kind: 'none' };
    let st;
    try {
      st = await fsp.lstat(this.pathOf(target), { bigint: true });
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return { kind: 'none' };
      throw fsError(err, `cannot check ${this.pathOf(target)}`);
    }
    if (st.isFile()) return { kind: 'file', size: Number(st.size), mtimeMs: mtimeMsOfLocal(st), mode: Number(st.mode & 0o7777n) };
    if (st.isDirectory()) return { kind: 'dir' };
    return { kind: 'other', what: describe(st) };
  }

  /**
   * What sits at each target, looked up by `lstatMany` (the writer thread, in one message per batch);
   * a target in a directory this fetch made, or that checkDir found missing, is known to be free.
   */
  async presentMany(targets: readonly string[], lstatMany: (paths: string[]) => Promise<Found[]>): Promise<Present[]> {
    const out: Present[] = new Array<Present>(targets.length).fill(NONE);
    const ask: number[] = [];
    targets.forEach((t, i) => {
      const dir = t.includes('/') ? t.slice(0, t.lastIndexOf('/')) : '';
      if (dir === '' || !(this.madeHere(dir) || this.absent.has(dir))) ask.push(i);
    });
    for (let at = 0; at < ask.length; at += 2048) {
      const slice = ask.slice(at, at + 2048);
      const found = await lstatMany(slice.map((i) => this.pathOf(targets[i]!)));
      found.forEach((f, j) => {
        const i = slice[j]!;
        if (f.k === 'error') throw fsError(Object.assign(new Error(f.message), { code: f.errno }), `cannot check ${this.pathOf(targets[i]!)}`);
        out[i] = f.k === 'file' ? { kind: 'file', size: f.size, mtimeMs: f.mtimeMs, mode: f.mode } : f.k === 'dir' ? { kind: 'dir' } : f.k === 'other' ? { kind: 'other', what: f.what } : NONE;
      });
    }
    return out;
  }

  /** SHA-256 of the regular file at `target` (opened without following a link or blocking on a FIFO). */
  async hashOf(target: string): Promise<Buffer> {
    const p = this.pathOf(target);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(p, fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0) | (fsc.O_NONBLOCK ?? 0));
    } catch (err) {
      throw fsError(err, `cannot read ${p}`);
    }
    try {
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (let pos = 0; ; ) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      return hash.digest();
    } catch (err) {
      throw fsError(err, `cannot read ${p}`);
    } finally {
      await fh.close();
    }
  }

  /**
   * Give the directory `rel` the server's mode and time (after everything in it arrived: adding a file
   * changes a directory's time). Only a real directory is touched, never through a link.
   */
  async finishDir(rel: string, meta: { mtimeMs: number; mode: number }, umask: number): Promise<void> {
    const abs = rel === '' ? this.outDir : this.pathOf(rel);
    const st = await fsp.lstat(abs).catch(() => undefined);
    if (!st?.isDirectory()) return;
    try {
      // u+wx stays, so that a later run can still add what is missing inside.
      await fsp.chmod(abs, localMode(meta.mode, umask) | 0o300);
      await fsp.utimes(abs, timeFor(meta.mtimeMs), timeFor(meta.mtimeMs));
    } catch (err) {
      throw fsError(err, `cannot set the time of ${abs}`);
    }
  }
}
