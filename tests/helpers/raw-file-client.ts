// A raw file-protocol v1 client for adversarial tests: sends any name bytes, from any local address, and reports exactly what came back.
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import {
  FrameReader,
  FrameType,
  Status,
  Tag,
  decodeHello,
  decodeResponse,
  decodeTrailer,
  encodeFrame,
  encodeHello,
  encodePreamble,
  encodeRequest,
  type Frame,
  type Response,
} from '../../src/protocol/file-v1.js';
import { MAC_PLACEHOLDER, sealFrame } from '../../src/protocol/auth-frames.js';
import type { HandshakeNonces } from '../../src/protocol/auth.js';
import type { KeyObject } from 'node:crypto';

export interface RawAnswer {
  status: number;
  message: string;
  size: number;
  offset: number;
  validator: Buffer;
  body: Buffer;
  sha256?: Buffer;
  /** A RESPONSE where the TRAILER was due (CHANGED: the file changed while it was sent). */
  end?: Response;
  /** The raw frame after the body (TRAILER or RESPONSE), to check its MAC. */
  endFrame?: Frame;
  /** Every byte the server sent (to search for things that must never be served). */
  raw: Buffer;
}

export interface RawOptions {
  host?: string;
  /** Bind the client socket here first: 127.0.0.2 is another source on Linux loopback. */
  localAddress?: string;
  /** Hard cap on the whole exchange. */
  timeoutMs?: number;
  /** Once this many bytes have arrived, stop reading, run `action`, then read on (a stalled client). */
  pauseAfter?: { bytes: number; action: () => Promise<void> };
}

/**
 * Connect and collect everything the server sends until it closes. `send` is the request bytes, or a
 * function that gets the socket and everything received so far, writes when it likes (a HELLO round
 * trip), and returns true once it has nothing more to send.
 */
export async function exchange(port: number, send: Buffer | ((socket: net.Socket, received: Buffer) => boolean), opts: RawOptions = {}): Promise<Buffer> {
  const socket = net.connect({ host: opts.host ?? '127.0.0.1', port, localAddress: opts.localAddress, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let got = 0;
  let paused = false;
  let talking = typeof send === 'function';
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    got += c.length;
    if (talking && typeof send === 'function') talking = !send(socket, Buffer.concat(chunks));
    const p = opts.pauseAfter;
    if (p && !paused && got >= p.bytes) {
      paused = true;
      socket.pause();
      void p.action().then(
        () => socket.resume(),
        (err: unknown) => socket.destroy(err as Error),
      );
    }
  });
  const timer = setTimeout(() => socket.destroy(new Error(`no close within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
  try {
    await once(socket, 'connect');
    if (typeof send === 'function') send(socket, Buffer.alloc(0));
    else {
      socket.write(send);
      socket.end();
    }
    await once(socket, 'close');
    if (socket.errored) throw socket.errored;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return Buffer.concat(chunks);
}

/** A v1 REQUEST frame carrying `name` as raw bytes (so invalid UTF-8 and oversize names can be sent). */
export function requestFrame(name: Buffer, offset = 0, validator: Buffer = Buffer.alloc(0)): Buffer {
  const off = Buffer.alloc(8);
  off.writeBigUInt64BE(BigInt(offset));
  return encodeFrame(FrameType.REQUEST, [
    [Tag.NAME, name],
    [Tag.OFFSET, off],
    [Tag.VALIDATOR, validator],
  ]);
}

/** Preamble, HELLO and REQUEST in one write. */
export function v1Conversation(name: Buffer, offset = 0, validator: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 }), requestFrame(name, offset, validator)]);
}

/** Parse a whole v1 server stream: HELLO, RESPONSE, then (if OK) the body and TRAILER. */
export function parseV1Answer(raw: Buffer): RawAnswer {
  const reader = new FrameReader();
  reader.push(raw);
  const hello = reader.next();
  if (!hello) throw new Error(`no HELLO in ${raw.length} bytes`);
  // BUSY answers come without a HELLO: the server answers before the handshake.
  const first = hello.type === FrameType.RESPONSE ? hello : (decodeHello(hello), reader.next());
  if (!first) throw new Error(`no RESPONSE in ${raw.length} bytes`);
  const r = decodeResponse(first);
  const out: RawAnswer = { status: r.status, message: r.message, size: r.size, offset: r.offset, validator: r.validator, body: Buffer.alloc(0), raw };
  if (r.status === Status.OK) {
    out.body = reader.take(r.size - r.offset) ?? reader.takeRest();
    const t = reader.next();
    out.endFrame = t;
    if (t?.type === FrameType.RESPONSE) out.end = decodeResponse(t);
    else if (t) out.sha256 = decodeTrailer(t).sha256;
  }
  return out;
}

/** Fetch `name` (raw bytes or a string) with the v1 protocol and parse the answer; `resume` asks from an offset. */
export async function rawFetch(port: number, name: Buffer | string, opts: RawOptions & { resume?: { offset: number; validator: Buffer } } = {}): Promise<RawAnswer> {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  return parseV1Answer(await exchange(port, v1Conversation(bytes, opts.resume?.offset, opts.resume?.validator), opts));
}

/**
 * Start a v1 fetch of `name`, take the first `bytes` of the answer, then stop reading: a transfer in
 * progress that holds its connection slot (the server never evicts one). `name` must be larger than
 * what the socket buffers take (a few MiB on loopback). Destroy the socket to end it.
 */
export async function holdTransfer(port: number, name: string, opts: RawOptions & { bytes?: number } = {}): Promise<net.Socket> {
  const socket = net.connect({ host: opts.host ?? '127.0.0.1', port, localAddress: opts.localAddress, allowHalfOpen: true });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(v1Conversation(Buffer.from(name, 'utf8')));
  const want = opts.bytes ?? 64 * 1024;
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fewer than ${want} bytes within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got < want) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      resolve();
    };
    socket.on('data', onData);
  });
  return socket;
}

/**
 * The same fetch from a client holding the secret: preamble and HELLO, then, once the server's HELLO
 * arrives, a REQUEST sealed with the client proof. Returns the answer and the nonces its MACs use.
 */
export async function rawAuthFetch(port: number, name: string, key: KeyObject, opts: RawOptions = {}): Promise<RawAnswer & { nonces: HandshakeNonces }> {
  const client = randomBytes(32);
  const nonces: { client: Buffer; server?: Buffer } = { client };
  const raw = await exchange(
    port,
    (socket, received) => {
      if (received.length === 0) {
        socket.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: client, flags: 0 })]));
        return false;
      }
      const reader = new FrameReader();
      reader.push(received);
      const hello = reader.next();
      if (!hello) return false;
      nonces.server = decodeHello(hello).nonce;
      const request = encodeRequest({ name, offset: 0, validator: Buffer.alloc(0) }, [MAC_PLACEHOLDER]);
      socket.end(sealFrame('client', key, { client, server: nonces.server }, request));
      return true;
    },
    opts,
  );
  return { ...parseV1Answer(raw), nonces: { client, server: nonces.server ?? Buffer.alloc(0) } };
}

/** Fetch `name` with the classic protocol: the raw answer (an 8-byte size field, then the bytes). */
export async function classicFetch(port: number, name: Buffer | string, opts: RawOptions = {}): Promise<Buffer> {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  return exchange(port, Buffer.concat([bytes, Buffer.from('\n')]), opts);
}
