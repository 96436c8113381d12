// The live view's state: rounds of queries at an interval, per-host answers and timeouts, data age, and each filesystem's trend since the watch began.
import { openDiskSession, queryDisks, type DiskQueryOptions, type HostResult, type QueryTarget } from './query.js';

export interface HostStats {
  answers: number;
  timeouts: number;
  /** Other failures (refused, unreachable, protocol). */
  failures: number;
  /** When the figures last shown for this host were read (server clock, ms since the epoch). */
  dataTime?: number;
  /** The last answer, kept while later rounds fail, so the view still shows the host (with its age). */
  last?: HostResult;
}

export interface Trend {
  /** Change in available bytes per hour since the watch began (negative: filling up). */
  perHour: number;
  /** When falling: hours until nothing is available at this rate. */
  hoursToFull?: number;
}

interface FirstSample {
  time: number;
  available: bigint;
  /** Samples taken so far, the first included. */
  samples: number;
}

/** A trend needs this many samples... */
export const MIN_TREND_SAMPLES = 5;
/** ...spanning at least this long (server clock): over a few seconds a write burst reads as +80G/h. */
export const MIN_TREND_SPAN_MS = 10_000;

/**
 * Trend of available space between the first and the latest sample; undefined until there are
 * MIN_TREND_SAMPLES samples (`samples`, the latest included) over at least MIN_TREND_SPAN_MS.
 */
export function trendOf(first: FirstSample, time: number, available: bigint, samples = first.samples): Trend | undefined {
  if (samples < MIN_TREND_SAMPLES || time - first.time < MIN_TREND_SPAN_MS) return undefined;
  const hours = (time - first.time) / 3_600_000;
  if (!(hours > 0)) return undefined;
  const perHour = Number(available - first.available) / hours;
  return perHour < 0 ? { perHour, hoursToFull: Number(available) / -perHour } : { perHour };
}

export interface WatchRound {
  round: number;
  /** Our clock when the round finished. */
  time: number;
  results: HostResult[];
  stats: HostStats[];
  /** Trend per host index and mount point. */
  trend(hostIndex: number, mount: string): Trend | undefined;
}

export interface WatchController {
  /** Stop after the round in flight; resolves when nothing is left running. */
  stop(): Promise<void>;
}

/**
 * Query `targets` every `intervalMs` (a round never overlaps the next: a slow round delays it) and
 * report each round. Stops on stop(); nothing prints here.
 */
export function startWatch(targets: readonly QueryTarget[], opts: DiskQueryOptions, intervalMs: number, onRound: (r: WatchRound) => void, transform: (r: HostResult[]) => HostResult[] = (r) => r): WatchController {
  const stats: HostStats[] = targets.map(() => ({ answers: 0, timeouts: 0, failures: 0 }));
  const first = new Map<string, FirstSample>();
  const latest = new Map<string, Trend | undefined>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let round = 0;
  // One set of sockets for every round: a round costs a datagram each way per host, not a socket.
  const session = opts.classic ? undefined : openDiskSession();

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const started = Date.now();
      const results = transform(await queryDisks(targets, opts, session));
      round += 1;
      results.forEach((r, i) => {
        const s = stats[i]!;
        if (r.ok) {
          s.answers += 1;
          s.last = r;
          if (r.protocol === 'v1') {
            s.dataTime = r.answer.time;
            for (const f of r.answer.filesystems) {
              const key = `${i}\u0000${f.mount}`;
              if (f.error) continue;
              const sample = first.get(key);
              if (!sample) first.set(key, { time: r.answer.time, available: f.available, samples: 1 });
              else {
                sample.samples += 1;
                latest.set(key, trendOf(sample, r.answer.time, f.available));
              }
            }
          }
        } else if (r.error.code === 'TIMEOUT') s.timeouts += 1;
        else s.failures += 1;
      });
      if (stopped) break;
      onRound({ round, time: Date.now(), results, stats, trend: (i, mount) => latest.get(`${i}\u0000${mount}`) });
      const wait = Math.max(0, intervalMs - (Date.now() - started));
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, wait);
      });
    }
  };
  const running = loop().finally(() => session?.close());
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      return running;
    },
  };
}
