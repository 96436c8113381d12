// The live view's TREND: no trend from a handful of samples or a few seconds, which would extrapolate a write burst to an hour.
import { describe, expect, test } from '@jest/globals';
import { MIN_TREND_SAMPLES, MIN_TREND_SPAN_MS, trendOf } from '../../src/services/disk/watch.js';

const G = 2n ** 30n;

describe('trendOf', () => {
  const first = { time: 1_000_000, available: 100n * G, samples: 1 };

  test('none before enough samples, or before enough time, however large the change', () => {
    // 4 s and 2 samples: 90 MB written would read as +81G/h.
    expect(trendOf(first, first.time + 4000, 100n * G - 90_000_000n, 2)).toBeUndefined();
    expect(trendOf(first, first.time + MIN_TREND_SPAN_MS * 10, 99n * G, MIN_TREND_SAMPLES - 1)).toBeUndefined();
    expect(trendOf(first, first.time + MIN_TREND_SPAN_MS - 1, 99n * G, MIN_TREND_SAMPLES * 10)).toBeUndefined();
  });

  test('then the change per hour between the first and the latest sample, and when falling, the hours until full', () => {
    const t = trendOf(first, first.time + 3_600_000, 90n * G, MIN_TREND_SAMPLES);
    expect(t?.perHour).toBe(-Number(10n * G));
    expect(t?.hoursToFull).toBeCloseTo(9);
    expect(trendOf(first, first.time + 1_800_000, 101n * G, MIN_TREND_SAMPLES)).toEqual({ perHour: Number(2n * G) });
  });
});
