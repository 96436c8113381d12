// AUTH_MAC in file protocol v1 frames: seal and check REQUEST/RESPONSE/TRAILER proofs, with every kind, nonce and byte change refused.
import { describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { deriveKey } from '../../src/protocol/auth.js';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../../src/protocol/auth-frames.js';
import { FRAME_HEADER_LENGTH, FrameType, Status, decodeRequest, decodeResponse, encodeRequest, encodeResponse, encodeTrailer } from '../../src/protocol/file-v1.js';

const KEY = deriveKey('Fr4mes-Secret-Vb7Nq2Lx9Kp3Wz5Ty8Jh1Gd6', 'file');
const nonces = () => ({ client: randomBytes(32), server: randomBytes(32) });

describe('file frame proofs', () => {
  test('sealed REQUEST, RESPONSE and TRAILER verify only for their own kind, nonces and key', () => {
    const n = nonces();
    const frames = {
      client: encodeRequest({ name: 'a/b.txt', offset: 5, validator: Buffer.from('v1') }, [MAC_PLACEHOLDER]),
      server: encodeResponse({ status: Status.OK, size: 10, offset: 5, validator: Buffer.from('v1'), message: '' }, [MAC_PLACEHOLDER]),
      trailer: encodeTrailer({ sha256: randomBytes(32) }, [MAC_PLACEHOLDER]),
    } as const;
    for (const kind of ['client', 'server', 'trailer'] as const) {
      const payload = sealFrame(kind, KEY, n, Buffer.from(frames[kind])).subarray(FRAME_HEADER_LENGTH);
      expect(checkFrame(kind, KEY, n, payload)).toBe('ok');
      for (const other of ['client', 'server', 'trailer'] as const) if (other !== kind) expect(checkFrame(other, KEY, n, payload)).toBe('bad-mac');
      expect(checkFrame(kind, KEY, nonces(), payload)).toBe('bad-mac');
      expect(checkFrame(kind, KEY, { client: n.server, server: n.client }, payload)).toBe('bad-mac');
      expect(checkFrame(kind, deriveKey('Fr4mes-Secret-Vb7Nq2Lx9Kp3Wz5Ty8Jh1Gd6', 'disk'), n, payload)).toBe('bad-mac');
    }
    // The placeholder is never written to, and the decoders still read the sealed frames.
    expect(MAC_PLACEHOLDER[1].every((b) => b === 0)).toBe(true);
    const req = sealFrame('client', KEY, n, Buffer.from(frames.client));
    expect(decodeRequest({ type: FrameType.REQUEST, payload: req.subarray(3) })).toMatchObject({ name: 'a/b.txt', offset: 5 });
    const res = sealFrame('server', KEY, n, Buffer.from(frames.server));
    expect(decodeResponse({ type: FrameType.RESPONSE, payload: res.subarray(3) })).toMatchObject({ status: Status.OK, size: 10 });
  });

  test('missing, not last, wrong length, truncated', () => {
    const n = nonces();
    const plain = encodeRequest({ name: 'x', offset: 0, validator: Buffer.alloc(0) });
    expect(checkFrame('client', KEY, n, plain.subarray(3))).toBe('missing');
    const sealed = sealFrame('client', KEY, n, encodeRequest({ name: 'x', offset: 0, validator: Buffer.alloc(0) }, [MAC_PLACEHOLDER]));
    const notLast = Buffer.concat([sealed.subarray(3), Buffer.from([0x0b, 0, 0])]);
    expect(checkFrame('client', KEY, n, notLast)).toBe('malformed');
    expect(checkFrame('client', KEY, n, sealed.subarray(3, sealed.length - 1))).toBe('malformed');
    const short = encodeRequest({ name: 'x', offset: 0, validator: Buffer.alloc(0) }, [[0x10, Buffer.alloc(31)]]);
    expect(checkFrame('client', KEY, n, short.subarray(3))).toBe('malformed');
    expect(() => sealFrame('client', KEY, n, Buffer.from(plain))).toThrow(RangeError);
  });

  test('fuzz: flipping any byte of a sealed REQUEST payload is never accepted (bounded)', () => {
    const n = nonces();
    const base = sealFrame('client', KEY, n, encodeRequest({ name: 'dir/file.bin', offset: 123, validator: randomBytes(16) }, [MAC_PLACEHOLDER])).subarray(3);
    const started = Date.now();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        if (Date.now() - started > 5000) return;
        const p = Buffer.from(base);
        p[pos]! ^= x;
        expect(checkFrame('client', KEY, n, p)).not.toBe('ok');
      }),
      { numRuns: 1000 },
    );
  });
});
