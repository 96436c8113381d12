// A fixed shared buffer that hands out contiguous regions, released in any order and reused oldest first: small files are received into it and written from it by the writer thread, with no allocation or transfer per file.

/** One region of the ring: `data` views [at, at + data.length) of the shared memory. */
export interface Region {
  at: number;
  data: Buffer;
  free: boolean;
}

const EMPTY: Region = { at: 0, data: Buffer.alloc(0), free: true };

/**
 * Regions are taken at the end of the newest one (or, when that is too near the end, at the start, if
 * the oldest one leaves room there). Space is reused once every region older than it is released, so a
 * region released early waits for the ones before it: files are released in about the order they were
 * taken.
 */
export class Ring {
  readonly memory: SharedArrayBuffer;
  private readonly buf: Buffer;
  private readonly live: Region[] = [];

  constructor(readonly size: number) {
    this.memory = new SharedArrayBuffer(size);
    this.buf = Buffer.from(this.memory);
  }

  /** Bytes between the oldest live region and the end of the newest (0 when none is live). */
  get used(): number {
    const first = this.live[0];
    if (!first) return 0;
    const last = this.live[this.live.length - 1]!;
    const end = last.at + last.data.length;
    return last.at >= first.at ? end - first.at : this.size - first.at + end;
  }

  /** No region is live. */
  get empty(): boolean {
    return this.live.length === 0;
  }

  /** A region of `len` bytes, or undefined while the ring has no room for it (`len` must not exceed the size). */
  take(len: number): Region | undefined {
    if (len > this.size) throw new RangeError(`a region of ${len} bytes cannot fit a ring of ${this.size}`);
    if (len === 0) return EMPTY;
    let at: number | undefined;
    const first = this.live[0];
    if (!first) at = 0;
    else {
      const last = this.live[this.live.length - 1]!;
      const end = last.at + last.data.length;
      if (last.at >= first.at) {
        // Not wrapped: room after the newest, else at the start before the oldest.
        if (end + len <= this.size) at = end;
        else if (len <= first.at) at = 0;
      } else if (end + len <= first.at) at = end;
    }
    if (at === undefined) return undefined;
    const r: Region = { at, data: this.buf.subarray(at, at + len), free: false };
    this.live.push(r);
    return r;
  }

  /** Give a region back. */
  release(r: Region): void {
    if (r.free) return;
    r.free = true;
    while (this.live.length > 0 && this.live[0]!.free) this.live.shift();
  }
}
