// The authentication codecs: known answers from an independent HKDF/HMAC, round trips, and property-based tampering.
import { describe, expect, test } from '@jest/globals';
import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  DISK_NONCE_LENGTH,
  DOMAIN,
  FILE_NONCE_LENGTH,
  MAC_LENGTH,
  checkTimestamp,
  constantTimeEqual,
  decodeTimestamp,
  deriveKey,
  diskAnswerMac,
  diskRequestMac,
  encodeTimestamp,
  fileClientMac,
  fileServerMac,
  isZeroPadding,
  sealDiskAnswer,
  sealDiskRequest,
  sealFileFrame,
  verifyDiskAnswer,
  verifyDiskRequest,
  verifyFileFrame,
  type HandshakeNonces,
} from '../../src/protocol/auth.js';
import { NetkitError } from '../../src/errors.js';

// Every property runs a bounded number of cases; the whole file stays well under a few seconds.
const RUNS = { numRuns: 200, interruptAfterTimeLimit: 5_000 };

/** RFC 5869 HKDF-SHA-256 written out from the spec, to pin what docs/security.md promises. */
function hkdf(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  const out: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(out).length < length; i++) {
    prev = createHmac('sha256', prk).update(Buffer.concat([prev, info, Buffer.from([i])])).digest();
    out.push(prev);
  }
  return Buffer.concat(out).subarray(0, length);
}

function specKey(token: string, purpose: 'disk' | 'file'): Buffer {
  return hkdf(Buffer.from(token), Buffer.from('netkit v1 hkdf salt'), Buffer.from(`netkit ${purpose} v1 key`), 32);
}

function specMac(key: Buffer, label: string, ...parts: Buffer[]): Buffer {
  return createHmac('sha256', key).update(Buffer.concat([Buffer.from(label), Buffer.from([0]), ...parts])).digest();
}

const TOKEN = 'q3Xl0cJ1V8Q4pA9sR2tY7uW6eZ5mN0bK1hG3fD8jL2c';

/**
 * A disk request laid out as docs/security.md describes: 8-byte header, other TLVs, AUTH_NONCE (0x11),
 * AUTH_TIME (0x12), AUTH_MAC (0x10) last, then zero padding. TLVs are tag u8, length u16.
 */
function diskRequest(body: Buffer, nonce: Buffer, ts: number, padding: number): { buf: Buffer; macOffset: number } {
  const tlv = (tag: number, v: Buffer): Buffer => Buffer.concat([Buffer.from([tag, v.length >> 8, v.length & 0xff]), v]);
  const head = Buffer.from([0x4e, 0x4b, 1, 1, 0, 0, 0, 7]);
  const pre = Buffer.concat([head, body, tlv(0x11, nonce), tlv(0x12, encodeTimestamp(ts)), Buffer.from([0x10, 0, 32])]);
  return { buf: Buffer.concat([pre, Buffer.alloc(MAC_LENGTH + padding)]), macOffset: pre.length };
}

const arbBody = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));
const arbNonce16 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
const arbNonce32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a));
const arbToken = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'), minLength: 1, maxLength: 64 });

describe('deriveKey', () => {
  test('matches HKDF-SHA-256 written from RFC 5869, and disk and file keys differ', () => {
    for (const purpose of ['disk', 'file'] as const) {
      expect(deriveKey(TOKEN, purpose).export()).toEqual(specKey(TOKEN, purpose));
    }
    expect(deriveKey(TOKEN, 'disk').export()).not.toEqual(deriveKey(TOKEN, 'file').export());
  });

  test('different tokens give different keys; the raw token is never the key', () => {
    fc.assert(
      fc.property(arbToken, arbToken, (a, b) => {
        fc.pre(a !== b);
        expect(deriveKey(a, 'disk').export()).not.toEqual(deriveKey(b, 'disk').export());
        // A short token can occur in 32 random bytes by chance; a long one in the key means it was copied.
        if (a.length >= 8) expect(deriveKey(a, 'disk').export().includes(Buffer.from(a))).toBe(false);
      }),
      RUNS,
    );
  });

  test('an empty secret is refused', () => {
    expect(() => deriveKey('', 'disk')).toThrow(NetkitError);
  });
});

describe('disk request MAC', () => {
  const key = deriveKey(TOKEN, 'disk');

  test('known answer: HMAC over the label, a NUL, and every byte before the MAC value', () => {
    const { buf, macOffset } = diskRequest(Buffer.from([1, 0, 1, 0]), Buffer.alloc(16, 0xaa), 1_700_000_000_000, 20);
    sealDiskRequest(key, buf, macOffset);
    const expected = specMac(specKey(TOKEN, 'disk'), 'netkit disk v1 request', buf.subarray(0, macOffset));
    expect(buf.subarray(macOffset, macOffset + 32)).toEqual(expected);
    expect(isZeroPadding(buf.subarray(macOffset + 32))).toBe(true);
    expect(verifyDiskRequest(key, buf, macOffset)).toBe('ok');
  });

  test('round trip for any body, nonce, timestamp and padding', () => {
    fc.assert(
      fc.property(arbBody, arbNonce16, fc.nat(), fc.nat({ max: 1500 }), (body, nonce, ts, pad) => {
        const { buf, macOffset } = diskRequest(body, nonce, ts, pad);
        sealDiskRequest(key, buf, macOffset);
        expect(verifyDiskRequest(key, buf, macOffset)).toBe('ok');
      }),
      RUNS,
    );
  });

  test('changing any bit of any byte is rejected: covered bytes -> bad-mac, padding -> bad-padding', () => {
    fc.assert(
      fc.property(arbBody, arbNonce16, fc.nat({ max: 64 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (body, nonce, pad, where, flip) => {
        const { buf, macOffset } = diskRequest(body, nonce, 1_700_000_000_000, pad);
        sealDiskRequest(key, buf, macOffset);
        const i = where % buf.length;
        buf[i]! ^= flip;
        const verdict = verifyDiskRequest(key, buf, macOffset);
        expect(verdict).toBe(i >= macOffset + MAC_LENGTH ? 'bad-padding' : 'bad-mac');
      }),
      RUNS,
    );
  });

  test('truncation, extension with non-zero bytes, and a wrong key are rejected', () => {
    fc.assert(
      fc.property(arbBody, arbNonce16, fc.nat({ max: 40 }), fc.nat(), arbToken, (body, nonce, pad, cut, other) => {
        const { buf, macOffset } = diskRequest(body, nonce, 5, pad);
        sealDiskRequest(key, buf, macOffset);
        const short = buf.subarray(0, Math.min(buf.length - 1, macOffset + (cut % MAC_LENGTH)));
        expect(verifyDiskRequest(key, short, macOffset)).toBe('malformed');
        expect(verifyDiskRequest(key, Buffer.concat([buf, Buffer.from([1])]), macOffset)).toBe('bad-padding');
        fc.pre(other !== TOKEN);
        expect(verifyDiskRequest(deriveKey(other, 'disk'), buf, macOffset)).toBe('bad-mac');
      }),
      RUNS,
    );
  });

  test('lying about the MAC offset does not help: every other offset fails', () => {
    const { buf, macOffset } = diskRequest(Buffer.from('hello'), randomBytes(16), 9, 8);
    sealDiskRequest(key, buf, macOffset);
    for (let off = -1; off <= buf.length; off++) {
      if (off === macOffset) continue;
      expect(verifyDiskRequest(key, buf, off)).not.toBe('ok');
    }
  });

  test('sealing refuses when there is no room for the MAC or the tail is not zero', () => {
    const { buf, macOffset } = diskRequest(Buffer.alloc(0), randomBytes(16), 9, 4);
    expect(() => sealDiskRequest(key, buf, buf.length - 31)).toThrow(NetkitError);
    buf[buf.length - 1] = 1;
    expect(() => sealDiskRequest(key, buf, macOffset)).toThrow(/zero padding/);
  });
});

describe('disk answer MAC', () => {
  const key = deriveKey(TOKEN, 'disk');

  test('known answer and round trip, bound to the request nonce', () => {
    fc.assert(
      fc.property(arbBody, arbNonce16, arbNonce16, (body, nonce, otherNonce) => {
        const reply = Buffer.concat([body, Buffer.alloc(32)]);
        sealDiskAnswer(key, nonce, reply, body.length);
        expect(reply.subarray(body.length)).toEqual(specMac(specKey(TOKEN, 'disk'), 'netkit disk v1 answer', nonce, body));
        expect(verifyDiskAnswer(key, nonce, reply, body.length)).toBe('ok');
        fc.pre(!nonce.equals(otherNonce));
        // An answer recorded for one request is no good for another.
        expect(verifyDiskAnswer(key, otherNonce, reply, body.length)).toBe('bad-mac');
      }),
      RUNS,
    );
  });

  test('any tampered byte is rejected', () => {
    fc.assert(
      fc.property(arbBody, arbNonce16, fc.nat(), fc.integer({ min: 1, max: 255 }), (body, nonce, where, flip) => {
        const reply = sealDiskAnswer(key, nonce, Buffer.concat([body, Buffer.alloc(32)]), body.length);
        reply[where % reply.length]! ^= flip;
        expect(verifyDiskAnswer(key, nonce, reply, body.length)).toBe('bad-mac');
      }),
      RUNS,
    );
  });

  test('domain separation: a request MAC is never an answer MAC over the same bytes', () => {
    fc.assert(
      fc.property(arbNonce16, arbBody, (nonce, body) => {
        // The answer input starts with the nonce; give the request the same bytes after its label.
        const asRequest = diskRequestMac(key, Buffer.concat([nonce, body]), 16 + body.length);
        expect(asRequest.equals(diskAnswerMac(key, nonce, body, body.length))).toBe(false);
      }),
      RUNS,
    );
  });

  test('a wrong-length nonce is malformed, not a crash', () => {
    const reply = Buffer.alloc(40);
    expect(verifyDiskAnswer(key, Buffer.alloc(DISK_NONCE_LENGTH - 1), reply, 8)).toBe('malformed');
    expect(() => diskAnswerMac(key, Buffer.alloc(3), reply, 8)).toThrow(NetkitError);
  });
});

describe('file handshake MACs', () => {
  const key = deriveKey(TOKEN, 'file');
  const frame = (body: Buffer): Buffer => Buffer.concat([body, Buffer.alloc(MAC_LENGTH)]);

  test('known answers: client over server||client nonces, server over client||server nonces', () => {
    const nonces: HandshakeNonces = { client: Buffer.alloc(32, 1), server: Buffer.alloc(32, 2) };
    const body = Buffer.from('REQUEST fields');
    const k = specKey(TOKEN, 'file');
    expect(fileClientMac(key, nonces, body, body.length)).toEqual(
      specMac(k, 'netkit file v1 client', Buffer.alloc(32, 2), Buffer.alloc(32, 1), body),
    );
    expect(fileServerMac(key, nonces, body, body.length)).toEqual(
      specMac(k, 'netkit file v1 server', Buffer.alloc(32, 1), Buffer.alloc(32, 2), body),
    );
  });

  test('round trips; tampering, a fresh server nonce, or the wrong role all fail', () => {
    fc.assert(
      fc.property(
        arbBody,
        arbNonce32,
        arbNonce32,
        arbNonce32,
        fc.constantFrom('client' as const, 'server' as const, 'trailer' as const),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (body, c, s, s2, kind, where, flip) => {
          const nonces = { client: c, server: s };
          const f = sealFileFrame(kind, key, nonces, frame(body), body.length);
          expect(verifyFileFrame(kind, key, nonces, f, body.length)).toBe('ok');
          for (const other of ['client', 'server', 'trailer'] as const) {
            if (other !== kind) expect(verifyFileFrame(other, key, nonces, f, body.length)).toBe('bad-mac');
          }
          fc.pre(!s.equals(s2) && !c.equals(s));
          // A recorded REQUEST replayed into a new connection meets a new server nonce.
          expect(verifyFileFrame(kind, key, { client: c, server: s2 }, f, body.length)).toBe('bad-mac');
          // Swapping the nonces (a reflection) does not verify either.
          expect(verifyFileFrame(kind, key, { client: s, server: c }, f, body.length)).toBe('bad-mac');
          const t = Buffer.from(f);
          t[where % t.length]! ^= flip;
          expect(verifyFileFrame(kind, key, nonces, t, body.length)).toBe('bad-mac');
        },
      ),
      RUNS,
    );
  });

  test('bytes after the MAC, a short frame, or wrong-length nonces are malformed', () => {
    const nonces = { client: randomBytes(FILE_NONCE_LENGTH), server: randomBytes(FILE_NONCE_LENGTH) };
    const f = sealFileFrame('client', key, nonces, frame(Buffer.from('x')), 1);
    expect(verifyFileFrame('client', key, nonces, Buffer.concat([f, Buffer.alloc(1)]), 1)).toBe('malformed');
    expect(verifyFileFrame('client', key, nonces, f.subarray(0, f.length - 1), 1)).toBe('malformed');
    expect(verifyFileFrame('client', key, { client: nonces.client, server: Buffer.alloc(16) }, f, 1)).toBe('malformed');
    expect(() => fileClientMac(key, { client: Buffer.alloc(31), server: nonces.server }, f, 1)).toThrow(NetkitError);
  });
});

describe('timestamps and helpers', () => {
  const now = 1_700_000_000_000;

  test.each([
    [now, 'ok'],
    [now - 30_000, 'ok'],
    [now + 30_000, 'ok'],
    [now - 30_001, 'stale'],
    [now + 30_001, 'future'],
    [0, 'stale'],
    [2n ** 64n - 1n, 'future'],
  ] as const)('timestamp %p against now is %p', (ts, verdict) => {
    expect(checkTimestamp(ts, now)).toBe(verdict);
  });

  test('the window is configurable', () => {
    expect(checkTimestamp(now - 5_000, now, 1_000)).toBe('stale');
    expect(checkTimestamp(now - 500, now, 1_000)).toBe('ok');
  });

  test('timestamps round-trip through 8 big-endian bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (ms) => {
        const b = encodeTimestamp(ms);
        expect(b.length).toBe(8);
        expect(decodeTimestamp(b)).toBe(BigInt(ms));
      }),
      RUNS,
    );
    expect(() => decodeTimestamp(Buffer.alloc(7))).toThrow(NetkitError);
    expect(() => encodeTimestamp(-1)).toThrow(NetkitError);
  });

  test('constantTimeEqual and isZeroPadding', () => {
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abc'))).toBe(true);
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abd'))).toBe(false);
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abcd'))).toBe(false);
    expect(isZeroPadding(Buffer.alloc(0))).toBe(true);
    const big = Buffer.alloc(65_507);
    expect(isZeroPadding(big)).toBe(true);
    big[big.length - 1] = 1;
    expect(isZeroPadding(big)).toBe(false);
  });

  test('labels are distinct and none is a prefix of another', () => {
    const labels = Object.values(DOMAIN);
    for (const a of labels) for (const b of labels) if (a !== b) expect(b.startsWith(a)).toBe(false);
  });
});
