// The idle timeout as a deadline on write progress: a transfer whose client takes no byte for the timeout is cut, on time.
import { performance } from 'node:perf_hooks';
import type { StreamSocket } from '../../../transport/tcp.js';
import type { Conn } from './connections.js';
import { ConnectionEnd } from './types.js';

/**
 * Bytes queued in the socket's libuv handle and not yet taken by the kernel. Node keeps this number
 * (`writeQueueSize`) on every stream handle and uses it for its own socket timeouts; it shrinks as the
 * kernel accepts bytes, which it does only as fast as the client reads. For TLS the raw TCP socket's
 * handle carries the ciphertext, so both are looked at.
 */
function queued(socket: StreamSocket): number {
  return (socket as unknown as { _handle?: { writeQueueSize?: number } | null })._handle?.writeQueueSize ?? 0;
}

/**
 * Why not socket.setTimeout: Node skips the first expiry of a socket timeout while a write is in
 * progress (its own writeQueueSize check), so a client that stops reading mid-write was cut after about
 * twice the timeout. Here a timer samples the send side every tenth of the timeout (10 ms to 1 s):
 * while bytes wait for the client and none of them moved since the last sample, the silence grows;
 * when it reaches the timeout the connection is cut. With nothing waiting for the client (the server
 * is reading or hashing) there is no silence to count. A connection is thus cut between `ms` and
 * `ms` plus one sampling period after the client took its last byte.
 */
export class IdleDeadline {
  private readonly timer: NodeJS.Timeout;
  private last = performance.now();
  private seen = '';
  private moved = 0;
  private allowanceMs: number;

  constructor(
    private readonly conn: Conn,
    private readonly ms: number,
    /** Extra silence allowed until the client first drains what was sent (a resuming client may be hashing its prefix). */
    allowanceMs = 0,
  ) {
    this.allowanceMs = 0;
    this.allow(allowanceMs);
    this.timer = setInterval(() => this.sample(), Math.min(1000, Math.max(10, ms / 10)));
    this.timer.unref();
  }

  /**
   * Allow `ms` more silence until the client next drains what was sent (a session's resumed request:
   * the client may be hashing its prefix before it reads on).
   */
  allow(ms: number): void {
    if (ms <= 0) return;
    if (this.allowanceMs === 0) this.conn.socket.once('drain', () => (this.allowanceMs = 0));
    this.allowanceMs = Math.max(this.allowanceMs, ms);
  }

  /** A write was handed to the kernel (its callback ran): progress, whatever the queues say. */
  progress(): void {
    this.moved += 1;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    const { socket, raw } = this.conn;
    const now = performance.now();
    const waiting = socket.writableLength + queued(socket) + (raw === socket ? 0 : queued(raw));
    const state = `${socket.writableLength}:${queued(socket)}:${queued(raw)}:${this.moved}`;
    if (waiting === 0 || state !== this.seen) {
      this.seen = state;
      this.last = now;
      return;
    }
    const limit = this.ms + this.allowanceMs;
    if (now - this.last >= limit) {
      this.stop();
      this.conn.cut(new ConnectionEnd('timeout', `the client read nothing for ${limit / 1000}s`));
    }
  }
}
