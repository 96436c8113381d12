// Small files of a tree fetch, written behind the socket: each verified file is written under a temporary name by the writer thread, a whole group is flushed at once, then each takes its final name without clobbering anything.
import path from 'node:path';
import { NetkitError, fsError } from '../../../errors.js';
import type { LocalTree } from './local-tree.js';
import type { BodySink } from './receiver.js';
import { stagingKey, type Staging } from './staging.js';
import { WriterThread, type WriteJob, type WriteResult } from './write-thread.js';

/** Files up to this size are received into memory and written whole; larger ones stream into a resumable partial file. */
export const SMALL_FILE = 1024 * 1024;
/** Bytes of received small files waiting for the disk before the socket is left to wait. */
const BACKLOG_BYTES = 4 * 1024 * 1024;
/** A group flushed together: at most this many files or bytes. */
const GROUP_FILES = 1024;
const GROUP_BYTES = 2 * 1024 * 1024;

/** A body received into memory (a small file): the Receiver reads into its buffer, never past it. */
export class MemorySink implements BodySink {
  /** Its own memory (not a pooled slice), so it can move to the writer thread without a copy. */
  readonly data: Buffer;
  private fill = 0;
  readonly high = false;
  readonly failed = undefined;
  onResume: () => void = () => undefined;
  onFail: (err: NetkitError) => void = () => undefined;

  constructor(size: number) {
    this.data = Buffer.allocUnsafeSlow(size);
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
  /** Handed to the writer thread (empty afterwards): `size` says how long it was. */
  data: Buffer;
  size: number;
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

/**
 * The write-behind queue of small files. add() never waits; roomFor() lets the receiving side wait while
 * too many bytes are queued. A file goes next to its final name when this fetch made that directory and
 * nobody else can write there (then rename(2)), else to `KEY.PID.new` in staging (then link(2), which
 * never replaces anything); created new, never through a link. Each group is flushed before any of it
 * is named (unless --no-fsync), and each directory that gained names is flushed once per group.
 */
export class SmallFiles {
  private readonly queue: SmallFile[] = [];
  private queued = 0;
  private running: Promise<void> | undefined;
  private waiters: Array<() => void> = [];
  /** The thread that writes the files; it also looks up what is already there (lstat, in batches). */
  readonly thread = new WriterThread();

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
    this.queued += f.size;
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

  /** Stop the writer thread (after drain()). */
  close(): Promise<void> {
    return this.thread.close();
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
      while (n < this.queue.length && n < GROUP_FILES && (n === 0 || bytes + this.queue[n]!.size <= GROUP_BYTES)) bytes += this.queue[n++]!.size;
      const group = this.queue.splice(0, n);
      try {
        await this.write(group);
      } catch (err) {
        for (const f of group) this.done(f, { kind: 'failed', error: fsError(err, `cannot write ${this.tree.pathOf(f.target)}`) });
      }
      this.queued -= bytes;
      this.wake();
    }
  }

  /** The directory of a target ('' is OUT). */
  private dirOf(f: SmallFile): string {
    const i = f.target.lastIndexOf('/');
    return i < 0 ? '' : f.target.slice(0, i);
  }

  private async write(group: SmallFile[]): Promise<void> {
    await this.staging.recheck();
    const jobs: WriteJob[] = [];
    const dirs = new Set<string>();
    for (const f of group) {
      const dir = this.dirOf(f);
      await this.tree.ensureDir(dir); // made when the listing was planned: a look-up here
      const inPlace = this.tree.private(dir);
      const temp = inPlace
        ? path.join(this.tree.pathOf(dir), `.netkit.${stagingKey(f.target)}.${process.pid}.new`)
        : path.join(this.staging.dir, `${stagingKey(f.target)}.${process.pid}.new`);
      dirs.add(dir === '' ? this.tree.outDir : this.tree.pathOf(dir));
      jobs.push({ temp, final: this.tree.pathOf(f.target), data: f.data, mode: f.mode, mtimeMs: f.mtimeMs ?? -1, rename: inPlace || f.replace });
    }
    const results = await this.thread.run({ jobs, durable: this.durable, syncDir: this.staging.dir, dirs: [...dirs] });
    for (const [i, f] of group.entries()) this.done(f, await this.outcome(f, results[i]!));
  }

  private async outcome(f: SmallFile, r: WriteResult): Promise<SmallOutcome> {
    if (r.ok) return { kind: 'published' };
    if (r.exists) return this.appeared(f);
    if (r.step === 'name' && (r.errno === 'EISDIR' || r.errno === 'ENOTDIR')) {
      const what = r.errno === 'EISDIR' ? 'a directory has that name' : 'something on its path is not a directory';
      return { kind: 'failed', error: new NetkitError('EXISTS', `cannot save ${r.path}: ${what}`, 'the server may list the name both as a directory and as a file; move what is in the way, or choose another --out') };
    }
    const err = Object.assign(new Error(r.message), { code: r.errno });
    return { kind: 'failed', error: fsError(err, r.step === 'name' ? `cannot create ${r.path}` : `cannot write ${r.path}`) };
  }

  /** The final name was taken during the fetch: identical content counts as there; anything else is reported. */
  private async appeared(f: SmallFile): Promise<SmallOutcome> {
    const final = this.tree.pathOf(f.target);
    const there = await this.tree.present(f.target).catch(() => undefined);
    if (there?.kind === 'dir') return { kind: 'failed', error: new NetkitError('EXISTS', `cannot save ${final}: a directory has that name`, 'the server may list the name both as a directory and as a file; move what is in the way, or choose another --out') };
    if (there?.kind === 'file' && there.size === f.size) {
      const same = await this.tree.hashOf(f.target).then((h) => h.equals(f.sha256), () => false);
      if (same) return { kind: 'same' };
    }
    return { kind: 'failed', error: new NetkitError('EXISTS', `${final} appeared during the download (another copy, different from the server's)`, 'use --force to overwrite it') };
  }
}
