// statfs(2) off libuv's thread pool: worker threads, a timeout per call, at most one call outstanding per path, and a thread always free for filesystems that answered last time, so hung mounts stall nothing else.
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
  /**
   * Calls run at once per class (default 2): paths that answered their last call ("healthy") and
   * paths never asked or whose last call hung ("on trial") each get up to this many threads, so
   * calls on trial can never take the threads healthy paths need.
   */
  workers?: number;
  /** A running call not answered within this many ms is reported as a TIMEOUT (default 2,000); time spent queued or starting a thread does not count. */
  timeoutMs?: number;
  /** Threads left waiting on calls that timed out, past which paths on trial are not asked (default 16). */
  maxStuck?: number;
  /** A call that timed out and later returned: its numbers (or error), for the caller's background state. */
  onLate?: (path: string, result: StatfsNumbers | NetkitError) => void;
}

// Runs in each worker: a synchronous statfs blocks this thread only, never the process's libuv pool.
// It says "ready" once it listens, so that a call's timeout never counts the thread's start-up.
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
parentPort.postMessage({ ready: true });
`;

/** healthy: the last call answered (figures or an error); trial: never asked, or the last call hung. */
type PathClass = 'healthy' | 'trial';

interface Job {
  id: number;
  path: string;
  cls: PathClass;
  promise: Promise<StatfsNumbers>;
  resolve: (n: StatfsNumbers) => void;
  reject: (e: NetkitError) => void;
  timer?: NodeJS.Timeout;
  timedOut: boolean;
  timeoutMs: number;
  /** When the call was handed to a ready thread (0 while queued). */
  since: number;
  worker?: PooledWorker;
}

interface PooledWorker {
  worker: Worker;
  ready: boolean;
  job?: Job;
}

type Reply = { ready: true } | { id: number; ok: true; n: bigint[] } | { id: number; ok: false; code?: string; message: string };

function fsErrorOf(path: string, r: { code?: string; message: string }): NetkitError {
  return new NetkitError(r.code === 'ENOENT' ? 'NOT_FOUND' : 'FAILED', `statfs ${path}: ${r.code ?? r.message}`);
}

/**
 * Like node_exporter's stat workers with a mount timeout: a call that does not return in time is
 * reported as TIMEOUT and its thread is set aside (not reused) until the call returns; the path is
 * not asked again while it is outstanding. Healthy paths and paths on trial have separate thread
 * budgets, so however many mounts hang, a thread stays free for the others; once maxStuck threads
 * are stuck, paths on trial are not asked at all (refused at once) until one returns. Each path has
 * at most one thread, so stuck threads never outnumber hung mounts. Threads are unref'd: a thread
 * stuck in the kernel never keeps the process alive.
 */
export class StatfsPool {
  readonly timeoutMs: number;
  private readonly size: number;
  private readonly maxStuck: number;
  private readonly onLate?: StatfsPoolOptions['onLate'];
  private readonly idle: PooledWorker[] = [];
  private readonly all = new Set<PooledWorker>();
  private readonly stuck = new Set<PooledWorker>();
  private readonly queues: Record<PathClass, Job[]> = { healthy: [], trial: [] };
  private readonly running: Record<PathClass, number> = { healthy: 0, trial: 0 };
  private readonly outstanding = new Map<string, Job>();
  /** Paths whose last call answered; paths not in it are on trial. */
  private readonly healthy = new Set<string>();
  /** Paths whose last call hung (asked after the never-asked ones). */
  private readonly hung = new Set<string>();
  private starting = 0;
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

  /** How long the outstanding call for `path` has been running (0 when none is, or it is still queued). */
  runningFor(path: string): number {
    const j = this.outstanding.get(path);
    return j && j.since > 0 ? Date.now() - j.since : 0;
  }

  /** Threads currently waiting on calls that timed out. */
  get stuckThreads(): number {
    return this.stuck.size;
  }

  /**
   * statfs(path), or TIMEOUT after `timeoutMs` (default: the pool's) of running. A path whose call is
   * still outstanding is not asked twice.
   */
  statfs(path: string, timeoutMs = this.timeoutMs): Promise<StatfsNumbers> {
    if (this.closed) return Promise.reject(new NetkitError('INTERNAL', 'statfs pool closed'));
    const pending = this.outstanding.get(path);
    if (pending) {
      if (!pending.timedOut) return pending.promise;
      return Promise.reject(this.timeoutError(pending));
    }
    const cls: PathClass = this.healthy.has(path) ? 'healthy' : 'trial';
    if (cls === 'trial' && this.stuck.size >= this.maxStuck) return Promise.reject(this.refusal(path));
    let resolve!: (n: StatfsNumbers) => void;
    let reject!: (e: NetkitError) => void;
    const promise = new Promise<StatfsNumbers>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const job: Job = { id: this.nextId++, path, cls, promise, resolve, reject, timedOut: false, since: 0, timeoutMs };
    this.outstanding.set(path, job);
    const q = this.queues[cls];
    // Never-asked paths go before those that hung last time.
    if (cls === 'trial' && !this.hung.has(path)) {
      const at = q.findIndex((j) => this.hung.has(j.path));
      q.splice(at < 0 ? q.length : at, 0, job);
    } else q.push(job);
    this.pump();
    return promise;
  }

  close(): void {
    this.closed = true;
    for (const q of Object.values(this.queues)) {
      for (const j of q) j.reject(new NetkitError('INTERNAL', 'statfs pool closed'));
      q.length = 0;
    }
    // terminate() cannot interrupt a thread blocked in the kernel; those end with the process.
    for (const w of this.all) void w.worker.terminate();
    this.all.clear();
    this.idle.length = 0;
  }

  private timeoutError(job: Job): NetkitError {
    return new NetkitError('TIMEOUT', `statfs ${job.path} has not returned for ${((Date.now() - job.since) / 1000).toFixed(1)}s`, 'a hung network or FUSE mount; it is polled again once the call returns');
  }

  private refusal(path: string): NetkitError {
    return new NetkitError('TIMEOUT', `statfs ${path} not asked: ${this.stuck.size} calls on hung mounts have not returned`, 'it is asked again once one of them returns');
  }

  private expire(job: Job): void {
    job.timedOut = true;
    this.running[job.cls] -= 1;
    this.healthy.delete(job.path);
    this.hung.add(job.path);
    job.reject(this.timeoutError(job));
    // Its thread is blocked: set it aside and let a fresh one take its place.
    if (job.worker) this.stuck.add(job.worker);
    this.pump();
  }

  private spawn(): void {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    const pw: PooledWorker = { worker, ready: false };
    worker.on('message', (r: Reply) => this.onReply(pw, r));
    worker.on('error', () => this.retire(pw));
    worker.on('exit', () => this.retire(pw));
    this.all.add(pw);
    this.starting += 1;
  }

  private retire(pw: PooledWorker): void {
    if (!this.all.delete(pw)) return;
    if (!pw.ready) this.starting -= 1;
    this.stuck.delete(pw);
    const i = this.idle.indexOf(pw);
    if (i >= 0) this.idle.splice(i, 1);
    const job = pw.job;
    pw.job = undefined;
    if (job) {
      this.outstanding.delete(job.path);
      clearTimeout(job.timer);
      if (!job.timedOut) {
        this.running[job.cls] -= 1;
        job.reject(new NetkitError('INTERNAL', `statfs ${job.path}: worker ended`));
      }
    }
    if (!this.closed) this.pump();
  }

  private onReply(pw: PooledWorker, r: Reply): void {
    if ('ready' in r) {
      pw.ready = true;
      this.starting -= 1;
      this.release(pw);
      return;
    }
    const job = pw.job;
    pw.job = undefined;
    if (!job || job.id !== r.id) return;
    clearTimeout(job.timer);
    this.outstanding.delete(job.path);
    this.healthy.add(job.path);
    this.hung.delete(job.path);
    const result: StatfsNumbers | NetkitError = r.ok
      ? { bsize: r.n[0]!, blocks: r.n[1]!, bfree: r.n[2]!, bavail: r.n[3]!, files: r.n[4]!, ffree: r.n[5]! }
      : fsErrorOf(job.path, r);
    if (job.timedOut) {
      // A hung call came back: its thread is free again (or surplus, then it ends).
      this.stuck.delete(pw);
      this.onLate?.(job.path, result);
    } else {
      this.running[job.cls] -= 1;
      if (result instanceof NetkitError) job.reject(result);
      else job.resolve(result);
    }
    this.release(pw);
  }

  /** A thread with nothing to do: keep it (both budgets and one spare) or end it. */
  private release(pw: PooledWorker): void {
    if (this.closed) return;
    if (this.all.size - this.stuck.size > this.maxThreads()) {
      this.all.delete(pw);
      void pw.worker.terminate();
    } else {
      this.idle.push(pw);
    }
    this.pump();
  }

  /** Threads not stuck: each budget, plus one spare kept idle for healthy paths. */
  private maxThreads(): number {
    return 2 * this.size + 1;
  }

  /**
   * The next job allowed to run now, taken off its queue. A call on trial never takes the last idle
   * thread: that one waits for a healthy path, which would otherwise wait for a thread to start.
   */
  private nextJob(): Job | undefined {
    if (this.idle.length >= 1 && this.running.healthy < this.size && this.queues.healthy.length > 0) return this.queues.healthy.shift();
    const trial = this.queues.trial;
    if (this.running.trial < this.size && trial.length > 0 && this.idle.length >= 2) return trial.shift();
    return undefined;
  }

  private pump(): void {
    const trial = this.queues.trial;
    if (trial.length > 0 && this.stuck.size >= this.maxStuck) {
      // Too many threads stuck already: paths on trial are refused, not queued, until one returns.
      for (const j of trial.splice(0)) {
        this.outstanding.delete(j.path);
        j.reject(this.refusal(j.path));
      }
    }
    while (!this.closed) {
      const job = this.nextJob();
      if (!job) break;
      const pw = this.idle.pop()!;
      this.running[job.cls] += 1;
      pw.job = job;
      job.worker = pw;
      job.since = Date.now();
      job.timer = setTimeout(() => this.expire(job), job.timeoutMs);
      job.timer.unref();
      pw.worker.postMessage({ id: job.id, path: job.path });
    }
    // One thread starts at a time; it takes the next job when it says it is ready.
    if (!this.closed && this.starting === 0 && this.wantsThread() && this.all.size - this.stuck.size < this.maxThreads()) this.spawn();
  }

  /** Work waits for a thread, or the spare for healthy paths is missing. */
  private wantsThread(): boolean {
    const healthyWaits = this.running.healthy < this.size && this.queues.healthy.length > 0;
    const trialWaits = this.running.trial < this.size && this.queues.trial.length > 0;
    return (healthyWaits && this.idle.length === 0) || (trialWaits && this.idle.length < 2) || (this.stuck.size > 0 && this.idle.length === 0);
  }
}
