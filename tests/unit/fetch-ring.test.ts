// The shared ring small files of a tree fetch are received into: regions never overlap while live, space comes back oldest first, and a full ring says so instead of growing.
import { describe, expect, test } from '@jest/globals';
import { Ring, type Region } from '../../src/services/file/fetch/ring.js';

const overlap = (a: Region, b: Region): boolean => a.at < b.at + b.data.length && b.at < a.at + a.data.length;

describe('Ring', () => {
  test('hands out contiguous regions one after another and refuses when full', () => {
    const ring = new Ring(100);
    const a = ring.take(40)!;
    const b = ring.take(40)!;
    expect([a.at, b.at]).toEqual([0, 40]);
    expect(ring.take(30)).toBeUndefined();
    expect(ring.used).toBe(80);
    a.data.fill(1);
    expect(b.data.every((x) => x === 0)).toBe(true);
  });

  test('wraps to the start once the oldest region is released, and reuses space oldest first', () => {
    const ring = new Ring(100);
    const a = ring.take(40)!;
    const b = ring.take(40)!;
    ring.release(a);
    const c = ring.take(30)!;
    expect(c.at).toBe(0);
    expect(overlap(b, c)).toBe(false);
    // Wrapped: the room is between the newest's end and the oldest's start.
    expect(ring.take(11)).toBeUndefined();
    const d = ring.take(10)!;
    expect(d.at).toBe(30);
    expect(ring.used).toBe(100);
  });

  test('a region released out of order waits for the older ones', () => {
    const ring = new Ring(100);
    const a = ring.take(50)!;
    const b = ring.take(50)!;
    ring.release(b);
    expect(ring.take(10)).toBeUndefined();
    ring.release(a);
    expect(ring.empty).toBe(true);
    expect(ring.take(100)!.at).toBe(0);
  });

  test('zero-length regions take nothing; a region larger than the ring is a bug', () => {
    const ring = new Ring(10);
    const z = ring.take(0)!;
    expect(z.data.length).toBe(0);
    expect(ring.empty).toBe(true);
    expect(() => ring.take(11)).toThrow(RangeError);
  });

  test('many takes and releases in a loop never hand out overlapping live regions', () => {
    const ring = new Ring(4096);
    const live: Region[] = [];
    let x = 7;
    for (let i = 0; i < 2000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      const len = 1 + (x % 900);
      const r = ring.take(len);
      if (r) {
        for (const o of live) expect(overlap(o, r)).toBe(false);
        live.push(r);
      } else {
        expect(live.length).toBeGreaterThan(0);
        ring.release(live.shift()!);
      }
    }
  });
});
