// File protocol v1 listings (docs/protocol.md 2.10): the LIST request, the ENTRY frames that answer it and the END that closes it with a count and a hash.
import { NetkitError } from '../errors.js';
import {
  FrameType,
  MAX_NAME_BYTES,
  SHA256_LENGTH,
  Tag,
  encodeFrame,
  expectType,
  protocolError,
  readText,
  readU32,
  readU64,
  readU8,
  required,
  u32,
  u64,
  type Field,
  type Frame,
} from './file-frames.js';
import { MAX_MODE, checkMode, readMode } from './file-v1.js';

/** LIST FLAGS bits. Unknown bits are ignored by servers. */
export const ListFlag = {
  /** Every entry below the directory, not only those directly in it. */
  RECURSIVE: 0x1,
  /** Name what is left out: an ENTRY of KIND LEFT_OUT, with a REASON, for each entry the server can name (docs/protocol.md 2.10). */
  LEFT_OUT: 0x2,
} as const;

/** ENTRY KIND values. A reader skips an entry of a kind it does not know (it still counts in COUNT and the hash). */
export const EntryKind = {
  FILE: 1,
  DIRECTORY: 2,
  /** Not served, sent only to a LIST with the LEFT_OUT flag: NAME and REASON say what and why (SIZE, MTIME, MODE 0). */
  LEFT_OUT: 3,
} as const;

/** REASON values of a LEFT_OUT entry. A reader shows an unknown value as a number. */
export const LeftOutReason = {
  /** A regular file the server may not read (its permission bits). */
  UNREADABLE_FILE: 1,
  /** A directory the server may not read or search: nothing below it is listed. */
  UNREADABLE_DIRECTORY: 2,
  /** A FIFO, socket or device. */
  SPECIAL: 3,
  /** A file larger than 2^53 - 1 bytes. */
  TOO_LARGE: 4,
  /** A file with more than one hard link, on a server that refuses them. */
  HARD_LINKS: 5,
  /** A directory that vanished, or turned into a link, while the server walked it (its own ENTRY was already sent). */
  GONE: 6,
  /** A symbolic link leading outside the served directory, to a directory (it could loop), to anything but a regular file, or nowhere. */
  LINK: 7,
} as const;

/** What a REASON means, for people. */
export function leftOutText(reason: number | undefined): string {
  switch (reason) {
    case LeftOutReason.UNREADABLE_FILE:
      return 'the server may not read it';
    case LeftOutReason.UNREADABLE_DIRECTORY:
      return 'the server may not read this directory: nothing in it was listed';
    case LeftOutReason.SPECIAL:
      return 'not a regular file or a directory';
    case LeftOutReason.TOO_LARGE:
      return 'larger than 2^53 - 1 bytes';
    case LeftOutReason.HARD_LINKS:
      return 'a file with several hard links, which the server refuses';
    case LeftOutReason.GONE:
      return 'the directory vanished or changed while it was listed';
    case LeftOutReason.LINK:
      return 'a symbolic link leading outside the served directory, to a directory, or nowhere';
    default:
      return `left out (reason ${reason ?? 'not given'})`;
  }
}

export interface ListRequest {
  /** Root-relative directory; '' is the served directory itself. */
  name: string;
  recursive: boolean;
  /** Ask for LEFT_OUT entries (the LEFT_OUT flag). */
  leftOut?: boolean;
}

export function encodeList(l: ListRequest, extra: readonly Field[] = []): Buffer {
  const name = Buffer.from(l.name, 'utf8');
  if (name.length > MAX_NAME_BYTES) throw new NetkitError('USAGE', `a directory name must be at most ${MAX_NAME_BYTES} bytes long`);
  const flags = (l.recursive ? ListFlag.RECURSIVE : 0) | (l.leftOut ? ListFlag.LEFT_OUT : 0);
  return encodeFrame(FrameType.LIST, [[Tag.NAME, name], [Tag.FLAGS, u32(flags)], ...extra]);
}

export function decodeList(frame: Frame): ListRequest {
  const f = expectType(frame, FrameType.LIST, 'LIST');
  const nameBytes = f.get(Tag.NAME)?.value;
  if (nameBytes && nameBytes.length > MAX_NAME_BYTES) throw protocolError(`the listed name must be at most ${MAX_NAME_BYTES} bytes`);
  const flagBytes = f.get(Tag.FLAGS)?.value;
  const flags = flagBytes ? readU32(flagBytes, 'LIST flags') : 0;
  return { name: nameBytes ? readText(nameBytes, 'the listed name') : '', recursive: (flags & ListFlag.RECURSIVE) !== 0, ...((flags & ListFlag.LEFT_OUT) !== 0 ? { leftOut: true } : {}) };
}

export interface Entry {
  /** Path relative to the served directory, '/'-separated: what a REQUEST names. */
  name: string;
  /** An EntryKind value (other values may come from newer servers). */
  kind: number;
  /** Bytes of a file; 0 for a directory. */
  size: number;
  /** Modification time, milliseconds since the Unix epoch (0 if before it). */
  mtimeMs: number;
  /** Permission bits, st_mode & 0o7777. */
  mode: number;
  /** KIND LEFT_OUT: why (a LeftOutReason; other values may come from newer servers). */
  reason?: number;
}

export function encodeEntry(e: Entry): Buffer {
  const name = Buffer.from(e.name, 'utf8');
  if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new NetkitError('INTERNAL', `an entry name must be 1 to ${MAX_NAME_BYTES} bytes long`);
  const fields: Field[] = [
    [Tag.NAME, name],
    [Tag.KIND, Buffer.from([e.kind])],
    [Tag.SIZE, u64(e.size)],
    [Tag.MTIME, u64(e.mtimeMs)],
    [Tag.MODE, u32(checkMode(e.mode))],
  ];
  if (e.reason !== undefined) fields.push([Tag.REASON, Buffer.from([e.reason])]);
  return encodeFrame(FrameType.ENTRY, fields);
}

/** The ENTRY naming an entry the server left out (sent only to a LIST with the LEFT_OUT flag). */
export function encodeLeftOut(name: string, reason: number): Buffer {
  return encodeEntry({ name, kind: EntryKind.LEFT_OUT, size: 0, mtimeMs: 0, mode: 0, reason });
}

/** A stamp per tag for the payload being scanned, so decodeEntry finds a repeated tag without a Map per frame. */
const seen = new Uint32Array(256);
let stamp = 0;

/**
 * Decode an ENTRY. A listing holds one per file, so a well-formed entry is read straight from the
 * payload (no Map, no view per field, no BigInt); anything unusual (an unknown tag, a repeat, a wrong
 * length, a value out of range) goes through checkedEntry, whose result or error is the reference.
 */
export function decodeEntry(frame: Frame): Entry {
  const p = frame.payload;
  if (frame.type !== FrameType.ENTRY) return checkedEntry(frame);
  if (++stamp === 0xffffffff) {
    seen.fill(0);
    stamp = 1;
  }
  let name = -1;
  let nameLen = 0;
  let kind = -1;
  let size = -1;
  let mtime = -1;
  let mode = -1;
  for (let at = 0; at < p.length; ) {
    if (p.length - at < 3) return checkedEntry(frame);
    const tag = p[at]!;
    const len = (p[at + 1]! << 8) | p[at + 2]!;
    const v = at + 3;
    if (v + len > p.length || seen[tag] === stamp) return checkedEntry(frame);
    seen[tag] = stamp;
    if (tag === Tag.NAME) {
      name = v;
      nameLen = len;
    } else if (tag === Tag.KIND && len === 1) kind = v;
    else if (tag === Tag.SIZE && len === 8) size = v;
    else if (tag === Tag.MTIME && len === 8) mtime = v;
    else if (tag === Tag.MODE && len === 4) mode = v;
    else return checkedEntry(frame);
    at = v + len;
  }
  // Above 2^53 - 1 (the high word past 21 bits), or a mode with bits above 0o7777: the checked path says so.
  if (name < 0 || nameLen === 0 || nameLen > MAX_NAME_BYTES || kind < 0 || size < 0 || mtime < 0 || mode < 0) return checkedEntry(frame);
  if (p.readUInt32BE(size) > 0x1fffff || p.readUInt32BE(mtime) > 0x1fffff || p.readUInt32BE(mode) > MAX_MODE) return checkedEntry(frame);
  return {
    name: readText(p.subarray(name, name + nameLen), 'the entry name'),
    kind: p[kind]!,
    size: p.readUInt32BE(size) * 0x100000000 + p.readUInt32BE(size + 4),
    mtimeMs: p.readUInt32BE(mtime) * 0x100000000 + p.readUInt32BE(mtime + 4),
    mode: p.readUInt32BE(mode),
  };
}

/** ENTRY decoded field by field, with every check and its message. */
export function checkedEntry(frame: Frame): Entry {
  const f = expectType(frame, FrameType.ENTRY, 'ENTRY');
  const name = required(f, Tag.NAME, 'the entry name');
  if (name.length === 0 || name.length > MAX_NAME_BYTES) throw protocolError(`an entry name must be 1 to ${MAX_NAME_BYTES} bytes`);
  const reason = f.get(Tag.REASON)?.value;
  return {
    name: readText(name, 'the entry name'),
    kind: readU8(required(f, Tag.KIND, 'the entry kind'), 'the entry kind'),
    size: readU64(required(f, Tag.SIZE, 'the entry size'), 'the entry size'),
    mtimeMs: readU64(required(f, Tag.MTIME, 'the entry modification time'), 'the entry modification time'),
    mode: readMode(required(f, Tag.MODE, 'the entry mode')),
    ...(reason ? { reason: readU8(reason, 'the reason an entry was left out') } : {}),
  };
}

export interface ListEnd {
  /** Number of ENTRY frames sent. */
  count: number;
  /** Entries the server left out (links leaving the directory, links to directories, FIFOs, devices, unreadable, unrequestable names). */
  skipped: number;
  /** SHA-256 of every ENTRY frame of the listing, headers included, in the order sent. */
  sha256: Buffer;
}

export function encodeEnd(e: ListEnd, extra: readonly Field[] = []): Buffer {
  if (e.sha256.length !== SHA256_LENGTH) throw new NetkitError('INTERNAL', 'the listing hash must be 32 bytes');
  return encodeFrame(FrameType.END, [[Tag.COUNT, u64(e.count)], [Tag.SKIPPED, u64(e.skipped)], [Tag.SHA256, e.sha256], ...extra]);
}

export function decodeEnd(frame: Frame): ListEnd {
  const f = expectType(frame, FrameType.END, 'END');
  const sha = required(f, Tag.SHA256, 'the listing hash');
  if (sha.length !== SHA256_LENGTH) throw protocolError(`the listing hash must be ${SHA256_LENGTH} bytes, got ${sha.length}`);
  return {
    count: readU64(required(f, Tag.COUNT, 'the entry count'), 'the entry count'),
    skipped: readU64(required(f, Tag.SKIPPED, 'the skipped count'), 'the skipped count'),
    sha256: sha,
  };
}
