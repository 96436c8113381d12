// Opening and reading small files, and reading directories, off the event loop and off libuv's pool: a few reader threads run the jail's steps synchronously on batches, so 10,000 small files cost 10,000 short system-call sequences, not 70,000 thread-pool round trips.
import { Worker } from 'node:worker_threads';
import type { NetkitError } from '../../../errors.js';
import { OPEN_FLAGS, jailRefusal, type JailStep } from './jail.js';
import { ENTRY_NUMS, FACT_NUMS, JAIL_STEPS, Rec, readerThread, type AnswerBatch, type AskBatch, type ThreadSetup } from './reader-thread.js';

/** What an OK RESPONSE says about a file. `size` is -1 above 2^53 - 1, and `sizeText` then says it exactly. */
export interface FileFacts {
  size: number;
  sizeText?: string;
  validator: Buffer;
  mtimeMs: number;
  mode: number;
}

/** What the server learns about one requested file from a reader thread. */
export type ReadOutcome =
  /** The jail refuses it (the same refusal openInJail gives). */
  | { k: 'refused'; error: NetkitError }
  /** Something the jail does not expect (EMFILE, EIO, a thread that never answered). */
  | { k: 'error'; message: string }
  /** Larger than the small-file limit: streamed at its turn. */
  | { k: 'large'; facts: FileFacts }
  | { k: 'small'; facts: FileFacts; data: Buffer; digest: Buffer }
  /** It changed while it was read, twice in a row. */
  | { k: 'changed'; facts: FileFacts; change: string };

/** A directory entry as the listing uses it: its name's bytes, type, stat numbers (size -1 above 2^53 - 1). */
export interface ListedEntry {
  name: Buffer;
  /** link: a symbolic link the listing leaves out (leading outside the root, to a directory or a FIFO, or nowhere); its numbers are 0. */
  t: 'file' | 'dir' | 'other' | 'link';
  size: number;
  mtimeMs: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
}

/** What a reader thread found in a directory. */
export type ListOutcome =
  | { k: 'entries'; entries: ListedEntry[]; skipped: number }
  /** It vanished, turned into a link, or cannot be read. */
  | { k: 'gone' }
  /** More than the names asked for. */
  | { k: 'too-many' }
  | { k: 'error'; message: string };

export interface ReaderPoolOptions {
  /** Files up to this size are read whole. */
  small: number;
  /** Reader threads (default 1: the event loop and one reader keep two cores busy). */
  threads?: number;
  /** Most files in one message to a thread (default 32). */
  batch?: number;
  /** A batch not answered within this many ms fails its files and its thread is set aside (default 10,000). */
  timeoutMs?: number;
  /** Most threads left waiting on a hung file system (default 8); past it new batches wait. */
  maxStuck?: number;
}

/** One ask waiting for its thread: `resolve` reads its record from the answer at the cursor. */
interface Pending {
  root: string;
  /** The ask as the thread reads it (see AskBatch). */
  ask: string;
  resolve: (a: Answer) => void;
  fail: (message: string) => void;
}

interface Batch {
  id: number;
  items: Pending[];
  timer: NodeJS.Timeout;
}

interface Reader {
  worker: Worker;
  batches: Map<number, Batch>;
  stuck: boolean;
}

/** Files up to this size are read whole by a reader thread while earlier answers are still going out. */
export const SMALL_FILE = 64 * 1024;

let shared: ReaderPool | undefined;

/** A pool for callers without their own (the listing service used on its own); its threads never keep the process alive. */
export function sharedReaders(): ReaderPool {
  return (shared ??= new ReaderPool({ small: SMALL_FILE }));
}

/** Batches in flight per thread: one being read, one waiting, so a thread never idles between batches. */
const IN_FLIGHT = 2;

/** A thread's answer being read record by record, in the order of its asks. */
class Answer {
  at = 0;
  constructor(private readonly m: AnswerBatch) {}

  num(): number {
    return this.m.nums[this.at++]!;
  }

  str(): string | undefined {
    const i = this.num();
    return i < 0 ? undefined : this.m.strs[i];
  }

  bytes(at: number, len: number): Buffer {
    return Buffer.from(this.m.data.buffer, this.m.data.byteOffset + at, len);
  }

  facts(): FileFacts {
    const size = this.num();
    const sizeText = this.str();
    const mtimeMs = this.num();
    const mode = this.num();
    const out: FileFacts = { size, validator: this.bytes(this.num(), 16), mtimeMs, mode };
    if (sizeText !== undefined) out.sizeText = sizeText;
    return out;
  }
}

function readOutcome(a: Answer): ReadOutcome {
  const code = a.num();
  switch (code) {
    case Rec.SMALL: {
      const facts = a.facts();
      const data = a.bytes(a.num(), a.num());
      return { k: 'small', facts, data, digest: a.bytes(a.num(), 32) };
    }
    case Rec.LARGE:
      return { k: 'large', facts: a.facts() };
    case Rec.CHANGED:
      return { k: 'changed', facts: a.facts(), change: a.str() ?? '' };
    case Rec.JAIL: {
      const step = JAIL_STEPS[a.num()]!;
      const errno = a.str();
      const nlink = a.num();
      const r = { step, errno, nlink } as JailStep;
      const error = jailRefusal(r);
      return error ? { k: 'refused', error } : { k: 'error', message: `cannot open the file: ${errno ?? step}` };
    }
    case Rec.ERROR:
      return { k: 'error', message: `cannot read the file: ${a.str()}` };
    default:
      return { k: 'error', message: `unexpected answer ${code} from a reader thread` };
  }
}

const TYPES = ['file', 'dir', 'other', 'link'] as const;

function listOutcome(a: Answer): ListOutcome {
  const code = a.num();
  if (code === Rec.GONE) return { k: 'gone' };
  if (code === Rec.TOO_MANY) return { k: 'too-many' };
  if (code !== Rec.ENTRIES) return { k: 'error', message: `unexpected answer ${code} from a reader thread` };
  const count = a.num();
  const skipped = a.num();
  const entries: ListedEntry[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const name = a.bytes(a.num(), a.num());
    entries[i] = { name, t: TYPES[a.num()]!, size: a.num(), mtimeMs: a.num(), mode: a.num(), nlink: a.num(), uid: a.num(), gid: a.num() };
  }
  return { k: 'entries', entries, skipped };
}

// The record sizes the thread writes, checked here so the two sides cannot drift apart silently.
if (FACT_NUMS !== 5 || ENTRY_NUMS !== 9) throw new Error('reader-thread record layout changed: update reader-pool.ts');

/**
 * The pool. Threads start on first use (or with start()) and are unref'd (they never keep the process
 * alive). A batch
 * that a thread does not answer in time (a hung network mount) fails its files with an error, and the
 * thread is left to finish on its own, replaced by a fresh one, up to maxStuck of them.
 */
export class ReaderPool {
  private readonly setup: ThreadSetup;
  private readonly threads: number;
  private readonly batchSize: number;
  private readonly timeoutMs: number;
  private readonly maxStuck: number;
  private readonly queue: Pending[] = [];
  private readonly readers = new Set<Reader>();
  private nextId = 1;
  private closed = false;

  constructor(opts: ReaderPoolOptions) {
    this.setup = { small: opts.small, openFlags: OPEN_FLAGS, proc: process.platform === 'linux' };
    this.threads = opts.threads ?? 1;
    this.batchSize = opts.batch ?? 32;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxStuck = opts.maxStuck ?? 8;
    if (!(this.threads >= 1) || !(this.batchSize >= 1) || !(this.timeoutMs > 0) || !(this.maxStuck >= 0)) throw new RangeError('invalid ReaderPool options');
  }

  /**
   * Look at `name` (normalised segments joined by '/') under `root` (a realpath) as openInJail would,
   * and read it whole if it is small. Never rejects.
   */
  read(root: string, name: string, refuseHardLinks: boolean): Promise<ReadOutcome> {
    return new Promise((resolve) => {
      if (name.includes('\u0000') || root.includes('\u0000')) return resolve({ k: 'error', message: 'a name with a NUL byte' });
      this.enqueue({ root, ask: `${refuseHardLinks ? 'h' : 'r'}${name}`, resolve: (a) => resolve(readOutcome(a)), fail: (message) => resolve({ k: 'error', message }) });
    });
  }

  /** The entries of the directory `dir` (a realpath under `root`), sorted by name bytes, if at most `max`. Never rejects. */
  list(root: string, dir: string, max: number): Promise<ListOutcome> {
    return new Promise((resolve) => {
      if (dir.includes('\u0000') || root.includes('\u0000')) return resolve({ k: 'error', message: 'a name with a NUL byte' });
      this.enqueue({ root, ask: `l${max}:${dir}`, resolve: (a) => resolve(listOutcome(a)), fail: (message) => resolve({ k: 'error', message }) });
    });
  }

  private enqueue(p: Pending): void {
    if (this.closed) return p.fail('the server is shutting down');
    this.queue.push(p);
    // Dispatch on the next turn, so the requests parsed from one socket read go out as one batch.
    if (this.queue.length === 1) queueMicrotask(() => this.pump());
  }

  /**
   * Start the threads now rather than on first use, so a server's descriptor count (each thread holds a
   * few) and memory are settled from the start.
   */
  start(): this {
    while (!this.closed && this.readers.size < this.threads) this.spawn();
    return this;
  }

  /** Threads that never answered a batch in time. */
  get stuckThreads(): number {
    let n = 0;
    for (const r of this.readers) if (r.stuck) n += 1;
    return n;
  }

  close(): void {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.fail('the server is shutting down');
    for (const r of this.readers) this.retire(r, 'the server is shutting down');
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      const reader = this.pick();
      if (!reader) return;
      // One root per batch (a server has one; the shared pool may serve several).
      let n = 1;
      while (n < this.queue.length && n < this.batchSize && this.queue[n]!.root === this.queue[0]!.root) n += 1;
      const items = this.queue.splice(0, n);
      const batch: Batch = { id: this.nextId++, items, timer: setTimeout(() => this.expire(reader, batch), this.timeoutMs) };
      batch.timer.unref();
      reader.batches.set(batch.id, batch);
      const ask: AskBatch = { id: batch.id, root: items[0]!.root, asks: items.map((p) => p.ask).join('\u0000') };
      reader.worker.postMessage(ask);
    }
  }

  /** The working thread with the fewest batches, if one has room; a new one while there are fewer than `threads`. */
  private pick(): Reader | undefined {
    let best: Reader | undefined;
    let working = 0;
    let stuck = 0;
    for (const r of this.readers) {
      if (r.stuck) {
        stuck += 1;
        continue;
      }
      working += 1;
      if (r.batches.size < IN_FLIGHT && (!best || r.batches.size < best.batches.size)) best = r;
    }
    if (best?.batches.size === 0 || working >= this.threads) return best;
    if (stuck > this.maxStuck) return best;
    return this.spawn();
  }

  private spawn(): Reader {
    const worker = new Worker(`(${readerThread.toString()})(require)`, { eval: true, workerData: this.setup });
    const reader: Reader = { worker, batches: new Map(), stuck: false };
    worker.on('message', (m: AnswerBatch) => this.onReply(reader, m));
    worker.on('error', (err) => this.retire(reader, `reader thread failed: ${err.message}`));
    worker.on('exit', () => this.retire(reader, 'reader thread ended'));
    // After the listeners: attaching a 'message' listener refs the port again.
    worker.unref();
    this.readers.add(reader);
    return reader;
  }

  private onReply(reader: Reader, m: AnswerBatch): void {
    const batch = reader.batches.get(m.id);
    if (batch) {
      reader.batches.delete(m.id);
      clearTimeout(batch.timer);
      const answer = new Answer(m);
      for (const p of batch.items) p.resolve(answer);
    }
    // A thread that was set aside and came back has no batch left: it is surplus now.
    if (reader.stuck && reader.batches.size === 0) this.retire(reader, '');
    this.pump();
  }

  private expire(reader: Reader, batch: Batch): void {
    if (!reader.batches.delete(batch.id)) return;
    for (const p of batch.items) p.fail(`the file system did not answer within ${this.timeoutMs / 1000}s`);
    // Its thread is blocked in the kernel: give it no more work; what it still holds waits with it.
    reader.stuck = true;
    for (const b of reader.batches.values()) {
      clearTimeout(b.timer);
      this.queue.unshift(...b.items);
    }
    reader.batches.clear();
    this.pump();
  }

  private retire(reader: Reader, why: string): void {
    if (!this.readers.delete(reader)) return;
    for (const b of reader.batches.values()) {
      clearTimeout(b.timer);
      for (const p of b.items) p.fail(why);
    }
    reader.batches.clear();
    // terminate() cannot interrupt a thread blocked in the kernel; it ends with the process.
    void reader.worker.terminate();
    if (!this.closed) this.pump();
  }
}
