// Small files of a tree fetch, written behind the socket: each verified file goes to a private temporary name in staging, a whole group is flushed at once, then each is published under its final name without clobbering anything.
import { execFile } from 'node:child_process';
import fs, { constants as fsc } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { NetkitError, errnoOf, fsError } from '../../../errors.js';
import type { LocalTree } from './local-tree.js';
import type { BodySink } from './receiver.js';
import { stagingKey, type Staging } from './staging.js';

/** Files up to this size are received into memory and written whole; larger ones stream into a resumable partial file. */
export const SMALL_FILE = 1024 * 1024;
/** Bytes of received small files waiting for the disk before the socket is left to wait. */
const BACKLOG_BYTES = 16 * 1024 * 1024;
/** A group flushed together: at most this many files (each holds a descriptor until the flush) or bytes. */
const GROUP_FILES = 256;
const GROUP_BYTES = 8 * 1024 * 1024;
/** File-system calls of one group in flight at once. */
const PARALLEL = 16;

const NOFOLLOW = fsc.O_NOFOLLOW ?? 0;
const CREATE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | NOFOLLOW;

const open = promisify(fs.open);
const write = promisify(fs.write);
const futimes = promisify(fs.futimes);
const fsync = promisify(fs.fsync);
const close = promisify(fs.close);
const link = promisify(fs.link);
const rename = promisify(fs.rename);
const unlink = promisify(fs.unlink);

/** A body received into memory (a small file): the Receiver reads into its buffer, never past it. */
export class MemorySink implements BodySink {
  readonly data: Buffer;
  private fill = 0;
  readonly high = false;
  readonly failed = undefined;
  onResume: () => void = () => undefined;
  onFail: (err: NetkitError) => void = () => undefined;

  constructor(size: number) {
    this.data = Buffer.allocUnsafe(size);
  }

  get length(): number {
    return this.fill;
  }

  region(max: number): Buffer {
    return this.data.subarray(this.fill, this.fill + Math.min(max, this.data.length - this.fill));
  }

  commit(n: number): void {
    this.fill += n;
  }

  push(chunk: Buffer): void {
    chunk.copy(this.data, this.fill);
    this.fill += chunk.length;
  }
}

export interface SmallFile {
  target: string;
  data: Buffer;
  /** The server's time (ms), to keep; undefined: the time of the fetch. */
  mtimeMs: number | undefined;
  /** The mode to create it with (umask still applies). */
  mode: number;
  /** Replace whatever has the final name (--force, or an older copy that differs). */
  replace: boolean;
  sha256: Buffer;
}

/** How a small file ended: published, found identical under its name (someone else's copy), or failed. */
export type SmallOutcome = { kind: 'published' } | { kind: 'same' } | { kind: 'failed'; error: NetkitError };

let syncfsWorks: boolean | undefined = process.platform === 'linux' ? undefined : false;

/**
 * Flush every file system holding `dir` with one syncfs(2) (coreutils `sync -f`): one call makes a
 * whole group durable, where an fsync(2) per file waits once per file. False when it cannot be used.
 */
function syncfs(dir: string): Promise<boolean> {
  if (syncfsWorks === false) return Promise.resolve(false);
  return new Promise((resolve, reject) => {
    execFile('sync', ['-f', dir], { timeout: 0 }, (err) => {
      if (!err) {
        syncfsWorks = true;
        resolve(true);
      } else if (syncfsWorks === undefined) {
        syncfsWorks = false; // no `sync -f` here: fsync each file instead
        resolve(false);
      } else {
        reject(new NetkitError('LOCAL_IO', `cannot flush ${dir} to the disk: ${err.message}`));
      }
    });
  });
}

/** Run `fn` over `items`, at most PARALLEL at a time. */
async function each<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
}

/**
 * The write-behind queue of small files. add() never waits; roomFor() lets the receiving side wait while
 * too many bytes are queued. Groups are written to `KEY.<pid>.new` in staging (new files, never through
 * a link), flushed together (unless --no-fsync), then published with link(2) (which never replaces
 * anything) or, with `replace`, rename(2); each directory that gained names is flushed once per group.
 */
export class SmallFiles {
  private readonly queue: SmallFile[] = [];
  private queued = 0;
  private running: Promise<void> | undefined;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly staging: Staging,
    private readonly tree: LocalTree,
    private readonly durable: boolean,
    private readonly done: (f: SmallFile, outcome: SmallOutcome) => void,
  ) {}

  /** Bytes received and not yet on the disk. */
  get pending(): number {
    return this.queued;
  }

  add(f: SmallFile): void {
    this.queue.push(f);
    this.queued += f.data.length;
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      this.wake();
    });
  }

  /** Resolve once `bytes` more fit in the backlog (at once when nothing waits). */
  async roomFor(bytes: number): Promise<void> {
    while (this.queued > 0 && this.queued + bytes > BACKLOG_BYTES) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** Resolve once every file added so far is published (or failed). */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  private async loop(): Promise<void> {
    while (this.queue.length > 0) {
      let bytes = 0;
      let n = 0;
      while (n < this.queue.length && n < GROUP_FILES && (n === 0 || bytes + this.queue[n]!.data.length <= GROUP_BYTES)) bytes += this.queue[n++]!.data.length;
      const group = this.queue.splice(0, n);
      await this.write(group);
      this.queued -= bytes;
      this.wake();
    }
  }

  private tempOf(f: SmallFile): string {
    return path.join(this.staging.dir, `${stagingKey(f.target)}.${process.pid}.new`);
  }

  private async write(group: SmallFile[]): Promise<void> {
    const opened = new Map<SmallFile, number>();
    const failed = new Map<SmallFile, NetkitError>();
    const fail = (f: SmallFile, err: unknown, what: string): void => void failed.set(f, fsError(err, what));
    try {
      await this.staging.recheck();
    } catch (err) {
      for (const f of group) this.done(f, { kind: 'failed', error: fsError(err, 'staging') });
      return;
    }
    await each(group, async (f) => {
      const temp = this.tempOf(f);
      try {
        await this.tree.ensureDir(path.posix.dirname(f.target) === '.' ? '' : path.posix.dirname(f.target));
        let fd: number;
        try {
          fd = await open(temp, CREATE, f.mode);
        } catch (err) {
          if (errnoOf(err) !== 'EEXIST') throw err;
          await unlink(temp); // left by a killed run of the same pid
          fd = await open(temp, CREATE, f.mode);
        }
        opened.set(f, fd);
        for (let at = 0; at < f.data.length; ) at += (await write(fd, f.data, at, f.data.length - at, at)).bytesWritten;
        if (f.mtimeMs !== undefined) {
          const t = (f.mtimeMs + 0.5) / 1000;
          await futimes(fd, t, t);
        }
      } catch (err) {
        fail(f, err, `cannot write ${temp}`);
      }
    });
    const written = group.filter((f) => opened.has(f) && !failed.has(f));
    if (this.durable && written.length > 0 && !(await syncfs(this.staging.dir).catch(() => false))) {
      await each(written, async (f) => {
        try {
          await fsync(opened.get(f)!);
        } catch (err) {
          fail(f, err, `cannot write ${this.tempOf(f)}`);
        }
      });
    }
    await each([...opened.values()], (fd) => close(fd).catch(() => undefined));
    const outcomes = new Map<SmallFile, SmallOutcome>();
    await each(group, async (f) => {
      const err = failed.get(f);
      if (err) {
        await unlink(this.tempOf(f)).catch(() => undefined);
        outcomes.set(f, { kind: 'failed', error: err });
        return;
      }
      outcomes.set(f, await this.publish(f));
    });
    if (this.durable) {
      const dirs = new Set(group.filter((f) => outcomes.get(f)?.kind === 'published').map((f) => path.dirname(this.tree.pathOf(f.target))));
      await each([...dirs], (d) => syncDirQuietly(d));
    }
    for (const f of group) this.done(f, outcomes.get(f)!);
  }

  private async publish(f: SmallFile): Promise<SmallOutcome> {
    const temp = this.tempOf(f);
    const final = this.tree.pathOf(f.target);
    try {
      if (f.replace) {
        await rename(temp, final);
        return { kind: 'published' };
      }
      try {
        await link(temp, final);
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === 'EEXIST') return await this.appeared(f);
        if (errno !== 'EPERM' && errno !== 'ENOTSUP' && errno !== 'EOPNOTSUPP') throw err;
        // No hard links here: claim the name exclusively, then rename over our own claim.
        const claim = await open(final, CREATE, 0o600).catch((e: unknown) => {
          throw errnoOf(e) === 'EEXIST' ? new NetkitError('EXISTS', 'exists') : e;
        });
        await close(claim);
        await rename(temp, final);
        return { kind: 'published' };
      }
      return { kind: 'published' };
    } catch (err) {
      if (err instanceof NetkitError && err.code === 'EXISTS') return this.appeared(f);
      return { kind: 'failed', error: fsError(err, `cannot create ${final}`) };
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  /** The final name was taken during the fetch: identical content counts as there; anything else is reported. */
  private async appeared(f: SmallFile): Promise<SmallOutcome> {
    const final = this.tree.pathOf(f.target);
    const there = await this.tree.present(f.target).catch(() => undefined);
    if (there?.kind === 'file' && there.size === f.data.length) {
      const same = await this.tree.hashOf(f.target).then((h) => h.equals(f.sha256), () => false);
      if (same) return { kind: 'same' };
    }
    return { kind: 'failed', error: new NetkitError('EXISTS', `${final} appeared during the download (another copy, different from the server's)`, 'use --force to overwrite it') };
  }
}

/** fsync a directory so the names just added to it survive a power failure; not every platform can. */
export async function syncDirQuietly(dir: string): Promise<void> {
  try {
    const fd = await open(dir, fsc.O_RDONLY);
    try {
      await fsync(fd);
    } finally {
      await close(fd);
    }
  } catch {
    // the files themselves were flushed
  }
}
