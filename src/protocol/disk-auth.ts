// Disk protocol v1 authentication fields (docs/security.md section 4.2): seal and parse AUTH_NONCE, AUTH_TIME and AUTH_MAC in datagrams. Buffers only.
import type { KeyObject } from 'node:crypto';
import { DISK_NONCE_LENGTH, MAC_LENGTH, encodeTimestamp, isZeroPadding, sealDiskAnswer, sealDiskRequest, verifyDiskAnswer, type MacVerdict } from './auth.js';
import { HEADER_SIZE, MAX_DATAGRAM, MsgType, Scope, Tag } from './disk-v1.js';

/** Tags in the 0x10-0x1F range that disk protocol v1 reserves for authentication. */
export const AuthTag = { MAC: 0x10, NONCE: 0x11, TIME: 0x12 } as const;

/** Bytes the three auth fields add to a request: nonce TLV (19) + time TLV (11) + MAC TLV (35). */
export const REQUEST_AUTH_OVERHEAD = 3 + DISK_NONCE_LENGTH + 3 + 8 + 3 + MAC_LENGTH;
/** Bytes the MAC field adds to a reply. */
export const REPLY_MAC_OVERHEAD = 3 + MAC_LENGTH;

/**
 * A sealed QUERY: header, SCOPE, AUTH_NONCE, AUTH_TIME, AUTH_MAC (last), then zero padding up to `size`.
 * `nonce` must be 16 fresh random bytes (the caller draws them, so this stays pure).
 */
export function encodeAuthQuery(key: KeyObject, id: number, scope: Scope, nonce: Uint8Array, nowMs: number, size: number): Buffer {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`bad request id ${id}`);
  if (nonce.length !== DISK_NONCE_LENGTH) throw new RangeError(`a disk nonce is ${DISK_NONCE_LENGTH} bytes`);
  const natural = HEADER_SIZE + 4 + REQUEST_AUTH_OVERHEAD;
  if (size > MAX_DATAGRAM) throw new RangeError(`request size ${size} exceeds ${MAX_DATAGRAM}`);
  const buf = Buffer.alloc(Math.max(natural, size));
  buf[0] = 0x4e;
  buf[1] = 0x4b;
  buf[2] = 1;
  buf[3] = MsgType.QUERY;
  buf.writeUInt32BE(id >>> 0, 4);
  let o = HEADER_SIZE;
  buf[o] = Tag.SCOPE;
  buf.writeUInt16BE(1, o + 1);
  buf[o + 3] = scope;
  o += 4;
  buf[o] = AuthTag.NONCE;
  buf.writeUInt16BE(DISK_NONCE_LENGTH, o + 1);
  buf.set(nonce, o + 3);
  o += 3 + DISK_NONCE_LENGTH;
  buf[o] = AuthTag.TIME;
  buf.writeUInt16BE(8, o + 1);
  encodeTimestamp(Math.trunc(nowMs)).copy(buf, o + 3);
  o += 3 + 8;
  buf[o] = AuthTag.MAC;
  buf.writeUInt16BE(MAC_LENGTH, o + 1);
  return sealDiskRequest(key, buf, o + 3);
}

/** The auth fields of a received datagram, located but not yet verified. */
export interface AuthFields {
  /** AUTH_NONCE value (present only in requests). */
  nonce?: Buffer;
  /** AUTH_TIME value as a u64 (present only in requests). */
  timestampMs?: bigint;
  /** Index of the first byte of the AUTH_MAC value. */
  macOffset: number;
}

/** Why a datagram's auth fields are unusable; the server drops it silently and logs the reason. */
export type AuthFieldProblem = 'malformed' | 'unauthenticated' | 'mac-not-last';

/**
 * Walk the TLVs after the header and locate the auth fields. AUTH_MAC must be the last field: every
 * byte after its value must be zero (padding), so nothing unauthenticated can follow it. With
 * `request`, AUTH_NONCE (16 bytes) and AUTH_TIME (8 bytes) are required too. A duplicated auth field
 * or one of the wrong length is malformed. Never throws.
 */
export function locateAuthFields(buf: Buffer, request: boolean): AuthFields | AuthFieldProblem {
  if (buf.length < HEADER_SIZE) return 'malformed';
  let nonce: Buffer | undefined;
  let time: Buffer | undefined;
  let off = HEADER_SIZE;
  while (off < buf.length) {
    const tag = buf[off]!;
    if (tag === Tag.PAD) return isZeroPadding(buf.subarray(off)) ? 'unauthenticated' : 'malformed';
    if (off + 3 > buf.length) return 'malformed';
    const len = buf.readUInt16BE(off + 1);
    const start = off + 3;
    if (start + len > buf.length) return 'malformed';
    if (tag === AuthTag.MAC) {
      if (len !== MAC_LENGTH) return 'malformed';
      if (!isZeroPadding(buf.subarray(start + MAC_LENGTH))) return 'mac-not-last';
      if (request && (nonce === undefined || time === undefined)) return 'unauthenticated';
      return request ? { nonce: nonce!, timestampMs: time!.readBigUInt64BE(0), macOffset: start } : { macOffset: start };
    }
    if (tag === AuthTag.NONCE) {
      if (nonce !== undefined || len !== DISK_NONCE_LENGTH) return 'malformed';
      nonce = buf.subarray(start, start + len);
    } else if (tag === AuthTag.TIME) {
      if (time !== undefined || len !== 8) return 'malformed';
      time = buf.subarray(start, start + len);
    }
    off = start + len;
  }
  return 'unauthenticated';
}

/**
 * Append AUTH_MAC to an unsealed reply (ANSWER or ERROR datagram, or its pieces) and seal it over the
 * request's nonce. The result is REPLY_MAC_OVERHEAD bytes longer than the pieces together.
 */
export function sealReply(key: KeyObject, requestNonce: Uint8Array, pieces: readonly Buffer[]): Buffer {
  const len = pieces.reduce((n, p) => n + p.length, 0);
  const out = Buffer.allocUnsafe(len + REPLY_MAC_OVERHEAD);
  let o = 0;
  for (const p of pieces) {
    p.copy(out, o);
    o += p.length;
  }
  out[o] = AuthTag.MAC;
  out.writeUInt16BE(MAC_LENGTH, o + 1);
  out.fill(0, o + 3);
  return sealDiskAnswer(key, requestNonce, out, o + 3);
}

/**
 * Write the AUTH_MAC field at `reply[at, at + 35)` (the reply was allocated with room for it) and seal
 * it over the request's nonce, in place: the server's one-buffer-per-reply path.
 */
export function writeReplyMac(key: KeyObject, requestNonce: Uint8Array, reply: Buffer, at: number): Buffer {
  if (at + REPLY_MAC_OVERHEAD !== reply.length) throw new RangeError('the MAC field must end the reply');
  reply[at] = AuthTag.MAC;
  reply.writeUInt16BE(MAC_LENGTH, at + 1);
  reply.fill(0, at + 3);
  return sealDiskAnswer(key, requestNonce, reply, at + 3);
}

/** Check a reply's AUTH_MAC against the nonces of the requests we sent (one per attempt). */
export function verifyReply(key: KeyObject, nonces: readonly Uint8Array[], reply: Buffer): MacVerdict | 'unauthenticated' {
  const at = locateAuthFields(reply, false);
  if (at === 'unauthenticated') return 'unauthenticated';
  if (typeof at === 'string') return 'malformed';
  let verdict: MacVerdict = 'bad-mac';
  for (const n of nonces) {
    verdict = verifyDiskAnswer(key, n, reply, at.macOffset);
    if (verdict === 'ok') return 'ok';
    if (verdict !== 'bad-mac') return verdict;
  }
  return verdict;
}
