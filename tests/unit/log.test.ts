// The rate-limited server log: a flood of events becomes at most N lines a second, formatted lazily.
import { describe, expect, test } from '@jest/globals';
import { rateLimitedLog } from '../../src/cli/log.js';

describe('rateLimitedLog', () => {
  test('passes the first N lines of a burst and formats only those', () => {
    const lines: string[] = [];
    let formatted = 0;
    const log = rateLimitedLog((l) => lines.push(l), 'queries', 5);
    // A burst this short cannot straddle the one-second window that starts with its first line.
    for (let i = 0; i < 40; i += 1) {
      log((now) => {
        formatted += 1;
        return `${now.getTime() > 0 ? 'ok' : 'bad'} ${i}\n`;
      });
    }
    expect(lines).toEqual(['ok 0\n', 'ok 1\n', 'ok 2\n', 'ok 3\n', 'ok 4\n']);
    expect(formatted).toBe(5);
  });
});
