// A writer thread for a tree fetch: small files written, flushed and named a group at a time, and what is already there looked up, with plain system calls off the event loop and off libuv's pool, so 10,000 small files cost 10,000 short system-call sequences and no thread-pool round trips.
import { Worker } from 'node:worker_threads';

/** One file of a group: its bytes go to `temp` (created new), which then takes the name `final`. */
export interface WriteJob {
  temp: string;
  final: string;
  data: Uint8Array;
  mode: number;
  /** ms since the epoch, or -1 to leave the time of the write. */
  mtimeMs: number;
  /** rename(2) onto `final` (replaces it); else link(2), which fails rather than replace, then unlink `temp`. */
  rename: boolean;
}

export interface WriteGroup {
  id: number;
  jobs: WriteJob[];
  /** Flush before naming: one syncfs(2) of `syncDir`'s file system (coreutils `sync -f`), or fsync(2) per file where that fails. */
  durable: boolean;
  syncDir: string;
  /** Directories to fsync once the names are in them. */
  dirs: string[];
}

/** What lstat(2) found at a path: nothing, a regular file (size, mtime ms, mode), a directory, or something else. */
export type Found = { k: 'none' } | { k: 'file'; size: number; mtimeMs: number; mode: number } | { k: 'dir' } | { k: 'other'; what: string } | { k: 'error'; errno: string; message: string };

/** Per job: ok, the final name was taken (link's EEXIST), or the step and errno that failed. */
export type WriteResult = { ok: true } | { ok: false; exists: true } | { ok: false; exists?: false; step: string; path: string; errno: string; message: string };

/**
 * The thread's body. Self-contained: it runs from its source text (`new Worker(text, { eval: true })`),
 * so it uses only what `require` gives it.
 */
export function writerThread(require: (id: string) => unknown): void {
  const fs = require('node:fs') as typeof import('node:fs');
  const cp = require('node:child_process') as typeof import('node:child_process');
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const C = fs.constants;
  const CREATE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | (C.O_NOFOLLOW ?? 0);
  let syncfs: boolean | undefined = process.platform === 'linux' ? undefined : false;
  const fail = (step: string, path: string, err: unknown): WriteResult => {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, step, path, errno: e.code ?? 'EIO', message: e.message ?? String(err) };
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
  parentPort!.on('message', (m: WriteGroup | { id: number; lstat: string[] }) => {
    if ('lstat' in m) {
      parentPort!.postMessage({ id: m.id, found: m.lstat.map(lstatOne) });
      return;
    }
    const g = m;
    const results: WriteResult[] = g.jobs.map(() => ({ ok: true }));
    const fds: Array<number | undefined> = g.jobs.map(() => undefined);
    g.jobs.forEach((j, i) => {
      try {
        let fd: number;
        try {
          fd = fs.openSync(j.temp, CREATE, j.mode);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          fs.unlinkSync(j.temp); // left by a killed run of the same pid
          fd = fs.openSync(j.temp, CREATE, j.mode);
        }
        fds[i] = fd;
        for (let at = 0; at < j.data.length; ) at += fs.writeSync(fd, j.data, at, j.data.length - at, at);
        if (j.mtimeMs >= 0) fs.futimesSync(fd, (j.mtimeMs + 0.5) / 1000, (j.mtimeMs + 0.5) / 1000);
      } catch (err) {
        results[i] = fail('write', j.temp, err);
      }
    });
    const written = g.jobs.map((_, i) => results[i]!.ok);
    let flushed = !g.durable;
    if (g.durable && syncfs !== false && written.some(Boolean)) {
      const r = cp.spawnSync('sync', ['-f', g.syncDir], { stdio: 'ignore' });
      if (r.status === 0) flushed = syncfs = true;
      else if (syncfs === undefined) syncfs = false;
      else g.jobs.forEach((j, i) => written[i] && (results[i] = { ok: false, step: 'flush', path: j.temp, errno: 'EIO', message: `sync -f ${g.syncDir} failed` }));
    }
    g.jobs.forEach((j, i) => {
      const fd = fds[i];
      if (fd === undefined) return;
      try {
        if (!flushed && results[i]!.ok) fs.fsyncSync(fd);
      } catch (err) {
        results[i] = fail('flush', j.temp, err);
      }
      try {
        fs.closeSync(fd);
      } catch {
        // closed
      }
    });
    g.jobs.forEach((j, i) => {
      if (!results[i]!.ok) {
        if (fds[i] !== undefined) fs.rmSync(j.temp, { force: true });
        return;
      }
      try {
        if (j.rename) fs.renameSync(j.temp, j.final);
        else {
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
        }
      } catch (err) {
        results[i] = (err as NodeJS.ErrnoException).code === 'EEXIST' ? { ok: false, exists: true } : fail('name', j.final, err);
        if (j.rename) fs.rmSync(j.temp, { force: true }); // a rename that failed leaves it (link's path removes it above)
      }
    });
    if (g.durable) {
      for (const d of g.dirs) {
        try {
          const fd = fs.openSync(d, C.O_RDONLY);
          try {
            fs.fsyncSync(fd);
          } finally {
            fs.closeSync(fd);
          }
        } catch {
          // not every platform can fsync a directory; the files themselves were flushed
        }
      }
    }
    parentPort!.postMessage({ id: g.id, results });
  });
}

/** The client's writer thread, started on first use; it never keeps the process alive. */
export class WriterThread {
  private worker: Worker | undefined;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (r: never) => void; reject: (e: Error) => void }>();

  private start(): Worker {
    // A small heap: the thread keeps nothing but the group in hand (its bytes live outside the heap).
    const w = new Worker(`(${writerThread.toString()})(require)`, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
    w.on('message', (m: { id: number; results?: WriteResult[]; found?: Found[] }) => {
      const p = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      p?.resolve((m.results ?? m.found) as never);
      if (this.waiting.size === 0) w.unref();
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

  /** Write, flush and name one group. The files' bytes are handed to the thread (their buffers are emptied here). */
  run(group: Omit<WriteGroup, 'id'>): Promise<WriteResult[]> {
    const w = (this.worker ??= this.start());
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: never) => void, reject });
      w.ref(); // the process waits for an answer it is owed
      // Only a buffer that owns its whole memory moves without a copy (a pooled slice must be copied).
      const transfer = group.jobs.filter((j) => j.data.byteOffset === 0 && j.data.byteLength === j.data.buffer.byteLength && j.data.byteLength > 0).map((j) => j.data.buffer as ArrayBuffer);
      w.postMessage({ ...group, id }, transfer);
    });
  }

  /** lstat(2) each path (never following a link), in one message. */
  lstat(paths: string[]): Promise<Found[]> {
    const w = (this.worker ??= this.start());
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: never) => void, reject });
      w.ref();
      w.postMessage({ id, lstat: paths });
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
