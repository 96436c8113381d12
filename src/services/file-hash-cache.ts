// Remembered SHA-256 digests of served files, and the resume validator, both derived from a descriptor's fstat.
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';

/**
 * The cache key: any write to the file changes mtime or size, and anything that resets mtime
 * (touch -d, utimes) changes ctime, so an unchanged key means unchanged content.
 */
export function statKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * The resume validator the server hands out: opaque to clients. SHA-256 of (dev, ino, size, mtimeNs),
 * truncated to 16 bytes, so it does not reveal inode numbers. ctime is left out on purpose: a chmod
 * or a rename must not invalidate a partial download of the same bytes.
 */
export function validatorOf(st: BigIntStats): Buffer {
  return createHash('sha256').update(`netkit-validator:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`).digest().subarray(0, 16);
}

/** A bounded least-recently-used map from statKey to the whole file's SHA-256. */
export class HashCache {
  private readonly map = new Map<string, Buffer>();

  constructor(private readonly maxEntries = 4096) {}

  get(st: BigIntStats): Buffer | undefined {
    const key = statKey(st);
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }

  set(st: BigIntStats, digest: Buffer): void {
    const key = statKey(st);
    this.map.delete(key);
    this.map.set(key, digest);
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  get size(): number {
    return this.map.size;
  }
}
