// Disk protocol v1: pure encode/decode of the UDP datagrams (docs/protocol.md section 1). Buffers only, no I/O.
import { NetkitError } from '../errors.js';
import { MAX_STRING, decodeFsValue, decodeText, encodeFsValue, utf8Capped, type FsFigures } from './disk-fs.js';

export { FS_ERROR_NAMES, FS_FLAG_SERVED, FsErrorCode, FsTag, MAX_STRING, utf8Capped, type FsFigures } from './disk-fs.js';

export const MAGIC0 = 0x4e; // 'N'
export const MAGIC1 = 0x4b; // 'K'
export const VERSION = 1;
/** The disk service's UDP port, the seed's. */
export const DEFAULT_PORT = 9991;
export const HEADER_SIZE = 8;
/** Requests are padded to this size so that a normal answer (always <= 1081 bytes) fits. */
export const DEFAULT_REQUEST_SIZE = 1200;
/** The largest UDP payload over IPv4; nothing bigger can be sent. */
export const MAX_DATAGRAM = 65507;

export const MsgType = { QUERY: 1, ANSWER: 2, ERROR: 3 } as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export const Tag = {
  PAD: 0x00,
  SCOPE: 0x01,
  HOST: 0x02,
  TIME: 0x03,
  FS: 0x04,
  CODE: 0x05,
  MESSAGE: 0x06,
  NEED: 0x07,
  OMITTED: 0x08,
  // 0x10-0x1f are reserved for authentication (nonce, timestamp, HMAC); see docs/protocol.md.
  AUTH_FIRST: 0x10,
  AUTH_LAST: 0x1f,
} as const;

export const Scope = { PATH: 0, ALL: 1 } as const;
export type Scope = (typeof Scope)[keyof typeof Scope];

export const WireError = {
  BAD_REQUEST: 1,
  UNSUPPORTED_VERSION: 2,
  TOO_LARGE: 3,
  RATE_LIMITED: 4,
  INTERNAL: 5,
  // 6 is UNAUTHORIZED, which is never sent: an unauthenticated request gets no reply (docs/security.md).
} as const;
export type WireError = (typeof WireError)[keyof typeof WireError];

export const WIRE_ERROR_NAMES: Record<number, string> = {
  1: 'BAD_REQUEST',
  2: 'UNSUPPORTED_VERSION',
  3: 'TOO_LARGE',
  4: 'RATE_LIMITED',
  5: 'INTERNAL',
  6: 'UNAUTHORIZED',
};

export interface Answer {
  host: string;
  /** Milliseconds since the epoch when the figures were read. */
  time: number;
  filesystems: FsFigures[];
  /** Filesystems the server left out because the answer would exceed 65,507 bytes. */
  omitted: number;
}

export interface ErrorReply {
  code: number;
  message: string;
  /** For TOO_LARGE: the request size that would fit the answer. */
  need?: number;
}

export type Reply = { type: 2; id: number; answer: Answer } | { type: 3; id: number; error: ErrorReply };

function bad(message: string): NetkitError {
  return new NetkitError('BAD_REQUEST', message);
}

function protocol(message: string): NetkitError {
  return new NetkitError('PROTOCOL', message);
}

function writeHeader(buf: Buffer, type: MsgType, id: number): void {
  buf[0] = MAGIC0;
  buf[1] = MAGIC1;
  buf[2] = VERSION;
  buf[3] = type;
  buf.writeUInt32BE(id >>> 0, 4);
}

function tlv(tag: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError('TLV value longer than 65535 bytes');
  const b = Buffer.allocUnsafe(3 + value.length);
  b[0] = tag;
  b.writeUInt16BE(value.length, 1);
  value.copy(b, 3);
  return b;
}

function u64(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(v);
  return b;
}

// ---------------------------------------------------------------------------------------------
// QUERY

/** A query datagram padded with zero bytes to `size` (at least its natural 12 bytes). */
export function encodeQuery(id: number, scope: Scope, size = DEFAULT_REQUEST_SIZE): Buffer {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`bad request id ${id}`);
  const natural = HEADER_SIZE + 4;
  if (size > MAX_DATAGRAM) throw new RangeError(`request size ${size} exceeds ${MAX_DATAGRAM}`);
  // From the shared pool rather than an allocation of its own per request (a fleet sends thousands).
  const buf = Buffer.allocUnsafe(Math.max(natural, size)).fill(0);
  writeHeader(buf, MsgType.QUERY, id);
  buf[8] = Tag.SCOPE;
  buf.writeUInt16BE(1, 9);
  buf[11] = scope;
  return buf;
}

/** What the server learns from the first bytes of a datagram, without allocating. */
export const Classify = {
  /** Not "NK": not ours (perhaps a classic client). */
  FOREIGN: 0,
  /** "NK" but shorter than a header: nothing to echo, ignore. */
  RUNT: 1,
  /** "NK" with a version other than 1. */
  WRONG_VERSION: 2,
  /** v1 but not a QUERY (an ANSWER or ERROR sent to a server): never answered, so servers cannot ping-pong. */
  NOT_QUERY: 3,
  QUERY: 4,
} as const;
export type Classify = (typeof Classify)[keyof typeof Classify];

export function classify(buf: Buffer): Classify {
  if (buf.length < 2 || buf[0] !== MAGIC0 || buf[1] !== MAGIC1) return Classify.FOREIGN;
  if (buf.length < HEADER_SIZE) return Classify.RUNT;
  if (buf[2] !== VERSION) return Classify.WRONG_VERSION;
  return buf[3] === MsgType.QUERY ? Classify.QUERY : Classify.NOT_QUERY;
}

const ZEROS = Buffer.alloc(MAX_DATAGRAM);

/** True when buf[from..] is all zero bytes (a native memcmp, so long padding stays cheap). */
function zeroTail(buf: Buffer, from: number): boolean {
  return from >= buf.length || ZEROS.compare(buf, from, buf.length, 0, buf.length - from) === 0;
}

/**
 * The scope of a v1 QUERY whose header classify() accepted. Throws NetkitError BAD_REQUEST for a
 * malformed field list. Unknown tags (including the reserved authentication range) are skipped.
 * It walks the fields itself rather than through walkFields(): this runs for every query the server
 * answers, and a visitor closure plus a subarray per field would be allocations on that path.
 */
export function decodeQueryScope(buf: Buffer): Scope {
  let scope: Scope | undefined;
  let off = HEADER_SIZE;
  while (off < buf.length) {
    const tag = buf[off]!;
    if (tag === Tag.PAD) {
      if (!zeroTail(buf, off)) throw bad('padding contains non-zero bytes');
      break;
    }
    if (off + 3 > buf.length) throw bad(`field 0x${tag.toString(16)} truncated`);
    const len = buf.readUInt16BE(off + 1);
    const start = off + 3;
    if (start + len > buf.length) throw bad(`field 0x${tag.toString(16)} longer than the datagram`);
    if (tag === Tag.SCOPE) {
      if (scope !== undefined) throw bad('duplicate SCOPE field');
      if (len !== 1) throw bad('SCOPE must be 1 byte');
      const v = buf[start]!;
      if (v !== Scope.PATH && v !== Scope.ALL) throw bad(`unknown scope ${v}`);
      scope = v as Scope;
    }
    off = start + len;
  }
  // A query without SCOPE asks for the served path, the common case.
  return scope ?? Scope.PATH;
}

/** The request id of a datagram at least HEADER_SIZE long. */
export function readId(buf: Buffer): number {
  return buf.readUInt32BE(4);
}

// ---------------------------------------------------------------------------------------------
// ANSWER

function encodeFs(fs: FsFigures): Buffer {
  return tlv(Tag.FS, encodeFsValue(fs));
}

/**
 * The bytes of an ANSWER after the 8-byte header. The server keeps this and sends header + body,
 * so the request path only writes the 8 header bytes. Filesystems that would push the datagram
 * past MAX_DATAGRAM are left out and counted in OMITTED.
 */
export function encodeAnswerBody(answer: Omit<Answer, 'omitted'>): Buffer {
  const head = [tlv(Tag.HOST, utf8Capped(answer.host)), tlv(Tag.TIME, u64(BigInt(Math.max(0, Math.floor(answer.time)))))];
  const omittedFieldSize = 5;
  let size = HEADER_SIZE + head.reduce((n, b) => n + b.length, 0);
  const parts = [...head];
  let omitted = 0;
  for (const fs of answer.filesystems) {
    const f = encodeFs(fs);
    if (omitted === 0 && size + f.length + omittedFieldSize <= MAX_DATAGRAM) {
      parts.push(f);
      size += f.length;
    } else {
      omitted += 1;
    }
  }
  if (omitted > 0) {
    const n = Buffer.allocUnsafe(2);
    n.writeUInt16BE(Math.min(omitted, 0xffff));
    parts.push(tlv(Tag.OMITTED, n));
  }
  return Buffer.concat(parts);
}

/** A whole ANSWER datagram (tests and simple callers; the server uses the body directly). */
export function encodeAnswer(id: number, answer: Omit<Answer, 'omitted'>): Buffer {
  const body = encodeAnswerBody(answer);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  writeHeader(buf, MsgType.ANSWER, id);
  body.copy(buf, HEADER_SIZE);
  return buf;
}

/** Write an 8-byte reply header into `into` for request `req` (whose header is already validated). */
export function writeReplyHeader(into: Buffer, type: MsgType, req: Buffer): void {
  into[0] = MAGIC0;
  into[1] = MAGIC1;
  into[2] = VERSION;
  into[3] = type;
  into[4] = req[4]!;
  into[5] = req[5]!;
  into[6] = req[6]!;
  into[7] = req[7]!;
}

// ---------------------------------------------------------------------------------------------
// ERROR

/** The size of the smallest ERROR datagram for `code`: CODE, plus NEED for TOO_LARGE. */
export function minimalErrorSize(code: WireError): number {
  return HEADER_SIZE + 4 + (code === WireError.TOO_LARGE ? 5 : 0);
}

/**
 * An ERROR datagram echoing `id`, no larger than `limit` bytes: the message is shortened or left
 * out to fit. Returns undefined when even CODE (+ NEED) does not fit, so the caller stays silent.
 */
export function encodeError(id: number, error: { code: WireError; message?: string; need?: number }, limit = MAX_DATAGRAM): Buffer | undefined {
  const base = minimalErrorSize(error.code);
  if (base > limit) return undefined;
  let msg: Buffer = Buffer.alloc(0);
  if (error.message && limit - base >= 3 + 1) msg = utf8Capped(error.message, Math.min(MAX_STRING, limit - base - 3));
  const size = base + (msg.length > 0 ? 3 + msg.length : 0);
  const buf = Buffer.allocUnsafe(size);
  writeHeader(buf, MsgType.ERROR, id);
  let o = HEADER_SIZE;
  buf[o] = Tag.CODE;
  buf.writeUInt16BE(1, o + 1);
  buf[o + 3] = error.code;
  o += 4;
  if (error.code === WireError.TOO_LARGE) {
    buf[o] = Tag.NEED;
    buf.writeUInt16BE(2, o + 1);
    buf.writeUInt16BE(Math.min(error.need ?? MAX_DATAGRAM, 0xffff), o + 3);
    o += 5;
  }
  if (msg.length > 0) {
    buf[o] = Tag.MESSAGE;
    buf.writeUInt16BE(msg.length, o + 1);
    msg.copy(buf, o + 3);
  }
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Client side: decoding replies

function text(buf: Buffer, what: string): string {
  return decodeText(buf, what);
}

function decodeFs(v: Buffer): FsFigures {
  return decodeFsValue(v);
}

/** Walk the TLV fields after the header, calling `visit` for each; stops at padding. */
function walkFields(buf: Buffer, visit: (tag: number, value: Buffer) => void): void {
  let off = HEADER_SIZE;
  while (off < buf.length) {
    const tag = buf[off]!;
    if (tag === Tag.PAD) {
      if (!zeroTail(buf, off)) throw protocol('padding contains non-zero bytes');
      return;
    }
    if (off + 3 > buf.length) throw protocol(`field 0x${tag.toString(16)} truncated`);
    const len = buf.readUInt16BE(off + 1);
    if (off + 3 + len > buf.length) throw protocol(`field 0x${tag.toString(16)} longer than the datagram`);
    visit(tag, buf.subarray(off + 3, off + 3 + len));
    off += 3 + len;
  }
}

/**
 * Decode an ANSWER or ERROR datagram. Throws NetkitError PROTOCOL when it is not a well-formed v1
 * reply (the client then ignores it and keeps waiting for the real one).
 */
export function decodeReply(buf: Buffer): Reply {
  if (buf.length < HEADER_SIZE || buf[0] !== MAGIC0 || buf[1] !== MAGIC1) throw protocol('not a netkit datagram');
  if (buf[2] !== VERSION) throw protocol(`reply has version ${buf[2]}, expected ${VERSION}`);
  const id = readId(buf);
  const type = buf[3];
  const seen = new Set<number>();
  const once = (tag: number, name: string): void => {
    if (seen.has(tag)) throw protocol(`duplicate ${name} field`);
    seen.add(tag);
  };
  if (type === MsgType.ANSWER) {
    let host: string | undefined;
    let time: number | undefined;
    let omitted = 0;
    const filesystems: FsFigures[] = [];
    walkFields(buf, (tag, v) => {
      switch (tag) {
        case Tag.HOST:
          once(tag, 'HOST');
          host = text(v, 'HOST');
          break;
        case Tag.TIME:
          once(tag, 'TIME');
          if (v.length !== 8) throw protocol('TIME must be 8 bytes');
          time = Number(v.readBigUInt64BE(0));
          break;
        case Tag.FS:
          filesystems.push(decodeFs(v));
          break;
        case Tag.OMITTED:
          once(tag, 'OMITTED');
          if (v.length !== 2) throw protocol('OMITTED must be 2 bytes');
          omitted = v.readUInt16BE(0);
          break;
        default:
          break; // unknown: skip for forward compatibility
      }
    });
    if (host === undefined) throw protocol('answer without HOST');
    if (time === undefined) throw protocol('answer without TIME');
    return { type: MsgType.ANSWER, id, answer: { host, time, filesystems, omitted } };
  }
  if (type === MsgType.ERROR) {
    let code: number | undefined;
    let message = '';
    let need: number | undefined;
    walkFields(buf, (tag, v) => {
      switch (tag) {
        case Tag.CODE:
          once(tag, 'CODE');
          if (v.length !== 1) throw protocol('CODE must be 1 byte');
          code = v[0]!;
          break;
        case Tag.MESSAGE:
          once(tag, 'MESSAGE');
          message = text(v, 'MESSAGE');
          break;
        case Tag.NEED:
          once(tag, 'NEED');
          if (v.length !== 2) throw protocol('NEED must be 2 bytes');
          need = v.readUInt16BE(0);
          break;
        default:
          break;
      }
    });
    if (code === undefined) throw protocol('error without CODE');
    return { type: MsgType.ERROR, id, error: need === undefined ? { code, message } : { code, message, need } };
  }
  throw protocol(`unexpected reply type ${type}`);
}
