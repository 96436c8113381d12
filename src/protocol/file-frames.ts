// File protocol v1 framing (docs/protocol.md 2.2): constants, frame types and tags, length-prefixed TLV frames, field readers, and an incremental reader.
import { NetkitError } from '../errors.js';

/** The client's first four bytes. 0x89 can never start a UTF-8 file name, so a server tells v1 from classic by it. */
export const MAGIC = Buffer.from([0x89, 0x4e, 0x4b, 0x46]); // 0x89 'N' 'K' 'F'
export const VERSION = 1;
export const PREAMBLE_LENGTH = MAGIC.length + 1;
/** Hard maximum of a frame's payload; a header longer than this is an attack or a bug. */
export const MAX_FRAME_PAYLOAD = 4096;
export const FRAME_HEADER_LENGTH = 3;
export const NONCE_LENGTH = 32;
export const SHA256_LENGTH = 32;
export const MAX_NAME_BYTES = 1024;
export const MAX_VALIDATOR_BYTES = 64;
export const MAX_MESSAGE_BYTES = 1024;

export const FrameType = {
  HELLO: 0x01,
  REQUEST: 0x02,
  RESPONSE: 0x03,
  TRAILER: 0x04,
  /** C -> S: list a directory (docs/protocol.md 2.10). */
  LIST: 0x05,
  /** S -> C: one entry of a listing. */
  ENTRY: 0x06,
  /** S -> C: the end of a listing, with its count and hash. */
  END: 0x07,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** TLV tags. One namespace for every frame type; 0x10-0x1f belong to authentication (docs/security.md section 4). */
export const Tag = {
  NONCE: 0x01,
  FLAGS: 0x02,
  NAME: 0x03,
  OFFSET: 0x04,
  VALIDATOR: 0x05,
  STATUS: 0x06,
  SIZE: 0x07,
  MESSAGE: 0x08,
  SHA256: 0x09,
  VERSION: 0x0a,
  /** ENTRY: u8, an EntryKind. */
  KIND: 0x0b,
  /** RESPONSE (OK), ENTRY: u64 milliseconds since the Unix epoch. */
  MTIME: 0x0c,
  /** RESPONSE (OK), ENTRY: u32 permission bits (st_mode & 0o7777). */
  MODE: 0x0d,
  /** END: u64 number of ENTRY frames sent. */
  COUNT: 0x0e,
  /** END: u64 entries left out by the jail. */
  SKIPPED: 0x0f,
  /** The HMAC carried last in REQUEST (client proof), RESPONSE (server proof) and TRAILER. */
  AUTH_MAC: 0x10,
  /** ENTRY of KIND LEFT_OUT: u8, why the server left the entry out (a LeftOutReason). */
  REASON: 0x20,
} as const;

/** HELLO flag bits. Unknown bits are ignored by readers. */
export const HelloFlag = {
  /** The server requires the shared-secret MAC in REQUEST (docs/security.md section 4.3). */
  AUTH_REQUIRED: 0x1,
  /**
   * Client: "I may send several requests on this connection". Server: "I accept several". A session
   * exists only when both HELLOs set it (docs/protocol.md 2.11).
   */
  SESSION: 0x2,
} as const;

export function protocolError(message: string): NetkitError {
  return new NetkitError('PROTOCOL', message);
}

// ---------------------------------------------------------------------------------------------
// Frames and TLV fields
// ---------------------------------------------------------------------------------------------

export interface Frame {
  type: number;
  payload: Buffer;
}

export type Field = readonly [tag: number, value: Uint8Array];

/** Encode one frame: type u8, payload length u16, then each field as tag u8, length u16, value. */
export function encodeFrame(type: number, fields: readonly Field[]): Buffer {
  let length = 0;
  for (const [, value] of fields) length += 3 + value.length;
  if (length > MAX_FRAME_PAYLOAD) throw new NetkitError('INTERNAL', `frame payload of ${length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + length);
  out[0] = type;
  out.writeUInt16BE(length, 1);
  let at = FRAME_HEADER_LENGTH;
  for (const [tag, value] of fields) {
    out[at] = tag;
    out.writeUInt16BE(value.length, at + 1);
    out.set(value, at + 3);
    at += 3 + value.length;
  }
  return out;
}

export interface DecodedField {
  value: Buffer;
  /** Where the value starts inside the payload (what a MAC over "the payload before the MAC value" needs). */
  offset: number;
}

/** Split a payload into its fields. Unknown tags are kept (callers ignore them); a repeated tag or a truncated field is malformed. */
export function decodeFields(payload: Buffer): Map<number, DecodedField> {
  const fields = new Map<number, DecodedField>();
  let at = 0;
  while (at < payload.length) {
    if (payload.length - at < 3) throw protocolError('truncated field header in frame');
    const tag = payload[at]!;
    const len = payload.readUInt16BE(at + 1);
    if (at + 3 + len > payload.length) throw protocolError(`field 0x${tag.toString(16)} runs past the end of its frame`);
    if (fields.has(tag)) throw protocolError(`field 0x${tag.toString(16)} appears twice`);
    fields.set(tag, { value: payload.subarray(at + 3, at + 3 + len), offset: at + 3 });
    at += 3 + len;
  }
  return fields;
}

export function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function readU64(v: Buffer, what: string): number {
  if (v.length !== 8) throw protocolError(`${what} must be 8 bytes, got ${v.length}`);
  const n = v.readBigUInt64BE(0);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw protocolError(`${what} ${n} is too large`);
  return Number(n);
}

export function readU32(v: Buffer, what: string): number {
  if (v.length !== 4) throw protocolError(`${what} must be 4 bytes, got ${v.length}`);
  return v.readUInt32BE(0);
}

export function readU8(v: Buffer, what: string): number {
  if (v.length !== 1) throw protocolError(`${what} must be 1 byte, got ${v.length}`);
  return v[0]!;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function readText(v: Buffer, what: string): string {
  try {
    return utf8.decode(v);
  } catch {
    throw protocolError(`${what} is not valid UTF-8`);
  }
}

export function required(fields: Map<number, DecodedField>, tag: number, what: string): Buffer {
  const f = fields.get(tag);
  if (!f) throw protocolError(`${what} is missing`);
  return f.value;
}

export function expectType(frame: Frame, type: number, what: string): Map<number, DecodedField> {
  if (frame.type !== type) throw protocolError(`expected a ${what} frame, got frame type 0x${frame.type.toString(16)}`);
  return decodeFields(frame.payload);
}

// ---------------------------------------------------------------------------------------------
// Incremental reader
// ---------------------------------------------------------------------------------------------

/**
 * Accumulates bytes however TCP splits them and hands out a raw prefix (the preamble) or whole frames.
 * Never holds more than one frame's worth plus what the caller pushed: the caller stops pushing once
 * it has the frame it waits for and takes the rest back with takeRest().
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxPayload = MAX_FRAME_PAYLOAD) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  get buffered(): number {
    return this.buf.length;
  }

  /** Everything buffered, without consuming it. */
  peekAll(): Buffer {
    return this.buf;
  }

  /** The first buffered byte without consuming it. */
  peek(): number | undefined {
    return this.buf[0];
  }

  /** The first n bytes if that many are buffered (consuming them), else undefined. */
  take(n: number): Buffer | undefined {
    if (this.buf.length < n) return undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** The next whole frame, or undefined when more bytes are needed. Throws TOO_LARGE past the hard limit. */
  next(): Frame | undefined {
    if (this.buf.length < FRAME_HEADER_LENGTH) return undefined;
    const type = this.buf[0]!;
    const length = this.buf.readUInt16BE(1);
    if (length > this.maxPayload) {
      throw new NetkitError('TOO_LARGE', `frame of ${length} bytes exceeds the ${this.maxPayload}-byte limit`);
    }
    if (this.buf.length < FRAME_HEADER_LENGTH + length) return undefined;
    // Copy so a retained payload never pins a large socket chunk.
    const payload = Buffer.from(this.buf.subarray(FRAME_HEADER_LENGTH, FRAME_HEADER_LENGTH + length));
    this.buf = this.buf.subarray(FRAME_HEADER_LENGTH + length);
    return { type, payload };
  }

  /** Everything buffered and not yet consumed (e.g. body bytes that arrived with a header). */
  takeRest(): Buffer {
    const out = this.buf;
    this.buf = Buffer.alloc(0);
    return out;
  }
}
