// Reading a served file and streaming it: shared read buffers, one read in flight ahead of the socket, hashing on the worker while the kernel sends, backpressure.
import type { promises as fsp } from 'node:fs';
import type { StreamSocket } from '../../../transport/tcp.js';
import { drain } from '../../file-stream.js';
import type { ChunkHasher } from './hasher.js';
import { ENDS } from './session.js';
import { ConnectionEnd } from './types.js';

/** Bytes read from the file per read(); large reads and large hash updates are what make SHA-256 fast. */
const CHUNK = 1024 * 1024;
/** What a connection reads with when the shared pool is exhausted. */
const SMALL_CHUNK = 128 * 1024;
/** How many chunks the hashing worker may lag behind the reads before the transfer waits for it. */
const MAX_HASH_LAG = 4;

/** A buffer the hashing worker can read without a copy. */
const shared = (size: number): Buffer => Buffer.from(new SharedArrayBuffer(size));

/**
 * Read buffers shared by every connection: 1 MiB each, at most `max` of them in use at once, so memory
 * stays bounded however many clients there are. Past that a connection gets a small unpooled buffer
 * instead of waiting: a few clients that stop reading can slow others down, never stall them. A buffer
 * goes back only when socket.write says the kernel has its bytes and the hashing worker is done with
 * them. Every buffer is a SharedArrayBuffer, which the worker reads in place.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private inUse = 0;

  constructor(private readonly max = 24) {}

  get(): Buffer {
    if (this.inUse >= this.max) return shared(SMALL_CHUNK);
    this.inUse += 1;
    return this.free.pop() ?? shared(CHUNK);
  }

  put(buf: Buffer): void {
    if (buf.length !== CHUNK) return;
    this.inUse -= 1;
    this.free.push(buf);
  }

  /** Buffers handed out and not yet returned (for tests). */
  get outstanding(): number {
    return this.inUse;
  }
}

/** The whole pooled buffer behind a chunk that readChunks yielded. */
export function wholeOf(chunk: Buffer): Buffer {
  return Buffer.from(chunk.buffer, 0, chunk.buffer.byteLength);
}

/**
 * Read [from, to) of the file with one read always in flight ahead of the consumer. Each chunk's
 * buffer belongs to the consumer, who returns it with pool.put(wholeOf(chunk)); a read still in
 * flight when the consumer stops is returned here. A file that shrinks under us ends the exchange as
 * 'changed': the bytes the RESPONSE promised no longer exist.
 */
export async function* readChunks(handle: fsp.FileHandle, from: number, to: number, pool: BufferPool): AsyncGenerator<Buffer> {
  const readAt = async (pos: number): Promise<Buffer> => {
    const buf = pool.get();
    const len = Math.min(buf.length, to - pos);
    try {
      let got = 0;
      while (got < len) {
        const { bytesRead } = await handle.read(buf, got, len - got, pos + got);
        if (bytesRead === 0) throw new ConnectionEnd('changed', `the file shrank while being sent (at byte ${pos + got} of ${to})`);
        got += bytesRead;
      }
    } catch (err) {
      pool.put(buf);
      throw err;
    }
    return buf.subarray(0, len);
  };
  let pos = from;
  let pending = pos < to ? readAt(pos) : undefined;
  // Avoid an unhandled rejection if the consumer stops early while a read is in flight.
  pending?.catch(() => undefined);
  try {
    while (pending) {
      const chunk = await pending;
      pos += chunk.length;
      pending = pos < to ? readAt(pos) : undefined;
      pending?.catch(() => undefined);
      yield chunk;
    }
  } finally {
    if (pending) {
      const late = await pending.catch(() => undefined);
      if (late) pool.put(wholeOf(late));
    }
  }
}

/** Feed [from, to) of the file to `hasher` without sending it (a resumed prefix); stops if the client leaves. */
export async function hashRange(socket: StreamSocket, handle: fsp.FileHandle, from: number, to: number, pool: BufferPool, hasher: ChunkHasher): Promise<void> {
  const lag: Promise<void>[] = [];
  for await (const chunk of readChunks(handle, from, to, pool)) {
    const whole = wholeOf(chunk);
    const hashed = hasher.update(chunk);
    hashed.then(
      () => pool.put(whole),
      () => pool.put(whole),
    );
    lag.push(hashed);
    if (socket.destroyed) throw new ConnectionEnd('aborted', 'the client went away while the server hashed the resumed prefix');
    while (lag.length > MAX_HASH_LAG) await lag.shift();
  }
  await Promise.all(lag);
}

export interface SendOptions {
  pool: BufferPool;
  /** Fed every byte sent, when given. */
  hasher?: ChunkHasher;
  /** The running count of body bytes written. */
  onSent?: (sent: number) => void;
  /** A chunk was handed to the kernel. */
  onFlushed?: () => void;
}

/**
 * Send [from, to) of the file, respecting backpressure from the socket and from the hashing worker.
 * Returns the number of bytes sent once every one of them is also hashed.
 */
export async function sendBody(socket: StreamSocket, handle: fsp.FileHandle, from: number, to: number, opts: SendOptions): Promise<number> {
  const { pool, hasher } = opts;
  const lag: Promise<void>[] = [];
  let sent = 0;
  for await (const chunk of readChunks(handle, from, to, pool)) {
    const whole = wholeOf(chunk);
    if (socket.destroyed) {
      pool.put(whole);
      throw new ConnectionEnd('aborted', `the client went away after ${sent} bytes`);
    }
    // The buffer goes back once the kernel has its bytes and the worker has hashed them.
    let holds = hasher ? 2 : 1;
    const release = (): void => {
      if (--holds === 0) pool.put(whole);
    };
    // The callback runs even when the write fails: a destroyed socket calls back with an error, once.
    const ok = socket.write(chunk, () => {
      release();
      opts.onFlushed?.();
    });
    if (hasher) {
      const hashed = hasher.update(chunk);
      hashed.then(release, release);
      lag.push(hashed);
    }
    sent += chunk.length;
    opts.onSent?.(sent);
    if (!ok) {
      try {
        await drain(socket, ENDS);
      } catch (err) {
        if (err instanceof ConnectionEnd) throw new ConnectionEnd(err.outcome, `${err.detail} after ${sent} bytes`);
        throw err;
      }
    }
    while (lag.length > MAX_HASH_LAG) await lag.shift();
  }
  await Promise.all(lag);
  return sent;
}
