// A session's requests as they arrive: the socket flows into a frame reader until a cap of unparsed bytes, then waits in the kernel until the session takes frames out.
import type { Frame, FrameReader } from '../../../protocol/file-v1.js';
import type { StreamSocket } from '../../../transport/tcp.js';
import { ENDS } from './session.js';

/**
 * Reads ahead at most `cap` bytes of frames the session has not taken yet: a client that pipelines a
 * flood of requests fills its own socket buffers, not the server's memory. poll() hands out whole
 * frames (and throws TOO_LARGE for an oversize header); wait() sleeps until more bytes or the
 * client's end of stream arrive.
 */
export class RequestInput {
  /** The client half-closed: no request will follow what is buffered. */
  ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;
  private expired = false;

  constructor(
    private readonly socket: StreamSocket,
    private readonly reader: FrameReader,
    private readonly cap: number,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    if (socket.readableEnded) this.ended = true;
    this.flow();
  }

  /** The next whole frame buffered, or undefined. */
  poll(): Frame | undefined {
    const f = this.reader.next();
    this.flow();
    return f;
  }

  /**
   * Resolve 'more' when bytes or the end of stream arrive (at once if the stream already ended),
   * 'timeout' after `ms` of nothing, 'stop' after expire(); reject when the connection fails or closes.
   */
  wait(ms?: number): Promise<'more' | 'timeout' | 'stop'> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve('more');
    return new Promise((resolve, reject) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done('timeout'), ms);
      const done = (why: 'more' | 'timeout'): void => {
        clearTimeout(timer);
        this.wake = undefined;
        if (this.failure && why === 'more') reject(this.failure);
        else resolve(this.expired ? 'stop' : why);
      };
      this.wake = () => done('more');
    });
  }

  /** Wake a wait() now with 'stop' (the server is shutting down). */
  expire(): void {
    this.expired = true;
    this.wake?.();
  }

  /** Detach from the socket (before the linger takes it over), leaving it paused. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    this.socket.pause();
  }

  private flow(): void {
    if (this.stopped || this.ended) return;
    if (this.reader.buffered < this.cap) this.socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.reader.push(chunk);
    if (this.reader.buffered >= this.cap) this.socket.pause();
    this.wake?.();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake?.();
  };

  private readonly onClose = (): void => {
    this.failure ??= ENDS.closed('close');
    this.wake?.();
  };

  private readonly onError = (err: Error): void => {
    this.failure ??= ENDS.failed(err);
    this.wake?.();
  };
}
