// The body of a reader thread: for a batch of asks, the jail's steps and the read of each small file (content, SHA-256, identity check), or one directory's sorted, lstat'ed entries; answers packed as numbers and bytes, not objects. Self-contained: it runs from its source text.

/**
 * A batch, as the thread receives it: one root (a realpath) and the asks joined by NUL (no name or
 * realpath holds one). An ask is `r` + name (read; name = normalised segments joined by '/'), `h` +
 * name (read, refusing hard-linked files), or `l` + max + ':' + dir (list the directory `dir`, a
 * realpath under root, if it has at most `max` entries).
 */
export interface AskBatch {
  id: number;
  root: string;
  asks: string;
}

/**
 * The answer: per ask, in order, one record of numbers in `nums` (its first number is a Rec code),
 * the few strings it needs in `strs` (by index), and its bytes in `data` (file content, VALIDATOR,
 * SHA-256, entry names) by offset. Both arrays are transferred, not copied.
 */
export interface AnswerBatch {
  id: number;
  nums: Float64Array;
  strs: string[];
  data: Uint8Array;
}

/**
 * Record codes and layouts. FACTS = size (-1 above 2^53 - 1), sizeText index (-1: none), mtime ms,
 * mode, validator offset (16 bytes).
 */
export const Rec = {
  /** FACTS, content offset, length, SHA-256 offset. */
  SMALL: 0,
  /** FACTS. */
  LARGE: 1,
  /** FACTS (after the change), change text index. */
  CHANGED: 2,
  /** JailStepCode, errno index (-1: none), nlink. */
  JAIL: 3,
  /** message index. */
  ERROR: 4,
  /** count, skipped, then count × ENTRY_NUMS: name offset, name length, EntryType, size, mtime ms, mode, nlink, uid, gid. */
  ENTRIES: 5,
  GONE: 6,
  TOO_MANY: 7,
} as const;

export const ENTRY_NUMS = 9;
export const FACT_NUMS = 5;
/** Entry types in an ENTRIES record (LINK: a symbolic link the listing leaves out, its other numbers 0). */
export const EntryType = { FILE: 0, DIR: 1, OTHER: 2, LINK: 3 } as const;
/** The jail steps of a JAIL record, in the order of JailStep (jail.ts). */
export const JAIL_STEPS = ['realpath', 'open', 'outside', 'directory', 'not-regular', 'hard-links'] as const;

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
 * and globals (so the constants above are repeated as literals here). The VALIDATOR is
 * validatorOf()'s (hash-cache.ts), MTIME mtimeMsOf()'s and MODE modeOf()'s (listing.ts), computed
 * here so the event loop handles numbers only.
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
  const crypto = req('node:crypto') as typeof import('node:crypto');
  const sha256 = (data: Uint8Array | string): Buffer => crypto.hash('sha256', data, 'buffer') as unknown as Buffer;
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

  // The batch's answer: numbers, strings, and bytes packed into one growing buffer (reads land in it directly).
  let nums: number[] = [];
  let strs: string[] = [];
  let data = Buffer.allocUnsafeSlow(1 << 20);
  let packed = 0;
  const reserve = (n: number): number => {
    if (packed + n > data.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(data.length * 2, packed + n));
      data.copy(bigger, 0, 0, packed);
      data = bigger;
    }
    packed += n;
    return packed - n;
  };
  const pack = (b: Uint8Array): number => {
    const at = reserve(b.length);
    data.set(b, at);
    return at;
  };
  const str = (s: string | undefined): number => (s === undefined ? -1 : strs.push(s) - 1);
  const facts = (s: Stat): void => {
    const v = pack(sha256(`netkit-validator:${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`).subarray(0, 16));
    nums.push(s.size > MAX ? -1 : Number(s.size), s.size > MAX ? str(String(s.size)) : -1, mtimeMs(s), Number(s.mode & 0o7777n), v);
  };
  const jail = (step: number, errno?: string, nlink = 0): void => void nums.push(3, step, str(errno), nlink);
  const procPath = (fd: number): string | undefined => {
    if (!setup.proc) return undefined;
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return undefined; // no /proc: the path checks stand alone
    }
  };

  /** Open the file: by its directory's realpath (cached per batch), else by the whole path's; false once a JAIL record is out. */
  const open = (root: string, name: string, dirs: Map<string, string | undefined>): number | false => {
    const cut = name.lastIndexOf('/');
    const dirKey = cut < 0 ? '' : name.slice(0, cut);
    let realDir = dirs.get(dirKey);
    if (!dirs.has(dirKey)) {
      try {
        realDir = fs.realpathSync.native(cut < 0 ? root : `${root}/${dirKey}`);
        if (!inside(root, realDir)) realDir = undefined;
      } catch {
        realDir = undefined;
      }
      dirs.set(dirKey, realDir);
    }
    if (realDir !== undefined) {
      try {
        return fs.openSync(`${realDir === '/' ? '' : realDir}/${name.slice(cut + 1)}`, setup.openFlags);
      } catch {
        // a link, or anything else: resolve the whole path below for the exact verdict
      }
    }
    let real: string;
    try {
      real = fs.realpathSync.native(`${root}/${name}`);
    } catch (e) {
      jail(0, errnoOf(e));
      return false;
    }
    if (!inside(root, real)) {
      jail(2);
      return false;
    }
    try {
      return fs.openSync(real, setup.openFlags);
    } catch (e) {
      jail(1, errnoOf(e));
      return false;
    }
  };

  const read = (root: string, name: string, refuseHardLinks: boolean, dirs: Map<string, string | undefined>, attempt: number): void => {
    const fd = open(root, name, dirs);
    if (fd === false) return;
    const mark = packed;
    let again = false;
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if (st.isDirectory()) return jail(3);
      if (!st.isFile()) return jail(4);
      if (refuseHardLinks && st.nlink > 1n) return jail(5, undefined, Number(st.nlink));
      const opened = procPath(fd);
      if (opened !== undefined && !inside(root, opened)) return jail(2);
      if (st.size > BigInt(setup.small)) {
        nums.push(1);
        return facts(st);
      }
      const len = Number(st.size);
      const at = reserve(len);
      let got = 0;
      while (got < len) {
        const n = fs.readSync(fd, data, at + got, len - got, got);
        if (n === 0) break;
        got += n;
      }
      const after = fs.fstatSync(fd, { bigint: true });
      const change = got < len ? 'it shrank' : changeOf(st, after);
      if (change !== undefined) {
        packed = mark;
        if (attempt === 0) {
          again = true;
          return;
        }
        nums.push(2);
        facts(after);
        nums.push(str(change));
        return;
      }
      const d = pack(sha256(data.subarray(at, at + len)));
      nums.push(0);
      facts(st);
      nums.push(at, len, d);
    } catch (e) {
      packed = mark;
      nums.push(4, str(errnoOf(e) ?? String(e)));
    } finally {
      fs.closeSync(fd);
      if (again) read(root, name, refuseHardLinks, dirs, 1);
    }
  };

  const list = (root: string, dir: string, max: number): void => {
    let fd: number;
    try {
      fd = fs.openSync(dir, O.O_RDONLY | O.O_DIRECTORY | O.O_NOFOLLOW);
    } catch {
      return void nums.push(6);
    }
    const start = nums.length;
    const mark = packed;
    try {
      const opened = procPath(fd);
      if (setup.proc && opened !== dir) return void nums.push(6);
      const base = setup.proc ? `/proc/self/fd/${fd}/` : `${dir}/`;
      const names: Buffer[] = [];
      const d = fs.opendirSync(base, { encoding: 'buffer' as BufferEncoding });
      try {
        for (let e = d.readSync(); e; e = d.readSync()) {
          if (names.length >= max) return void nums.push(7);
          names.push(e.name as unknown as Buffer);
        }
      } finally {
        d.closeSync();
      }
      names.sort(Buffer.compare);
      const prefix = Buffer.from(base);
      const path = Buffer.allocUnsafe(prefix.length + 256);
      prefix.copy(path);
      nums.push(5, 0, 0);
      let count = 0;
      let skipped = 0;
      for (const name of names) {
        const at = name.length <= 255 ? path.subarray(0, prefix.length + name.copy(path, prefix.length)) : Buffer.concat([prefix, name]);
        try {
          let st = fs.lstatSync(at, { bigint: true });
          if (st.isSymbolicLink()) {
            // Listed as the file it points to, if that file is inside the root; anything else is left out (and named).
            try {
              if (!inside(root, fs.realpathSync.native(at).toString())) throw new Error('outside');
              st = fs.statSync(at, { bigint: true });
              if (!st.isFile()) throw new Error('not a file');
            } catch {
              nums.push(pack(name), name.length, 3, 0, 0, 0, 0, 0, 0);
              count += 1;
              continue;
            }
          }
          nums.push(pack(name), name.length, st.isFile() ? 0 : st.isDirectory() ? 1 : 2, st.size > MAX ? -1 : Number(st.size), mtimeMs(st), Number(st.mode & 0o7777n), Number(st.nlink), Number(st.uid), Number(st.gid));
          count += 1;
        } catch {
          skipped += 1; // gone, or not ours to see
        }
      }
      nums[start + 1] = count;
      nums[start + 2] = skipped;
    } catch {
      nums.length = start;
      packed = mark;
      nums.push(6);
    } finally {
      fs.closeSync(fd);
    }
  };

  parentPort!.on('message', (m: AskBatch) => {
    nums = [];
    strs = [];
    packed = 0;
    const dirs = new Map<string, string | undefined>();
    for (const ask of m.asks.split('\u0000')) {
      const op = ask.charCodeAt(0);
      if (op === 0x6c /* l */) {
        const colon = ask.indexOf(':');
        list(m.root, ask.slice(colon + 1), Number(ask.slice(1, colon)));
      } else read(m.root, ask.slice(1), op === 0x68 /* h */, dirs, 0);
    }
    const out = new Uint8Array(packed);
    out.set(data.subarray(0, packed));
    const n = Float64Array.from(nums);
    const answer: AnswerBatch = { id: m.id, nums: n, strs, data: out };
    parentPort!.postMessage(answer, [n.buffer, out.buffer]);
  });
}
