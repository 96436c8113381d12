// Socket helpers shared by the file server and client: read until a parser is satisfied, drain, write, linger.
import type { Writable } from 'node:stream';
import type { FrameReader } from '../protocol/file-v1.js';
import type { StreamSocket } from '../transport/tcp.js';

/**
 * Slowest rate at which either side is expected to read and hash a resumed prefix [0, OFFSET)
 * (docs/protocol.md 2.6). Each side adds OFFSET / this to the silence it tolerates while the other may
 * still be hashing.
 */
export const PREFIX_HASH_RATE = 32e6;

/** Extra silence allowed to a peer that may be hashing a resumed prefix of `offset` bytes. */
export const prefixAllowanceMs = (offset: number): number => Math.ceil((offset / PREFIX_HASH_RATE) * 1000);

/** How a helper reports the peer going away; each side turns it into its own error type. */
export interface EndFactory {
  closed(what: 'end' | 'close'): Error;
  failed(err: Error): Error;
}

/**
 * Read from the socket into `reader` until `parse` returns a value (parse may throw to reject).
 * The socket is paused again afterwards so no byte is lost between steps: bytes past what `parse`
 * consumed stay in `reader`.
 * `gap`, when given, resolves with `gap.onGap()` after a silence of `gap.ms` following a byte, or at
 * the peer's end of stream once something was received (the classic name has no terminator).
 */
export function readUntil<T>(
  socket: StreamSocket,
  reader: FrameReader,
  parse: () => T | undefined,
  ends: EndFactory,
  gap?: { ms: number; onGap: () => T },
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let gapTimer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (err: unknown, value?: T): void => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (gapTimer) clearTimeout(gapTimer);
      socket.pause();
      if (err) reject(err);
      else resolve(value as T);
    };
    const settle = (fn: () => T | undefined): boolean => {
      try {
        const v = fn();
        if (v !== undefined) {
          finish(undefined, v);
          return true;
        }
      } catch (err) {
        finish(err);
        return true;
      }
      return false;
    };
    const onData = (chunk: Buffer): void => {
      reader.push(chunk);
      if (settle(parse)) return;
      if (gap) {
        if (gapTimer) clearTimeout(gapTimer);
        gapTimer = setTimeout(() => settle(gap.onGap), gap.ms);
      }
    };
    const onEnd = (): void => {
      if (gap && reader.buffered > 0 && settle(gap.onGap)) return;
      finish(ends.closed('end'));
    };
    const onClose = (): void => finish(ends.closed('close'));
    const onError = (e: Error): void => finish(ends.failed(e));
    if (settle(parse)) return;
    // Bytes that arrived with an earlier step count as "a byte": the silence is measured from now.
    if (gap && reader.buffered > 0) gapTimer = setTimeout(() => settle(gap.onGap), gap.ms);
    if (socket.destroyed) {
      finish(ends.closed('close'));
      return;
    }
    if (socket.readableEnded) {
      onEnd();
      return;
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.resume();
  });
}

/** Resolve on 'drain'; reject if the peer goes away first. Any writable: a socket, or an HTTP response on one. */
export function drain(socket: Writable, ends: EndFactory): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(ends.closed('close'));
      return;
    }
    const done = (err?: Error): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(ends.closed('close'));
    const onError = (e: Error): void => done(ends.failed(e));
    socket.on('drain', onDrain);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}

/** Write `bytes` and wait until they are handed to the kernel (or the socket fails). */
export function writeAll(socket: StreamSocket, bytes: Buffer, ends: EndFactory): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(ends.closed('close'));
      return;
    }
    socket.write(bytes, (err) => (err ? reject(ends.failed(err)) : resolve()));
  });
}

/**
 * Half-close after our last byte and keep discarding input for up to `ms`, so that closing with
 * unread input never makes the kernel answer with a reset that destroys our last bytes in flight.
 */
export function linger(socket: StreamSocket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve();
      return;
    }
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('data', () => undefined);
    socket.end();
    socket.resume();
    // With allowHalfOpen, a peer that already ended leaves us to finish the close ourselves.
    if (socket.readableEnded) socket.destroySoon?.();
    socket.once('end', () => socket.destroySoon?.());
  });
}

export function errnoText(err: Error): string {
  return (err as { code?: string }).code ?? err.message;
}
