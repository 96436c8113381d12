// Listing a served directory under the jail's rules: depth-first, sorted by name bytes, one directory in memory per level (read by a reader thread), links out, loops, FIFOs, devices and unrequestable names skipped and counted.
import { promises as fsp, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { NetkitError, errnoOf } from '../../../errors.js';
import { MAX_NAME_BYTES } from '../../../protocol/file-frames.js';
import { LeftOutReason } from '../../../protocol/file-list.js';
import { STAGING_NAME, inside, isRequestableName, normaliseDir } from './jail.js';
import { sharedReaders, type ListOutcome, type ListedEntry, type ReaderPool } from './reader-pool.js';

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
  /** The reader threads to read directories with (a file server's own); default: a pool shared by the process. */
  readers?: ReaderPool;
  /**
   * Called, in listing order, for each entry left out that a NAME can carry (valid UTF-8, at most 1,024
   * bytes), with a LeftOutReason; each call counts against maxEntries like an entry.
   */
  onLeftOut?: (path: string, reason: number) => void;
}

export interface Listing {
  /** The entries in the order of docs/protocol.md 2.10: depth-first, a directory before its contents, each directory sorted by name bytes. */
  entries: AsyncIterable<ListEntry>;
  /** Entries left out so far (the whole count once `entries` is exhausted). */
  skipped(): number;
  /** The directory listed: its modification time (ms) and permission bits. */
  dir: { mtimeMs: number; mode: number };
}

export const MAX_LIST_ENTRIES = 1_000_000;
/** The message of the FORBIDDEN refusal for listing a regular file (a v1 session gets NOT_DIRECTORY for it). */
export const NOT_A_DIRECTORY = 'not a directory';
/** Subdirectories read ahead of the walk. */
const LIST_AHEAD = 8;

/** The JSON shape of an entry for `file list --json` and the HTTP listing. */
export function listEntryJson(e: ListEntry): { path: string; type: 'file' | 'dir'; size: number; mtime: string; mode: string } {
  return { path: e.path, type: e.type, size: e.size, mtime: new Date(e.mtimeMs).toISOString(), mode: e.mode.toString(8).padStart(4, '0') };
}

/** Milliseconds since the epoch from a bigint stat, as RESPONSE and ENTRY carry them (the same for both). */
export function mtimeMsOf(st: Pick<BigIntStats, 'mtimeNs'>): number {
  return st.mtimeNs <= 0n ? 0 : Number(st.mtimeNs / 1_000_000n);
}

export function modeOf(st: Pick<BigIntStats, 'mode'>): number {
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
export function readableBy(who: Identity, st: { mode: number; uid: number; gid: number }, bits: number): boolean {
  if (who.uid === 0) return true;
  const shift = st.uid === who.uid ? 6 : who.groups.has(st.gid) ? 3 : 0;
  return ((st.mode >> shift) & bits) === bits;
}

const readable = (st: { mode: number; uid: number; gid: number }, bits: number): boolean => readableBy(SELF, st, bits);

function refuse(code: 'NOT_FOUND' | 'FORBIDDEN', message: string): NetkitError {
  return new NetkitError(code, message);
}

interface Item {
  /** Root-relative segments. */
  segments: string[];
  entry: ListEntry;
  /** Where to descend (a realpath), for a directory in a recursive listing. */
  descend?: string;
}

/** An entry the jail leaves out, with its path and why. */
interface LeftOut {
  path: string;
  reason: number;
}

interface WalkState {
  root: string;
  opts: ListOptions;
  readers: ReaderPool;
  max: number;
  skipped: number;
  yielded: number;
  /** Entries read and not yet yielded or skipped, over every level being walked. */
  held: number;
}

function tooLarge(max: number): NetkitError {
  return new NetkitError('TOO_LARGE', `listing too large: more than ${max} entries`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const STAGING_BYTES = Buffer.from(STAGING_NAME);

/** What one directory entry becomes: an item, or what the jail leaves out (undefined when no NAME could carry it). */
function classify(state: WalkState, dirReal: string, prefix: string[], raw: ListedEntry): Item | LeftOut | undefined {
  let name: string;
  try {
    name = utf8.decode(raw.name);
  } catch {
    return undefined; // not UTF-8: no REQUEST could name it
  }
  const segments = [...prefix, name];
  const rel = segments.join('/');
  if (Buffer.byteLength(rel) > MAX_NAME_BYTES) return undefined;
  const left = (reason: number): LeftOut => ({ path: rel, reason });
  // A name a REQUEST would refuse (control characters, bidi overrides...) is not sent to anyone, not even as left out.
  if (!isRequestableName(segments)) return undefined;
  const entry = (type: 'file' | 'dir', size: number): ListEntry => ({ path: rel, type, size, mtimeMs: raw.mtimeMs, mode: raw.mode });
  if (raw.t === 'file') {
    if (raw.size < 0) return left(LeftOutReason.TOO_LARGE);
    if (!readable(raw, 4)) return left(LeftOutReason.UNREADABLE_FILE);
    if (state.opts.refuseHardLinks && raw.nlink > 1) return left(LeftOutReason.HARD_LINKS);
    return { segments, entry: entry('file', raw.size) };
  }
  if (raw.t === 'dir') {
    if (!readable(raw, 5)) return left(LeftOutReason.UNREADABLE_DIRECTORY);
    return { segments, entry: entry('dir', 0), descend: state.opts.recursive ? `${dirReal === '/' ? '' : dirReal}/${name}` : undefined };
  }
  if (raw.t === 'link') return left(LeftOutReason.LINK);
  return left(LeftOutReason.SPECIAL); // FIFO, socket, device
}

/** Count an entry left out, and name it to whoever asked. */
function leaveOut(state: WalkState, left: LeftOut | undefined): void {
  state.skipped += 1;
  if (!left || !state.opts.onLeftOut || left.path === '') return;
  if (++state.yielded > state.max) throw tooLarge(state.max);
  state.opts.onLeftOut(left.path, left.reason);
}

/**
 * List one directory (a realpath) and, recursively, below it. A reader thread opens it without
 * following a link, checks that it is still that realpath, and reads and lstats its entries through
 * its own descriptor, so a directory swapped for a link cannot lead the walk outside.
 */
async function* walk(state: WalkState, dirReal: string, prefix: string[], read?: Promise<ListOutcome>): AsyncGenerator<ListEntry> {
  const { opts } = state;
  opts.signal?.throwIfAborted();
  const r = await (read ?? state.readers.list(state.root, dirReal, state.max - state.held));
  opts.signal?.throwIfAborted();
  if (r.k === 'gone') {
    // Vanished, became a link, or unreadable since it was listed.
    const rel = prefix.join('/');
    leaveOut(state, Buffer.byteLength(rel) <= MAX_NAME_BYTES ? { path: rel, reason: LeftOutReason.GONE } : undefined);
    return;
  }
  if (r.k === 'too-many') throw tooLarge(state.max);
  if (r.k === 'error') throw new NetkitError('INTERNAL', `cannot list ${prefix.join('/') || 'the served directory'}: ${r.message}`);
  const entries: Array<ListedEntry | undefined> = r.entries;
  state.held += entries.length;
  state.skipped += r.skipped;
  // The next few subdirectories are read while this one's entries go out (results not used are dropped).
  const subdirs = opts.recursive ? entries.flatMap((e, i) => (e!.t === 'dir' ? [i] : [])) : [];
  const reads = new Map<number, Promise<ListOutcome>>();
  let asked = 0;
  const readAhead = (from: number): void => {
    for (; asked < subdirs.length && asked < from + LIST_AHEAD; asked++) {
      const i = subdirs[asked]!;
      let name: string;
      try {
        name = utf8.decode(entries[i]!.name);
      } catch {
        continue;
      }
      if (name === STAGING_NAME) continue;
      reads.set(i, state.readers.list(state.root, `${dirReal === '/' ? '' : dirReal}/${name}`, state.max - state.held));
    }
  };
  readAhead(0);
  for (let i = 0, sub = 0; i < entries.length; i++) {
    const raw = entries[i]!;
    entries[i] = undefined;
    state.held -= 1;
    if (raw.t === 'dir' && opts.recursive) readAhead(++sub);
    if (STAGING_BYTES.equals(raw.name)) continue; // a fetch's staging directory: left out, not even counted
    const item = classify(state, dirReal, prefix, raw);
    if (!item || !('entry' in item)) {
      leaveOut(state, item);
      continue;
    }
    if (++state.yielded > state.max) throw tooLarge(state.max);
    yield item.entry;
    if (item.descend) {
      const ahead = reads.get(i);
      reads.delete(i);
      yield* walk(state, item.descend, item.segments, ahead);
    }
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
  if (!readable({ mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid) }, 5)) throw refuse('FORBIDDEN', 'permission denied');
  const state: WalkState = { root, opts, readers: opts.readers ?? sharedReaders(), max: opts.maxEntries ?? MAX_LIST_ENTRIES, skipped: 0, yielded: 0, held: 0 };
  return { entries: { [Symbol.asyncIterator]: () => walk(state, real, segments) }, skipped: () => state.skipped, dir: { mtimeMs: mtimeMsOf(st), mode: modeOf(st) } };
}
