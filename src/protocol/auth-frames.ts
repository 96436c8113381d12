// File protocol v1 authentication (docs/security.md 4.3): put AUTH_MAC last in a REQUEST, LIST, RESPONSE, TRAILER or END frame and check it, with the session's sequence number when there is one. Buffers only.
import type { KeyObject } from 'node:crypto';
import { MAC_LENGTH, sealFileFrame, verifyFileFrame, type FileMacKind, type HandshakeNonces } from './auth.js';
import { FRAME_HEADER_LENGTH, Tag, decodeFields, type Field } from './file-frames.js';

/**
 * The placeholder field to pass last in `extra` when encoding a frame that will be sealed. encodeFrame
 * copies it, so the shared zeros are never written to.
 */
export const MAC_PLACEHOLDER: Field = [Tag.AUTH_MAC, Buffer.alloc(MAC_LENGTH)];

/**
 * Seal a whole encoded frame (header + payload) whose last field is MAC_PLACEHOLDER: the MAC value is
 * the payload's last 32 bytes, and covers the nonces, the sequence number in a session, and every
 * payload byte before it.
 */
export function sealFrame(kind: FileMacKind, key: KeyObject, nonces: HandshakeNonces, frame: Buffer, seq?: number): Buffer {
  const payload = frame.subarray(FRAME_HEADER_LENGTH);
  if (payload.length < 3 + MAC_LENGTH || payload[payload.length - MAC_LENGTH - 3] !== Tag.AUTH_MAC) {
    throw new RangeError('the frame does not end with the AUTH_MAC placeholder');
  }
  sealFileFrame(kind, key, nonces, payload, payload.length - MAC_LENGTH, seq);
  return frame;
}

/** Verdict on a received frame's proof: `missing` when it has no AUTH_MAC field at all. */
export type FrameProof = 'ok' | 'missing' | 'malformed' | 'bad-mac';

/**
 * Check the AUTH_MAC of a received frame payload (without its 3-byte header). AUTH_MAC must be the
 * last field (its value ends the payload); the comparison is constant-time. Never throws.
 */
export function checkFrame(kind: FileMacKind, key: KeyObject, nonces: HandshakeNonces, payload: Buffer, seq?: number): FrameProof {
  let mac;
  try {
    mac = decodeFields(payload).get(Tag.AUTH_MAC);
  } catch {
    return 'malformed';
  }
  if (!mac) return 'missing';
  if (mac.value.length !== MAC_LENGTH) return 'malformed';
  const verdict = verifyFileFrame(kind, key, nonces, payload, mac.offset, seq);
  return verdict === 'bad-padding' ? 'malformed' : verdict;
}
