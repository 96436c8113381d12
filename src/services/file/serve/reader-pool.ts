// Opening and reading small files, and reading directories, off the event loop and off libuv's pool: a few reader threads run the jail's steps synchronously on batches, so 10,000 small files cost 10,000 short system-call sequences, not 70,000 thread-pool round trips.
import { Worker } from 'node:worker_threads';
import type { NetkitError } from '../../../errors.js';
import { OPEN_FLAGS, jailRefusal } from './jail.js';
import { readerThread, type Ask, type Facts, type RawEntry, type ThreadResult, type ThreadSetup } from './reader-thread.js';

export type { RawEntry } from './reader-thread.js';

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

/** A directory entry as the listing uses it: RawEntry with its name's bytes. */
export type ListedEntry = Omit<RawEntry, 'n' | 'nl'> & { name: Buffer };

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

interface Pending {
  ask: Ask;
  resolve: (r: ThreadResult, data: Uint8Array) => void;
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

const slice = (data: Uint8Array, at: number, len: number): Buffer => Buffer.from(data.buffer, data.byteOffset + at, len);

function factsOf(f: Facts, data: Uint8Array): FileFacts {
  const out: FileFacts = { size: f.size, validator: slice(data, f.v, 16), mtimeMs: f.mtimeMs, mode: f.mode };
  if (f.sizeText !== undefined) out.sizeText = f.sizeText;
  return out;
}

function readOutcome(r: ThreadResult, data: Uint8Array): ReadOutcome {
  switch (r.k) {
    case 'jail': {
      const error = jailRefusal(r);
      return error ? { k: 'refused', error } : { k: 'error', message: `cannot open the file: ${'errno' in r ? r.errno : r.step}` };
    }
    case 'small':
      return { k: 'small', facts: factsOf(r.facts, data), data: slice(data, r.at, r.len), digest: slice(data, r.d, 32) };
    case 'error':
      return { k: 'error', message: `cannot read the file: ${r.message}` };
    case 'large':
      return { k: 'large', facts: factsOf(r.facts, data) };
    case 'changed':
      return { k: 'changed', facts: factsOf(r.facts, data), change: r.change };
    default:
      return { k: 'error', message: `unexpected answer ${r.k} from a reader thread` };
  }
}

function listOutcome(r: ThreadResult, data: Uint8Array): ListOutcome {
  if (r.k === 'entries') return { k: 'entries', skipped: r.skipped, entries: r.entries.map(({ n, nl, ...e }) => ({ ...e, name: slice(data, n, nl) })) };
  return r.k === 'gone' || r.k === 'too-many' ? r : { k: 'error', message: `unexpected answer ${r.k} from a reader thread` };
}

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
    return new Promise((resolve) =>
      this.enqueue({
        ask: { op: 'read', root, name, refuseHardLinks },
        resolve: (r, data) => resolve(readOutcome(r, data)),
        fail: (message) => resolve({ k: 'error', message }),
      }),
    );
  }

  /** The entries of the directory `dir` (a realpath under `root`), sorted by name bytes, if at most `max`. Never rejects. */
  list(root: string, dir: string, max: number): Promise<ListOutcome> {
    return new Promise((resolve) =>
      this.enqueue({
        ask: { op: 'list', root, dir, max },
        resolve: (r, data) => resolve(listOutcome(r, data)),
        fail: (message) => resolve({ k: 'error', message }),
      }),
    );
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
      const items = this.queue.splice(0, this.batchSize);
      const batch: Batch = { id: this.nextId++, items, timer: setTimeout(() => this.expire(reader, batch), this.timeoutMs) };
      batch.timer.unref();
      reader.batches.set(batch.id, batch);
      reader.worker.postMessage({ id: batch.id, asks: items.map((p) => p.ask) });
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
    worker.on('message', (m: { id: number; results: ThreadResult[]; data: Uint8Array }) => this.onReply(reader, m));
    worker.on('error', (err) => this.retire(reader, `reader thread failed: ${err.message}`));
    worker.on('exit', () => this.retire(reader, 'reader thread ended'));
    // After the listeners: attaching a 'message' listener refs the port again.
    worker.unref();
    this.readers.add(reader);
    return reader;
  }

  private onReply(reader: Reader, m: { id: number; results: ThreadResult[]; data: Uint8Array }): void {
    const batch = reader.batches.get(m.id);
    if (batch) {
      reader.batches.delete(m.id);
      clearTimeout(batch.timer);
      batch.items.forEach((p, i) => p.resolve(m.results[i]!, m.data));
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
