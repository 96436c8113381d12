// statfs(2) off libuv's thread pool: a few worker threads, a timeout per call, at most one call outstanding per path, so a hung mount costs one thread and stalls nothing else.
import { Worker } from 'node:worker_threads';
import { NetkitError } from '../../errors.js';

/** The statfs numbers netkit uses, exact. */
export interface StatfsNumbers {
  bsize: bigint;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
}

export interface StatfsPoolOptions {
  /** Worker threads kept ready (default 2). */
  workers?: number;
  /** A call not answered within this many ms is reported as a TIMEOUT (default 2,000). */
  timeoutMs?: number;
  /** Most threads left waiting on calls that timed out (default 16); past it, new calls wait in the queue. */
  maxStuck?: number;
  /** A call that timed out and later returned: its numbers (or error), for the caller's background state. */
  onLate?: (path: string, result: StatfsNumbers | NetkitError) => void;
}

// Runs in each worker: a synchronous statfs blocks this thread only, never the process's libuv pool.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { statfsSync } = require('node:fs');
parentPort.on('message', ({ id, path }) => {
  try {
    const s = statfsSync(path, { bigint: true });
    parentPort.postMessage({ id, ok: true, n: [s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree] });
  } catch (e) {
    parentPort.postMessage({ id, ok: false, code: e && e.code, message: String(e && e.message) });
  }
});
`;

interface Job {
  id: number;
  path: string;
  promise: Promise<StatfsNumbers>;
  resolve: (n: StatfsNumbers) => void;
  reject: (e: NetkitError) => void;
  timer?: NodeJS.Timeout;
  timedOut: boolean;
  since: number;
  worker?: PooledWorker;
}

interface PooledWorker {
  worker: Worker;
  job?: Job;
}

type Reply = { id: number; ok: true; n: bigint[] } | { id: number; ok: false; code?: string; message: string };

function fsErrorOf(path: string, r: { code?: string; message: string }): NetkitError {
  return new NetkitError(r.code === 'ENOENT' ? 'NOT_FOUND' : 'FAILED', `statfs ${path}: ${r.code ?? r.message}`);
}

/**
 * Like node_exporter's stat workers with a mount timeout: a call that does not return in time is
 * reported as TIMEOUT and its thread is set aside (not reused) until the call returns; the path is
 * not asked again while it is outstanding ("polled again only in the background"). Threads are
 * unref'd: a thread stuck in the kernel never keeps the process alive.
 */
export class StatfsPool {
  readonly timeoutMs: number;
  private readonly size: number;
  private readonly maxStuck: number;
  private readonly onLate?: StatfsPoolOptions['onLate'];
  private readonly idle: PooledWorker[] = [];
  private readonly all = new Set<PooledWorker>();
  private readonly stuck = new Set<PooledWorker>();
  private readonly queue: Job[] = [];
  private readonly outstanding = new Map<string, Job>();
  private nextId = 1;
  private closed = false;

  constructor(opts: StatfsPoolOptions = {}) {
    this.size = opts.workers ?? 2;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxStuck = opts.maxStuck ?? 16;
    this.onLate = opts.onLate;
    if (!(this.size >= 1) || !(this.timeoutMs > 0) || !(this.maxStuck >= 0)) throw new RangeError('invalid StatfsPool options');
  }

  /** Is a call for `path` outstanding past its timeout (a hung mount)? */
  isStuck(path: string): boolean {
    return this.outstanding.get(path)?.timedOut === true;
  }

  /** Threads currently waiting on calls that timed out. */
  get stuckThreads(): number {
    return this.stuck.size;
  }

  /** statfs(path), or TIMEOUT after timeoutMs. A path whose call is still outstanding is not asked twice. */
  statfs(path: string): Promise<StatfsNumbers> {
    if (this.closed) return Promise.reject(new NetkitError('INTERNAL', 'statfs pool closed'));
    const pending = this.outstanding.get(path);
    if (pending) {
      if (!pending.timedOut) return pending.promise;
      return Promise.reject(this.timeoutError(pending));
    }
    let resolve!: (n: StatfsNumbers) => void;
    let reject!: (e: NetkitError) => void;
    const promise = new Promise<StatfsNumbers>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const job: Job = { id: this.nextId++, path, promise, resolve, reject, timedOut: false, since: Date.now() };
    job.timer = setTimeout(() => this.expire(job), this.timeoutMs);
    job.timer.unref();
    this.outstanding.set(path, job);
    this.queue.push(job);
    this.pump();
    return promise;
  }

  close(): void {
    this.closed = true;
    for (const j of this.queue) j.reject(new NetkitError('INTERNAL', 'statfs pool closed'));
    this.queue.length = 0;
    // terminate() cannot interrupt a thread blocked in the kernel; those end with the process.
    for (const w of this.all) void w.worker.terminate();
    this.all.clear();
    this.idle.length = 0;
  }

  private timeoutError(job: Job): NetkitError {
    return new NetkitError('TIMEOUT', `statfs ${job.path} has not returned for ${((Date.now() - job.since) / 1000).toFixed(1)}s`, 'a hung network or FUSE mount; it is polled again once the call returns');
  }

  private expire(job: Job): void {
    job.timedOut = true;
    job.reject(this.timeoutError(job));
    const qi = this.queue.indexOf(job);
    if (qi >= 0) {
      // Never started (every thread busy or stuck): forget it entirely.
      this.queue.splice(qi, 1);
      this.outstanding.delete(job.path);
      return;
    }
    const w = job.worker;
    if (w) {
      // Its thread is blocked: set it aside and let a fresh one take its place.
      this.stuck.add(w);
      this.pump();
    }
  }

  private spawn(): PooledWorker {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    const pw: PooledWorker = { worker };
    worker.on('message', (r: Reply) => this.onReply(pw, r));
    worker.on('error', () => this.retire(pw));
    worker.on('exit', () => this.retire(pw));
    this.all.add(pw);
    return pw;
  }

  private retire(pw: PooledWorker): void {
    this.all.delete(pw);
    this.stuck.delete(pw);
    const i = this.idle.indexOf(pw);
    if (i >= 0) this.idle.splice(i, 1);
    const job = pw.job;
    pw.job = undefined;
    if (job) {
      this.outstanding.delete(job.path);
      clearTimeout(job.timer);
      if (!job.timedOut) job.reject(new NetkitError('INTERNAL', `statfs ${job.path}: worker ended`));
    }
    if (!this.closed) this.pump();
  }

  private onReply(pw: PooledWorker, r: Reply): void {
    const job = pw.job;
    pw.job = undefined;
    if (!job || job.id !== r.id) return;
    clearTimeout(job.timer);
    this.outstanding.delete(job.path);
    const result: StatfsNumbers | NetkitError = r.ok
      ? { bsize: r.n[0]!, blocks: r.n[1]!, bfree: r.n[2]!, bavail: r.n[3]!, files: r.n[4]!, ffree: r.n[5]! }
      : fsErrorOf(job.path, r);
    if (job.timedOut) {
      // A hung call came back: its thread is free again (or surplus, then it ends).
      this.stuck.delete(pw);
      this.onLate?.(job.path, result);
    } else if (result instanceof NetkitError) job.reject(result);
    else job.resolve(result);
    if (this.closed) return;
    if (this.all.size - this.stuck.size > this.size) {
      this.all.delete(pw);
      void pw.worker.terminate();
    } else {
      this.idle.push(pw);
    }
    this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      let pw = this.idle.pop();
      if (!pw) {
        // Threads stuck on hung calls do not count against the pool, but their number is bounded.
        const working = this.all.size - this.stuck.size;
        if (working >= this.size || this.all.size >= this.size + this.maxStuck) return;
        pw = this.spawn();
      }
      const job = this.queue.shift()!;
      pw.job = job;
      job.worker = pw;
      pw.worker.postMessage({ id: job.id, path: job.path });
    }
  }
}
