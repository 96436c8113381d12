// `netkit file serve`: answer v1 and classic clients on one port, streaming jailed files with hashing and backpressure.
import { createHash, randomBytes, type Hash, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { NetkitError, isNetkitError } from '../errors.js';
import {
  FrameReader,
  FrameType,
  HelloFlag,
  MAGIC,
  PREAMBLE_LENGTH,
  Status,
  VERSION,
  decodeHello,
  decodePreamble,
  decodeRequest,
  encodeHello,
  encodeResponse,
  encodeTrailer,
  type Field,
  type StatusValue,
} from '../protocol/file-v1.js';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../protocol/auth-frames.js';
import type { FileMacKind, HandshakeNonces } from '../protocol/auth.js';
import { ConnectionLimiter, FailureThrottle, sourceKey } from './limits.js';
import {
  CLASSIC_MAX_SIZE,
  CLASSIC_MISSING,
  CLASSIC_NAME_MAX,
  classicNameComplete,
  decodeClassicName,
  encodeClassicSize,
} from '../protocol/file-classic.js';
import { formatHostPort, type StreamSocket, type StreamTransport } from '../transport/tcp.js';
import { openInJail } from './file-jail.js';
import { HashCache, statKey, validatorOf } from './file-hash-cache.js';
import { drain, errnoText, linger as lingerFor, prefixAllowanceMs, readUntil as readUntilWith, writeAll as writeAllWith, type EndFactory } from './file-stream.js';

export const SERVE_DEFAULTS = {
  port: 8881,
  maxConnections: 64,
  /** Half the total: one host (or one IPv6 /64) cannot take every slot from everyone else. */
  maxPerSource: 32,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  graceMs: 10_000,
  /** A classic name is complete after this long without a new byte (the seed sends it in one send()). */
  classicGapMs: 50,
} as const;

/** Bytes read from the file per read(); large reads and large hash updates are what make SHA-256 fast. */
const CHUNK = 1024 * 1024;
/** First byte of a TLS handshake record. */
const TLS_HANDSHAKE = 0x16;
/** What a connection reads with when the shared pool is exhausted. */
const SMALL_CHUNK = 128 * 1024;
/** How long to keep reading (and discarding) after our last byte, so closing never resets the answer away. */
const LINGER_MS = 2_000;

export interface ServeOptions {
  dir: string;
  transport: StreamTransport;
  host?: string;
  port?: number;
  maxConnections?: number;
  /** Most connections at once from one source (sourceKey: an IPv4 address, an IPv6 /64). */
  maxPerSource?: number;
  headerTimeoutMs?: number;
  idleTimeoutMs?: number;
  classicGapMs?: number;
  /** One call per connection, when its outcome is known. */
  onLog?: (entry: TransferLog) => void;
  /**
   * k_file (Secret.key('file')): when set, every v1 REQUEST must carry a valid client proof and every
   * RESPONSE and TRAILER carries the server's (docs/security.md 4.3); classic clients are refused.
   */
  secret?: KeyObject;
  /** Per-source back-off for failed proofs (default: 250 ms doubling to 30 s); injectable for tests. */
  failureThrottle?: FailureThrottle;
}

export type Outcome =
  | 'ok'
  | 'not-found'
  | 'forbidden'
  | 'bad-request'
  | 'busy'
  | 'changed'
  | 'bad-offset'
  | 'unsupported-version'
  | 'too-large'
  | 'unauthorized'
  | 'timeout'
  | 'aborted'
  | 'error';

export interface TransferLog {
  peer: string;
  protocol: 'v1' | 'classic' | 'unknown';
  /** The requested name as received (unsanitised: the CLI sanitises before printing). */
  name?: string;
  /** Body bytes written to the socket. */
  bytes: number;
  /** For v1: where the body started (resume). */
  offset?: number;
  size?: number;
  durationMs: number;
  outcome: Outcome;
  /** Why, for refusals and failures. */
  detail?: string;
}

export interface CloseResult {
  /** Transfers that finished within the grace period. */
  finished: number;
  /** Connections cut when the grace period ran out (or that were still in their header). */
  aborted: number;
}

export interface FileServer {
  readonly host: string;
  readonly port: number;
  /** The served directory (a realpath). */
  readonly root: string;
  readonly transport: string;
  /** Connections open right now. */
  connections(): number;
  /** Stop accepting; drop idle connections; let transfers finish for up to graceMs, then cut them. */
  close(graceMs?: number): Promise<CloseResult>;
}

type Phase = 'header' | 'transfer' | 'closing';

interface Conn {
  socket: StreamSocket;
  phase: Phase;
}

/** Map a jail/codec NetkitError to the status a v1 client receives and the outcome we log. */
function refusalOf(err: NetkitError): { status: StatusValue; outcome: Outcome } {
  switch (err.code) {
    case 'NOT_FOUND':
      return { status: Status.NOT_FOUND, outcome: 'not-found' };
    case 'FORBIDDEN':
      return { status: Status.FORBIDDEN, outcome: 'forbidden' };
    default:
      return { status: Status.BAD_REQUEST, outcome: 'bad-request' };
  }
}

/** Thrown inside a connection handler to end it with a logged outcome. */
class ConnectionEnd extends Error {
  constructor(
    readonly outcome: Outcome,
    readonly detail: string,
  ) {
    super(detail);
  }
}

const ENDS: EndFactory = {
  closed: (what) =>
    new ConnectionEnd('aborted', what === 'end' ? 'the client closed its side before the exchange was complete' : 'the connection closed'),
  failed: (err) => new ConnectionEnd('aborted', `connection error: ${errnoText(err)}`),
};

/**
 * Read buffers shared by every connection: 1 MiB each (large reads and large hash updates are what
 * make SHA-256 fast), at most `max` of them in use at once, so memory stays bounded however many
 * clients there are. Past that a connection gets a small unpooled buffer instead of waiting: a few
 * clients that stop reading can slow others down, never stall them. A buffer goes back only when
 * socket.write says the kernel has its bytes.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private inUse = 0;

  constructor(private readonly max = 24) {}

  get(): Buffer {
    if (this.inUse >= this.max) return Buffer.allocUnsafeSlow(SMALL_CHUNK);
    this.inUse += 1;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
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
function wholeOf(chunk: Buffer): Buffer {
  return Buffer.from(chunk.buffer, 0, chunk.buffer.byteLength);
}

/**
 * Read [from, to) of the file with one read always in flight ahead of the consumer. Each chunk's
 * buffer belongs to the consumer, who returns it with pool.put(wholeOf(chunk)); a read still in
 * flight when the consumer stops is returned here.
 */
async function* readChunks(handle: fsp.FileHandle, from: number, to: number, pool: BufferPool): AsyncGenerator<Buffer> {
  const readAt = async (pos: number): Promise<Buffer> => {
    const buf = pool.get();
    const len = Math.min(buf.length, to - pos);
    try {
      let got = 0;
      while (got < len) {
        const { bytesRead } = await handle.read(buf, got, len - got, pos + got);
        if (bytesRead === 0) throw new ConnectionEnd('error', `the file shrank while being sent (at byte ${pos + got} of ${to})`);
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

const readUntil = <T>(socket: StreamSocket, reader: FrameReader, parse: () => T | undefined, gap?: { ms: number; onGap: () => T }): Promise<T> =>
  readUntilWith(socket, reader, parse, ENDS, gap);
const writeAll = (socket: StreamSocket, bytes: Buffer): Promise<void> => writeAllWith(socket, bytes, ENDS);
const linger = (socket: StreamSocket): Promise<void> => lingerFor(socket, LINGER_MS);

/** The name an unauthenticated REQUEST asked for, for the log only (never acted on); undefined if unreadable. */
function requestedName(frame: { type: number; payload: Buffer }): string | undefined {
  try {
    return decodeRequest(frame).name;
  } catch {
    return undefined;
  }
}

export async function startFileServer(opts: ServeOptions): Promise<FileServer> {
  let root: string;
  try {
    root = await fsp.realpath(opts.dir);
    const st = await fsp.stat(root);
    if (!st.isDirectory()) throw new NetkitError('USAGE', `${opts.dir} is not a directory`, 'give the directory to serve');
  } catch (err) {
    if (isNetkitError(err)) throw err;
    throw new NetkitError('NOT_FOUND', `cannot serve ${opts.dir}: no such directory`, 'give an existing directory to serve', { cause: err });
  }
  const maxConnections = opts.maxConnections ?? SERVE_DEFAULTS.maxConnections;
  const maxPerSource = opts.maxPerSource ?? SERVE_DEFAULTS.maxPerSource;
  const limiter = new ConnectionLimiter({ maxTotal: maxConnections, maxPerSource });
  const headerTimeoutMs = opts.headerTimeoutMs ?? SERVE_DEFAULTS.headerTimeoutMs;
  const idleTimeoutMs = opts.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs;
  const classicGapMs = opts.classicGapMs ?? SERVE_DEFAULTS.classicGapMs;
  const key = opts.secret;
  const throttle = key ? (opts.failureThrottle ?? new FailureThrottle()) : undefined;
  // Past the limit we still answer BUSY, but only to a bounded number of extra sockets at once, and one
  // address may hold only a quarter of those: a flood from one address cannot take every busy answer
  // away from the others.
  const busyCap = Math.max(16, maxConnections);
  const busyPerSource = Math.max(4, Math.floor(busyCap / 4));
  const busyBySource = new Map<string, number>();
  const hashCache = new HashCache();
  const pool = new BufferPool();
  const conns = new Set<Conn>();
  let busyOpen = 0;
  let closing = false;
  let finishedDuringClose = 0;
  const idleWaiters = new Set<() => void>();

  const log = (entry: TransferLog): void => {
    try {
      opts.onLog?.(entry);
    } catch {
      // logging must never break serving
    }
  };

  const onConnection = (socket: StreamSocket): void => {
    socket.on('error', () => undefined); // every failure is handled where it matters
    if (closing) {
      socket.destroy();
      return;
    }
    const peer = formatHostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    const started = performance.now();
    const source = sourceKey(socket.remoteAddress ?? '?');
    const slot = limiter.acquire(source);
    if (!slot.ok) {
      const mine = busyBySource.get(source) ?? 0;
      if (busyOpen >= busyCap || mine >= busyPerSource) {
        socket.destroy();
        return;
      }
      busyOpen += 1;
      busyBySource.set(source, mine + 1);
      void answerBusy(socket, peer, started, slot.reason).finally(() => {
        busyOpen -= 1;
        const left = (busyBySource.get(source) ?? 1) - 1;
        if (left > 0) busyBySource.set(source, left);
        else busyBySource.delete(source);
      });
      return;
    }
    const conn: Conn = { socket, phase: 'header' };
    conns.add(conn);
    void handle(conn, peer, started).finally(() => {
      slot.release();
      conns.delete(conn);
      if (closing && conn.phase !== 'header') finishedDuringClose += 1;
      if (conns.size === 0) for (const w of idleWaiters) w();
    });
  };

  const headerDeadline = (socket: StreamSocket, ms: number): NodeJS.Timeout => {
    const t = setTimeout(() => socket.destroy(new ConnectionEnd('timeout', `no complete request within ${ms / 1000}s`)), ms);
    t.unref();
    return t;
  };

  async function answerBusy(socket: StreamSocket, peer: string, started: number, reason: 'total' | 'per-source'): Promise<void> {
    const reader = new FrameReader();
    const timer = headerDeadline(socket, Math.min(headerTimeoutMs, 2_000));
    let protocol: TransferLog['protocol'] = 'unknown';
    try {
      const first = await readUntil(socket, reader, () => reader.peek());
      protocol = first === MAGIC[0] ? 'v1' : 'classic';
      const answer =
        protocol === 'v1'
          ? encodeResponse({ status: Status.BUSY, size: 0, offset: 0, validator: Buffer.alloc(0), message: reason === 'total' ? `server busy: ${maxConnections} connections already open` : `server busy: ${maxPerSource} connections already open from your address` })
          : CLASSIC_MISSING;
      await writeAll(socket, answer);
      log({ peer, protocol, bytes: 0, durationMs: performance.now() - started, outcome: 'busy', detail: reason === 'total' ? `over --max-connections (${maxConnections})` : `over --max-per-source (${maxPerSource})` });
    } catch (err) {
      log({ peer, protocol, bytes: 0, durationMs: performance.now() - started, outcome: outcomeOf(err), detail: detailOf(err) });
    } finally {
      clearTimeout(timer);
      await linger(socket);
    }
  }

  function outcomeOf(err: unknown): Outcome {
    if (err instanceof ConnectionEnd) return err.outcome;
    return 'error';
  }

  function detailOf(err: unknown): string {
    if (err instanceof Error) return err.message;
    return String(err);
  }

  async function handle(conn: Conn, peer: string, started: number): Promise<void> {
    const { socket } = conn;
    const reader = new FrameReader();
    let timer: NodeJS.Timeout | undefined = headerDeadline(socket, headerTimeoutMs);
    const entry: TransferLog = { peer, protocol: 'unknown', bytes: 0, durationMs: 0, outcome: 'error' };
    let file: Awaited<ReturnType<typeof openInJail>> | undefined;
    /** Both HELLO nonces, once exchanged: from then on a server with a secret seals what it sends. */
    let nonces: HandshakeNonces | undefined;
    const proof: readonly Field[] = key ? [MAC_PLACEHOLDER] : [];
    const sealed = (kind: FileMacKind, frame: Buffer): Buffer => (key && nonces ? sealFrame(kind, key, nonces, frame) : frame);
    try {
      const first = await readUntil(socket, reader, () => reader.peek());
      if (first === TLS_HANDSHAKE) {
        // A TLS ClientHello (0x16 0x03) on a plain port: answer nothing, so the client's TLS stack
        // reports "not TLS" at once instead of misreading a classic "-1".
        const two = await readUntil(socket, reader, () => (reader.buffered >= 2 ? reader.peekAll() : undefined));
        if (two[1] === 0x03) throw new ConnectionEnd('bad-request', 'a TLS client on this plain port (fetch without --tls)');
      }
      if (first === MAGIC[0]) {
        entry.protocol = 'v1';
        await serveV1();
      } else {
        entry.protocol = 'classic';
        await serveClassic();
      }
    } catch (err) {
      entry.outcome = outcomeOf(err);
      entry.detail = detailOf(err);
      // A socket destroyed by a deadline reports that deadline, not the generic close that followed.
      const destroyedWith = (socket as { errored?: unknown }).errored;
      if (destroyedWith instanceof ConnectionEnd) {
        entry.outcome = destroyedWith.outcome;
        entry.detail = destroyedWith.detail;
      }
      socket.destroy();
    } finally {
      if (timer) clearTimeout(timer);
      await file?.handle.close().catch(() => undefined);
      entry.durationMs = performance.now() - started;
      log(entry);
    }

    /** End the exchange after a refusal: send it, half-close, linger. */
    async function refuseV1(status: StatusValue, outcome: Outcome, detail: string, extra?: { size?: number; validator?: Buffer }): Promise<void> {
      entry.outcome = outcome;
      entry.detail = detail;
      const fields = nonces ? proof : [];
      await writeAll(socket, sealed('server', encodeResponse({ status, size: extra?.size ?? 0, offset: 0, validator: extra?.validator ?? Buffer.alloc(0), message: detail, version: status === Status.UNSUPPORTED_VERSION ? VERSION : undefined }, fields)));
      conn.phase = 'closing';
      await linger(socket);
    }

    async function serveV1(): Promise<void> {
      const preamble = await readUntil(socket, reader, () => reader.take(PREAMBLE_LENGTH));
      let version: number;
      try {
        version = decodePreamble(preamble);
      } catch {
        // Not netkit at all: nothing we say would be understood.
        throw new ConnectionEnd('bad-request', 'bad preamble');
      }
      if (version !== VERSION) {
        await refuseV1(Status.UNSUPPORTED_VERSION, 'unsupported-version', `this server speaks file protocol version ${VERSION}, not ${version}`);
        return;
      }
      let request;
      try {
        const hello = decodeHello((await readUntil(socket, reader, () => reader.next()))!);
        const serverNonce = randomBytes(32);
        await writeAll(socket, encodeHello({ nonce: serverNonce, flags: key ? HelloFlag.AUTH_REQUIRED : 0 }));
        nonces = { client: hello.nonce, server: serverNonce };
        const frame = (await readUntil(socket, reader, () => reader.next()).catch((err: unknown) => {
          // What a client without the secret does after our AUTH_REQUIRED HELLO: name it in the log.
          if (key && err instanceof ConnectionEnd && err.outcome === 'aborted') throw new ConnectionEnd('unauthorized', `the client left after the HELLO that requires a secret (it has none?): ${err.detail}`);
          throw err;
        }))!;
        if (key && !(await admit(frame))) return;
        request = decodeRequest(frame);
      } catch (err) {
        if (isNetkitError(err)) {
          await refuseV1(Status.BAD_REQUEST, 'bad-request', err.message);
          return;
        }
        throw err;
      }
      clearTimeout(timer);
      timer = undefined;
      entry.name = request.name;
      entry.offset = request.offset;
      try {
        file = await openInJail(root, request.name);
      } catch (err) {
        if (!isNetkitError(err)) throw err;
        const r = refusalOf(err);
        await refuseV1(r.status, r.outcome, err.message);
        return;
      }
      const st = file.stat;
      const size = Number(st.size);
      const validator = validatorOf(st);
      entry.size = size;
      if (request.offset > 0) {
        if (request.validator.length === 0) {
          await refuseV1(Status.BAD_REQUEST, 'bad-request', 'a resumed request must carry the validator');
          return;
        }
        if (!request.validator.equals(validator)) {
          await refuseV1(Status.CHANGED, 'changed', 'the file changed since the partial download', { size, validator });
          return;
        }
        if (request.offset > size) {
          await refuseV1(Status.BAD_OFFSET, 'bad-offset', `offset ${request.offset} is past the end of the file (${size} bytes)`, { size, validator });
          return;
        }
      }
      conn.phase = 'transfer';
      // RESPONSE goes out before the prefix hash, so the client hashes its copy of the prefix meanwhile.
      socket.write(sealed('server', encodeResponse({ status: Status.OK, size, offset: request.offset, validator, message: '' }, proof)));
      const cached = hashCache.get(st);
      const hash = cached ? undefined : createHash('sha256');
      if (hash && request.offset > 0) {
        // The trailer covers the whole file: hash the part the client already has, reading it once.
        for await (const chunk of readChunks(file.handle, 0, request.offset, pool)) {
          hash.update(chunk);
          pool.put(wholeOf(chunk));
          if (socket.destroyed) throw new ConnectionEnd('aborted', 'the client went away while the server hashed the resumed prefix');
        }
      }
      // Armed only now: the socket is silent both ways while we hash the prefix (any length), and that
      // silence is ours, not a client that stopped reading. A resuming client may still be hashing its
      // own copy of the prefix: allow for that until it first drains what we sent.
      const allowance = request.offset > 0 ? prefixAllowanceMs(request.offset) : 0;
      socket.setTimeout(idleTimeoutMs + allowance, () => socket.destroy(new ConnectionEnd('timeout', `the client read nothing for ${(socket.timeout || idleTimeoutMs) / 1000}s`)));
      if (allowance > 0) socket.once('drain', () => socket.setTimeout(idleTimeoutMs));
      entry.bytes = await sendBody(file.handle, request.offset, size, hash);
      const digest = cached ?? hash!.digest();
      if (!cached) {
        // Only remember the digest if the file provably did not change while we read it.
        const after = await file.handle.stat({ bigint: true });
        if (statKey(after) === statKey(st)) hashCache.set(st, digest);
      }
      await writeAll(socket, sealed('trailer', encodeTrailer({ sha256: digest }, proof)));
      entry.outcome = 'ok';
      conn.phase = 'closing';
      socket.setTimeout(0);
      await linger(socket);
    }

    /**
     * A server with a secret: check the client's proof before anything touches the file system. A source
     * still held off by earlier failures is refused without checking (its guess is not even tested); a
     * failed proof is refused only after the hold-off it earns, on this connection alone, so guessing is
     * slow for that source and nobody else waits. Returns false when the connection was refused.
     */
    async function admit(frame: { type: number; payload: Buffer }): Promise<boolean> {
      const source = sourceKey(socket.remoteAddress ?? '?');
      entry.name = requestedName(frame);
      const heldOff = throttle!.blockedFor(source);
      if (heldOff > 0) {
        await refuseV1(Status.UNAUTHORIZED, 'unauthorized', `too many failed proofs from this address; try again in ${Math.ceil(heldOff / 1000)}s`);
        return false;
      }
      const verdict = frame.type === FrameType.REQUEST ? checkFrame('client', key!, nonces!, frame.payload) : 'malformed';
      if (verdict === 'ok') {
        throttle!.recordSuccess(source);
        return true;
      }
      const { failures, delayMs } = throttle!.recordFailure(source);
      const why = verdict === 'missing' ? 'the request carries no proof of the secret' : verdict === 'bad-mac' ? 'the proof of the secret does not verify' : 'the proof of the secret is malformed';
      // The header deadline no longer applies: the hold-off (at most 30 s by default) bounds this wait.
      clearTimeout(timer);
      timer = undefined;
      await holdOff(delayMs);
      await refuseV1(Status.UNAUTHORIZED, 'unauthorized', why);
      entry.detail = `${why} (failure ${failures} from this address, answered after ${delayMs} ms)`;
      return false;
    }

    /** Wait `ms`, or less if the socket closes first (server shutdown, client gone). */
    function holdOff(ms: number): Promise<void> {
      if (ms <= 0 || socket.destroyed) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          socket.off('close', done);
          resolve();
        };
        const t = setTimeout(done, ms);
        socket.once('close', done);
      });
    }

    async function sendBody(handle: fsp.FileHandle, from: number, to: number, hash: Hash | undefined): Promise<number> {
      let sent = 0;
      for await (const chunk of readChunks(handle, from, to, pool)) {
        const whole = wholeOf(chunk);
        if (socket.destroyed) {
          pool.put(whole);
          throw new ConnectionEnd('aborted', `the client went away after ${sent} bytes`);
        }
        // Returned even when the write fails: a destroyed socket calls back with an error, once.
        const ok = socket.write(chunk, () => pool.put(whole));
        // Hash while the kernel sends what write() could not push out synchronously.
        hash?.update(chunk);
        sent += chunk.length;
        entry.bytes = sent;
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

    async function serveClassic(): Promise<void> {
      const nameBytes = await readUntil(
        socket,
        reader,
        () => {
          const all = reader.peekAll();
          if (!classicNameComplete(all)) return undefined;
          reader.takeRest();
          return all.subarray(0, CLASSIC_NAME_MAX);
        },
        { ms: classicGapMs, onGap: () => reader.takeRest() },
      );
      clearTimeout(timer);
      timer = undefined;
      const refuse = async (outcome: Outcome, detail: string): Promise<void> => {
        entry.outcome = outcome;
        entry.detail = detail;
        await writeAll(socket, CLASSIC_MISSING);
        conn.phase = 'closing';
        await linger(socket);
      };
      if (key) {
        // The classic protocol has no room for a proof: "-1", the only refusal a seed client understands.
        entry.name = nameBytes.toString('utf8');
        await refuse('unauthorized', 'a classic client cannot prove the secret this server requires');
        return;
      }
      let name: string;
      try {
        name = decodeClassicName(nameBytes);
      } catch (err) {
        entry.name = nameBytes.toString('utf8');
        await refuse('bad-request', isNetkitError(err) ? err.message : String(err));
        return;
      }
      entry.name = name;
      try {
        file = await openInJail(root, name);
      } catch (err) {
        if (!isNetkitError(err)) throw err;
        await refuse(refusalOf(err).outcome, err.message);
        return;
      }
      const size = Number(file.stat.size);
      entry.size = size;
      if (size > CLASSIC_MAX_SIZE) {
        await refuse('too-large', `${size} bytes does not fit the classic 8-digit size field (limit ${CLASSIC_MAX_SIZE}); use netkit file fetch`);
        return;
      }
      conn.phase = 'transfer';
      socket.setTimeout(idleTimeoutMs, () => socket.destroy(new ConnectionEnd('timeout', `the client read nothing for ${idleTimeoutMs / 1000}s`)));
      // One write of exactly 8 bytes, so the seed's recv(8) gets the size field and nothing else.
      await writeAll(socket, encodeClassicSize(size));
      entry.bytes = await sendBody(file.handle, 0, size, undefined);
      await new Promise<void>((resolve) => socket.write(Buffer.alloc(0), () => resolve()));
      entry.outcome = 'ok';
      conn.phase = 'closing';
      socket.setTimeout(0);
      // The seed client knows the end by the byte count, but a size-0 file is only ended by our FIN.
      await linger(socket);
    }
  }

  const listener = await opts.transport.listen({ host: opts.host, port: opts.port ?? SERVE_DEFAULTS.port }, onConnection);

  return {
    host: listener.host,
    port: listener.port,
    root,
    transport: opts.transport.name,
    connections: () => conns.size,
    async close(graceMs = SERVE_DEFAULTS.graceMs) {
      closing = true;
      const closed = listener.close();
      let aborted = 0;
      for (const c of conns) {
        if (c.phase === 'header') {
          c.socket.destroy();
          aborted += 1;
        }
      }
      if (conns.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            for (const c of conns) {
              if (c.phase === 'transfer') aborted += 1;
              c.socket.destroy(new ConnectionEnd('aborted', 'the server is shutting down'));
            }
            resolve();
          }, graceMs);
          const done = (): void => {
            clearTimeout(timer);
            idleWaiters.delete(done);
            resolve();
          };
          idleWaiters.add(done);
        });
        // Destroyed sockets finish their handlers on the next turns; wait for the set to empty.
        if (conns.size > 0) await new Promise<void>((resolve) => idleWaiters.add(resolve));
      }
      await closed;
      return { finished: finishedDuringClose, aborted };
    },
  };
}

