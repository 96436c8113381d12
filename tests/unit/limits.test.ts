// Abuse limits with an injected clock: failure back-off, token buckets, bounded tables, source keys.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { FailureThrottle, RateLimiter, RateVerdict, isLoopback, sourceKey } from '../../src/services/limits.js';

/** A clock the test moves by hand: no timers, no sleeps. */
function manualClock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const RUNS = { numRuns: 150, interruptAfterTimeLimit: 5_000 };

describe('sourceKey', () => {
  test.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['::FFFF:127.0.0.1', '127.0.0.1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::99', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
  ])('%s counts as %s', (address, key) => {
    expect(sourceKey(address)).toBe(key);
  });

  test('every address of one /64 maps to the same key', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }), (low) => {
        const addr = `2001:db8:aa:bb:${low.map((x) => x.toString(16)).join(':')}`;
        expect(sourceKey(addr)).toBe('2001:db8:aa:bb::/64');
      }),
      RUNS,
    );
  });
});

describe('FailureThrottle', () => {
  test('the hold-off doubles per failure up to the cap, and a success clears it', () => {
    const clock = manualClock();
    const t = new FailureThrottle({ baseDelayMs: 100, maxDelayMs: 1_000, clock: clock.now });
    expect(t.blockedFor('a')).toBe(0);
    expect([1, 2, 3, 4, 5, 6].map(() => t.recordFailure('a').delayMs)).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(t.failures('a')).toBe(6);
    expect(t.blockedFor('a')).toBe(1_000);
    expect(t.blockedFor('b')).toBe(0); // other sources are not affected
    clock.advance(600);
    expect(t.blockedFor('a')).toBe(400);
    clock.advance(400);
    expect(t.blockedFor('a')).toBe(0);
    t.recordSuccess('a');
    expect(t.failures('a')).toBe(0);
    expect(t.recordFailure('a').delayMs).toBe(100);
  });

  test('a source quiet for forgetAfterMs starts over', () => {
    const clock = manualClock();
    const t = new FailureThrottle({ baseDelayMs: 100, forgetAfterMs: 10_000, clock: clock.now });
    t.recordFailure('a');
    t.recordFailure('a');
    clock.advance(9_999);
    expect(t.recordFailure('a').failures).toBe(3);
    clock.advance(10_000);
    expect(t.failures('a')).toBe(0);
    expect(t.recordFailure('a')).toEqual({ failures: 1, delayMs: 100 });
  });

  test('the table is bounded; the least recently failing source is forgotten first', () => {
    const t = new FailureThrottle({ maxSources: 3, clock: manualClock().now });
    for (const s of ['a', 'b', 'c']) t.recordFailure(s);
    t.recordFailure('a'); // a is now the most recent
    t.recordFailure('d'); // evicts b
    expect(t.size).toBe(3);
    expect(t.failures('b')).toBe(0);
    expect(t.failures('a')).toBe(2);
  });

  test('property: delays never decrease with more failures and never exceed the cap', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10_000 }), fc.nat({ max: 100_000 }), fc.nat({ max: 2_000 }), (base, extra, n) => {
        const t = new FailureThrottle({ baseDelayMs: base, maxDelayMs: base + extra });
        let prev = 0;
        for (let i = 1; i <= n; i += 1 + Math.floor(i / 10)) {
          const d = t.delayAfter(i);
          expect(d).toBeGreaterThanOrEqual(prev);
          expect(d).toBeLessThanOrEqual(base + extra);
          prev = d;
        }
      }),
      RUNS,
    );
  });

  test('rejects nonsense options', () => {
    expect(() => new FailureThrottle({ baseDelayMs: 10, maxDelayMs: 5 })).toThrow(RangeError);
    expect(() => new FailureThrottle({ maxSources: 0 })).toThrow(RangeError);
  });
});

describe('RateLimiter', () => {
  test('a burst passes, then the sustained rate; sources are independent', () => {
    const clock = manualClock();
    const r = new RateLimiter({ ratePerSec: 10, burst: 5, clock: clock.now });
    const burst = Array.from({ length: 8 }, () => r.take('a'));
    expect(burst).toEqual([true, true, true, true, true, false, false, false]);
    expect(r.take('b')).toBe(true);
    clock.advance(100); // one token at 10/s
    expect(r.take('a')).toBe(true);
    expect(r.take('a')).toBe(false);
    clock.advance(10_000); // refills to the burst, never beyond
    expect(Array.from({ length: 7 }, () => r.take('a')).filter(Boolean)).toHaveLength(5);
  });

  test('property: over any schedule, a source never gets more than burst + rate * elapsed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.nat({ max: 200 }), { maxLength: 300 }),
        (rate, burst, gaps) => {
          const clock = manualClock();
          const r = new RateLimiter({ ratePerSec: rate, burst, clock: clock.now });
          let passed = 0;
          let elapsed = 0;
          for (const g of gaps) {
            clock.advance(g);
            elapsed += g;
            if (r.take('x')) passed += 1;
            expect(passed).toBeLessThanOrEqual(burst + (rate * elapsed) / 1000 + 1e-9);
          }
        },
      ),
      RUNS,
    );
  });

  test('a spoofed flood of new sources cannot grow the table or reset a real source', () => {
    const clock = manualClock();
    const r = new RateLimiter({ ratePerSec: 1, burst: 2, maxSources: 100, clock: clock.now });
    expect(r.take('real')).toBe(true);
    expect(r.take('real')).toBe(true);
    expect(r.take('real')).toBe(false);
    let passed = 0;
    for (let i = 0; i < 10_000; i++) if (r.take(`spoof${i}`)) passed += 1;
    expect(r.size).toBeLessThanOrEqual(100);
    // Every new source gets a bucket of its own: a flood cannot starve the next fresh client.
    expect(passed).toBe(10_000);
    expect(r.take('fresh')).toBe(true);
    expect(r.take('real')).toBe(false); // still drained, not evicted and refilled
  });

  test('buckets that have refilled are dropped, so quiet sources free the table', () => {
    const clock = manualClock();
    const r = new RateLimiter({ ratePerSec: 10, burst: 10, maxSources: 5, clock: clock.now });
    for (let i = 0; i < 5; i++) r.take(`s${i}`);
    expect(r.size).toBe(5);
    clock.advance(1_000); // burst / rate = 1 s: all full again
    expect(r.take('new')).toBe(true);
    expect(r.size).toBe(1);
  });
});

describe('RateLimiter.check (the disk server entry point)', () => {
  test('a source gets its burst, then one RATE_LIMITED notice, then silence, then refills with time', () => {
    const clock = manualClock();
    const rl = new RateLimiter({ ratePerSec: 10, burst: 10, clock: clock.now });
    for (let i = 0; i < 10; i += 1) expect(rl.check('192.0.2.1')).toBe(RateVerdict.OK);
    expect(rl.check('192.0.2.1')).toBe(RateVerdict.NOTIFY);
    expect(rl.check('192.0.2.1')).toBe(RateVerdict.DROP);
    expect(rl.check('192.0.2.2')).toBe(RateVerdict.OK); // another source is not affected
    clock.advance(100); // one token at 10/s
    expect(rl.check('192.0.2.1')).toBe(RateVerdict.OK);
    expect(rl.check('192.0.2.1')).toBe(RateVerdict.DROP); // notified less than a second ago
    clock.advance(1000);
    let ok = 0;
    while (rl.check('192.0.2.1') === RateVerdict.OK) ok += 1;
    expect(ok).toBe(10); // capped at the burst, not 11
  });

  test('loopback is exempt only when asked; rate 0 disables limiting', () => {
    const clock = manualClock();
    const exempt = new RateLimiter({ ratePerSec: 1, burst: 1, exemptLoopback: true, clock: clock.now });
    const strict = new RateLimiter({ ratePerSec: 1, burst: 1, clock: clock.now });
    const off = new RateLimiter({ ratePerSec: 0, burst: 1, clock: clock.now });
    for (let i = 0; i < 100; i += 1) {
      expect(exempt.check('::ffff:127.0.0.1')).toBe(RateVerdict.OK);
      expect(exempt.check('::1')).toBe(RateVerdict.OK);
      expect(off.check('203.0.113.9')).toBe(RateVerdict.OK);
      expect(off.take('203.0.113.9')).toBe(true);
    }
    expect(exempt.check('203.0.113.9')).toBe(RateVerdict.OK);
    expect(exempt.check('203.0.113.9')).toBe(RateVerdict.NOTIFY);
    expect(strict.check('::1')).toBe(RateVerdict.OK);
    expect(strict.check('::1')).toBe(RateVerdict.NOTIFY);
    expect(off.enabled).toBe(false);
    expect(strict.enabled).toBe(true);
  });

  test('addresses are counted by sourceKey: IPv4-mapped is the IPv4 address, IPv6 by its /64', () => {
    const clock = manualClock();
    const rl = new RateLimiter({ ratePerSec: 1, burst: 2, clock: clock.now });
    expect(rl.check('198.51.100.7')).toBe(RateVerdict.OK);
    expect(rl.check('::ffff:198.51.100.7')).toBe(RateVerdict.OK);
    expect(rl.check('198.51.100.7')).toBe(RateVerdict.NOTIFY);
    expect(rl.check('2001:db8:1:2::1')).toBe(RateVerdict.OK);
    expect(rl.check('2001:db8:1:2::ffff')).toBe(RateVerdict.OK);
    expect(rl.check('2001:db8:1:2:abcd::9')).toBe(RateVerdict.NOTIFY); // same /64: no fresh allowance
    expect(rl.check('2001:db8:1:3::1')).toBe(RateVerdict.OK); // another /64
  });

  test('a spoofed flood cannot churn the table to hand a drained source a fresh burst', () => {
    const clock = manualClock();
    const rl = new RateLimiter({ ratePerSec: 1, burst: 3, maxSources: 64, clock: clock.now });
    for (let i = 0; i < 3; i += 1) expect(rl.check('192.0.2.1')).toBe(RateVerdict.OK);
    expect(rl.check('192.0.2.1')).toBe(RateVerdict.NOTIFY);
    let passed = 0;
    for (let i = 0; i < 10_000; i += 1) if (rl.check(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`) === RateVerdict.OK) passed += 1;
    expect(rl.size).toBeLessThanOrEqual(64);
    expect(passed).toBe(10_000); // each spoofed source has its own bucket; none shares a drained one
    expect(rl.check('192.0.2.1')).toBe(RateVerdict.DROP); // still drained: never evicted and refilled
    expect(rl.check('192.0.2.200')).toBe(RateVerdict.OK); // a fresh client is served at once
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
