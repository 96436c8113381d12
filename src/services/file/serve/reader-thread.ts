// The body of a reader thread: for a batch of asks, the jail's steps and the read of each small file (content, SHA-256, identity check), or one directory's sorted, lstat'ed entries. Self-contained: it runs from its source text.

/** Open and (if small) read `name` (normalised segments joined by '/') under `root`. */
export interface ReadAsk {
  op: 'read';
  root: string;
  name: string;
  refuseHardLinks: boolean;
}

/** Read the entries of the directory `dir` (a realpath under `root`), at most `max` of them. */
export interface ListAsk {
  op: 'list';
  root: string;
  dir: string;
  max: number;
}

export type Ask = ReadAsk | ListAsk;

/** The fstat fields the server uses. */
export interface FileStat {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  mode: bigint;
  nlink: bigint;
  uid: bigint;
  gid: bigint;
}

/** One directory entry: `t` file, dir, or other (FIFO, socket, device); a link in to a file is the file, with its stat. */
export interface RawEntry {
  name: Uint8Array;
  t: 'file' | 'dir' | 'other';
  stat: FileStat;
}

/** What a reader thread found; `at` and `len` locate a small file's bytes in the batch's data. */
export type ThreadResult =
  | { k: 'jail'; step: 'realpath' | 'open'; errno: string | undefined }
  | { k: 'jail'; step: 'outside' | 'directory' | 'not-regular' }
  | { k: 'jail'; step: 'hard-links'; nlink: bigint }
  | { k: 'error'; message: string }
  | { k: 'large'; stat: FileStat }
  | { k: 'small'; stat: FileStat; at: number; len: number; digest: Uint8Array }
  | { k: 'changed'; stat: FileStat; change: string }
  /** A listed directory: its entries sorted by name bytes; `skipped` were left out (unstatable, links out, links to directories). */
  | { k: 'entries'; entries: RawEntry[]; skipped: number }
  /** The directory vanished, turned into a link, or cannot be read. */
  | { k: 'gone' }
  | { k: 'too-many' };

export interface ThreadSetup {
  /** fs.constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK. */
  openFlags: number;
  /** Files up to this size are read whole. */
  small: number;
  /** Check each descriptor's path through /proc/self/fd. */
  proc: boolean;
}

/**
 * Runs in a worker thread, from `String(readerThread)`: it may use only its parameter `req` (require)
 * and globals. Messages in: { id, asks }; out: { id, results, data } with every small file's bytes
 * packed in `data` (transferred, not copied).
 *
 * A read follows openInJail (jail.ts): realpath, inside the root, open without following the last
 * component, fstat, hard links, /proc/self/fd inside the root; then [0, size) is read, fstat'ed again
 * and compared (a file that changes while it is read is read once more). Within one batch the realpath
 * of a file's directory is taken once: the file is opened as realdir/name without following, which
 * fails on a link (then the whole path is resolved as openInJail does) and whose descriptor is checked
 * through /proc all the same. A list opens the directory without following, checks it is still that
 * realpath, and reads and lstats through /proc/self/fd/N, so a swap cannot lead it outside.
 */
export function readerThread(req: (id: string) => unknown): void {
  const { parentPort, workerData } = req('node:worker_threads') as typeof import('node:worker_threads');
  const fs = req('node:fs') as typeof import('node:fs');
  const { createHash } = req('node:crypto') as typeof import('node:crypto');
  const setup = workerData as ThreadSetup;
  const O = fs.constants;
  const inside = (root: string, p: string): boolean => p === root || p.startsWith(root.endsWith('/') ? root : `${root}/`);
  const errnoOf = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;
  const statOf = (s: import('node:fs').BigIntStats): FileStat => ({ dev: s.dev, ino: s.ino, size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs, mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid });
  const changeOf = (a: FileStat, b: FileStat): string | undefined => {
    if (a.dev !== b.dev || a.ino !== b.ino) return 'it was replaced by another file';
    if (a.size !== b.size) return `its size went from ${a.size} to ${b.size} bytes`;
    if (a.mtimeNs !== b.mtimeNs) return 'it was modified';
    if (a.ctimeNs !== b.ctimeNs) return 'its status changed (ctime)';
    return undefined;
  };
  const procPath = (fd: number): string | undefined => {
    if (!setup.proc) return undefined;
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return undefined; // no /proc: the path checks stand alone
    }
  };

  /** Open the file: by its directory's realpath (cached per batch), else by the whole path's. */
  const open = (ask: ReadAsk, dirs: Map<string, string | undefined>): ThreadResult | number => {
    const cut = ask.name.lastIndexOf('/');
    const dirKey = `${ask.root}\u0000${cut < 0 ? '' : ask.name.slice(0, cut)}`;
    let realDir = dirs.get(dirKey);
    if (!dirs.has(dirKey)) {
      try {
        realDir = fs.realpathSync.native(cut < 0 ? ask.root : `${ask.root}/${ask.name.slice(0, cut)}`);
        if (!inside(ask.root, realDir)) realDir = undefined;
      } catch {
        realDir = undefined;
      }
      dirs.set(dirKey, realDir);
    }
    if (realDir !== undefined) {
      try {
        return fs.openSync(`${realDir === '/' ? '' : realDir}/${ask.name.slice(cut + 1)}`, setup.openFlags);
      } catch {
        // a link, or anything else: resolve the whole path below for the exact verdict
      }
    }
    let real: string;
    try {
      real = fs.realpathSync.native(`${ask.root}/${ask.name}`);
    } catch (e) {
      return { k: 'jail', step: 'realpath', errno: errnoOf(e) };
    }
    if (!inside(ask.root, real)) return { k: 'jail', step: 'outside' };
    try {
      return fs.openSync(real, setup.openFlags);
    } catch (e) {
      return { k: 'jail', step: 'open', errno: errnoOf(e) };
    }
  };

  const read = (ask: ReadAsk, dirs: Map<string, string | undefined>, chunks: Buffer[], offset: number, attempt: number): ThreadResult => {
    const fd = open(ask, dirs);
    if (typeof fd !== 'number') return fd;
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if (st.isDirectory()) return { k: 'jail', step: 'directory' };
      if (!st.isFile()) return { k: 'jail', step: 'not-regular' };
      if (ask.refuseHardLinks && st.nlink > 1n) return { k: 'jail', step: 'hard-links', nlink: st.nlink };
      const opened = procPath(fd);
      if (opened !== undefined && !inside(ask.root, opened)) return { k: 'jail', step: 'outside' };
      const stat = statOf(st);
      if (st.size > BigInt(setup.small)) return { k: 'large', stat };
      const len = Number(st.size);
      const data = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const n = fs.readSync(fd, data, got, len - got, got);
        if (n === 0) break;
        got += n;
      }
      const after = statOf(fs.fstatSync(fd, { bigint: true }));
      const change = got < len ? 'it shrank' : changeOf(stat, after);
      if (change !== undefined) return attempt === 0 ? read(ask, dirs, chunks, offset, 1) : { k: 'changed', stat: after, change };
      chunks.push(data);
      return { k: 'small', stat, at: offset, len, digest: createHash('sha256').update(data).digest() };
    } catch (e) {
      return { k: 'error', message: errnoOf(e) ?? String(e) };
    } finally {
      fs.closeSync(fd);
    }
  };

  const list = (ask: ListAsk): ThreadResult => {
    let fd: number;
    try {
      fd = fs.openSync(ask.dir, O.O_RDONLY | O.O_DIRECTORY | O.O_NOFOLLOW);
    } catch {
      return { k: 'gone' };
    }
    try {
      const opened = procPath(fd);
      if (setup.proc && opened !== ask.dir) return { k: 'gone' };
      const base = setup.proc ? `/proc/self/fd/${fd}/` : `${ask.dir}/`;
      const names: Buffer[] = [];
      const d = fs.opendirSync(base, { encoding: 'buffer' as BufferEncoding });
      try {
        for (let e = d.readSync(); e; e = d.readSync()) {
          if (names.length >= ask.max) return { k: 'too-many' };
          names.push(e.name as unknown as Buffer);
        }
      } finally {
        d.closeSync();
      }
      names.sort(Buffer.compare);
      const prefix = Buffer.from(base);
      const entries: RawEntry[] = [];
      let skipped = 0;
      for (const name of names) {
        const at = Buffer.concat([prefix, name]);
        try {
          let st = fs.lstatSync(at, { bigint: true });
          if (st.isSymbolicLink()) {
            // Listed as the file it points to, if that file is inside the root; anything else is left out.
            if (!inside(ask.root, fs.realpathSync.native(at).toString())) throw new Error('outside');
            st = fs.statSync(at, { bigint: true });
            if (!st.isFile()) throw new Error('not a file');
          }
          entries.push({ name, t: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other', stat: statOf(st) });
        } catch {
          skipped += 1; // gone, a dangling link, a link out or to a directory, or not ours to see
        }
      }
      return { k: 'entries', entries, skipped };
    } catch {
      return { k: 'gone' };
    } finally {
      fs.closeSync(fd);
    }
  };

  parentPort!.on('message', (m: { id: number; asks: Ask[] }) => {
    const chunks: Buffer[] = [];
    const results: ThreadResult[] = [];
    const dirs = new Map<string, string | undefined>();
    let offset = 0;
    for (const ask of m.asks) {
      const r = ask.op === 'read' ? read(ask, dirs, chunks, offset, 0) : list(ask);
      if (r.k === 'small') offset += r.len;
      results.push(r);
    }
    const data = new Uint8Array(offset);
    let at = 0;
    for (const c of chunks) {
      data.set(c, at);
      at += c.length;
    }
    parentPort!.postMessage({ id: m.id, results, data }, [data.buffer]);
  });
}
