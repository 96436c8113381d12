// SHA-256 off the main thread: one worker hashes, in order, the chunks each transfer reads into shared buffers, while the main thread reads and writes.
import { Worker } from 'node:worker_threads';
import { ConnectionEnd } from './types.js';

/**
 * The worker's whole program. It keeps one running hash per transfer id and answers each chunk as soon
 * as it is hashed, so the chunk's buffer can go back to the pool. Evaluated as a script, so it needs no
 * file of its own next to the bundle.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const running = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'update') {
    let h = running.get(m.id);
    if (!h) running.set(m.id, (h = createHash('sha256')));
    h.update(new Uint8Array(m.buffer, m.offset, m.length));
    parentPort.postMessage({ id: m.id, seq: m.seq });
  } else if (m.op === 'digest') {
    const h = running.get(m.id) ?? createHash('sha256');
    running.delete(m.id);
    parentPort.postMessage({ id: m.id, seq: m.seq, digest: h.digest() });
  } else if (m.op === 'drop') {
    running.delete(m.id);
  }
});
`;

/** One transfer's SHA-256, fed in order. */
export interface ChunkHasher {
  /** Hash `chunk` (a view of a SharedArrayBuffer) after every earlier one; resolves once its bytes may be reused. */
  update(chunk: Buffer): Promise<void>;
  /** The SHA-256 of everything fed so far; the hasher is done after it. */
  digest(): Promise<Buffer>;
  /** Forget a hash that will not be finished. */
  abandon(): void;
}

interface Reply {
  id: number;
  seq: number;
  digest?: Uint8Array;
}

/**
 * The server's hashing worker, started on first use. Hashing on the main thread made a full fetch about
 * half a second per GiB slower, because the main thread also does every socket write; here the two run
 * side by side. Chunks must live in SharedArrayBuffers (BufferPool allocates them so): nothing is copied.
 */
export class HashWorker {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<string, { resolve: (r: Reply) => void; reject: (err: Error) => void }>();

  /** Start hashing a new transfer. */
  start(): ChunkHasher {
    const id = this.nextId++;
    let seq = 0;
    const ask = (msg: Record<string, unknown>): Promise<Reply> => {
      const worker = this.spawn();
      const key = `${id}:${++seq}`;
      return new Promise<Reply>((resolve, reject) => {
        this.pending.set(key, { resolve, reject });
        worker.postMessage({ ...msg, id, seq });
      });
    };
    return {
      update: async (chunk) => {
        if (!(chunk.buffer instanceof SharedArrayBuffer)) throw new TypeError('HashWorker hashes chunks of shared buffers only');
        await ask({ op: 'update', buffer: chunk.buffer, offset: chunk.byteOffset, length: chunk.length });
      },
      digest: async () => Buffer.from((await ask({ op: 'digest' })).digest!),
      abandon: () => this.worker?.postMessage({ op: 'drop', id }),
    };
  }

  /** Stop the worker (a later start() spawns a new one). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private spawn(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    // An idle worker must not keep the process alive: the server's sockets do that.
    worker.unref();
    worker.on('message', (r: Reply) => {
      const key = `${r.id}:${r.seq}`;
      const p = this.pending.get(key);
      this.pending.delete(key);
      p?.resolve(r);
    });
    const fail = (err: Error): void => {
      if (this.worker === worker) this.worker = undefined;
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const p of waiting) p.reject(new ConnectionEnd('error', `the hashing worker failed: ${err.message}`));
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`it exited (${code})`)));
    this.worker = worker;
    return worker;
  }
}
