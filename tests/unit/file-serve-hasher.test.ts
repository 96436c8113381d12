// The server's hashing worker: the same SHA-256 as node:crypto for chunks of shared pool buffers, in order, many transfers at once.
import { afterAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { BufferPool } from '../../src/services/file/serve/body.js';
import { HashWorker } from '../../src/services/file/serve/hasher.js';

const worker = new HashWorker();
afterAll(() => worker.close());

describe('HashWorker', () => {
  test('interleaved transfers each get the digest of their own bytes, in order; buffers may be reused once update resolves', async () => {
    const pool = new BufferPool(4);
    const inputs = Array.from({ length: 3 }, () => Array.from({ length: 5 }, (_, i) => randomBytes(1 + i * 100_000)));
    const hashers = inputs.map(() => worker.start());
    for (let i = 0; i < 5; i++) {
      await Promise.all(
        hashers.map(async (h, t) => {
          const buf = pool.get();
          const part = inputs[t]![i]!;
          part.copy(buf);
          await h.update(buf.subarray(0, part.length));
          pool.put(buf); // reused at once by the next transfer: the worker is done with it
        }),
      );
    }
    const digests = await Promise.all(hashers.map((h) => h.digest()));
    digests.forEach((d, t) => expect(d.toString('hex')).toBe(createHash('sha256').update(Buffer.concat(inputs[t]!)).digest('hex')));
    expect(pool.outstanding).toBe(0);
  });

  test('an empty transfer has the empty digest; an abandoned one is forgotten; plain (unshared) buffers are refused', async () => {
    expect((await worker.start().digest()).toString('hex')).toBe(createHash('sha256').digest('hex'));
    const dropped = worker.start();
    await dropped.update(new BufferPool(1).get().subarray(0, 10));
    dropped.abandon();
    await expect(worker.start().update(Buffer.alloc(4))).rejects.toThrow(/shared buffers/);
  });
});
