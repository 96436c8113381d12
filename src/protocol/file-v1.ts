// File protocol v1 messages (docs/protocol.md section 2): statuses, the preamble, HELLO, REQUEST, RESPONSE and TRAILER. Framing lives in file-frames.ts, listings in file-list.ts.
import { NetkitError, type ErrorCode } from '../errors.js';
import {
  FrameType,
  MAGIC,
  MAX_MESSAGE_BYTES,
  MAX_NAME_BYTES,
  MAX_VALIDATOR_BYTES,
  NONCE_LENGTH,
  PREAMBLE_LENGTH,
  SHA256_LENGTH,
  Tag,
  VERSION,
  encodeFrame,
  expectType,
  protocolError,
  readText,
  readU32,
  readU64,
  required,
  u32,
  u64,
  type Field,
  type Frame,
} from './file-frames.js';

export * from './file-frames.js';

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
  /** A REQUEST in a session named a directory (sent only to a client that set SESSION). */
  IS_DIRECTORY: 10,
  /** A LIST named a regular file. */
  NOT_DIRECTORY: 11,
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
    case Status.IS_DIRECTORY:
    case Status.NOT_DIRECTORY:
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

/** The largest MODE value: permission, setuid, setgid and sticky bits. */
export const MAX_MODE = 0o7777;

/** A MODE to send: throws (a bug) when it carries file-type bits. */
export function checkMode(mode: number): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > MAX_MODE) throw new NetkitError('INTERNAL', `mode ${mode} is not a permission value`);
  return mode;
}

/** A received MODE: 4 bytes, at most 0o7777. */
export function readMode(v: Buffer): number {
  const mode = readU32(v, 'the mode');
  if (mode > MAX_MODE) throw protocolError(`the mode 0x${mode.toString(16)} has bits above 0o7777`);
  return mode;
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
  /** With OK, when the server sends it: the file's modification time, ms since the Unix epoch. */
  mtimeMs?: number;
  /** With OK, when the server sends it: the file's permission bits (st_mode & 0o7777). */
  mode?: number;
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
  if (r.mtimeMs !== undefined) fields.push([Tag.MTIME, u64(r.mtimeMs)]);
  if (r.mode !== undefined) fields.push([Tag.MODE, u32(checkMode(r.mode))]);
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
  const mtime = f.get(Tag.MTIME)?.value;
  if (mtime) r.mtimeMs = readU64(mtime, 'the modification time');
  const mode = f.get(Tag.MODE)?.value;
  if (mode) r.mode = readMode(mode);
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
