// Where transfers of a served file got to: SHA-256 states of its prefix (Hash.copy()), so a resume hashes forward from the nearest one instead of reading the whole prefix again.
import { createHash, type Hash } from 'node:crypto';
import { statKey, type Identity } from './hash-cache.js';

/** A transfer keeps the state of its prefix each time it has sent this many more bytes. */
export const STATE_STEP = 8 * 1024 * 1024;
/**
 * States kept per file. Past that the file's states are thinned out evenly (the pair closest together
 * loses one), except its three highest: a client resumes from what reached its disk, usually a few MiB
 * behind where the server stopped sending (socket buffers, its write-behind), so the state where the
 * transfer stopped and the two checkpoints below it cover the usual resume within STATE_STEP, and the
 * thinned ones any other within a fraction of the file.
 */
export const STATES_PER_FILE = 32;
const KEEP_HIGHEST = 3;
/** An upper estimate of one kept state's memory (OpenSSL's SHA-256 context, about 600 bytes, the Hash object, the entry). */
export const STATE_COST_BYTES = 1024;
/** States kept in all (about 1 MiB): the least recently used file's go first. */
export const MAX_STATES = 1024;

export interface PrefixStatesOptions {
  /** Most states kept in all (default MAX_STATES); 0 keeps none. */
  maxStates?: number;
  /** Most states kept per file (default STATES_PER_FILE). */
  perFile?: number;
  /** Bytes sent between checkpoints (default STATE_STEP). */
  step?: number;
}

interface Kept {
  offset: number;
  hash: Hash;
}

/** The state whose removal leaves the smallest gap (below the highest KEEP_HIGHEST), in states sorted by offset. */
function thinnest(kept: readonly Kept[]): number {
  let best = 0;
  let gap = Infinity;
  for (let i = 0; i < kept.length - KEEP_HIGHEST; i++) {
    const g = kept[i + 1]!.offset - (i === 0 ? 0 : kept[i - 1]!.offset);
    if (g < gap) {
      gap = g;
      best = i;
    }
  }
  return best;
}

/** The hash to continue from for a transfer from `offset`: a copy of a kept state at `from` (or a new hash at 0). */
export interface PrefixStart {
  from: number;
  hash: Hash;
}

/** Feeds the hash of a transfer and keeps its state at every checkpoint; stop() keeps the state where it stopped. */
export interface StateRecorder {
  update(data: Buffer): StateRecorder;
  stop(): void;
}

/**
 * A bounded least-recently-used table from a file's identity (statKey: dev, ino, size, mtime, ctime) to
 * SHA-256 states of prefixes of it, sorted by offset. The states come only from bytes this server read
 * and sent itself, so a resume that continues from one hashes exactly what the client was sent; a file
 * whose identity changes is a new key, and a transfer that sees its file change drops the old key.
 */
export class PrefixStates {
  private readonly files = new Map<string, Kept[]>();
  private count = 0;
  readonly maxStates: number;
  readonly perFile: number;
  readonly step: number;

  constructor(opts: PrefixStatesOptions = {}) {
    this.maxStates = opts.maxStates ?? MAX_STATES;
    this.perFile = opts.perFile ?? STATES_PER_FILE;
    this.step = opts.step ?? STATE_STEP;
    if (!(this.maxStates >= 0) || !(this.step > 0)) throw new RangeError('invalid PrefixStates options');
  }

  /** States kept now, and their estimated memory. */
  get size(): number {
    return this.count;
  }

  get bytes(): number {
    return this.count * STATE_COST_BYTES;
  }

  /** Where to start hashing for a transfer from `offset`: the kept state nearest at or below it, else byte 0. */
  start(st: Identity, offset: number): PrefixStart {
    const key = statKey(st);
    const kept = this.files.get(key);
    let best: Kept | undefined;
    for (const k of kept ?? []) if (k.offset <= offset && (best === undefined || k.offset > best.offset)) best = k;
    if (kept) {
      this.files.delete(key);
      this.files.set(key, kept);
    }
    return best ? { from: best.offset, hash: best.hash.copy() } : { from: 0, hash: createHash('sha256') };
  }

  /** Keep (a copy of) `hash`, the state of [0, offset) of the file `st`. */
  keep(st: Identity, offset: number, hash: Hash): void {
    if (this.maxStates === 0 || offset <= 0 || offset >= Number(st.size)) return;
    const key = statKey(st);
    const kept = this.files.get(key) ?? [];
    this.files.delete(key);
    this.files.set(key, kept);
    const same = kept.findIndex((k) => k.offset === offset);
    if (same >= 0) return;
    kept.push({ offset, hash: hash.copy() });
    kept.sort((a, b) => a.offset - b.offset);
    this.count += 1;
    while (kept.length > Math.max(KEEP_HIGHEST, this.perFile)) {
      kept.splice(thinnest(kept), 1);
      this.count -= 1;
    }
    while (this.count > this.maxStates) {
      const [oldest, states] = this.files.entries().next().value as [string, Kept[]];
      states.shift();
      this.count -= 1;
      if (states.length === 0) this.files.delete(oldest);
    }
  }

  /** Forget every state of a file (it changed while it was sent). */
  delete(st: Identity): void {
    const key = statKey(st);
    this.count -= this.files.get(key)?.length ?? 0;
    this.files.delete(key);
  }

  /** Wrap `hash`, which holds [0, from) of `st`, to keep its state at every `step` bytes fed and where feeding stops. */
  recorder(st: Identity, from: number, hash: Hash): StateRecorder {
    let at = from;
    let next = (Math.floor(from / this.step) + 1) * this.step;
    let stopped = false;
    const r: StateRecorder = {
      update: (data) => {
        hash.update(data);
        at += data.length;
        if (at >= next && !stopped) {
          this.keep(st, at, hash);
          next = (Math.floor(at / this.step) + 1) * this.step;
        }
        return r;
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        this.keep(st, at, hash);
      },
    };
    return r;
  }
}
