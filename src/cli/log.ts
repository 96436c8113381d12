// Server logs on stderr that a flood of requests cannot turn into a flood of lines.

/** Most log lines per second; past that, one summary line per second says how many were dropped. */
export const LOG_LINES_PER_SECOND = 50;

/**
 * Wrap `write` so that at most `perSecond` lines a second get through. `format` is only called for a
 * line that will be written, so a dropped line costs no formatting. `noun` names what was dropped
 * ("queries", "connections") in the summary line.
 */
export function rateLimitedLog(write: (line: string) => void, noun: string, perSecond = LOG_LINES_PER_SECOND): (format: (now: Date) => string) => void {
  let windowStart = 0;
  let lines = 0;
  let suppressed = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    if (suppressed > 0) write(`${new Date().toISOString()} ${suppressed} more ${noun} not logged (over ${perSecond}/s)\n`);
    suppressed = 0;
  };
  return (format) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      lines = 0;
    }
    if (lines >= perSecond) {
      suppressed += 1;
      if (!timer) {
        timer = setTimeout(flush, 1000 - (now - windowStart));
        timer.unref();
      }
      return;
    }
    lines += 1;
    write(format(new Date(now)));
  };
}
