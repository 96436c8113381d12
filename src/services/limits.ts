// Abuse limits shared by both servers: source keys, per-source failure throttling, and the UDP token-bucket rate limiter; every table is bounded.
import { isIPv4, isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';

/** A monotonic clock in milliseconds; injectable so tests need no timers. */
export type Clock = () => number;
const monotonic: Clock = () => performance.now();

/**
 * The key under which a peer is counted. IPv4 addresses (also IPv4-mapped IPv6, "::ffff:1.2.3.4")
 * count alone; an IPv6 address counts by its /64, because one host can pick any address in its /64
 * and would otherwise get a fresh allowance per address. Zone ids ("%eth0") are dropped.
 */
export function sourceKey(address: string): string {
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv4(bare)) return bare;
  if (!isIPv6(bare)) return bare;
  return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
}

function expandIPv6(addr: string): string[] {
  let text = addr.toLowerCase();
  // An embedded IPv4 tail ("::1.2.3.4") becomes two hextets.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((x) => x.replace(/^0+(?=.)/, ''));
}

// ---------------------------------------------------------------------------------------------
// Failure throttling
// ---------------------------------------------------------------------------------------------

export interface FailureThrottleOptions {
  /** Delay after the first failure; doubles with each further one (default 250 ms). */
  baseDelayMs?: number;
  /** The cap on the delay (default 30 s). */
  maxDelayMs?: number;
  /** A source with no failure for this long starts again from zero (default 15 min). */
  forgetAfterMs?: number;
  /** Most sources tracked; the least recently failing is forgotten first (default 10,000). */
  maxSources?: number;
  clock?: Clock;
}

export interface FailureRecord {
  /** Consecutive failures of this source, counting this one. */
  failures: number;
  /** How long to hold this source off from now: delay the refusal by it, or refuse new attempts until then. */
  delayMs: number;
}

interface FailureEntry {
  failures: number;
  last: number;
  blockedUntil: number;
}

/**
 * Per-source accounting of failed authentication attempts with exponential back-off:
 * after n failures the source is held off for min(max, base * 2^(n-1)) ms. The service chooses how
 * to apply it: wait `delayMs` before sending the refusal, and/or refuse new attempts while
 * `blockedFor(source) > 0`. Keys should come from sourceKey().
 */
export class FailureThrottle {
  private readonly base: number;
  private readonly max: number;
  private readonly forget: number;
  private readonly maxSources: number;
  private readonly clock: Clock;
  private readonly table = new Map<string, FailureEntry>();

  constructor(opts: FailureThrottleOptions = {}) {
    this.base = opts.baseDelayMs ?? 250;
    this.max = opts.maxDelayMs ?? 30_000;
    this.forget = opts.forgetAfterMs ?? 15 * 60_000;
    this.maxSources = opts.maxSources ?? 10_000;
    this.clock = opts.clock ?? monotonic;
    if (!(this.base >= 0) || !(this.max >= this.base) || !(this.forget > 0) || !(this.maxSources >= 1)) {
      throw new RangeError('invalid FailureThrottle options');
    }
  }

  /** The delay for the n-th consecutive failure (n >= 1). */
  delayAfter(failures: number): number {
    if (failures <= 0) return 0;
    // Cap the exponent: 2^1024 is Infinity, and 0 * Infinity (a zero base) would be NaN.
    return Math.min(this.max, this.base * 2 ** Math.min(failures - 1, 52));
  }

  /** Count a failure and return the hold-off it earns. */
  recordFailure(source: string): FailureRecord {
    const now = this.clock();
    let e = this.live(source, now);
    if (e) {
      this.table.delete(source); // re-inserted below: Map order is least recently failing first
    } else {
      e = { failures: 0, last: now, blockedUntil: now };
      while (this.table.size >= this.maxSources) this.table.delete(this.table.keys().next().value!);
    }
    e.failures += 1;
    e.last = now;
    const delayMs = this.delayAfter(e.failures);
    e.blockedUntil = now + delayMs;
    this.table.set(source, e);
    return { failures: e.failures, delayMs };
  }

  /** A successful authentication clears the source's record. */
  recordSuccess(source: string): void {
    this.table.delete(source);
  }

  /** Milliseconds until this source may try again (0 = now). */
  blockedFor(source: string): number {
    const now = this.clock();
    const e = this.live(source, now);
    return e ? Math.max(0, e.blockedUntil - now) : 0;
  }

  /** Consecutive failures currently on record for this source. */
  failures(source: string): number {
    return this.live(source, this.clock())?.failures ?? 0;
  }

  /** How many sources are tracked. */
  get size(): number {
    return this.table.size;
  }

  private live(source: string, now: number): FailureEntry | undefined {
    const e = this.table.get(source);
    if (e && now - e.last >= this.forget) {
      this.table.delete(source);
      return undefined;
    }
    return e;
  }
}

// ---------------------------------------------------------------------------------------------
// UDP rate limiting
// ---------------------------------------------------------------------------------------------

export interface RateLimitOptions {
  /** Sustained datagrams per second allowed from one source (default 50); 0 turns limiting off. */
  ratePerSec?: number;
  /** Bucket size: how many may arrive back to back (default 100). */
  burst?: number;
  /** Most sources tracked (default 10,000). When full, a new source takes the place of the fullest of the oldest few. */
  maxSources?: number;
  /** check() lets loopback senders (this machine's own users, benchmarks) through unlimited (default false). */
  exemptLoopback?: boolean;
  clock?: Clock;
}

/** What check() says about one datagram. */
export const RateVerdict = {
  /** Serve it. */
  OK: 0,
  /** Over the limit: answer RATE_LIMITED (at most once per second per bucket). */
  NOTIFY: 1,
  /** Over the limit: drop silently. */
  DROP: 2,
} as const;
export type RateVerdict = (typeof RateVerdict)[keyof typeof RateVerdict];

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. Cheap on purpose: it runs first on the disk hot path. */
export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

interface Bucket {
  tokens: number;
  at: number;
  /** When this bucket last earned a NOTIFY verdict. */
  notified: number;
}

/** How many of the least recently seen buckets are looked at to pick one to forget when the table is full. */
const EVICTION_SAMPLE = 8;

/**
 * A token bucket per source. The table is bounded: a bucket untouched for burst/rate seconds is full
 * again, which is the same as absent, so it is dropped. If the table is still full (say, a flood from
 * spoofed addresses), a new source takes the place of one of the least recently seen: among the
 * oldest EVICTION_SAMPLE, the one with the most tokens left. So every new source gets its own bucket
 * (a spoofed flood cannot starve fresh clients, as a shared overflow bucket would), memory stays
 * bounded, and a drained sender is the last to be forgotten: churning the table with spoofed
 * sources, each of which spent one token, evicts them before it, so it does not get a fresh burst.
 */
export class RateLimiter {
  readonly ratePerSec: number;
  readonly burst: number;
  readonly maxSources: number;
  readonly exemptLoopback: boolean;
  private readonly clock: Clock;
  private readonly table = new Map<string, Bucket>();
  /** The verdict of the last spendFor(). */
  private lastOk = false;

  constructor(opts: RateLimitOptions = {}) {
    this.ratePerSec = opts.ratePerSec ?? 50;
    this.burst = opts.burst ?? 100;
    this.maxSources = opts.maxSources ?? 10_000;
    this.exemptLoopback = opts.exemptLoopback ?? false;
    this.clock = opts.clock ?? monotonic;
    if (!(this.ratePerSec >= 0) || !(this.burst >= 1) || !(this.maxSources >= 1)) throw new RangeError('invalid RateLimiter options');
  }

  /** False when the rate is 0: everything passes. */
  get enabled(): boolean {
    return this.ratePerSec > 0;
  }

  /** Take one token for a datagram from `source` (a key from sourceKey()): true to process it, false to drop it. */
  take(source: string): boolean {
    if (!(this.ratePerSec > 0)) return true;
    this.spendFor(source, this.clock());
    return this.lastOk;
  }

  /**
   * The server's entry point: one datagram from `address` (a raw peer address). Loopback passes when
   * exempt; others are counted under sourceKey(address). Past the limit, the first datagram in each
   * second earns NOTIFY (a small typed refusal), the rest DROP.
   */
  check(address: string): RateVerdict {
    if (!(this.ratePerSec > 0) || (this.exemptLoopback && isLoopback(address))) return RateVerdict.OK;
    const now = this.clock();
    const b = this.spendFor(sourceKey(address), now);
    if (this.lastOk) return RateVerdict.OK;
    if (now - b.notified >= 1000) {
      b.notified = now;
      return RateVerdict.NOTIFY;
    }
    return RateVerdict.DROP;
  }

  /** How many sources have their own bucket. */
  get size(): number {
    return this.table.size;
  }

  /** Spend a token from `key`'s bucket (made if absent); the verdict is left in lastOk (no allocation per datagram). */
  private spendFor(key: string, now: number): Bucket {
    let b = this.table.get(key);
    if (b) {
      this.table.delete(key); // re-inserted below: Map order is least recently seen first
    } else {
      this.sweep(now);
      if (this.table.size >= this.maxSources) this.evictOne(now);
      b = { tokens: this.burst, at: now, notified: -Infinity };
    }
    this.lastOk = this.spend(b, now);
    this.table.set(key, b);
    return b;
  }

  /** Forget the bucket with the most tokens among the least recently seen few. */
  private evictOne(now: number): void {
    let victim: string | undefined;
    let most = -Infinity;
    let seen = 0;
    for (const [key, b] of this.table) {
      const tokens = b.tokens + ((now - b.at) * this.ratePerSec) / 1000;
      if (tokens > most) {
        most = tokens;
        victim = key;
      }
      if (++seen >= EVICTION_SAMPLE) break;
    }
    if (victim !== undefined) this.table.delete(victim);
  }

  private spend(b: Bucket, now: number): boolean {
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.ratePerSec) / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drop buckets that have refilled, oldest first; stops at the first one still draining. */
  private sweep(now: number): void {
    const refillMs = (this.burst * 1000) / this.ratePerSec;
    for (const [key, b] of this.table) {
      if (now - b.at < refillMs) break;
      this.table.delete(key);
    }
  }
}
