// Remembered SHA-256 digests of served files, the resume validator, and the file identity checked after a transfer: all from a descriptor's fstat.
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';

/** The fstat fields the identity, the validator and the cache key are made of. */
export type Identity = Pick<BigIntStats, 'dev' | 'ino' | 'size' | 'mtimeNs' | 'ctimeNs'>;

/**
 * The file's identity as fstat sees it: device, inode, size, mtime and ctime. Any write through
 * write(2) changes mtime or size, and anything that resets mtime (touch -d, utimes) changes ctime. A
 * write through a shared mmap may change none of them (the kernel updates mtime only on the first
 * write fault of a clean page), so an unchanged identity does not prove unchanged content: see
 * HashCache for what that means for the cache.
 */
export function statKey(st: Identity): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * What changed between two fstat results of one open descriptor, for the log and the CHANGED message;
 * undefined when the identity is the same.
 */
export function identityChange(before: Identity, after: Identity): string | undefined {
  if (before.dev !== after.dev || before.ino !== after.ino) return 'it was replaced by another file';
  if (before.size !== after.size) return `its size went from ${before.size} to ${after.size} bytes`;
  if (before.mtimeNs !== after.mtimeNs) return 'it was modified';
  if (before.ctimeNs !== after.ctimeNs) return 'its status changed (ctime)';
  return undefined;
}

/**
 * The resume validator the server hands out: opaque to clients. SHA-256 of (dev, ino, size, mtimeNs),
 * truncated to 16 bytes, so it does not reveal inode numbers. ctime is left out on purpose: a chmod
 * or a rename must not invalidate a partial download of the same bytes.
 */
export function validatorOf(st: Identity): Buffer {
  return createHash('sha256').update(`netkit-validator:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`).digest().subarray(0, 16);
}

/**
 * A bounded least-recently-used map from statKey to the whole file's SHA-256. The server uses it only
 * where hashing would mean reading bytes it does not send (a resume's prefix [0, OFFSET)); a full
 * fetch always sends the hash of the bytes it read, and drops an entry that disagrees with it, so an
 * mmap write that leaves the identity alone cannot make a stale digest outlive the content.
 */
export class HashCache {
  private readonly map = new Map<string, Buffer>();

  constructor(private readonly maxEntries = 4096) {}

  get(st: Identity): Buffer | undefined {
    const key = statKey(st);
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }

  set(st: Identity, digest: Buffer): void {
    const key = statKey(st);
    this.map.delete(key);
    this.map.set(key, digest);
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  delete(st: Identity): void {
    this.map.delete(statKey(st));
  }

  get size(): number {
    return this.map.size;
  }
}
