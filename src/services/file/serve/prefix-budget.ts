// Bounds on hashing resumed prefixes: one at a time per source, and a per-source byte budget that refills over time.
import { performance } from 'node:perf_hooks';
import { PREFIX_HASH_RATE } from '../../file-stream.js';
import type { Clock } from '../../limits.js';

/**
 * A resume at OFFSET makes the server read and hash [0, OFFSET) before it sends a byte: a request of
 * about 100 bytes can cost seconds of CPU and disk. Sources are held to PREFIX_RATE bytes of such
 * hashing per second on average (the rate the protocol already assumes for hashing a prefix), with
 * a credit of PREFIX_BURST for a source that has been quiet, and to one prefix at a time.
 */
export const PREFIX_RATE = PREFIX_HASH_RATE;
export const PREFIX_BURST = 256 * 1024 * 1024;

export interface PrefixBudgetOptions {
  /** Bytes per second of prefix hashing a source earns back (default PREFIX_RATE). */
  bytesPerSec?: number;
  /** The most credit a source holds (default PREFIX_BURST). */
  burstBytes?: number;
  /** Most sources tracked; a table full of sources still in debt refuses new ones (default 4,096). */
  maxSources?: number;
  clock?: Clock;
}

export type PrefixAdmission =
  | { ok: true; /** The prefix is hashed (or abandoned): the source may start another. */ release: () => void }
  | { ok: false; why: string; retryAfterMs: number };

interface Account {
  /** Credit in bytes; negative while the source is in debt for a prefix larger than its credit. */
  level: number;
  at: number;
  running: boolean;
}

/**
 * The budget. A source may start hashing a prefix when it has none running and its credit is above
 * zero; the start charges the whole prefix, which may leave it in debt (so one large resume is always
 * possible, and pays for itself afterwards). Credit comes back at bytesPerSec up to burstBytes.
 * Sustained, a source therefore gets at most bytesPerSec of prefix hashing, whatever it sends.
 */
export class PrefixHashBudget {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxSources: number;
  private readonly clock: Clock;
  private readonly table = new Map<string, Account>();

  constructor(opts: PrefixBudgetOptions = {}) {
    this.rate = opts.bytesPerSec ?? PREFIX_RATE;
    this.burst = opts.burstBytes ?? PREFIX_BURST;
    this.maxSources = opts.maxSources ?? 4096;
    this.clock = opts.clock ?? (() => performance.now());
    if (!(this.rate > 0) || !(this.burst >= 0) || !(this.maxSources >= 1)) throw new RangeError('invalid PrefixHashBudget options');
  }

  /** Ask to hash `bytes` of prefix for `source` (a key from sourceKey()). */
  tryStart(source: string, bytes: number): PrefixAdmission {
    const now = this.clock();
    let a = this.table.get(source);
    if (a) this.refill(a, now);
    else {
      if (this.table.size >= this.maxSources) this.sweep(now);
      if (this.table.size >= this.maxSources) return { ok: false, why: 'the server is hashing resumed prefixes for too many addresses', retryAfterMs: 1000 };
      a = { level: this.burst, at: now, running: false };
      this.table.set(source, a);
    }
    if (a.running) return { ok: false, why: 'the server is already hashing a resumed prefix for your address', retryAfterMs: 1000 };
    if (a.level <= 0) {
      return { ok: false, why: 'your address has used its budget for hashing resumed prefixes', retryAfterMs: Math.ceil(((1 - a.level) / this.rate) * 1000) };
    }
    a.level -= bytes;
    a.running = true;
    let released = false;
    const account = a;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        account.running = false;
      },
    };
  }

  /** How many sources are tracked (for tests). */
  get size(): number {
    return this.table.size;
  }

  private refill(a: Account, now: number): void {
    a.level = Math.min(this.burst, a.level + ((now - a.at) * this.rate) / 1000);
    a.at = now;
  }

  /** Forget sources whose credit is full again and that run nothing: the same as never seen. */
  private sweep(now: number): void {
    for (const [source, a] of this.table) {
      this.refill(a, now);
      if (!a.running && a.level >= this.burst) this.table.delete(source);
    }
  }
}
