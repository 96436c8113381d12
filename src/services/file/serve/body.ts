// Reading a served file and streaming it: shared read buffers, one read in flight ahead of the socket, hashing while the kernel sends, backpressure.
import type { Hash } from 'node:crypto';
import type { promises as fsp } from 'node:fs';
import type { Writable } from 'node:stream';
import type { StreamSocket } from '../../../transport/tcp.js';
import { drain } from '../../file-stream.js';
import { ENDS } from './session.js';
import { ConnectionEnd } from './types.js';

/** Bytes read from the file per read(); large reads and large hash updates are what make SHA-256 fast. */
const CHUNK = 1024 * 1024;
/** What a connection reads with when the shared pool is exhausted. */
const SMALL_CHUNK = 64 * 1024;

/**
 * Read buffers shared by every connection: 1 MiB each, at most `max` of them in use at once (four
 * transfers reading ahead at full size), so memory stays bounded however many clients there are. Past
 * that a connection gets a 64 KiB buffer instead of waiting: a few clients that stop reading can slow
 * others down, never stall them. Small buffers are kept for reuse too (up to `maxSmallFree` idle ones):
 * allocating and freeing a block per read fragments the C heap, and a hundred concurrent range requests
 * then grow the server's RSS with each batch (docs/benchmarks.md, the HTTP part). A buffer goes back only
 * when socket.write says the kernel has its bytes.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly smallFree: Buffer[] = [];
  private inUse = 0;

  constructor(
    private readonly max = 8,
    private readonly maxSmallFree = 64,
  ) {}

  get(): Buffer {
    if (this.inUse >= this.max) return this.smallFree.pop() ?? Buffer.allocUnsafeSlow(SMALL_CHUNK);
    this.inUse += 1;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
  }

  put(buf: Buffer): void {
    if (buf.length === SMALL_CHUNK) {
      if (this.smallFree.length < this.maxSmallFree) this.smallFree.push(buf);
      return;
    }
    if (buf.length !== CHUNK) return;
    this.inUse -= 1;
    this.free.push(buf);
  }

  /** 1 MiB buffers handed out and not yet returned (for tests). */
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

/** Feed [from, to) of the file to `hash` without sending it (a resumed prefix); stops if the client leaves. */
export async function hashRange(socket: StreamSocket, handle: fsp.FileHandle, from: number, to: number, pool: BufferPool, hash: Hash): Promise<void> {
  for await (const chunk of readChunks(handle, from, to, pool)) {
    hash.update(chunk);
    pool.put(wholeOf(chunk));
    if (socket.destroyed) throw new ConnectionEnd('aborted', 'the client went away while the server hashed the resumed prefix');
  }
}

export interface SendOptions {
  pool: BufferPool;
  /** Fed every byte sent, when given (a Hash, or something that keeps its states on the way). */
  hash?: { update(data: Buffer): unknown };
  /** The running count of body bytes written. */
  onSent?: (sent: number) => void;
  /** A chunk was handed to the kernel. */
  onFlushed?: () => void;
}

/**
 * Send [from, to) of the file, respecting backpressure, to a socket or to an HTTP response body (whose
 * write callbacks are the socket's). Returns the number of bytes sent.
 */
export async function sendBody(socket: Writable, handle: fsp.FileHandle, from: number, to: number, opts: SendOptions): Promise<number> {
  const { pool, hash } = opts;
  let sent = 0;
  for await (const chunk of readChunks(handle, from, to, pool)) {
    const whole = wholeOf(chunk);
    if (socket.destroyed) {
      pool.put(whole);
      throw new ConnectionEnd('aborted', `the client went away after ${sent} bytes`);
    }
    // Returned even when the write fails: a destroyed socket calls back with an error, once.
    const ok = socket.write(chunk, () => {
      pool.put(whole);
      opts.onFlushed?.();
    });
    // Hash while the kernel sends what write() could not push out synchronously.
    hash?.update(chunk);
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
  }
  return sent;
}
