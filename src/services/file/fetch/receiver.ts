// One connection of a fetch: bytes from the socket into frames or straight into the partial file, the end of the connection as an error, and the stall guard.
import { NetkitError, isNetkitError } from '../../../errors.js';
import { FrameReader, FrameType, type Frame } from '../../../protocol/file-v1.js';
import { feedSink, sinkAttached, socketError, type ConnectOptions as TransportConnectOptions, type ReadSink, type StreamSocket, type StreamTransport } from '../../../transport/tcp.js';
import type { EndFactory } from '../../file-stream.js';

/** Where a body's bytes go: the partial file's writer (large files) or a buffer in memory (small ones). */
export interface BodySink {
  /** Room for the next read, at most `max` bytes. */
  region(max: number): Buffer;
  /** `n` bytes were read into the last region(). */
  commit(n: number): void;
  push(chunk: Buffer): void;
  /** True while the socket should pause (the disk is behind). */
  readonly high: boolean;
  readonly failed: NetkitError | undefined;
  onResume: () => void;
  onFail: (err: NetkitError) => void;
}

/** Most header-phase bytes buffered before the socket is paused. */
const HEADER_BUFFER_LIMIT = 64 * 1024;
/**
 * Bodies at least this long are read straight into the sink; shorter ones (many small files in a
 * row) land in scratch with the frames around them, so a read is never cut short at a small body.
 */
const DIRECT_MIN = 64 * 1024;
/** Slowest average rate, over a whole --timeout, that still counts as a live transfer (a dripping server stalls). */
export const MIN_RATE = 1024;

/**
 * The server is alive but too slow to be worth waiting for: it dripped its handshake or its answer past
 * the deadline, or its body at less than MIN_RATE. A retry is allowed once; twice in a row ends the fetch.
 */
export class SlowPeerError extends NetkitError {
  /** Set when it ends the fetch because the previous attempt was too slow as well. */
  repeated = false;

  constructor(message: string, hint: string) {
    super('TIMEOUT', message, hint);
  }
}

/** A FrameReader that tells the connection when the first RESPONSE (the server's answer) is read. */
class AnswerReader extends FrameReader {
  onAnswer: (() => void) | undefined;

  override next(): Frame | undefined {
    const f = super.next();
    if (f !== undefined && this.onAnswer !== undefined && f.type === FrameType.RESPONSE) {
      const answered = this.onAnswer;
      this.onAnswer = undefined;
      answered();
    }
    return f;
  }
}

/**
 * The client's side of one connection, as a ReadSink: header bytes land in a small scratch buffer
 * and go to a FrameReader; large bodies land directly in the sink's buffers (no copy, no
 * allocation per read); whatever follows the body lands in scratch again (the trailer).
 */
export class Receiver implements ReadSink {
  readonly reader = new AnswerReader();
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private body: { remaining: number; writer: BodySink; resolve: () => void; onBytes: (n: number) => void } | undefined;
  private bodyRead = false;
  private wake: (() => void) | undefined;
  socket: StreamSocket | undefined;
  /** Set once the peer ended its side, closed, or failed. */
  gone: Error | undefined;
  ended = false;
  /** Every byte received on this connection, for the stall guard. */
  bytes = 0;
  /** Set whenever we paused the socket ourselves (a slow disk), so a slow window is not blamed on the server. */
  throttled = false;

  buffer(): Buffer {
    if (this.body && this.body.remaining >= DIRECT_MIN && !this.body.writer.failed) {
      this.bodyRead = true;
      return this.body.writer.region(this.body.remaining);
    }
    this.bodyRead = false;
    return this.scratch;
  }

  received(n: number, buf: Buffer): boolean {
    this.bytes += n;
    const more = this.take(n, buf);
    if (!more) this.throttled = true;
    return more;
  }

  private take(n: number, buf: Buffer): boolean {
    if (this.bodyRead && this.body) {
      this.bodyRead = false;
      const body = this.body;
      body.writer.commit(n);
      body.remaining -= n;
      body.onBytes(n);
      if (body.remaining === 0) body.resolve();
      return !body.writer.high;
    }
    // Node asks for the next buffer right after each read, before our code reacts to it: a read
    // chosen while still in the header can carry body bytes. Copy those into the body.
    let chunk = buf.subarray(0, n);
    const body = this.body;
    if (body && body.remaining > 0) {
      const take = Math.min(body.remaining, chunk.length);
      body.writer.push(chunk.subarray(0, take));
      body.remaining -= take;
      body.onBytes(take);
      chunk = chunk.subarray(take);
      if (body.remaining === 0) body.resolve();
    }
    if (chunk.length > 0) {
      this.reader.push(Buffer.from(chunk));
      this.wake?.();
    }
    if (body && body.remaining > 0) return !body.writer.high;
    // Between steps (e.g. while the partial file is being opened) bytes pile up here: stop reading
    // until the next step asks for more, so a fast server cannot fill our memory.
    return this.reader.buffered < HEADER_BUFFER_LIMIT;
  }

  /**
   * From connect until the server's first RESPONSE (or, for the classic protocol, its size line): at
   * most `timeoutMs` in all, however the bytes trickle in, so a server that drips its HELLO or its
   * answer cannot hold the client (the socket's idle timeout restarts at every byte). answered() ends it.
   */
  armAnswerDeadline(target: string, timeoutMs: number): void {
    const timer = setTimeout(() => {
      this.reader.onAnswer = undefined;
      this.socket?.destroy(
        new SlowPeerError(
          `${target} sent only ${this.bytes} bytes in ${timeoutMs / 1000}s and not yet a complete answer: the handshake stalled`,
          'is the server overloaded, or is something else answering on that port? or raise --timeout',
        ),
      );
    }, timeoutMs);
    this.reader.onAnswer = () => clearTimeout(timer);
    this.socket?.once('close', () => clearTimeout(timer));
  }

  /** The server's answer arrived by other means than a RESPONSE frame (the classic size line). */
  answered(): void {
    this.reader.onAnswer?.();
    this.reader.onAnswer = undefined;
  }

  /** Listen for the end of the connection; `ends` turns it into the error each step reports. */
  attach(socket: StreamSocket, ends: EndFactory): void {
    this.socket = socket;
    socket.on('end', () => {
      this.ended = true;
      this.gone ??= ends.closed('end');
      this.wake?.();
    });
    socket.on('close', () => {
      this.gone ??= ends.closed('close');
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.gone ??= ends.failed(err);
      this.wake?.();
    });
  }

  /** Wait until `parse` (over the header bytes) returns a value; rejects if the peer goes away first. */
  until<T>(parse: () => T | undefined, atEnd?: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        try {
          const v = parse();
          if (v !== undefined) {
            this.wake = undefined;
            resolve(v);
            return;
          }
          if (this.gone) {
            this.wake = undefined;
            const last = this.ended && atEnd ? atEnd() : undefined;
            if (last !== undefined) resolve(last);
            else reject(this.failure());
          }
        } catch (err) {
          this.wake = undefined;
          reject(err);
        }
      };
      this.wake = check;
      check();
      if (this.wake === check) this.socket?.resume();
    });
  }

  /** A socket destroyed with a NetkitError (our timeout) reports that error, not the close it caused. */
  failure(): Error {
    const destroyedWith = (this.socket as { errored?: unknown } | undefined)?.errored;
    if (isNetkitError(destroyedWith)) return destroyedWith;
    return this.gone ?? new NetkitError('PEER_CLOSED', 'the connection closed');
  }

  /**
   * Receive `length` body bytes into `writer`: first the bytes that came with the header, then
   * reads straight into the writer's batches. Resolves once all are queued for writing.
   */
  receiveBody(length: number, writer: BodySink, onBytes: (n: number) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        this.wake = undefined;
        if (err) reject(err);
        else resolve();
      };
      const early = this.reader.takeRest();
      const first = early.subarray(0, Math.min(length, early.length));
      if (first.length > 0) {
        writer.push(first);
        onBytes(first.length);
      }
      // Anything past the body (the trailer) goes back to the frame reader.
      if (early.length > first.length) this.reader.push(early.subarray(first.length));
      if (first.length === length) {
        done();
        return;
      }
      this.body = { remaining: length - first.length, writer, resolve: () => done(), onBytes };
      writer.onResume = () => this.socket?.resume();
      writer.onFail = (err) => {
        done(err);
        this.socket?.destroy();
      };
      this.wake = () => {
        if (this.gone && this.body && this.body.remaining > 0) done(this.failure());
      };
      if (this.gone) done(this.failure());
      else if (!writer.high) this.socket?.resume();
    }).finally(() => {
      this.body = undefined;
    });
  }
}

export interface Conn {
  socket: StreamSocket;
  receiver: Receiver;
}

function endsFor(target: string): EndFactory {
  return {
    closed: (what) =>
      new NetkitError('PEER_CLOSED', `${target} ${what === 'end' ? 'ended' : 'closed'} the connection before the transfer was complete`, 'is the server still running? run the same fetch again to retry'),
    failed: (err) => socketError(err, { host: target, port: 0, phase: 'transfer' }),
  };
}

export const WRITE_ENDS: EndFactory = {
  closed: () => new NetkitError('PEER_CLOSED', 'the connection closed before the request was sent'),
  failed: (err) => new NetkitError('PEER_CLOSED', `cannot send the request: ${err.message}`),
};

export interface ConnectOptions {
  transport: StreamTransport;
  host: string;
  port: number;
  /** host:port for messages. */
  target: string;
  timeoutMs: number;
  /** An abort while connecting rejects at once with `interrupted` (a late socket is closed). */
  signal?: AbortSignal | undefined;
}

/** The error an abort (Ctrl-C, SIGTERM, or 'OUTPUT': stdout cannot be written) ends a fetch with. */
export function interruption(signal: AbortSignal | undefined): NetkitError {
  if (signal?.reason === 'OUTPUT') return new NetkitError('OUTPUT', 'stopped: stdout cannot be written');
  return new NetkitError(signal?.reason === 'SIGTERM' ? 'TERMINATED' : 'INTERRUPTED', 'interrupted');
}

/**
 * Open a connection through the transport; an abort while connecting rejects at once with
 * `interrupted` (a connection that completes later is closed).
 */
export async function connectAbortable(transport: StreamTransport, opts: TransportConnectOptions, signal: AbortSignal | undefined): Promise<StreamSocket> {
  const connecting = transport.connect(opts);
  if (!signal) return connecting;
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(interruption(signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([connecting, aborted]);
  } catch (err) {
    connecting.then((late) => late.destroy(), () => undefined);
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Connect, route the socket's bytes into a new Receiver, and cut the connection after `timeoutMs` of
 * silence, or when the server's first answer is not complete `timeoutMs` after connecting.
 */
export async function connect(o: ConnectOptions): Promise<Conn> {
  const receiver = new Receiver();
  const socket = await connectAbortable(o.transport, { host: o.host, port: o.port, timeoutMs: o.timeoutMs, sink: receiver }, o.signal);
  socket.on('error', () => undefined);
  receiver.attach(socket, endsFor(o.target));
  if (!sinkAttached(socket)) feedSink(socket, receiver);
  socket.setTimeout(o.timeoutMs, () => {
    socket.destroy(new NetkitError('TIMEOUT', `${o.target} sent nothing for ${(socket.timeout || o.timeoutMs) / 1000}s`, 'is the server overloaded? try again, or raise --timeout'));
  });
  receiver.armAnswerDeadline(o.target, o.timeoutMs);
  return { socket, receiver };
}

/**
 * A server that keeps a transfer alive with a trickle of bytes is as stalled as a silent one: once the
 * body flows, every window of `timeoutMs` must bring at least MIN_RATE bytes a second on average (a
 * window in which we paused the socket ourselves is not judged). Stopped by stop().
 */
export function guardStall(conn: { socket: StreamSocket; receiver: { bytes: number; throttled: boolean } }, target: string, timeoutMs: number): { stop(): void } {
  const { receiver, socket } = conn;
  const need = Math.ceil((MIN_RATE * timeoutMs) / 1000);
  let from = receiver.bytes;
  receiver.throttled = false;
  const timer = setInterval(() => {
    const got = receiver.bytes - from;
    const judged = !receiver.throttled;
    from = receiver.bytes;
    receiver.throttled = false;
    if (judged && got < need) {
      socket.destroy(new SlowPeerError(`${target} sent only ${got} bytes in ${timeoutMs / 1000}s (less than 1 KiB/s): the transfer stalled`, 'is the network congested, or the server overloaded? or raise --timeout'));
    }
  }, timeoutMs);
  return { stop: () => clearInterval(timer) };
}
