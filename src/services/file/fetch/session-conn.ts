// One client connection of file protocol v1: the HELLO exchange with the SESSION flag, the early request when there is no secret, and numbered, sealed requests and checked proofs afterwards.
import { randomBytes, type KeyObject } from 'node:crypto';
import { NetkitError, isNetkitError } from '../../../errors.js';
import { FrameType, HelloFlag, NONCE_LENGTH, decodeHello, decodeResponse, encodeHello, encodePreamble, type Field, type Frame } from '../../../protocol/file-v1.js';
import { MAC_PLACEHOLDER, sealFrame } from '../../../protocol/auth-frames.js';
import type { HandshakeNonces } from '../../../protocol/auth.js';
import { writeAll } from '../../file-stream.js';
import { requireProof, throwRefusal, type Asked } from './answers.js';
import { connect, interruption, WRITE_ENDS, type Conn, type ConnectOptions } from './receiver.js';

export interface SessionOptions extends ConnectOptions {
  /** k_file: every request is sealed and every answer must carry the server's proof. */
  key?: KeyObject | undefined;
  /** The server answered a HELLO before in this run: a failure now is a blip, not a wrong address. */
  reached: boolean;
}

/** Builds a request frame; `extra` is the AUTH_MAC placeholder to end it with when it will be sealed. */
export type FrameBuilder = (extra: readonly Field[]) => Buffer;

/** An open connection after the HELLO exchange. */
export class SessionConn {
  private seq = 0;
  private readonly stopAbort: () => void;
  /** finish() was called: the connection closes on its own. */
  finished = false;

  constructor(
    readonly conn: Conn,
    /** Both HELLOs set SESSION: several requests may follow one another; MACs carry sequence numbers. */
    readonly session: boolean,
    readonly nonces: HandshakeNonces,
    readonly key: KeyObject | undefined,
    readonly target: string,
    signal: AbortSignal | undefined,
    /** Requests already sent with the HELLO (0 or 1). */
    early: number,
  ) {
    this.seq = early;
    const onAbort = (): void => void conn.socket.destroy(interruption(signal));
    signal?.addEventListener('abort', onAbort);
    this.stopAbort = () => signal?.removeEventListener('abort', onAbort);
    conn.socket.once('close', this.stopAbort);
  }

  get socket(): Conn['socket'] {
    return this.conn.socket;
  }

  /** The next request's bytes (sealed with the key, numbered in a session) and its sequence number. */
  request(build: FrameBuilder): { bytes: Buffer; seq: number } {
    const seq = this.seq++;
    const frame = build(this.key ? [MAC_PLACEHOLDER] : []);
    return { bytes: this.key ? sealFrame('client', this.key, this.nonces, frame, this.session ? seq : undefined) : frame, seq };
  }

  /** With a key, insist on the server's proof on an answer (RESPONSE) or an end (TRAILER, END) of request `seq`. */
  prove(kind: 'server' | 'trailer', frame: Frame, seq: number, asked: Asked): void {
    if (this.key) requireProof(kind, this.key, this.nonces, frame, asked, this.session ? seq : undefined);
  }

  /** The next frame if it is already here (no wait, no promise: the hot path of a listing or of small files). */
  ready(): Frame | undefined {
    return this.conn.receiver.reader.next();
  }

  /** Read the next frame. */
  next(): Promise<Frame> {
    const { receiver } = this.conn;
    return receiver.until(() => receiver.reader.next());
  }

  /**
   * Half-close once every answer is in, never earlier: a relay that does not keep half-open
   * connections (socat's default, a plain pipe) ends both directions at the first FIN and cuts the
   * answers still on their way. The server then ends the session and closes.
   */
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** end(), then let the server close (it does at once); destroyed after `graceMs` if it does not. */
  finish(graceMs = 2000): void {
    this.finished = true;
    if (this.socket.destroyed) return;
    this.end();
    const timer = setTimeout(() => this.destroy(), graceMs);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
  }

  destroy(err?: Error): void {
    this.socket.destroy(err);
    this.stopAbort();
  }
}

/**
 * Connect and exchange HELLOs, offering a session. Without a key, `early` (the first request) travels
 * with the HELLO, which saves a round trip; with a key it cannot (its proof needs the server's nonce).
 * A RESPONSE in place of the server's HELLO (BUSY...) is thrown as its refusal.
 */
export async function openSession(o: SessionOptions, early?: FrameBuilder, asked?: Asked): Promise<{ sc: SessionConn; early: boolean }> {
  const conn = await connect({ transport: o.transport, host: o.host, port: o.port, target: o.target, timeoutMs: o.timeoutMs, signal: o.signal });
  const { socket, receiver } = conn;
  const onAbort = (): void => void socket.destroy(interruption(o.signal));
  o.signal?.addEventListener('abort', onAbort);
  if (o.signal?.aborted) onAbort();
  const clientNonce = randomBytes(NONCE_LENGTH);
  const sendEarly = early !== undefined && !o.key;
  try {
    const hello = encodeHello({ nonce: clientNonce, flags: HelloFlag.SESSION });
    await writeAll(socket, Buffer.concat([encodePreamble(), hello, ...(sendEarly ? [early([])] : [])]), WRITE_ENDS);
    const first = await receiver.until(() => receiver.reader.next());
    if (first.type === FrameType.RESPONSE) throwRefusal(decodeResponse(first), asked ?? { target: o.target, name: '' });
    const h = decodeHello(first);
    if (!o.key && (h.flags & HelloFlag.AUTH_REQUIRED) !== 0) {
      throw new NetkitError('UNAUTHORIZED', `${o.target} requires a shared secret; nothing was ${sendEarly ? 'fetched' : 'requested'}`, 'set NETKIT_TOKEN or --token-file (the same secret as the server)');
    }
    const sc = new SessionConn(conn, (h.flags & HelloFlag.SESSION) !== 0, { client: clientNonce, server: h.nonce }, o.key, o.target, o.signal, sendEarly ? 1 : 0);
    return { sc, early: sendEarly };
  } catch (err) {
    socket.destroy();
    if (o.signal?.aborted) throw interruption(o.signal);
    if (!o.reached && isNetkitError(err) && (err.code === 'PEER_CLOSED' || err.code === 'PROTOCOL' || err.code === 'TOO_LARGE')) {
      // Something answers on that port, but not a netkit v1 server: say what it probably is.
      throw new NetkitError('PROTOCOL', `${o.target} does not speak netkit file protocol v1 (${err.message})`, 'is that a netkit file server? a seed (classic) server needs --classic', { cause: err });
    }
    if (!o.reached && isNetkitError(err) && err.code === 'TIMEOUT') {
      throw new NetkitError('TIMEOUT', `${err.message} in answer to the handshake`, 'is that a netkit file server (and not, e.g., a TLS one: then use --tls)? or raise --timeout', { cause: err });
    }
    throw err;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}
