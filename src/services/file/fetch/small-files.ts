// Small files of a tree fetch, written behind the socket: each verified file is received into a shared ring, written under a temporary name by the writer thread, and many at a time are flushed at once and then named without clobbering anything.
import path from 'node:path';
import { NetkitError, fsError } from '../../../errors.js';
import type { LocalTree } from './local-tree.js';
import type { BodySink } from './receiver.js';
import { Ring, type Region } from './ring.js';
import type { Staging } from './staging.js';
import { WriterThread, type WriteFailure, type WriteJob } from './write-thread.js';

/** Files up to this size are received into memory and written whole; larger ones stream into a resumable partial file. */
export const SMALL_FILE = 1024 * 1024;
/** Received small files waiting for the disk, at most (the ring): past it the socket is left to wait. */
const RING_BYTES = 4 * 1024 * 1024;
/**
 * Files written and not yet named are flushed and named together once this many wait (or this many
 * bytes, or COMMIT_MS after the first, or at the end): one syncfs for thousands of files. 10,000 files of
 * 4 KiB on the shared 2-core machine: groups of 512 (one `sync -f` each) cost the client 0.25-0.3 s of
 * CPU more than groups of 4,096.
 */
const COMMIT_FILES = 4096;
const COMMIT_BYTES = 64 * 1024 * 1024;
const COMMIT_MS = 1000;
/** A write message carries at most this many files (more wait for the next one). */
const WRITE_BATCH = 256;

/** A body received into the ring (a small file): the Receiver copies into it, never past it. */
export class MemorySink implements BodySink {
  private fill = 0;
  readonly high = false;
  readonly failed = undefined;
  onResume: () => void = () => undefined;
  onFail: (err: NetkitError) => void = () => undefined;

  /** Its place in the ring. */
  constructor(readonly slot: Region) {}

  get data(): Buffer {
    return this.slot.data;
  }

  get length(): number {
    return this.fill;
  }

  region(max: number): Buffer {
    return this.slot.data.subarray(this.fill, this.fill + Math.min(max, this.slot.data.length - this.fill));
  }

  commit(n: number): void {
    this.fill += n;
  }

  push(chunk: Buffer): void {
    chunk.copy(this.slot.data, this.fill);
    this.fill += chunk.length;
  }
}

export interface SmallFile {
  target: string;
  /** Its bytes, in the ring (given back once written). */
  sink: MemorySink;
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

interface Job {
  f: SmallFile;
  dir: string;
  final: string;
  writeFailed?: boolean;
}

/**
 * The write-behind queue of small files. take() hands out ring space at once or not at all; roomFor()
 * waits for it; add() never waits. A file goes next to its final name when this fetch made that
 * directory and nobody else can write there (then rename(2)), else to `N.PID.new` in staging (then
 * link(2), which never replaces anything); created new, never through a link. Written files are flushed
 * together before any of them is named (unless --no-fsync), and each directory that gained names is
 * flushed once per commit.
 */
export class SmallFiles {
  readonly ring = new Ring(RING_BYTES);
  /** The thread that writes the files; it also looks up what is already there (lstat, in batches). */
  readonly thread: WriterThread;
  /** Added and not yet sent to the thread. */
  private queue: Job[] = [];
  /** Sent to the thread and not yet named (or failed). */
  private sent: Job[] = [];
  private sentBytes = 0;
  private scheduled = false;
  private commitTimer: NodeJS.Timeout | undefined;
  /** Every message to the thread, sent in order... */
  private posting: Promise<void> = Promise.resolve();
  /** ...and every answer handled in order. */
  private work: Promise<void> = Promise.resolve();
  private waiters: Array<() => void> = [];
  /** A bug in handling an answer: reported by drain(). */
  private broken: unknown;
  private temps = 0;
  private readonly dirPaths = new Map<string, string>();

  constructor(
    private readonly staging: Staging,
    private readonly tree: LocalTree,
    durable: boolean,
    private readonly done: (f: SmallFile, outcome: SmallOutcome) => void,
  ) {
    this.thread = new WriterThread({ ring: this.ring.memory, durable, syncDir: staging.dir });
  }

  /** Ring space for a file of `size` bytes, now or never (undefined: call roomFor() and try again). */
  take(size: number): MemorySink | undefined {
    const r = this.ring.take(size);
    return r && new MemorySink(r);
  }

  /** Resolve once the ring has given back some space (at once when nothing is in it). */
  async roomFor(): Promise<void> {
    if (this.ring.empty) return;
    await new Promise<void>((r) => this.waiters.push(r));
  }

  /** A sink that was never added (the file failed before it was verified): its space goes back. */
  drop(sink: MemorySink): void {
    this.ring.release(sink.slot);
    this.wake();
  }

  add(f: SmallFile): void {
    const dir = f.target.includes('/') ? f.target.slice(0, f.target.lastIndexOf('/')) : '';
    this.queue.push({ f, dir, final: `${this.dirPath(dir)}/${f.target.slice(dir.length === 0 ? 0 : dir.length + 1)}` });
    if (this.queue.length >= WRITE_BATCH) this.send();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.send());
    }
  }

  /** Resolve once every file added so far is published (or failed). */
  async drain(): Promise<void> {
    this.send();
    this.commit();
    while (true) {
      const w = this.work;
      await w;
      if (w === this.work) break;
    }
    if (this.broken !== undefined) throw this.broken;
  }

  /** Stop the writer thread (after drain()). */
  close(): Promise<void> {
    clearTimeout(this.commitTimer);
    return this.thread.close();
  }

  /** OUT's directory `rel`, as an absolute path without a trailing slash. */
  private dirPath(rel: string): string {
    let p = this.dirPaths.get(rel);
    if (p === undefined) {
      p = rel === '' ? this.tree.outDir : this.tree.pathOf(rel);
      if (p.endsWith('/')) p = p.slice(0, -1);
      this.dirPaths.set(rel, p);
    }
    return p;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /**
   * Send one message to the thread once every earlier one is sent (`prepare` may wait: the checks before
   * it), and handle its answer once every earlier answer is handled. Messages reach the thread in order,
   * and the answers come back in order.
   */
  private step<T>(prepare: () => Promise<{ answer: Promise<T> }>, handle: (answer: Promise<T>) => Promise<void>): void {
    const posted = this.posting.then(prepare);
    this.posting = posted.then(
      () => undefined,
      () => undefined,
    );
    this.work = this.work
      .then(() => handle(posted.then((p) => p.answer)))
      .catch((err: unknown) => {
        this.broken ??= err;
      });
  }

  /** Hand what was added to the thread (in one message), and commit when enough waits. */
  private send(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const jobs = this.queue;
    this.queue = [];
    for (const j of jobs) this.sentBytes += j.f.size;
    this.sent.push(...jobs);
    this.step(
      async () => {
        // A file placed in staging needs staging to be the directory checked at the start.
        if (jobs.some((j) => !this.tree.private(j.dir))) await this.staging.recheck();
        let last: string | undefined;
        for (const j of jobs) {
          if (j.dir === last) continue;
          await this.tree.ensureDir(j.dir); // made when the listing was planned: a look-up here
          last = j.dir;
        }
        return {
          answer: this.thread.write(
          jobs.map((j) => {
            const inPlace = this.tree.private(j.dir);
            const temp = inPlace ? `${this.dirPath(j.dir)}/.netkit.${this.temps++}.${process.pid}.new` : path.join(this.staging.dir, `${this.temps++}.${process.pid}.new`);
            return { temp, final: j.final, at: j.f.sink.slot.at, len: j.f.size, mode: j.f.mode, mtimeMs: j.f.mtimeMs ?? -1, rename: inPlace || j.f.replace };
          }),
          ),
        };
      },
      async (answer) => {
        let failed: Map<number, WriteFailure>;
        try {
          failed = await answer;
        } catch (err) {
          const error = fsError(err, `cannot write ${this.tree.pathOf(jobs[0]!.f.target)}`);
          failed = new Map(jobs.map((_, i) => [i, { step: 'write', path: '', errno: 'EIO', message: error.message, error }]));
        }
        for (const [i, j] of jobs.entries()) {
          this.ring.release(j.f.sink.slot);
          const fail = failed.get(i);
          if (!fail) continue;
          j.writeFailed = true;
          this.done(j.f, await this.failure(j.f, fail));
        }
        this.wake();
      },
    );
    if (this.sent.length >= COMMIT_FILES || this.sentBytes >= COMMIT_BYTES) this.commit();
    else this.commitTimer ??= setTimeout(() => this.commit(), COMMIT_MS);
  }

  /** Flush and name everything sent so far (after the writes before it). */
  private commit(): void {
    clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    if (this.sent.length === 0) return;
    const jobs = this.sent;
    this.sent = [];
    this.sentBytes = 0;
    const dirs = [...new Set(jobs.map((j) => this.dirPath(j.dir)))];
    let refused: unknown;
    this.step(
      async () => {
        try {
          if (jobs.some((j) => !this.tree.private(j.dir))) await this.staging.recheck();
        } catch (err) {
          refused = err;
        }
        // Refused: the thread still drops what it holds, so the next commit starts clean.
        return { answer: this.thread.commit(dirs, refused !== undefined) };
      },
      async (answer) => {
        const ok = jobs.filter((j) => !j.writeFailed);
        let count: number;
        let failed: Map<number, WriteFailure>;
        try {
          ({ count, failed } = await answer);
          if (refused !== undefined) throw refused;
          if (count !== ok.length) throw new Error(`the writer thread named ${count} files, ${ok.length} were written`);
        } catch (err) {
          const error = fsError(err, 'cannot publish the files');
          for (const j of ok) this.done(j.f, { kind: 'failed', error });
          return;
        }
        for (const [i, j] of ok.entries()) {
          const fail = failed.get(i);
          this.done(j.f, fail ? await this.failure(j.f, fail) : { kind: 'published' });
        }
      },
    );
  }

  private async failure(f: SmallFile, r: WriteFailure & { error?: NetkitError }): Promise<SmallOutcome> {
    if (r.exists) return this.appeared(f);
    if (r.error) return { kind: 'failed', error: r.error };
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
