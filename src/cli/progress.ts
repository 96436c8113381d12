// The fetch progress bar: cli-progress on stderr, loaded only when stderr is a terminal.
import { formatBytes, formatDuration, sanitize } from './output.js';

export interface Progress {
  /** Report bytes of the file present so far (including a resumed prefix) out of the total. */
  update(received: number, total: number): void;
  /** Stop drawing, leaving the last state on its own line. */
  stop(): void;
}

interface TtyStream extends NodeJS.WritableStream {
  isTTY?: boolean;
  columns?: number;
}

/**
 * A progress bar for `label`, or undefined when `stream` is not a terminal (then there is no bar at
 * all: no carriage returns or escape codes end up in a pipe or a log file).
 * The bar shows percentage, bytes received/total, speed since the start of this transfer, and ETA.
 */
export async function createProgressBar(stream: TtyStream, label: string): Promise<Progress | undefined> {
  if (stream.isTTY !== true) return undefined;
  const { default: cliProgress } = await import('cli-progress');
  const name = sanitize(label, 32);
  const bar = new cliProgress.SingleBar(
    {
      stream: stream as NodeJS.WritableStream,
      format: `${name} [{bar}] {percentage}% | {done}/{size} | {speed} | ETA {left}`,
      barsize: Math.max(10, Math.min(30, (stream.columns ?? 80) - 60 - name.length)),
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      fps: 10,
      barCompleteChar: '=',
      barIncompleteChar: ' ',
      noTTYOutput: false,
    },
    cliProgress.Presets.legacy,
  );
  let started = false;
  let t0 = 0;
  let base = 0;
  const payload = (received: number, total: number): Record<string, string> => {
    const elapsed = (performance.now() - t0) / 1000;
    const rate = elapsed > 0.05 ? (received - base) / elapsed : 0;
    const eta = rate > 0 ? formatDuration(((total - received) / rate) * 1000) : '-';
    return { done: formatBytes(received), size: formatBytes(total), speed: rate > 0 ? `${formatBytes(rate)}/s` : '-', left: eta };
  };
  return {
    update(received, total) {
      if (total <= 0) return;
      if (!started) {
        started = true;
        t0 = performance.now();
        base = received;
        bar.start(total, received, payload(received, total));
        return;
      }
      bar.update(received, payload(received, total));
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
