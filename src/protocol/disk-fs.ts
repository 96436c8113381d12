// Disk protocol v1: the FS field's value (one filesystem's figures), with its optional sub-fields (inodes, read-only, error). Buffers only.
import { NetkitError } from '../errors.js';

/** Strings inside an FS field are capped so that a one-filesystem answer always fits 1200 bytes. */
export const MAX_STRING = 255;
/** An FS error's message is short: the code says what happened, the text only adds a detail. */
export const MAX_FS_ERROR_MESSAGE = 32;

/** Flag bits of an FS field. */
export const FS_FLAG_SERVED = 0x01;

/** Tags of the sub-fields after `device` inside an FS value (TLV: tag u8, length u16, value). */
export const FsTag = { INODES: 0x01, READONLY: 0x02, ERROR: 0x03 } as const;

/** Codes of an FS ERROR sub-field. */
export const FsErrorCode = {
  /** statfs did not return in time (a hung network or FUSE mount); the figures are the last known, or 0. */
  TIMEOUT: 1,
  /** statfs failed (EIO, EACCES, ...); the figures are the last known, or 0. */
  IO: 2,
} as const;
export type FsErrorCode = (typeof FsErrorCode)[keyof typeof FsErrorCode];
export const FS_ERROR_NAMES: Record<number, string> = { 1: 'timeout', 2: 'io' };

/** One filesystem's figures, exact bytes. */
export interface FsFigures {
  mount: string;
  fstype: string;
  device: string;
  total: bigint;
  used: bigint;
  available: bigint;
  free: bigint;
  /** True for the filesystem that holds the server's --path. */
  served: boolean;
  /** Inodes in all and free (statfs f_files, f_ffree); absent when the server did not send them. */
  files?: bigint;
  filesFree?: bigint;
  /** Mounted read-only; absent when the server did not say. */
  readonly?: boolean;
  /** The figures could not be read this time; they are the last known ones (or 0). */
  error?: { code: number; message: string };
}

/** UTF-8 bytes of text, cut at a character boundary so they are at most `max` bytes. */
export function utf8Capped(text: string, max = MAX_STRING): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end -= 1; // do not split a multi-byte character
  return b.subarray(0, end);
}

function protocol(message: string): NetkitError {
  return new NetkitError('PROTOCOL', message);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeText(buf: Buffer, what: string): string {
  try {
    return utf8.decode(buf);
  } catch {
    throw protocol(`${what} is not valid UTF-8`);
  }
}

/** The FS value: flags, four u64 figures, three short strings, then the sub-fields. */
export function encodeFsValue(fs: FsFigures): Buffer {
  const mount = utf8Capped(fs.mount);
  const fstype = utf8Capped(fs.fstype);
  const device = utf8Capped(fs.device);
  const errText = fs.error ? utf8Capped(fs.error.message, MAX_FS_ERROR_MESSAGE) : undefined;
  const extra = (fs.files !== undefined && fs.filesFree !== undefined ? 3 + 16 : 0) + (fs.readonly !== undefined ? 3 + 1 : 0) + (errText ? 3 + 1 + errText.length : 0);
  const v = Buffer.allocUnsafe(1 + 32 + 3 + mount.length + fstype.length + device.length + extra);
  let o = 0;
  v[o++] = fs.served ? FS_FLAG_SERVED : 0;
  const u64 = (n: bigint): void => {
    if (n < 0n || n > 0xffffffffffffffffn) throw new RangeError(`figure ${n} outside u64`);
    v.writeBigUInt64BE(n, o);
    o += 8;
  };
  for (const n of [fs.total, fs.used, fs.available, fs.free]) u64(n);
  for (const s of [mount, fstype, device]) {
    v[o++] = s.length;
    s.copy(v, o);
    o += s.length;
  }
  const head = (tag: number, len: number): void => {
    v[o] = tag;
    v.writeUInt16BE(len, o + 1);
    o += 3;
  };
  if (fs.files !== undefined && fs.filesFree !== undefined) {
    head(FsTag.INODES, 16);
    u64(fs.files);
    u64(fs.filesFree);
  }
  if (fs.readonly !== undefined) {
    head(FsTag.READONLY, 1);
    v[o++] = fs.readonly ? 1 : 0;
  }
  if (fs.error && errText) {
    head(FsTag.ERROR, 1 + errText.length);
    v[o++] = fs.error.code;
    errText.copy(v, o);
    o += errText.length;
  }
  return v;
}

/** Decode an FS value. Unknown sub-fields are skipped; bytes that do not form a sub-field are ignored, as before they existed. */
export function decodeFsValue(v: Buffer): FsFigures {
  if (v.length < 1 + 32 + 3) throw protocol('FS field too short');
  const flags = v[0]!;
  let o = 1;
  const n: bigint[] = [];
  for (let i = 0; i < 4; i += 1) {
    n.push(v.readBigUInt64BE(o));
    o += 8;
  }
  const s: string[] = [];
  for (const what of ['mount', 'fstype', 'device']) {
    if (o >= v.length) throw protocol(`FS field: ${what} missing`);
    const len = v[o]!;
    o += 1;
    if (o + len > v.length) throw protocol(`FS field: ${what} truncated`);
    s.push(decodeText(v.subarray(o, o + len), `FS ${what}`));
    o += len;
  }
  const fs: FsFigures = { total: n[0]!, used: n[1]!, available: n[2]!, free: n[3]!, mount: s[0]!, fstype: s[1]!, device: s[2]!, served: (flags & FS_FLAG_SERVED) !== 0 };
  const seen = new Set<number>();
  while (o + 3 <= v.length) {
    const tag = v[o]!;
    const len = v.readUInt16BE(o + 1);
    const start = o + 3;
    if (start + len > v.length) throw protocol(`FS sub-field 0x${tag.toString(16)} longer than the FS field`);
    const val = v.subarray(start, start + len);
    if ((tag === FsTag.INODES || tag === FsTag.READONLY || tag === FsTag.ERROR) && seen.has(tag)) throw protocol(`duplicate FS sub-field 0x${tag.toString(16)}`);
    seen.add(tag);
    if (tag === FsTag.INODES) {
      if (len !== 16) throw protocol('FS INODES must be 16 bytes');
      fs.files = val.readBigUInt64BE(0);
      fs.filesFree = val.readBigUInt64BE(8);
    } else if (tag === FsTag.READONLY) {
      if (len !== 1) throw protocol('FS READONLY must be 1 byte');
      fs.readonly = val[0] !== 0;
    } else if (tag === FsTag.ERROR) {
      if (len < 1) throw protocol('FS ERROR must have a code');
      fs.error = { code: val[0]!, message: decodeText(val.subarray(1), 'FS ERROR message') };
    }
    o = start + len;
  }
  return fs;
}
