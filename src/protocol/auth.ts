// Shared-secret authentication primitives: HKDF key derivation, domain-separated HMAC-SHA-256 MACs for disk datagrams and the file handshake, constant-time checks.
import { createHmac, createSecretKey, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { NetkitError } from '../errors.js';

/*
 * Everything here is pure: Buffers in, Buffers or verdicts out, no clock, no I/O.
 * docs/protocol.md section 5 is the normative description of these bytes, with test vectors that
 * tests/unit/protocol-vectors.test.ts checks against this module; keep the two in step.
 */

/** Length of every MAC netkit puts on the wire (HMAC-SHA-256, untruncated). */
export const MAC_LENGTH = 32;
/** Length of the random nonce in each disk (UDP) request. */
export const DISK_NONCE_LENGTH = 16;
/** Length of each HELLO nonce in the file (TCP) handshake. */
export const FILE_NONCE_LENGTH = 32;
/** Default freshness window for disk request timestamps: |now - ts| must not exceed it. */
export const DEFAULT_WINDOW_MS = 30_000;

/**
 * Domain-separation labels. Each MAC input starts with one of these followed by a 0x00 byte, so a MAC
 * computed for one purpose can never verify for another (no label is a prefix of another, and the
 * NUL terminator makes that hold even for labels added later).
 */
export const DOMAIN = {
  diskRequest: 'netkit disk v1 request',
  diskAnswer: 'netkit disk v1 answer',
  fileClient: 'netkit file v1 client',
  fileServer: 'netkit file v1 server',
  fileTrailer: 'netkit file v1 trailer',
} as const;

/** HKDF parameters: the raw token is input keying material only; disk and file get unrelated keys. */
export const HKDF_SALT = 'netkit v1 hkdf salt';
export const HKDF_INFO = { disk: 'netkit disk v1 key', file: 'netkit file v1 key' } as const;

export type KeyPurpose = keyof typeof HKDF_INFO;

/** HKDF info of the `/metrics` bearer token (a value for Prometheus' credentials file, not a key). */
export const METRICS_TOKEN_INFO = 'netkit metrics token';

/**
 * The bearer token `disk serve --metrics` requires when it has a secret:
 * base64url(HKDF-SHA-256(ikm = UTF-8 bytes of the token, salt = HKDF_SALT, info = METRICS_TOKEN_INFO, L = 32)),
 * 43 characters without padding. It travels in clear over HTTP, so it is not the secret: knowing it
 * reveals nothing of the secret or of the disk and file keys, and it lets one only read the figures.
 */
export function deriveMetricsToken(token: string | Uint8Array): string {
  const ikm = typeof token === 'string' ? Buffer.from(token, 'utf8') : Buffer.from(token);
  if (ikm.length === 0) throw new NetkitError('INTERNAL', 'cannot derive a token from an empty secret');
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.from(HKDF_SALT, 'utf8'), Buffer.from(METRICS_TOKEN_INFO, 'utf8'), 32)).toString('base64url');
}

/**
 * Derive the 32-byte MAC key for one service from the shared token:
 * HKDF-SHA-256(ikm = UTF-8 bytes of the token, salt = HKDF_SALT, info = HKDF_INFO[purpose], L = 32).
 * The result is a KeyObject so it does not show up in logs or util.inspect output by accident.
 */
export function deriveKey(token: string | Uint8Array, purpose: KeyPurpose): KeyObject {
  const ikm = typeof token === 'string' ? Buffer.from(token, 'utf8') : Buffer.from(token);
  if (ikm.length === 0) throw new NetkitError('INTERNAL', 'cannot derive a key from an empty secret');
  const okm = hkdfSync('sha256', ikm, Buffer.from(HKDF_SALT, 'utf8'), Buffer.from(HKDF_INFO[purpose], 'utf8'), 32);
  return createSecretKey(Buffer.from(okm));
}

/** HMAC-SHA-256(key, label || 0x00 || parts[0] || parts[1] || …). */
export function labelledMac(key: KeyObject, label: string, parts: readonly Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  h.update(label, 'utf8');
  h.update(ZERO_BYTE);
  for (const p of parts) h.update(p);
  return h.digest();
}
const ZERO_BYTE = Buffer.alloc(1);

/**
 * Compare two byte strings in time that depends only on their lengths (which are public: 32 for a MAC).
 * Unequal lengths return false without comparing contents.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** True when every byte of `bytes` is zero (the padding that may follow a MAC in a datagram). */
export function isZeroPadding(bytes: Uint8Array): boolean {
  // Padding is public, so a native memcmp against zeros is fine (and cheap for a 64 KiB datagram).
  for (let off = 0; off < bytes.length; off += ZEROS.length) {
    const n = Math.min(ZEROS.length, bytes.length - off);
    if (ZEROS.compare(bytes, off, off + n, 0, n) !== 0) return false;
  }
  return true;
}
const ZEROS = Buffer.alloc(4096);

// ---------------------------------------------------------------------------------------------
// Disk protocol (UDP): a MAC over the datagram up to the MAC value; only zero bytes may follow it.
// ---------------------------------------------------------------------------------------------

/** Why a sealed datagram did not verify. Callers drop it silently on the server side. */
export type MacVerdict = 'ok' | 'malformed' | 'bad-padding' | 'bad-mac';

function checkMacOffset(datagram: Uint8Array, macOffset: number): boolean {
  return Number.isSafeInteger(macOffset) && macOffset >= 0 && macOffset + MAC_LENGTH <= datagram.length;
}

function checkNonce(nonce: Uint8Array, length: number, what: string): void {
  if (nonce.length !== length) {
    throw new NetkitError('PROTOCOL', `${what} must be ${length} bytes, got ${nonce.length}`);
  }
}

/**
 * The MAC of a disk request: HMAC(k_disk, "netkit disk v1 request" || 0x00 || datagram[0, macOffset)).
 * `macOffset` is the index of the first byte of the MAC value, so the covered bytes include the
 * header, every TLV before the MAC, and the MAC TLV's own tag and length.
 */
export function diskRequestMac(key: KeyObject, datagram: Uint8Array, macOffset: number): Buffer {
  if (!Number.isSafeInteger(macOffset) || macOffset < 0 || macOffset > datagram.length) {
    throw new NetkitError('INTERNAL', `MAC offset ${macOffset} is outside the datagram`);
  }
  return labelledMac(key, DOMAIN.diskRequest, [datagram.subarray(0, macOffset)]);
}

/**
 * Write the request MAC into `datagram[macOffset, macOffset + 32)` in place and return the datagram.
 * The caller has already reserved that space (the MAC TLV's value) and zero-filled any padding after it.
 */
export function sealDiskRequest(key: KeyObject, datagram: Buffer, macOffset: number): Buffer {
  if (!checkMacOffset(datagram, macOffset)) throw new NetkitError('INTERNAL', 'no room for the MAC in the datagram');
  if (!isZeroPadding(datagram.subarray(macOffset + MAC_LENGTH))) {
    throw new NetkitError('INTERNAL', 'bytes after the MAC must be zero padding');
  }
  diskRequestMac(key, datagram, macOffset).copy(datagram, macOffset);
  return datagram;
}

/**
 * Verify a received disk request: the MAC value at `macOffset` matches, and every byte after it is zero.
 * Does not check the timestamp or the nonce: see checkTimestamp and services/replay-cache.ts.
 */
export function verifyDiskRequest(key: KeyObject, datagram: Uint8Array, macOffset: number): MacVerdict {
  if (!checkMacOffset(datagram, macOffset)) return 'malformed';
  if (!isZeroPadding(datagram.subarray(macOffset + MAC_LENGTH))) return 'bad-padding';
  const expected = diskRequestMac(key, datagram, macOffset);
  return constantTimeEqual(expected, datagram.subarray(macOffset, macOffset + MAC_LENGTH)) ? 'ok' : 'bad-mac';
}

/**
 * The MAC of a disk answer, bound to the request it answers:
 * HMAC(k_disk, "netkit disk v1 answer" || 0x00 || request nonce (16) || reply[0, macOffset)).
 */
export function diskAnswerMac(key: KeyObject, requestNonce: Uint8Array, reply: Uint8Array, macOffset: number): Buffer {
  checkNonce(requestNonce, DISK_NONCE_LENGTH, 'the request nonce');
  if (!Number.isSafeInteger(macOffset) || macOffset < 0 || macOffset > reply.length) {
    throw new NetkitError('INTERNAL', `MAC offset ${macOffset} is outside the reply`);
  }
  return labelledMac(key, DOMAIN.diskAnswer, [requestNonce, reply.subarray(0, macOffset)]);
}

/** Write the answer MAC into `reply[macOffset, macOffset + 32)` in place and return the reply. */
export function sealDiskAnswer(key: KeyObject, requestNonce: Uint8Array, reply: Buffer, macOffset: number): Buffer {
  if (!checkMacOffset(reply, macOffset)) throw new NetkitError('INTERNAL', 'no room for the MAC in the reply');
  if (!isZeroPadding(reply.subarray(macOffset + MAC_LENGTH))) {
    throw new NetkitError('INTERNAL', 'bytes after the MAC must be zero padding');
  }
  diskAnswerMac(key, requestNonce, reply, macOffset).copy(reply, macOffset);
  return reply;
}

/** Verify an answer against the nonce of the request the client sent (a forged or replayed answer fails). */
export function verifyDiskAnswer(key: KeyObject, requestNonce: Uint8Array, reply: Uint8Array, macOffset: number): MacVerdict {
  if (requestNonce.length !== DISK_NONCE_LENGTH) return 'malformed';
  if (!checkMacOffset(reply, macOffset)) return 'malformed';
  if (!isZeroPadding(reply.subarray(macOffset + MAC_LENGTH))) return 'bad-padding';
  const expected = diskAnswerMac(key, requestNonce, reply, macOffset);
  return constantTimeEqual(expected, reply.subarray(macOffset, macOffset + MAC_LENGTH)) ? 'ok' : 'bad-mac';
}

/** Timestamp verdict for a disk request: `stale` is too old, `future` is too far ahead of our clock. */
export type TimestampVerdict = 'ok' | 'stale' | 'future';

/**
 * Check a request timestamp (u64 milliseconds since the Unix epoch, as read from the wire) against
 * our wall clock. Accepted when |now - ts| <= windowMs. Values beyond 2^53 are simply in the future.
 */
export function checkTimestamp(timestampMs: bigint | number, nowMs: number, windowMs = DEFAULT_WINDOW_MS): TimestampVerdict {
  const ts = typeof timestampMs === 'bigint' ? timestampMs : BigInt(Math.trunc(timestampMs));
  const now = BigInt(Math.trunc(nowMs));
  const window = BigInt(Math.trunc(windowMs));
  if (ts < now - window) return 'stale';
  if (ts > now + window) return 'future';
  return 'ok';
}

/** Encode a timestamp (milliseconds since the epoch) as the 8-byte big-endian value netkit sends. */
export function encodeTimestamp(ms: number): Buffer {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new NetkitError('INTERNAL', `invalid timestamp ${ms}`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(ms));
  return b;
}

/** Decode an 8-byte big-endian timestamp; throws PROTOCOL on the wrong length. */
export function decodeTimestamp(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) throw new NetkitError('PROTOCOL', `a timestamp must be 8 bytes, got ${bytes.length}`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64BE(0);
}

// ---------------------------------------------------------------------------------------------
// File protocol (TCP): challenge and response over both HELLO nonces.
// ---------------------------------------------------------------------------------------------

/** The two HELLO nonces of one file-protocol connection. */
export interface HandshakeNonces {
  /** 32 random bytes from the client's HELLO. */
  client: Uint8Array;
  /** 32 random bytes from the server's HELLO. */
  server: Uint8Array;
}

function checkHandshake(n: HandshakeNonces): void {
  checkNonce(n.client, FILE_NONCE_LENGTH, 'the client nonce');
  checkNonce(n.server, FILE_NONCE_LENGTH, 'the server nonce');
}

/**
 * In a session (both HELLOs set SESSION) every MAC input gains the request's sequence number, a u32
 * counted from 0 for the first REQUEST or LIST of the connection; the RESPONSE, TRAILER or END that
 * answers request i uses i too. So a frame replayed, dropped or moved inside the connection never
 * verifies. Without a session there is no sequence number: the inputs are those of a single exchange.
 */
function sequenceParts(seq: number | undefined): Uint8Array[] {
  if (seq === undefined) return [];
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new NetkitError('INTERNAL', `sequence number ${seq} is not a u32`);
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(seq);
  return [b];
}

/**
 * The client's proof, carried in REQUEST:
 * HMAC(k_file, "netkit file v1 client" || 0x00 || server_nonce || client_nonce [|| u32(seq)] || request[0, macOffset)).
 * `request` is the REQUEST (or LIST) frame's payload (the bytes after the 3-byte frame header); `macOffset` is where
 * the AUTH_MAC (0x10) value starts in it, which must be the payload's last 32 bytes.
 */
export function fileClientMac(key: KeyObject, nonces: HandshakeNonces, request: Uint8Array, macOffset: number, seq?: number): Buffer {
  checkHandshake(nonces);
  if (!Number.isSafeInteger(macOffset) || macOffset < 0 || macOffset > request.length) {
    throw new NetkitError('INTERNAL', `MAC offset ${macOffset} is outside the request`);
  }
  return labelledMac(key, DOMAIN.fileClient, [nonces.server, nonces.client, ...sequenceParts(seq), request.subarray(0, macOffset)]);
}

/**
 * The server's proof, carried in RESPONSE:
 * HMAC(k_file, "netkit file v1 server" || 0x00 || client_nonce || server_nonce [|| u32(seq)] || response[0, macOffset)).
 */
export function fileServerMac(key: KeyObject, nonces: HandshakeNonces, response: Uint8Array, macOffset: number, seq?: number): Buffer {
  checkHandshake(nonces);
  if (!Number.isSafeInteger(macOffset) || macOffset < 0 || macOffset > response.length) {
    throw new NetkitError('INTERNAL', `MAC offset ${macOffset} is outside the response`);
  }
  return labelledMac(key, DOMAIN.fileServer, [nonces.client, nonces.server, ...sequenceParts(seq), response.subarray(0, macOffset)]);
}

/**
 * The MAC of the end-of-transfer frame (the one that carries the content hash), so a machine in the
 * middle cannot swap the file bytes and the hash together:
 * HMAC(k_file, "netkit file v1 trailer" || 0x00 || client_nonce || server_nonce [|| u32(seq)] || trailer[0, macOffset)).
 * END, which closes a listing, carries this MAC too.
 */
export function fileTrailerMac(key: KeyObject, nonces: HandshakeNonces, trailer: Uint8Array, macOffset: number, seq?: number): Buffer {
  checkHandshake(nonces);
  if (!Number.isSafeInteger(macOffset) || macOffset < 0 || macOffset > trailer.length) {
    throw new NetkitError('INTERNAL', `MAC offset ${macOffset} is outside the trailer`);
  }
  return labelledMac(key, DOMAIN.fileTrailer, [nonces.client, nonces.server, ...sequenceParts(seq), trailer.subarray(0, macOffset)]);
}

/** Which file-protocol MAC: client proof (REQUEST, LIST), server proof (RESPONSE), or TRAILER (and END). */
export type FileMacKind = 'client' | 'server' | 'trailer';
const FILE_MAC = { client: fileClientMac, server: fileServerMac, trailer: fileTrailerMac } as const;

/**
 * Write a file-protocol MAC into `payload[macOffset, macOffset + 32)` in place and return it. `payload` is
 * a frame's payload (REQUEST or LIST for 'client', RESPONSE for 'server', TRAILER or END for 'trailer'),
 * without its header; `seq` is the request's sequence number in a session (undefined outside one).
 */
export function sealFileFrame(kind: FileMacKind, key: KeyObject, nonces: HandshakeNonces, payload: Buffer, macOffset: number, seq?: number): Buffer {
  if (!checkMacOffset(payload, macOffset)) throw new NetkitError('INTERNAL', 'no room for the MAC in the frame');
  FILE_MAC[kind](key, nonces, payload, macOffset, seq).copy(payload, macOffset);
  return payload;
}

/**
 * Verify a file-protocol MAC over a frame payload. The MAC value must end the payload exactly (no
 * padding: frames have a length), so anything after it is `malformed`.
 */
export function verifyFileFrame(kind: FileMacKind, key: KeyObject, nonces: HandshakeNonces, payload: Uint8Array, macOffset: number, seq?: number): MacVerdict {
  if (nonces.client.length !== FILE_NONCE_LENGTH || nonces.server.length !== FILE_NONCE_LENGTH) return 'malformed';
  if (!Number.isSafeInteger(macOffset) || macOffset < 0 || macOffset + MAC_LENGTH !== payload.length) return 'malformed';
  if (seq !== undefined && !(Number.isInteger(seq) && seq >= 0 && seq <= 0xffffffff)) return 'malformed';
  const expected = FILE_MAC[kind](key, nonces, payload, macOffset, seq);
  return constantTimeEqual(expected, payload.subarray(macOffset, macOffset + MAC_LENGTH)) ? 'ok' : 'bad-mac';
}
