// Per-source token buckets: burst, refill, the once-a-second notice, the loopback exemption, the table bound.
import { describe, expect, test } from '@jest/globals';
import { RateLimiter, RateVerdict, isLoopback } from '../../src/services/disk-rate-limit.js';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('RateLimiter', () => {
  test('a source gets its burst, then one RATE_LIMITED notice, then silence, then refills with time', () => {
    const c = clock();
    const rl = new RateLimiter({ perSecond: 10, now: c.now });
    for (let i = 0; i < 10; i += 1) expect(rl.take('192.0.2.1')).toBe(RateVerdict.OK);
    expect(rl.take('192.0.2.1')).toBe(RateVerdict.NOTIFY);
    expect(rl.take('192.0.2.1')).toBe(RateVerdict.DROP);
    // Another source is not affected.
    expect(rl.take('192.0.2.2')).toBe(RateVerdict.OK);
    c.advance(100); // one token at 10/s
    expect(rl.take('192.0.2.1')).toBe(RateVerdict.OK);
    expect(rl.take('192.0.2.1')).toBe(RateVerdict.DROP);
    c.advance(1000);
    let ok = 0;
    while (rl.take('192.0.2.1') === RateVerdict.OK) ok += 1;
    expect(ok).toBe(10); // capped at the burst, not 11
  });

  test('loopback is exempt by default, limited when asked; 0 disables limiting', () => {
    const c = clock();
    const exempt = new RateLimiter({ perSecond: 1, now: c.now });
    const strict = new RateLimiter({ perSecond: 1, now: c.now, exemptLoopback: false });
    const off = new RateLimiter({ perSecond: 0, now: c.now, exemptLoopback: false });
    for (let i = 0; i < 100; i += 1) {
      expect(exempt.take('::ffff:127.0.0.1')).toBe(RateVerdict.OK);
      expect(off.take('203.0.113.9')).toBe(RateVerdict.OK);
    }
    expect(strict.take('::1')).toBe(RateVerdict.OK);
    expect(strict.take('::1')).toBe(RateVerdict.NOTIFY);
    expect(off.enabled).toBe(false);
  });

  test('the table never holds more than maxSources', () => {
    const rl = new RateLimiter({ perSecond: 5, maxSources: 64 });
    for (let i = 0; i < 10_000; i += 1) rl.take(`10.0.${(i >> 8) & 255}.${i & 255}`);
    expect(rl.size).toBe(64);
  });

  test.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['10.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['fe80::1', false],
  ])('isLoopback(%p) is %p', (address, expected) => {
    expect(isLoopback(address)).toBe(expected);
  });
});
