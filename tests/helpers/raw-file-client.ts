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
} from '../../src/protocol/file-v1.js';

export interface RawAnswer {
  status: number;
  message: string;
  size: number;
  body: Buffer;
  sha256?: Buffer;
  /** Every byte the server sent (to search for things that must never be served). */
  raw: Buffer;
}

export interface RawOptions {
  host?: string;
  /** Bind the client socket here first: 127.0.0.2 is another source on Linux loopback. */
  localAddress?: string;
  /** Hard cap on the whole exchange. */
  timeoutMs?: number;
}

/** Connect and collect everything the server sends until it closes; `send` writes the request bytes. */
export async function exchange(port: number, send: Buffer, opts: RawOptions = {}): Promise<Buffer> {
  const socket = net.connect({ host: opts.host ?? '127.0.0.1', port, localAddress: opts.localAddress, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const timer = setTimeout(() => socket.destroy(new Error(`no close within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
  try {
    await once(socket, 'connect');
    socket.write(send);
    socket.end();
    await once(socket, 'close');
    if (socket.errored) throw socket.errored;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return Buffer.concat(chunks);
}

/** A v1 REQUEST frame carrying `name` as raw bytes (so invalid UTF-8 and oversize names can be sent). */
export function requestFrame(name: Buffer, offset = 0): Buffer {
  const off = Buffer.alloc(8);
  off.writeBigUInt64BE(BigInt(offset));
  return encodeFrame(FrameType.REQUEST, [
    [Tag.NAME, name],
    [Tag.OFFSET, off],
    [Tag.VALIDATOR, Buffer.alloc(0)],
  ]);
}

/** Preamble, HELLO and REQUEST in one write. */
export function v1Conversation(name: Buffer): Buffer {
  return Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 }), requestFrame(name)]);
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
  const out: RawAnswer = { status: r.status, message: r.message, size: r.size, body: Buffer.alloc(0), raw };
  if (r.status === Status.OK) {
    out.body = reader.take(r.size - r.offset) ?? reader.takeRest();
    const t = reader.next();
    if (t) out.sha256 = decodeTrailer(t).sha256;
  }
  return out;
}

/** Fetch `name` (raw bytes or a string) with the v1 protocol and parse the answer. */
export async function rawFetch(port: number, name: Buffer | string, opts: RawOptions = {}): Promise<RawAnswer> {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  return parseV1Answer(await exchange(port, v1Conversation(bytes), opts));
}

/** Fetch `name` with the classic protocol: the raw answer (an 8-byte size field, then the bytes). */
export async function classicFetch(port: number, name: Buffer | string, opts: RawOptions = {}): Promise<Buffer> {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  return exchange(port, Buffer.concat([bytes, Buffer.from('\n')]), opts);
}
