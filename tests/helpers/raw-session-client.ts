// A raw v1 session client for tests: asks for SESSION, sends REQUESTs, LISTs or any bytes (sealed with sequence numbers when it holds the key), and parses the answers in order, counting its write/read turns.
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { randomBytes, type KeyObject } from 'node:crypto';
import { MAC_PLACEHOLDER, checkFrame, sealFrame, type FrameProof } from '../../src/protocol/auth-frames.js';
import { decodeEnd, decodeEntry, encodeList, type Entry, type ListEnd } from '../../src/protocol/file-list.js';
import {
  FrameReader,
  FrameType,
  HelloFlag,
  Status,
  decodeHello,
  decodeResponse,
  decodeTrailer,
  encodeHello,
  encodePreamble,
  encodeRequest,
  type Frame,
  type Hello,
  type Response,
} from '../../src/protocol/file-v1.js';

/** One thing to send: a REQUEST, a LIST, or raw bytes (a forged or replayed frame) answered like a REQUEST. */
export type Ask = { file: string; offset?: number; validator?: Buffer } | { list: string; recursive?: boolean } | { raw: Buffer; as?: 'file' | 'list' };

export interface FileAnswer {
  kind: 'file';
  response: Response;
  /** The body (only when OK). */
  body: Buffer;
  /** The TRAILER's hash; undefined when a RESPONSE (CHANGED) took its place or the stream ended. */
  sha256?: Buffer;
  /** A RESPONSE where the TRAILER was due. */
  end?: Response;
  /** Proofs of the RESPONSE and of the TRAILER (or what replaced it), when the client holds the key. */
  proofs: FrameProof[];
}

export interface ListAnswer {
  kind: 'list';
  response: Response;
  entries: Entry[];
  /** The ENTRY frames as received, headers included (END's SHA256 covers them). */
  entryFrames: Buffer[];
  end?: ListEnd;
  /** A RESPONSE where END was due (the listing failed midway). */
  failed?: Response;
  proofs: FrameProof[];
}

export type Answer = FileAnswer | ListAnswer;

export interface SessionOptions {
  host?: string;
  localAddress?: string;
  /** Seal every request (with its sequence number when the session is negotiated) and check every proof. */
  key?: KeyObject;
  /** Client HELLO flags (default SESSION). */
  flags?: number;
  /** Send these with the HELLO, before the server's HELLO arrives (an early request). */
  early?: Ask[];
  /** Speak TLS (any certificate: the tests are about the protocol inside). */
  tls?: boolean;
  timeoutMs?: number;
}

/** Frames and raw bytes of a session's answers, parsed as the requests they answer were sent. */
class AnswerParser {
  readonly reader = new FrameReader();
  readonly pending: Array<'file' | 'list'> = [];
  /** The answer being received. */
  current: Answer | undefined;
  private bodyLeft = 0;
  private seq = 0;

  constructor(private readonly check?: (kind: 'server' | 'trailer', payload: Buffer, seq: number) => FrameProof) {}

  /** Whole answers completed by these bytes. */
  push(chunk: Buffer): Answer[] {
    this.reader.push(chunk);
    const done: Answer[] = [];
    for (;;) {
      const a = this.current;
      if (a?.kind === 'file' && this.bodyLeft > 0) {
        const part = this.reader.take(Math.min(this.bodyLeft, this.reader.buffered));
        if (!part || part.length === 0) return done;
        a.body = Buffer.concat([a.body, part]);
        this.bodyLeft -= part.length;
        continue;
      }
      const f = this.reader.next();
      if (!f) return done;
      if (this.step(f)) {
        done.push(this.current!);
        this.current = undefined;
        this.seq += 1;
      }
    }
  }

  private proof(kind: 'server' | 'trailer', f: Frame): FrameProof[] {
    return this.check ? [this.check(kind, f.payload, this.seq)] : [];
  }

  /** Feed one frame; true when it completes the current answer. */
  private step(f: Frame): boolean {
    if (!this.current) {
      const kind = this.pending.shift();
      if (!kind) throw new Error(`a frame of type 0x${f.type.toString(16)} answers nothing that was asked`);
      const response = decodeResponse(f);
      const proofs = this.proof('server', f);
      this.current = kind === 'file' ? { kind, response, body: Buffer.alloc(0), proofs } : { kind, response, entries: [], entryFrames: [], proofs };
      if (response.status !== Status.OK) return true;
      if (kind === 'file') this.bodyLeft = response.size - response.offset;
      return false;
    }
    const a = this.current;
    if (a.kind === 'file') {
      a.proofs.push(...this.proof(f.type === FrameType.TRAILER ? 'trailer' : 'server', f));
      if (f.type === FrameType.TRAILER) a.sha256 = decodeTrailer(f).sha256;
      else a.end = decodeResponse(f);
      return true;
    }
    if (f.type === FrameType.ENTRY) {
      a.entries.push(decodeEntry(f));
      a.entryFrames.push(Buffer.concat([Buffer.from([f.type, f.payload.length >> 8, f.payload.length & 0xff]), f.payload]));
      return false;
    }
    a.proofs.push(...this.proof(f.type === FrameType.END ? 'trailer' : 'server', f));
    if (f.type === FrameType.END) a.end = decodeEnd(f);
    else a.failed = decodeResponse(f);
    return true;
  }
}

/**
 * One connection. open() sends the preamble, the HELLO and any early requests, and waits for the
 * server's HELLO (or a RESPONSE in its place). Then send() pipelines requests, end() half-closes, and
 * answers()/next() read the answers in order. `turns` counts how often the client waited for the
 * server before writing again (a round trip each), and `firstBodyAfterTurns` the turns before the
 * first body byte arrived.
 */
export class RawSession {
  readonly socket: net.Socket;
  hello: Hello | undefined;
  /** A RESPONSE the server sent in place of its HELLO (BUSY, UNSUPPORTED_VERSION...). */
  refusedEarly: Response | undefined;
  nonces: { client: Buffer; server: Buffer };
  /** Write-then-read turns so far; the TCP handshake is not counted. */
  turns = 0;
  /** `turns` when the first body byte of the first file arrived. */
  firstBodyAfterTurns: number | undefined;
  /** Every byte the server sent. */
  readonly received: Buffer[] = [];
  private readonly parser: AnswerParser;
  private readonly ready: Answer[] = [];
  private waiters: Array<() => void> = [];
  private seq = 0;
  private lastWasWrite = false;
  private closed = false;

  private constructor(
    socket: net.Socket,
    readonly opts: SessionOptions,
  ) {
    this.socket = socket;
    this.nonces = { client: randomBytes(32), server: Buffer.alloc(32) };
    socket.once('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    // The server's end is final: finish the close from this side too, as a client does.
    socket.once('end', () => socket.end());
    this.parser = new AnswerParser(opts.key ? (kind, payload, seq) => checkFrame(kind, opts.key!, this.nonces, payload, this.sessionOn ? seq : undefined) : undefined);
  }

  /** Both HELLOs set SESSION. */
  get sessionOn(): boolean {
    return ((this.opts.flags ?? HelloFlag.SESSION) & HelloFlag.SESSION) !== 0 && ((this.hello?.flags ?? 0) & HelloFlag.SESSION) !== 0;
  }

  static async open(port: number, opts: SessionOptions = {}): Promise<RawSession> {
    const socket = opts.tls
      ? tls.connect({ host: opts.host ?? '127.0.0.1', port, rejectUnauthorized: false })
      : net.connect({ host: opts.host ?? '127.0.0.1', port, localAddress: opts.localAddress, allowHalfOpen: true });
    const s = new RawSession(socket, opts);
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(new Error(`session not done within ${opts.timeoutMs ?? 20_000} ms`)), opts.timeoutMs ?? 20_000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    await once(socket, opts.tls ? 'secureConnect' : 'connect');
    let head: Buffer | undefined = Buffer.alloc(0);
    const helloArrived = new Promise<void>((resolve, reject) => {
      socket.once('close', () => reject(new Error('closed before the server HELLO')));
      socket.on('data', (chunk: Buffer) => {
        s.read(chunk);
        if (head === undefined) return s.feed(chunk);
        head = Buffer.concat([head, chunk]);
        const r = new FrameReader();
        r.push(head);
        const first = r.next();
        if (!first) return;
        if (first.type === FrameType.RESPONSE) s.refusedEarly = decodeResponse(first);
        else {
          s.hello = decodeHello(first);
          s.nonces = { client: s.nonces.client, server: s.hello.nonce };
        }
        const rest = r.takeRest();
        head = undefined;
        resolve();
        if (rest.length > 0) s.feed(rest);
      });
    });
    // The preamble, the HELLO and the early requests leave in one write. Early requests cannot be
    // sealed (no server nonce yet): a client with the secret never sends one.
    s.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: s.nonces.client, flags: opts.flags ?? HelloFlag.SESSION }), ...(opts.early ?? []).map((a) => s.encode(a, false))]));
    await helloArrived;
    return s;
  }

  /** Encode (and, with the key after the HELLOs, seal) one request; remembers what its answer looks like. */
  private encode(a: Ask, seal: boolean): Buffer {
    const seq = this.seq++;
    let frame: Buffer;
    let kind: 'file' | 'list';
    const proof = seal && this.opts.key ? [MAC_PLACEHOLDER] : [];
    if ('raw' in a) {
      frame = a.raw;
      kind = a.as ?? 'file';
    } else if ('file' in a) {
      frame = encodeRequest({ name: a.file, offset: a.offset ?? 0, validator: a.validator ?? Buffer.alloc(0) }, proof);
      kind = 'file';
    } else {
      frame = encodeList({ name: a.list, recursive: a.recursive ?? false }, proof);
      kind = 'list';
    }
    if (proof.length > 0 && !('raw' in a)) frame = sealFrame('client', this.opts.key!, this.nonces, frame, this.sessionOn ? seq : undefined);
    this.parser.pending.push(kind);
    return frame;
  }

  /**
   * The bytes of `ask` sealed as request number `seq` (for replaying or reordering: send them with
   * { raw }). Needs the key.
   */
  sealed(ask: Exclude<Ask, { raw: Buffer }>, seq: number): Buffer {
    const frame = 'file' in ask ? encodeRequest({ name: ask.file, offset: ask.offset ?? 0, validator: ask.validator ?? Buffer.alloc(0) }, [MAC_PLACEHOLDER]) : encodeList({ name: ask.list, recursive: ask.recursive ?? false }, [MAC_PLACEHOLDER]);
    return sealFrame('client', this.opts.key!, this.nonces, frame, seq);
  }

  /** Pipeline requests (one write), sealed with their sequence numbers when the client holds the key. */
  send(asks: Ask[]): void {
    this.write(Buffer.concat(asks.map((a) => this.encode(a, true))));
  }

  /** Half-close: no more requests. */
  end(): void {
    this.socket.end();
  }

  /** The next answer, in order; rejects if the server closes first. */
  async next(): Promise<Answer> {
    for (;;) {
      const a = this.ready.shift();
      if (a) return a;
      if (this.closed) throw new Error(`the server closed after ${Buffer.concat(this.received).length} bytes with ${this.parser.pending.length} answers missing`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The next `n` answers. */
  async answers(n: number): Promise<Answer[]> {
    const out: Answer[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next());
    return out;
  }

  /** Wait until the server closes; resolves with the bytes it sent after the last whole answer. */
  async closedByServer(): Promise<Buffer> {
    if (!this.closed) await once(this.socket, 'close');
    return this.parser.reader.takeRest();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private write(bytes: Buffer): void {
    this.lastWasWrite = true;
    this.socket.write(bytes);
  }

  private read(chunk: Buffer): void {
    this.received.push(chunk);
    if (this.lastWasWrite) this.turns += 1;
    this.lastWasWrite = false;
  }

  private feed(chunk: Buffer): void {
    for (const a of this.parser.push(chunk)) this.ready.push(a);
    if (this.firstBodyAfterTurns === undefined && this.hasBody()) this.firstBodyAfterTurns = this.turns;
    for (const w of this.waiters.splice(0)) w();
  }

  private hasBody(): boolean {
    const first = this.ready.find((a) => a.kind === 'file' && a.body.length > 0) ?? this.parser.current;
    return first?.kind === 'file' && first.body.length > 0;
  }
}
