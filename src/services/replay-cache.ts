// Bounded replay cache for disk-request nonces, and the one call a disk server makes to admit an authenticated datagram.
import type { KeyObject } from 'node:crypto';
import { DEFAULT_WINDOW_MS, DISK_NONCE_LENGTH, checkTimestamp, verifyDiskRequest } from '../protocol/auth.js';

export interface ReplayCacheOptions {
  /** Freshness window in ms: a request is fresh when |now - ts| <= windowMs (default 30 s). */
  windowMs?: number;
  /** Most nonces remembered at once (default 65,536; about 6 MB at worst). */
  maxEntries?: number;
  /**
   * Refuse requests stamped before this time (ms since the epoch) as stale. A server passes its start
   * time: nonces admitted by an earlier run are forgotten, so their requests must not pass again.
   */
  notBeforeMs?: number;
}

export type ReplayVerdict = 'fresh' | 'stale' | 'future' | 'replay';

interface Entry {
  ts: number;
  nonce: string;
}

/**
 * Remembers the nonce of every admitted request until its timestamp leaves the window, so a request
 * recorded off the wire cannot be played again while its timestamp would still pass.
 *
 * Memory is bounded: when the table is full, the entry with the oldest timestamp is dropped and the
 * cache raises a floor to that timestamp; from then on, requests stamped at or before the floor are
 * refused as stale. So a flood (which needs the key: only MAC-verified requests are remembered) can
 * shorten the window but never lets a replay through.
 *
 * The guarantee is for a request as sent: the MAC binds nonce and timestamp together, so a replay
 * repeats both, and the same (nonce, timestamp) is never admitted twice. A remembered nonce is also
 * refused with any other timestamp.
 */
export class ReplayCache {
  readonly windowMs: number;
  readonly maxEntries: number;
  private readonly seen = new Map<string, number>();
  /** Min-heap of entries by timestamp, for pruning and for eviction of the oldest. */
  private readonly heap: Entry[] = [];
  private floor = -Infinity;

  constructor(opts: ReplayCacheOptions = {}) {
    this.windowMs = opts.windowMs ?? DEFAULT_WINDOW_MS;
    this.maxEntries = opts.maxEntries ?? 65_536;
    if (opts.notBeforeMs !== undefined) this.floor = opts.notBeforeMs - 1;
    if (!(this.windowMs > 0)) throw new RangeError('windowMs must be positive');
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
  }

  /** How many nonces are remembered now. */
  get size(): number {
    return this.seen.size;
  }

  /**
   * Judge a request whose MAC has already been verified, and remember its nonce if it is fresh.
   * `timestampMs` is the request's u64 timestamp; `nowMs` is our wall clock (Date.now()).
   */
  admit(nonce: Uint8Array, timestampMs: bigint | number, nowMs: number): ReplayVerdict {
    const time = checkTimestamp(timestampMs, nowMs, this.windowMs);
    if (time !== 'ok') return time;
    const ts = Number(timestampMs);
    this.prune(nowMs);
    if (ts <= this.floor) return 'stale';
    const key = Buffer.from(nonce.buffer, nonce.byteOffset, nonce.length).toString('base64');
    if (this.seen.has(key)) return 'replay';
    while (this.seen.size >= this.maxEntries) {
      const oldest = this.pop()!;
      this.seen.delete(oldest.nonce);
      this.floor = Math.max(this.floor, oldest.ts);
    }
    // If evicting raised the floor past this request, it is the oldest of all: refuse it too.
    if (ts <= this.floor) return 'stale';
    this.seen.set(key, ts);
    this.push({ ts, nonce: key });
    return 'fresh';
  }

  /** Forget nonces whose timestamps can no longer pass the window check. */
  prune(nowMs: number): void {
    const limit = nowMs - this.windowMs;
    while (this.heap.length > 0 && this.heap[0]!.ts < limit) {
      const e = this.pop()!;
      this.seen.delete(e.nonce);
    }
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.ts <= h[i]!.ts) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.ts < h[m]!.ts) m = l;
        if (r < h.length && h[r]!.ts < h[m]!.ts) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

/** Why a disk request was refused; the server drops it without a reply and counts the reason. */
export type DiskAdmission = 'ok' | 'malformed' | 'bad-padding' | 'bad-mac' | 'stale' | 'future' | 'replay';

export interface DiskRequestAuth {
  /** k_disk, from Secret.key('disk'). */
  key: KeyObject;
  /** The whole received datagram. */
  datagram: Uint8Array;
  /** Index in the datagram of the first byte of the MAC value (the last TLV's value). */
  macOffset: number;
  /** The 16-byte nonce TLV value, as parsed. */
  nonce: Uint8Array;
  /** The timestamp TLV value, as parsed (u64 ms since the epoch). */
  timestampMs: bigint | number;
  cache: ReplayCache;
  /** Wall clock now, in ms (Date.now()). */
  nowMs: number;
}

/**
 * Admit an authenticated disk request or say why not, in the order that is cheapest and safe:
 * timestamp first (no crypto for stale junk), then the MAC, and only then the replay cache, so
 * unauthenticated traffic can never fill the cache.
 */
export function admitDiskRequest(a: DiskRequestAuth): DiskAdmission {
  if (a.nonce.length !== DISK_NONCE_LENGTH) return 'malformed';
  const time = checkTimestamp(a.timestampMs, a.nowMs, a.cache.windowMs);
  if (time !== 'ok') return time;
  const mac = verifyDiskRequest(a.key, a.datagram, a.macOffset);
  if (mac !== 'ok') return mac;
  const replay = a.cache.admit(a.nonce, a.timestampMs, a.nowMs);
  return replay === 'fresh' ? 'ok' : replay;
}
