// A writer thread for a tree fetch: small files written from the shared ring as they arrive, then flushed and named many at a time, and what is already there looked up, with plain system calls off the event loop and off libuv's pool.
import { Worker } from 'node:worker_threads';

/** One file to write: its bytes at [at, at + len) of the ring go to `temp` (created new), which later takes the name `final`. */
export interface WriteJob {
  temp: string;
  final: string;
  at: number;
  len: number;
  mode: number;
  /** ms since the epoch, or -1 to leave the time of the write. */
  mtimeMs: number;
  /** rename(2) onto `final` (replaces it); else link(2), which fails rather than replace, then unlink `temp`. */
  rename: boolean;
}

export interface ThreadConfig {
  ring: SharedArrayBuffer;
  /** Flush before naming: one syncfs(2) of `syncDir`'s file system (coreutils `sync -f`), or fsync(2) per file where that fails. */
  durable: boolean;
  syncDir: string;
}

/** What lstat(2) found at a path: nothing, a regular file (size, mtime ms, mode), a directory, or something else. */
export type Found = { k: 'none' } | { k: 'file'; size: number; mtimeMs: number; mode: number } | { k: 'dir' } | { k: 'other'; what: string } | { k: 'error'; errno: string; message: string };

/** A job that failed: the final name was taken (link's EEXIST), or the step and errno that failed. */
export type WriteFailure = { exists: true } | { exists?: false; step: string; path: string; errno: string; message: string };

/** Messages to the thread. `write`: temp and final paths joined by NUL, and per job [at, len, mode, mtimeMs, rename]. */
type Ask = { id: number; op: 'write'; paths: string; nums: Float64Array } | { id: number; op: 'commit'; dirs: string[]; abandon: boolean } | { id: number; op: 'lstat'; paths: string[] };

/** Answers: failures by job index (write: within the message; commit: among the jobs written since the last commit, in order). */
type Answer = { id: number; failed?: Array<[number, WriteFailure]>; count?: number; found?: Found[] };

export const JOB_NUMS = 5;

/**
 * The thread's body. Self-contained: it runs from its source text (`new Worker(text, { eval: true })`),
 * so it uses only what `require` gives it. Written files wait, closed, under their temporary names
 * until a commit: one flush for all of them, then each gets its name, then each directory that gained
 * names is flushed.
 */
export function writerThread(require: (id: string) => unknown): void {
  const fs = require('node:fs') as typeof import('node:fs');
  const cp = require('node:child_process') as typeof import('node:child_process');
  const { parentPort, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const config = workerData as ThreadConfig;
  const ring = new Uint8Array(config.ring);
  const C = fs.constants;
  const CREATE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | (C.O_NOFOLLOW ?? 0);
  // Whether syncfs works here: unknown until the first commit on Linux; elsewhere each file is flushed as it is written.
  let syncfs: boolean | undefined = process.platform === 'linux' ? undefined : false;
  /** Written since the last commit, in order. */
  let written: Array<{ temp: string; final: string; rename: boolean; failed?: WriteFailure }> = [];
  const fail = (step: string, path: string, err: unknown): WriteFailure => {
    const e = err as NodeJS.ErrnoException;
    return { step, path, errno: e.code ?? 'EIO', message: e.message ?? String(err) };
  };
  const lstatOne = (p: string): Found => {
    try {
      const st = fs.lstatSync(p, { bigint: true });
      if (st.isFile()) return { k: 'file', size: Number(st.size), mtimeMs: st.mtimeNs <= 0n ? 0 : Number(st.mtimeNs / 1_000_000n), mode: Number(st.mode & 0o7777n) };
      if (st.isDirectory()) return { k: 'dir' };
      const what = st.isSymbolicLink() ? 'a symbolic link' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
      return { k: 'other', what };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return { k: 'none' };
      return { k: 'error', errno: e.code ?? 'EIO', message: e.message };
    }
  };
  const fsyncPath = (p: string): void => {
    const fd = fs.openSync(p, C.O_RDONLY | (C.O_NOFOLLOW ?? 0));
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };

  const write = (paths: string[], nums: Float64Array): Array<[number, WriteFailure]> => {
    const failed: Array<[number, WriteFailure]> = [];
    for (let i = 0, n = 0; i < paths.length; i += 2, n += 5) {
      const temp = paths[i]!;
      const at = nums[n]!;
      const len = nums[n + 1]!;
      const mtimeMs = nums[n + 3]!;
      let fd: number | undefined;
      try {
        try {
          fd = fs.openSync(temp, CREATE, nums[n + 2]!);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          fs.unlinkSync(temp); // left by a killed run of the same pid
          fd = fs.openSync(temp, CREATE, nums[n + 2]!);
        }
        for (let off = 0; off < len; ) off += fs.writeSync(fd, ring, at + off, len - off, off);
        if (mtimeMs >= 0) fs.futimesSync(fd, (mtimeMs + 0.5) / 1000, (mtimeMs + 0.5) / 1000);
        if (config.durable && syncfs === false) fs.fsyncSync(fd);
        fs.closeSync(fd);
        written.push({ temp, final: paths[i + 1]!, rename: nums[n + 4] === 1 });
      } catch (err) {
        failed.push([n / 5, fail('write', temp, err)]);
        if (fd !== undefined) {
          try {
            fs.closeSync(fd);
          } catch {
            // closed
          }
          fs.rmSync(temp, { force: true });
        }
      }
    }
    return failed;
  };

  const name = (j: (typeof written)[number]): void => {
    if (j.rename) return fs.renameSync(j.temp, j.final);
    try {
      fs.linkSync(j.temp, j.final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // No hard links here (FAT, some network file systems): claim the name exclusively, then rename over the claim.
      fs.closeSync(fs.openSync(j.final, CREATE, 0o600));
      fs.renameSync(j.temp, j.final);
    } finally {
      fs.rmSync(j.temp, { force: true });
    }
  };

  const commit = (dirs: string[], abandon: boolean): Array<[number, WriteFailure]> => {
    const jobs = written;
    written = [];
    if (abandon) {
      for (const j of jobs) fs.rmSync(j.temp, { force: true });
      return [];
    }
    if (config.durable && syncfs !== false && jobs.length > 0) {
      const r = cp.spawnSync('sync', ['-f', config.syncDir], { stdio: 'ignore' });
      if (r.status === 0) syncfs = true;
      else if (syncfs === undefined) {
        // No syncfs here: flush each file now, and each later one as it is written.
        syncfs = false;
        for (const j of jobs) {
          try {
            fsyncPath(j.temp);
          } catch (err) {
            j.failed = fail('flush', j.temp, err);
          }
        }
      } else for (const j of jobs) j.failed = { step: 'flush', path: j.temp, errno: 'EIO', message: `sync -f ${config.syncDir} failed` };
    }
    const failed: Array<[number, WriteFailure]> = [];
    jobs.forEach((j, i) => {
      if (j.failed) {
        fs.rmSync(j.temp, { force: true });
        failed.push([i, j.failed]);
        return;
      }
      try {
        name(j);
      } catch (err) {
        failed.push([i, (err as NodeJS.ErrnoException).code === 'EEXIST' ? { exists: true } : fail('name', j.final, err)]);
        if (j.rename) fs.rmSync(j.temp, { force: true }); // a rename that failed leaves it (link's path removes it in name())
      }
    });
    if (config.durable) {
      for (const d of dirs) {
        try {
          fsyncPath(d);
        } catch {
          // not every platform can fsync a directory; the files themselves were flushed
        }
      }
    }
    return failed;
  };

  parentPort!.on('message', (m: Ask) => {
    let a: Answer;
    if (m.op === 'lstat') a = { id: m.id, found: m.paths.map(lstatOne) };
    else if (m.op === 'write') a = { id: m.id, failed: write(m.paths.split('\u0000'), m.nums) };
    else {
      const count = written.length;
      a = { id: m.id, failed: commit(m.dirs, m.abandon), count };
    }
    parentPort!.postMessage(a);
  });
}

/** The client's writer thread, started on first use; it never keeps the process alive. */
export class WriterThread {
  private worker: Worker | undefined;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();

  constructor(private readonly config: ThreadConfig) {}

  private start(): Worker {
    // A small heap: the thread keeps nothing but paths (the bytes live in the shared ring).
    const w = new Worker(`(${writerThread.toString()})(require)`, { eval: true, workerData: this.config, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
    w.on('message', (m: Answer) => {
      const p = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) w.unref();
      p?.resolve(m);
    });
    const gone = (err: Error): void => {
      this.worker = undefined;
      for (const p of this.waiting.values()) p.reject(err);
      this.waiting.clear();
    };
    w.on('error', gone);
    w.on('exit', () => gone(new Error('the writer thread ended')));
    w.unref();
    return w;
  }

  private ask(m: Ask extends infer A ? (A extends { id: number } ? Omit<A, 'id'> : never) : never): Promise<Answer> {
    const w = (this.worker ??= this.start());
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.ref(); // the process waits for an answer it is owed
      w.postMessage({ ...m, id });
    });
  }

  /** Write each job's bytes to its temporary file (created new); resolves with the failures, by index. */
  async write(jobs: WriteJob[]): Promise<Map<number, WriteFailure>> {
    const nums = new Float64Array(jobs.length * JOB_NUMS);
    const paths: string[] = [];
    jobs.forEach((j, i) => {
      paths.push(j.temp, j.final);
      nums.set([j.at, j.len, j.mode, j.mtimeMs, j.rename ? 1 : 0], i * JOB_NUMS);
    });
    const a = await this.ask({ op: 'write', paths: paths.join('\u0000'), nums });
    return new Map(a.failed);
  }

  /**
   * Flush every file written since the last commit, then name each and flush the directories `dirs`;
   * resolves with how many files that was and the failures by index among them. `abandon`: remove them
   * instead.
   */
  async commit(dirs: string[], abandon = false): Promise<{ count: number; failed: Map<number, WriteFailure> }> {
    const a = await this.ask({ op: 'commit', dirs, abandon });
    return { count: a.count ?? 0, failed: new Map(a.failed) };
  }

  /** lstat(2) each path (never following a link), in one message. */
  async lstat(paths: string[]): Promise<Found[]> {
    return (await this.ask({ op: 'lstat', paths })).found ?? [];
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
