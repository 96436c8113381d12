// Per-source token buckets, so one sender cannot monopolise the disk server; the table has a hard size.

export interface RateLimitOptions {
  /** Requests per second each source may make on average; 0 turns limiting off. */
  perSecond: number;
  /** How many requests a quiet source may make at once (default: one second's worth). */
  burst?: number;
  /** Most sources tracked at a time; the oldest entry is forgotten when a new one arrives. */
  maxSources?: number;
  /** Loopback senders (this machine's own users and benchmarks) are not limited. */
  exemptLoopback?: boolean;
  now?: () => number;
}

export const RateVerdict = {
  /** Serve it. */
  OK: 0,
  /** Over the limit: answer RATE_LIMITED (at most once per second per source). */
  NOTIFY: 1,
  /** Over the limit: drop silently. */
  DROP: 2,
} as const;
export type RateVerdict = (typeof RateVerdict)[keyof typeof RateVerdict];

interface Bucket {
  tokens: number;
  last: number;
  notified: number;
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private readonly max: number;
  private readonly exemptLoopback: boolean;
  private readonly now: () => number;

  constructor(opts: RateLimitOptions) {
    this.rate = opts.perSecond;
    this.burst = Math.max(1, opts.burst ?? opts.perSecond);
    this.max = Math.max(1, opts.maxSources ?? 4096);
    this.exemptLoopback = opts.exemptLoopback ?? true;
    this.now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.rate > 0;
  }

  /** Sources currently tracked (for tests: it never exceeds maxSources). */
  get size(): number {
    return this.buckets.size;
  }

  take(address: string): RateVerdict {
    if (this.rate <= 0 || (this.exemptLoopback && isLoopback(address))) return RateVerdict.OK;
    const now = this.now();
    let b = this.buckets.get(address);
    if (!b) {
      if (this.buckets.size >= this.max) {
        // Maps iterate in insertion order: drop the oldest. Spoofed sources can churn the table,
        // but each then only gets one burst, and replies are never larger than requests.
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      b = { tokens: this.burst, last: now, notified: -Infinity };
      this.buckets.set(address, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.last) * this.rate) / 1000);
      b.last = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return RateVerdict.OK;
    }
    if (now - b.notified >= 1000) {
      b.notified = now;
      return RateVerdict.NOTIFY;
    }
    return RateVerdict.DROP;
  }
}
