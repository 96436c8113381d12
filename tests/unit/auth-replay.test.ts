// The replay cache and admitDiskRequest: replays and stale requests refused, memory bounded, a model check under random traffic.
import { describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ReplayCache, admitDiskRequest } from '../../src/services/replay-cache.js';
import { MAC_LENGTH, deriveKey, encodeTimestamp, sealDiskRequest } from '../../src/protocol/auth.js';

const NOW = 1_700_000_000_000;
const nonce = (n: number): Buffer => Buffer.alloc(16, n);

describe('ReplayCache', () => {
  test('a nonce is fresh once, then a replay while its timestamp is in the window', () => {
    const cache = new ReplayCache();
    expect(cache.admit(nonce(1), NOW, NOW)).toBe('fresh');
    expect(cache.admit(nonce(1), NOW, NOW + 1_000)).toBe('replay');
    expect(cache.admit(nonce(1), BigInt(NOW), NOW + 30_000)).toBe('replay');
    // Once the timestamp is out of the window the request is stale anyway, and the nonce is forgotten.
    expect(cache.admit(nonce(1), NOW, NOW + 30_001)).toBe('stale');
    expect(cache.admit(nonce(2), NOW + 30_001, NOW + 30_001)).toBe('fresh');
    expect(cache.size).toBe(1);
  });

  test('stale and future timestamps are refused without being remembered', () => {
    const cache = new ReplayCache({ windowMs: 1_000 });
    expect(cache.admit(nonce(1), NOW - 1_001, NOW)).toBe('stale');
    expect(cache.admit(nonce(2), NOW + 1_001, NOW)).toBe('future');
    expect(cache.size).toBe(0);
  });

  test('when full, the oldest is dropped and requests at or before it become stale', () => {
    const cache = new ReplayCache({ maxEntries: 3 });
    expect(cache.admit(nonce(1), NOW - 3, NOW)).toBe('fresh');
    expect(cache.admit(nonce(2), NOW - 2, NOW)).toBe('fresh');
    expect(cache.admit(nonce(3), NOW - 1, NOW)).toBe('fresh');
    expect(cache.admit(nonce(4), NOW, NOW)).toBe('fresh');
    expect(cache.size).toBe(3);
    // nonce 1 was forgotten, but its replay is still refused, as stale.
    expect(cache.admit(nonce(1), NOW - 3, NOW)).toBe('stale');
    expect(cache.admit(nonce(5), NOW - 3, NOW)).toBe('stale');
    expect(cache.admit(nonce(2), NOW - 2, NOW)).toBe('replay');
  });

  test('model check: the same request (nonce and timestamp) is never admitted twice, and size stays bounded', () => {
    // The MAC covers nonce and timestamp together, so a replay repeats both; timestamps come from a
    // small set so that repeats are common, and the clock moves so that some of them fall out of the window.
    const step = fc.record({
      nonce: fc.integer({ min: 0, max: 30 }),
      slot: fc.integer({ min: -3, max: 12 }),
      advance: fc.integer({ min: 0, max: 5_000 }),
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(step, { maxLength: 300 }), (max, steps) => {
        const cache = new ReplayCache({ maxEntries: max, windowMs: 30_000 });
        const admitted = new Set<string>();
        let now = NOW;
        for (const s of steps) {
          now += s.advance;
          const ts = NOW + s.slot * 10_000;
          const verdict = cache.admit(nonce(s.nonce), ts, now);
          if (verdict === 'fresh') {
            expect(admitted.has(`${s.nonce}@${ts}`)).toBe(false);
            admitted.add(`${s.nonce}@${ts}`);
          }
          if (Math.abs(now - ts) > 30_000) expect(verdict).not.toBe('fresh');
          expect(cache.size).toBeLessThanOrEqual(max);
        }
      }),
      { numRuns: 300, interruptAfterTimeLimit: 5_000 },
    );
  });

  test('a flood of 100,000 admissions stays within maxEntries (bounded count and time)', () => {
    const cache = new ReplayCache({ maxEntries: 1_000 });
    const started = Date.now();
    let fresh = 0;
    for (let i = 0; i < 100_000 && Date.now() - started < 5_000; i++) {
      if (cache.admit(randomBytes(16), NOW + (i % 1000), NOW) === 'fresh') fresh += 1;
    }
    expect(cache.size).toBeLessThanOrEqual(1_000);
    expect(fresh).toBeGreaterThan(1_000);
  });

  test('rejects nonsense options', () => {
    expect(() => new ReplayCache({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new ReplayCache({ windowMs: 0 })).toThrow(RangeError);
  });
});

describe('admitDiskRequest', () => {
  const key = deriveKey('q3Xl0cJ1V8Q4pA9sR2tY7uW6eZ5mN0bK1hG3fD8jL2c', 'disk');

  function request(n: Buffer, ts: number): { datagram: Buffer; macOffset: number } {
    const pre = Buffer.concat([
      Buffer.from([0x4e, 0x4b, 1, 1, 0, 0, 0, 1]),
      Buffer.from([0x11, 0, 16]),
      n,
      Buffer.from([0x12, 0, 8]),
      encodeTimestamp(ts),
      Buffer.from([0x10, 0, 32]),
    ]);
    const datagram = Buffer.concat([pre, Buffer.alloc(MAC_LENGTH + 100)]);
    return { datagram: sealDiskRequest(key, datagram, pre.length), macOffset: pre.length };
  }

  test('admits a fresh request once; its replay, a stale one and a forged one are refused', () => {
    const cache = new ReplayCache();
    const n = randomBytes(16);
    const r = request(n, NOW);
    const args = { key, ...r, nonce: n, timestampMs: NOW, cache, nowMs: NOW };
    expect(admitDiskRequest(args)).toBe('ok');
    expect(admitDiskRequest({ ...args, nowMs: NOW + 10 })).toBe('replay');
    expect(admitDiskRequest({ ...args, nowMs: NOW + 60_000 })).toBe('stale');
    const forged = Buffer.from(r.datagram);
    forged[9] ^= 1;
    expect(admitDiskRequest({ ...args, datagram: forged, nonce: randomBytes(16) })).toBe('bad-mac');
    expect(admitDiskRequest({ ...args, nonce: Buffer.alloc(15) })).toBe('malformed');
  });

  test('forged requests never enter the cache, so they cannot crowd out real ones', () => {
    const cache = new ReplayCache({ maxEntries: 10 });
    const other = deriveKey('a-different-secret-that-is-long-enough', 'disk');
    for (let i = 0; i < 1_000; i++) {
      const n = randomBytes(16);
      const r = request(n, NOW);
      r.datagram.fill(0, r.macOffset, r.macOffset + 32);
      sealDiskRequest(other, r.datagram, r.macOffset);
      expect(admitDiskRequest({ key, ...r, nonce: n, timestampMs: NOW, cache, nowMs: NOW })).toBe('bad-mac');
    }
    expect(cache.size).toBe(0);
  });
});
