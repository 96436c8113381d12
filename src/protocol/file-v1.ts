// File protocol v1 (docs/protocol.md section 2): preamble, length-prefixed TLV frames, and an incremental reader.
import { NetkitError, type ErrorCode } from '../errors.js';

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
  /** The HMAC carried last in REQUEST (client proof), RESPONSE (server proof) and TRAILER. */
  AUTH_MAC: 0x10,
} as const;

/** Server HELLO flag bits. Unknown bits are ignored by readers. */
export const HelloFlag = {
  /** The server requires the shared-secret MAC in REQUEST (docs/security.md section 4.3). */
  AUTH_REQUIRED: 0x1,
} as const;

export const Status = {
  OK: 0,
  NOT_FOUND: 1,
  FORBIDDEN: 2,
  BAD_REQUEST: 3,
  BUSY: 4,
  CHANGED: 5,
  BAD_OFFSET: 6,
  UNSUPPORTED_VERSION: 7,
  INTERNAL: 8,
  /** A missing or wrong shared-secret proof (docs/security.md section 4.3). */
  UNAUTHORIZED: 9,
} as const;
export type StatusValue = (typeof Status)[keyof typeof Status];

const STATUS_NAMES = new Map<number, keyof typeof Status>(Object.entries(Status).map(([k, v]) => [v, k as keyof typeof Status]));

export function statusName(status: number): string {
  return STATUS_NAMES.get(status) ?? `status ${status}`;
}

/** The NetkitError code a client reports for a non-OK status. */
export function statusErrorCode(status: number): ErrorCode {
  switch (status) {
    case Status.NOT_FOUND:
      return 'NOT_FOUND';
    case Status.FORBIDDEN:
      return 'FORBIDDEN';
    case Status.BAD_REQUEST:
      return 'BAD_REQUEST';
    case Status.BUSY:
      return 'BUSY';
    case Status.CHANGED:
    case Status.BAD_OFFSET:
      return 'CHANGED';
    case Status.UNAUTHORIZED:
      return 'UNAUTHORIZED';
    case Status.UNSUPPORTED_VERSION:
      return 'PROTOCOL';
    default:
      return 'FAILED';
  }
}

function protocolError(message: string): NetkitError {
  return new NetkitError('PROTOCOL', message);
}

// ---------------------------------------------------------------------------------------------
// Preamble
// ---------------------------------------------------------------------------------------------

export function encodePreamble(version = VERSION): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([version])]);
}

/** The version in a 5-byte preamble; throws PROTOCOL when the magic is wrong. */
export function decodePreamble(bytes: Buffer): number {
  if (bytes.length !== PREAMBLE_LENGTH || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw protocolError('not a netkit file protocol preamble');
  }
  return bytes[MAGIC.length]!;
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

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function readU64(v: Buffer, what: string): number {
  if (v.length !== 8) throw protocolError(`${what} must be 8 bytes, got ${v.length}`);
  const n = v.readBigUInt64BE(0);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw protocolError(`${what} ${n} is too large`);
  return Number(n);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function readText(v: Buffer, what: string): string {
  try {
    return utf8.decode(v);
  } catch {
    throw protocolError(`${what} is not valid UTF-8`);
  }
}

function required(fields: Map<number, DecodedField>, tag: number, what: string): Buffer {
  const f = fields.get(tag);
  if (!f) throw protocolError(`${what} is missing`);
  return f.value;
}

function expectType(frame: Frame, type: number, what: string): Map<number, DecodedField> {
  if (frame.type !== type) throw protocolError(`expected a ${what} frame, got frame type 0x${frame.type.toString(16)}`);
  return decodeFields(frame.payload);
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

export interface Hello {
  nonce: Buffer;
  flags: number;
}

export function encodeHello(h: Hello, extra: readonly Field[] = []): Buffer {
  return encodeFrame(FrameType.HELLO, [[Tag.NONCE, h.nonce], [Tag.FLAGS, u32(h.flags)], ...extra]);
}

export function decodeHello(frame: Frame): Hello {
  const f = expectType(frame, FrameType.HELLO, 'HELLO');
  const nonce = required(f, Tag.NONCE, 'the HELLO nonce');
  if (nonce.length !== NONCE_LENGTH) throw protocolError(`the HELLO nonce must be ${NONCE_LENGTH} bytes, got ${nonce.length}`);
  const flagBytes = f.get(Tag.FLAGS)?.value;
  if (flagBytes && flagBytes.length !== 4) throw protocolError('HELLO flags must be 4 bytes');
  return { nonce, flags: flagBytes ? flagBytes.readUInt32BE(0) : 0 };
}

export interface Request {
  name: string;
  offset: number;
  /** Empty for a fresh download; the validator from an earlier RESPONSE when resuming. */
  validator: Buffer;
}

export function encodeRequest(r: Request, extra: readonly Field[] = []): Buffer {
  const name = Buffer.from(r.name, 'utf8');
  if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new NetkitError('USAGE', `a file name must be 1 to ${MAX_NAME_BYTES} bytes long`);
  if (r.validator.length > MAX_VALIDATOR_BYTES) throw new NetkitError('INTERNAL', 'validator too long');
  return encodeFrame(FrameType.REQUEST, [[Tag.NAME, name], [Tag.OFFSET, u64(r.offset)], [Tag.VALIDATOR, r.validator], ...extra]);
}

export function decodeRequest(frame: Frame): Request {
  const f = expectType(frame, FrameType.REQUEST, 'REQUEST');
  const nameBytes = required(f, Tag.NAME, 'the requested name');
  if (nameBytes.length === 0 || nameBytes.length > MAX_NAME_BYTES) throw protocolError(`the requested name must be 1 to ${MAX_NAME_BYTES} bytes`);
  const offsetBytes = f.get(Tag.OFFSET)?.value;
  const validator = f.get(Tag.VALIDATOR)?.value ?? Buffer.alloc(0);
  if (validator.length > MAX_VALIDATOR_BYTES) throw protocolError(`the validator must be at most ${MAX_VALIDATOR_BYTES} bytes`);
  return {
    name: readText(nameBytes, 'the requested name'),
    offset: offsetBytes ? readU64(offsetBytes, 'the offset') : 0,
    validator,
  };
}

export interface Response {
  status: number;
  /** Size of the whole file (0 unless OK, CHANGED or BAD_OFFSET). */
  size: number;
  /** Where the body starts: the request's offset, echoed. */
  offset: number;
  validator: Buffer;
  message: string;
  /** With UNSUPPORTED_VERSION: the highest version the server speaks. */
  version?: number;
}

export function encodeResponse(r: Response, extra: readonly Field[] = []): Buffer {
  const fields: Field[] = [
    [Tag.STATUS, Buffer.from([r.status])],
    [Tag.SIZE, u64(r.size)],
    [Tag.OFFSET, u64(r.offset)],
    [Tag.VALIDATOR, r.validator],
  ];
  if (r.message) {
    let msg = Buffer.from(r.message, 'utf8');
    if (msg.length > MAX_MESSAGE_BYTES) msg = Buffer.from(r.message.slice(0, MAX_MESSAGE_BYTES / 4), 'utf8');
    fields.push([Tag.MESSAGE, msg]);
  }
  if (r.version !== undefined) fields.push([Tag.VERSION, Buffer.from([r.version])]);
  return encodeFrame(FrameType.RESPONSE, [...fields, ...extra]);
}

export function decodeResponse(frame: Frame): Response {
  const f = expectType(frame, FrameType.RESPONSE, 'RESPONSE');
  const status = required(f, Tag.STATUS, 'the response status');
  if (status.length !== 1) throw protocolError('the response status must be 1 byte');
  const sizeBytes = f.get(Tag.SIZE)?.value;
  const offsetBytes = f.get(Tag.OFFSET)?.value;
  const validator = f.get(Tag.VALIDATOR)?.value ?? Buffer.alloc(0);
  if (validator.length > MAX_VALIDATOR_BYTES) throw protocolError(`the validator must be at most ${MAX_VALIDATOR_BYTES} bytes`);
  const message = f.get(Tag.MESSAGE)?.value;
  const version = f.get(Tag.VERSION)?.value;
  const r: Response = {
    status: status[0]!,
    size: sizeBytes ? readU64(sizeBytes, 'the size') : 0,
    offset: offsetBytes ? readU64(offsetBytes, 'the offset') : 0,
    validator,
    message: message ? readText(message, 'the message') : '',
  };
  if (version && version.length === 1) r.version = version[0]!;
  if (r.status === Status.OK) {
    if (!sizeBytes || !offsetBytes) throw protocolError('an OK response must carry the size and the offset');
    if (r.offset > r.size) throw protocolError(`the response offset ${r.offset} is past the size ${r.size}`);
  }
  return r;
}

export interface Trailer {
  sha256: Buffer;
}

export function encodeTrailer(t: Trailer, extra: readonly Field[] = []): Buffer {
  return encodeFrame(FrameType.TRAILER, [[Tag.SHA256, t.sha256], ...extra]);
}

export function decodeTrailer(frame: Frame): Trailer {
  const f = expectType(frame, FrameType.TRAILER, 'TRAILER');
  const sha = required(f, Tag.SHA256, 'the trailer hash');
  if (sha.length !== SHA256_LENGTH) throw protocolError(`the trailer hash must be ${SHA256_LENGTH} bytes, got ${sha.length}`);
  return { sha256: sha };
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
