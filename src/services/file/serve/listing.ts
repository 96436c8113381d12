// Listing a served directory under the jail's rules: depth-first, sorted by name bytes, one directory in memory per level, links out, loops, FIFOs, devices and unrequestable names skipped and counted.
import { constants as fsc, promises as fsp, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { NetkitError, errnoOf } from '../../../errors.js';
import { MAX_NAME_BYTES } from '../../../protocol/file-frames.js';
import { inside, isRequestableName, normaliseDir } from './jail.js';

/** One listed entry. `path` is relative to the served directory and can be requested as is. */
export interface ListEntry {
  path: string;
  type: 'file' | 'dir';
  /** Bytes of a file (a link's target); 0 for a directory. */
  size: number;
  /** Modification time, whole milliseconds since the Unix epoch (0 if before it). */
  mtimeMs: number;
  /** Permission bits: st_mode & 0o7777. */
  mode: number;
}

export interface ListOptions {
  /** Every entry below the directory, not only those directly in it. */
  recursive: boolean;
  /** The most entries one listing may hold or yield (default MAX_LIST_ENTRIES); past it, iteration throws TOO_LARGE. */
  maxEntries?: number;
  /** Stop early: iteration throws the signal's reason. */
  signal?: AbortSignal;
  /** Skip files with more than one hard link (a server run with --refuse-hard-links refuses them). */
  refuseHardLinks?: boolean;
}

export interface Listing {
  /** The entries in the order of docs/protocol.md 2.10: depth-first, a directory before its contents, each directory sorted by name bytes. */
  entries: AsyncIterable<ListEntry>;
  /** Entries left out so far (the whole count once `entries` is exhausted). */
  skipped(): number;
}

export const MAX_LIST_ENTRIES = 1_000_000;
/** The message of the FORBIDDEN refusal for listing a regular file (a v1 session gets NOT_DIRECTORY for it). */
export const NOT_A_DIRECTORY = 'not a directory';
/** How many entries of one directory are stat'ed at once. */
const STAT_BATCH = 16;
const MAX_SIZE = BigInt(Number.MAX_SAFE_INTEGER);

/** The JSON shape of an entry for `file list --json` and the HTTP listing. */
export function listEntryJson(e: ListEntry): { path: string; type: 'file' | 'dir'; size: number; mtime: string; mode: string } {
  return { path: e.path, type: e.type, size: e.size, mtime: new Date(e.mtimeMs).toISOString(), mode: e.mode.toString(8).padStart(4, '0') };
}

/** Milliseconds since the epoch from a bigint stat, as RESPONSE and ENTRY carry them (the same for both). */
export function mtimeMsOf(st: BigIntStats): number {
  return st.mtimeNs <= 0n ? 0 : Number(st.mtimeNs / 1_000_000n);
}

export function modeOf(st: BigIntStats): number {
  return Number(st.mode & 0o7777n);
}

/** Who the server runs as, for the permission bits. */
export interface Identity {
  uid: number;
  groups: ReadonlySet<number>;
}

const SELF: Identity = { uid: process.getuid?.() ?? -1, groups: new Set([process.getgid?.() ?? -1, ...(process.getgroups?.() ?? [])]) };

/**
 * Whether `who` may read it (`bits` 4n: read; 5n: read and search, for a directory), judged by its
 * permission bits as the kernel would without ACLs: the owner's bits for the owner, else the group's
 * for a member, else the others'. Root reads everything.
 */
export function readableBy(who: Identity, st: BigIntStats, bits: bigint): boolean {
  if (who.uid === 0) return true;
  const shift = st.uid === BigInt(who.uid) ? 6n : who.groups.has(Number(st.gid)) ? 3n : 0n;
  return ((st.mode >> shift) & bits) === bits;
}

const readable = (st: BigIntStats, bits: bigint): boolean => readableBy(SELF, st, bits);

function refuse(code: 'NOT_FOUND' | 'FORBIDDEN', message: string): NetkitError {
  return new NetkitError(code, message);
}

/**
 * Open a directory to read, without following a link in its last component, and check that the
 * descriptor is the directory `expected` (a realpath inside the root). On Linux the listing then reads
 * and stats through /proc/self/fd/N, so a directory swapped for a link after the check cannot lead the
 * walk outside. Returns the handle and the path to read through, or undefined when it is gone or
 * no longer the same directory.
 */
async function openDirectory(expected: string): Promise<{ handle: fsp.FileHandle; base: string } | undefined> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(expected, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT' || errno === 'ENOTDIR' || errno === 'ELOOP' || errno === 'EACCES' || errno === 'EPERM') return undefined;
    throw err;
  }
  if (process.platform !== 'linux') return { handle, base: expected };
  const proc = `/proc/self/fd/${handle.fd}`;
  try {
    if ((await fsp.readlink(proc)) === expected) return { handle, base: proc };
  } catch {
    return { handle, base: expected }; // no /proc: the path checks stand alone
  }
  await handle.close();
  return undefined;
}

interface Item {
  /** Root-relative segments. */
  segments: string[];
  entry: ListEntry;
  /** Where to descend (a realpath), for a directory in a recursive listing. */
  descend?: string;
}

interface WalkState {
  root: string;
  opts: ListOptions;
  max: number;
  skipped: number;
  yielded: number;
  /** Names read and not yet yielded or skipped, over every level being walked. */
  held: number;
}

function tooLarge(max: number): NetkitError {
  return new NetkitError('TOO_LARGE', `listing too large: more than ${max} entries`);
}

/** Read one directory's names, sorted by their bytes, through `base`. */
async function readNames(base: string, state: WalkState): Promise<Buffer[]> {
  const names: Buffer[] = [];
  // Node's types allow only text encodings here, but opendir hands out raw name bytes with 'buffer'.
  const dir = await fsp.opendir(base, { encoding: 'buffer' as BufferEncoding, bufferSize: 128 });
  for await (const d of dir) {
    if (++state.held > state.max) {
      await dir.close().catch(() => undefined);
      throw tooLarge(state.max);
    }
    names.push(d.name as unknown as Buffer);
  }
  return names.sort(Buffer.compare);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** What one directory entry becomes: an item, or undefined when the jail leaves it out. */
async function classify(state: WalkState, dirReal: string, base: string, prefix: string[], raw: Buffer): Promise<Item | undefined> {
  let name: string;
  try {
    name = utf8.decode(raw);
  } catch {
    return undefined; // not UTF-8: no REQUEST could name it
  }
  const segments = [...prefix, name];
  if (Buffer.byteLength(segments.join('/')) > MAX_NAME_BYTES || !isRequestableName(segments)) return undefined;
  const at = `${base}/${name}`;
  let st: BigIntStats;
  try {
    st = await fsp.lstat(at, { bigint: true });
    if (st.isSymbolicLink()) {
      // Listed as the file it points to, if that file is inside the root; anything else is left out.
      const target = await fsp.realpath(at);
      if (!inside(state.root, target)) return undefined;
      st = await fsp.stat(at, { bigint: true });
      if (!st.isFile()) return undefined;
    }
  } catch {
    return undefined; // gone, a dangling link, or not ours to see
  }
  const entry = (type: 'file' | 'dir', size: number): ListEntry => ({ path: segments.join('/'), type, size, mtimeMs: mtimeMsOf(st), mode: modeOf(st) });
  if (st.isFile()) {
    if (st.size > MAX_SIZE || !readable(st, 4n) || (state.opts.refuseHardLinks && st.nlink > 1n)) return undefined;
    return { segments, entry: entry('file', Number(st.size)) };
  }
  if (st.isDirectory()) {
    if (!readable(st, 5n)) return undefined;
    return { segments, entry: entry('dir', 0), descend: state.opts.recursive ? path.join(dirReal, name) : undefined };
  }
  return undefined; // FIFO, socket, device
}

/** List one directory (a realpath) and, recursively, below it. */
async function* walk(state: WalkState, dirReal: string, prefix: string[]): AsyncGenerator<ListEntry> {
  const { opts } = state;
  opts.signal?.throwIfAborted();
  const opened = await openDirectory(dirReal);
  if (!opened) {
    state.skipped += 1; // vanished, became a link, or unreadable since it was listed
    return;
  }
  const items: Array<Item | undefined> = [];
  let names: Buffer[];
  try {
    names = await readNames(opened.base, state);
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      opts.signal?.throwIfAborted();
      items.push(...(await Promise.all(names.slice(i, i + STAT_BATCH).map((n) => classify(state, dirReal, opened.base, prefix, n)))));
    }
  } finally {
    await opened.handle.close().catch(() => undefined);
  }
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    items[i] = undefined;
    state.held -= 1;
    if (!item) {
      state.skipped += 1;
      continue;
    }
    if (++state.yielded > state.max) throw tooLarge(state.max);
    opts.signal?.throwIfAborted();
    yield item.entry;
    if (item.descend) yield* walk(state, item.descend, item.segments);
  }
}

/**
 * List `dir` (root-relative; '' is the root) under `root` (a realpath). Checks the directory first and
 * throws NetkitError BAD_REQUEST or FORBIDDEN for a name the jail refuses, NOT_FOUND when it does not
 * exist, FORBIDDEN NOT_A_DIRECTORY for a file (or anything else that is not a directory). Nothing is
 * held open until `entries` is iterated; stopping the iteration early (break, return) closes what it
 * opened. Iteration throws TOO_LARGE past maxEntries.
 */
export async function listDirectory(root: string, dir: string, opts: ListOptions): Promise<Listing> {
  const segments = normaliseDir(dir);
  let real: string;
  let st: BigIntStats;
  try {
    real = await fsp.realpath(path.join(root, ...segments));
    st = await fsp.stat(real, { bigint: true });
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') throw refuse('NOT_FOUND', 'no such directory');
    if (errno === 'ELOOP') throw refuse('FORBIDDEN', 'too many levels of symbolic links');
    if (errno === 'EACCES' || errno === 'EPERM') throw refuse('FORBIDDEN', 'permission denied');
    if (errno === 'ENAMETOOLONG') throw new NetkitError('BAD_REQUEST', 'name too long');
    throw err;
  }
  if (!inside(root, real)) throw refuse('FORBIDDEN', 'the name resolves outside the served directory');
  if (!st.isDirectory()) throw refuse('FORBIDDEN', NOT_A_DIRECTORY);
  if (!readable(st, 5n)) throw refuse('FORBIDDEN', 'permission denied');
  const state: WalkState = { root, opts, max: opts.maxEntries ?? MAX_LIST_ENTRIES, skipped: 0, yielded: 0, held: 0 };
  return { entries: { [Symbol.asyncIterator]: () => walk(state, real, segments) }, skipped: () => state.skipped };
}
