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
import { checkMode, readMode } from './file-v1.js';

/** LIST FLAGS bits. Unknown bits are ignored by servers. */
export const ListFlag = {
  /** Every entry below the directory, not only those directly in it. */
  RECURSIVE: 0x1,
} as const;

/** ENTRY KIND values. A reader skips an entry of a kind it does not know (it still counts in COUNT and the hash). */
export const EntryKind = {
  FILE: 1,
  DIRECTORY: 2,
} as const;

export interface ListRequest {
  /** Root-relative directory; '' is the served directory itself. */
  name: string;
  recursive: boolean;
}

export function encodeList(l: ListRequest, extra: readonly Field[] = []): Buffer {
  const name = Buffer.from(l.name, 'utf8');
  if (name.length > MAX_NAME_BYTES) throw new NetkitError('USAGE', `a directory name must be at most ${MAX_NAME_BYTES} bytes long`);
  return encodeFrame(FrameType.LIST, [[Tag.NAME, name], [Tag.FLAGS, u32(l.recursive ? ListFlag.RECURSIVE : 0)], ...extra]);
}

export function decodeList(frame: Frame): ListRequest {
  const f = expectType(frame, FrameType.LIST, 'LIST');
  const nameBytes = f.get(Tag.NAME)?.value;
  if (nameBytes && nameBytes.length > MAX_NAME_BYTES) throw protocolError(`the listed name must be at most ${MAX_NAME_BYTES} bytes`);
  const flagBytes = f.get(Tag.FLAGS)?.value;
  const flags = flagBytes ? readU32(flagBytes, 'LIST flags') : 0;
  return { name: nameBytes ? readText(nameBytes, 'the listed name') : '', recursive: (flags & ListFlag.RECURSIVE) !== 0 };
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
}

export function encodeEntry(e: Entry): Buffer {
  const name = Buffer.from(e.name, 'utf8');
  if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new NetkitError('INTERNAL', `an entry name must be 1 to ${MAX_NAME_BYTES} bytes long`);
  return encodeFrame(FrameType.ENTRY, [
    [Tag.NAME, name],
    [Tag.KIND, Buffer.from([e.kind])],
    [Tag.SIZE, u64(e.size)],
    [Tag.MTIME, u64(e.mtimeMs)],
    [Tag.MODE, u32(checkMode(e.mode))],
  ]);
}

export function decodeEntry(frame: Frame): Entry {
  const f = expectType(frame, FrameType.ENTRY, 'ENTRY');
  const name = required(f, Tag.NAME, 'the entry name');
  if (name.length === 0 || name.length > MAX_NAME_BYTES) throw protocolError(`an entry name must be 1 to ${MAX_NAME_BYTES} bytes`);
  return {
    name: readText(name, 'the entry name'),
    kind: readU8(required(f, Tag.KIND, 'the entry kind'), 'the entry kind'),
    size: readU64(required(f, Tag.SIZE, 'the entry size'), 'the entry size'),
    mtimeMs: readU64(required(f, Tag.MTIME, 'the entry modification time'), 'the entry modification time'),
    mode: readMode(required(f, Tag.MODE, 'the entry mode')),
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
