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

/**
 * What the server says about a file, as plain numbers worked out in the thread (no BigInt on the event
 * loop): SIZE (-1 above 2^53 - 1, then `sizeText` has it exactly), MTIME in whole ms (0 before the
 * epoch), MODE (st_mode & 0o7777), and `v`, where its 16-byte VALIDATOR starts in the batch's data.
 */
export interface Facts {
  size: number;
  sizeText?: string;
  mtimeMs: number;
  mode: number;
  v: number;
}

/**
 * One directory entry: `t` file, dir, other (FIFO, socket, device), or link (a symbolic link the
 * listing leaves out: leading outside the root, to a directory, to a FIFO, or nowhere; its stat
 * fields are 0); a link in to a file is the file, with its stat. Its name's bytes are at [n, n + nl)
 * of the batch's data.
 */
export interface RawEntry {
  n: number;
  nl: number;
  t: 'file' | 'dir' | 'other' | 'link';
  /** -1 above 2^53 - 1. */
  size: number;
  mtimeMs: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
}

/** What a reader thread found; offsets locate bytes in the batch's data (file content, VALIDATOR, SHA-256). */
export type ThreadResult =
  | { k: 'jail'; step: 'realpath' | 'open'; errno: string | undefined }
  | { k: 'jail'; step: 'outside' | 'directory' | 'not-regular' }
  | { k: 'jail'; step: 'hard-links'; nlink: number }
  | { k: 'error'; message: string }
  | { k: 'large'; facts: Facts }
  | { k: 'small'; facts: Facts; at: number; len: number; d: number }
  | { k: 'changed'; facts: Facts; change: string }
  /** A listed directory: its entries sorted by name bytes; `skipped` were left out (gone, or unstatable, before they could be looked at). */
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
 * and globals. Messages in: { id, asks }; out: { id, results, data } with every small file's bytes, and
 * every VALIDATOR and SHA-256, packed in `data` (transferred, not copied). The VALIDATOR is
 * validatorOf()'s (hash-cache.ts), MTIME mtimeMsOf()'s and MODE modeOf()'s (listing.ts), computed here
 * so the event loop handles numbers only.
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
  // As jail.ts's inside(): below the root, and not in a `.netkit` directory (a fetch's staging directory) below it.
  const inside = (root: string, p: string): boolean => {
    if (p === root) return true;
    const base = root.endsWith('/') ? root : `${root}/`;
    return p.startsWith(base) && !`/${p.slice(base.length)}/`.includes('/.netkit/');
  };
  const errnoOf = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;
  type Stat = import('node:fs').BigIntStats;
  const MAX = BigInt(Number.MAX_SAFE_INTEGER);
  const mtimeMs = (s: Stat): number => (s.mtimeNs <= 0n ? 0 : Number(s.mtimeNs / 1_000_000n));
  const changeOf = (a: Stat, b: Stat): string | undefined => {
    if (a.dev !== b.dev || a.ino !== b.ino) return 'it was replaced by another file';
    if (a.size !== b.size) return `its size went from ${a.size} to ${b.size} bytes`;
    if (a.mtimeNs !== b.mtimeNs) return 'it was modified';
    if (a.ctimeNs !== b.ctimeNs) return 'its status changed (ctime)';
    return undefined;
  };
  /** The batch's packed bytes. */
  let chunks: Uint8Array[] = [];
  let packed = 0;
  const pack = (b: Uint8Array): number => {
    chunks.push(b);
    packed += b.length;
    return packed - b.length;
  };
  const facts = (s: Stat): Facts => {
    const validator = createHash('sha256').update(`netkit-validator:${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`).digest().subarray(0, 16);
    const f: Facts = { size: s.size > MAX ? -1 : Number(s.size), mtimeMs: mtimeMs(s), mode: Number(s.mode & 0o7777n), v: pack(validator) };
    if (s.size > MAX) f.sizeText = String(s.size);
    return f;
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

  const read = (ask: ReadAsk, dirs: Map<string, string | undefined>, attempt: number): ThreadResult => {
    const fd = open(ask, dirs);
    if (typeof fd !== 'number') return fd;
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if (st.isDirectory()) return { k: 'jail', step: 'directory' };
      if (!st.isFile()) return { k: 'jail', step: 'not-regular' };
      if (ask.refuseHardLinks && st.nlink > 1n) return { k: 'jail', step: 'hard-links', nlink: Number(st.nlink) };
      const opened = procPath(fd);
      if (opened !== undefined && !inside(ask.root, opened)) return { k: 'jail', step: 'outside' };
      if (st.size > BigInt(setup.small)) return { k: 'large', facts: facts(st) };
      const len = Number(st.size);
      const data = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const n = fs.readSync(fd, data, got, len - got, got);
        if (n === 0) break;
        got += n;
      }
      const after = fs.fstatSync(fd, { bigint: true });
      const change = got < len ? 'it shrank' : changeOf(st, after);
      if (change !== undefined) return attempt === 0 ? read(ask, dirs, 1) : { k: 'changed', facts: facts(after), change };
      const at = pack(data);
      return { k: 'small', facts: facts(st), at, len, d: pack(createHash('sha256').update(data).digest()) };
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
            // Listed as the file it points to, if that file is inside the root; anything else is left out (and named).
            try {
              if (!inside(ask.root, fs.realpathSync.native(at).toString())) throw new Error('outside');
              st = fs.statSync(at, { bigint: true });
              if (!st.isFile()) throw new Error('not a file');
            } catch {
              entries.push({ n: pack(name), nl: name.length, t: 'link', size: 0, mtimeMs: 0, mode: 0, nlink: 0, uid: 0, gid: 0 });
              continue;
            }
          }
          entries.push({
            n: pack(name),
            nl: name.length,
            t: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other',
            size: st.size > MAX ? -1 : Number(st.size),
            mtimeMs: mtimeMs(st),
            mode: Number(st.mode & 0o7777n),
            nlink: Number(st.nlink),
            uid: Number(st.uid),
            gid: Number(st.gid),
          });
        } catch {
          skipped += 1; // gone, or not ours to see
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
    chunks = [];
    packed = 0;
    const results: ThreadResult[] = [];
    const dirs = new Map<string, string | undefined>();
    for (const ask of m.asks) results.push(ask.op === 'read' ? read(ask, dirs, 0) : list(ask));
    const data = new Uint8Array(packed);
    let at = 0;
    for (const c of chunks) {
      data.set(c, at);
      at += c.length;
    }
    chunks = [];
    parentPort!.postMessage({ id: m.id, results, data }, [data.buffer]);
  });
}
