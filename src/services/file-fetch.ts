// `netkit file fetch`: download one file into a partial file, verify it, resume it, and move it into place without clobbering.
import { createHash, randomBytes, type Hash, type KeyObject } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { NetkitError, errnoOf, fsError, isNetkitError } from '../errors.js';
import { sanitize, formatBytes } from '../cli/output.js';
import {
  FrameReader,
  NONCE_LENGTH,
  FrameType,
  HelloFlag,
  Status,
  decodeHello,
  decodeResponse,
  decodeTrailer,
  encodePreamble,
  encodeHello,
  encodeRequest,
  statusErrorCode,
  statusName,
  type Frame,
  type Response,
} from '../protocol/file-v1.js';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../protocol/auth-frames.js';
import type { HandshakeNonces } from '../protocol/auth.js';
import { explainShortClassic, parseClassicHead } from '../protocol/file-classic.js';
import { feedSink, formatHostPort, sinkAttached, socketError, type ReadSink, type StreamSocket, type StreamTransport } from '../transport/tcp.js';
import { prefixAllowanceMs, writeAll, type EndFactory } from './file-stream.js';

export const FETCH_DEFAULTS = {
  host: 'localhost',
  port: 8881,
  timeoutMs: 10_000,
} as const;

/** Received bytes are batched into buffers this large: SHA-256 and write() are much faster on big pieces. */
const BATCH = 1024 * 1024;
/** Buffers waiting for the disk before the socket is paused (backpressure towards the server). */
const MAX_BACKLOG = 4;
/**
 * Start background writeback this often, so the final fsync is short. Each fdatasync of a growing file
 * also commits the journal (ext4), which stalls our writes meanwhile: 1 GiB loopback, 6 interleaved
 * rounds, medians: every 16 MiB 2.34 s, 32 MiB 1.85 s, 64 MiB 1.84 s, 128 MiB 1.82 s, never 2.02 s.
 */
const SYNC_EVERY = 64 * 1024 * 1024;
/** Most header-phase bytes buffered before the socket is paused. */
const HEADER_BUFFER_LIMIT = 64 * 1024;

export interface FetchOptions {
  name: string;
  transport: StreamTransport;
  host?: string;
  port?: number;
  outDir?: string;
  force?: boolean;
  timeoutMs?: number;
  /** Speak the seed programs' classic protocol (no verification, no resume). */
  classic?: boolean;
  /**
   * Flush the file to the disk before giving it its final name (default true), so that a power failure
   * cannot leave a damaged file under that name. false trades that for speed, like nc, curl and rsync.
   */
  fsync?: boolean;
  /**
   * k_file (Secret.key('file')): seal the REQUEST and believe a RESPONSE or TRAILER only with the
   * server's valid proof, whatever its HELLO flags say (docs/security.md 4.3). Not with `classic`.
   */
  secret?: KeyObject;
  onProgress?: (received: number, total: number) => void;
  /** Things a person should know that are not errors: resuming, starting over. */
  onNotice?: (message: string) => void;
}

export interface FetchResult {
  /** The name requested. */
  name: string;
  /** Where the file was written. */
  path: string;
  size: number;
  /** Hex SHA-256 of the whole file (computed locally; for v1 it matched the server's). */
  sha256: string;
  /** True when the server's SHA-256 matched ours (v1); classic transfers cannot be verified. */
  verified: boolean;
  protocol: 'v1' | 'classic';
  /** Bytes already present from an earlier partial download. */
  resumedFrom: number;
  /** Bytes received over the network this time. */
  received: number;
  durationMs: number;
  host: string;
  port: number;
}

/** Sidecar of a partial download: what the resume request needs. */
interface PartInfo {
  netkit: 1;
  host: string;
  port: number;
  name: string;
  size: number;
  validator: string;
}

/** The local file name: the last segment of the requested name, never a path chosen by the peer. */
export function localNameOf(name: string): string {
  const segments = name.split('/').filter((s) => s !== '');
  const last = segments[segments.length - 1];
  if (last === undefined || last === '.' || last === '..') {
    throw new NetkitError('USAGE', `cannot derive a local file name from '${sanitize(name)}'`, 'name a file, e.g. dir/file.bin');
  }
  if (/[\u0000-\u001f\u007f]/.test(last)) {
    throw new NetkitError('USAGE', `the name '${sanitize(name)}' contains control characters`);
  }
  return last;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw fsError(err, `cannot check ${p}`);
  }
}

async function readPartInfo(p: string): Promise<PartInfo | undefined> {
  try {
    const info = JSON.parse(await fsp.readFile(p, 'utf8')) as Partial<PartInfo>;
    if (
      info.netkit === 1 &&
      typeof info.host === 'string' &&
      typeof info.port === 'number' &&
      typeof info.name === 'string' &&
      typeof info.size === 'number' &&
      typeof info.validator === 'string' &&
      /^[0-9a-f]*$/.test(info.validator)
    ) {
      return info as PartInfo;
    }
  } catch {
    // missing or unreadable: no resume
  }
  return undefined;
}

async function removeQuietly(...paths: string[]): Promise<void> {
  for (const p of paths) await fsp.rm(p, { force: true }).catch(() => undefined);
}

/** Hash the first `length` bytes of a file, reading each byte once in large pieces. */
async function hashPrefix(file: string, length: number): Promise<Hash> {
  const hash = createHash('sha256');
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(BATCH);
    let pos = 0;
    while (pos < length) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(BATCH, length - pos), pos);
      if (bytesRead === 0) throw new NetkitError('LOCAL_IO', `${file} is shorter than expected`);
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return hash;
}

/** Refuse before receiving when the destination file system cannot hold what is left to come. */
async function checkRoom(dir: string, needed: number): Promise<void> {
  if (needed <= 0) return;
  let st: fs.StatsFs;
  try {
    st = await fsp.statfs(dir);
  } catch {
    return; // a file system without statfs: the writes themselves will report ENOSPC
  }
  const free = Number(st.bavail) * Number(st.bsize);
  if (free < needed) {
    throw new NetkitError(
      'DISK_FULL',
      `not enough room in ${dir}: the file needs ${formatBytes(needed)} more, ${formatBytes(free)} free`,
      'free some space, or choose another --out',
    );
  }
}

/**
 * Writes received bytes to the partial file in 1 MiB batches: the socket reads straight into the
 * current batch (region/commit) or chunks are copied in (push); each full batch is hashed once and
 * written in order, one write at a time, so a crash never leaves a hole before the file's end.
 * While the disk is behind, `high` is true and the receiver pauses the socket.
 */
class PartWriter {
  private current: Buffer;
  private fill = 0;
  private readonly free: Buffer[] = [];
  private readonly queue: Array<{ buf: Buffer; len: number }> = [];
  private writing = false;
  private error: NetkitError | undefined;
  private idle: Array<() => void> = [];
  private position: number;
  private syncing = false;
  private sinceSync = 0;
  /** Bytes handed to the file system: the file's length once pending writes finish. */
  written: number;
  onResume: () => void = () => undefined;
  onFail: (err: NetkitError) => void = () => undefined;

  constructor(
    private readonly fd: number,
    private readonly where: string,
    start: number,
    private readonly hash: Hash,
    private readonly durable = true,
  ) {
    this.written = start;
    this.position = start;
    this.current = Buffer.allocUnsafeSlow(BATCH);
  }

  get failed(): NetkitError | undefined {
    return this.error;
  }

  /** True while enough batches wait for the disk that the socket should pause. */
  get high(): boolean {
    return this.queue.length >= MAX_BACKLOG;
  }

  /** Room in the current batch for the next read, at most `max` bytes. */
  region(max: number): Buffer {
    return this.current.subarray(this.fill, this.fill + Math.min(max, BATCH - this.fill));
  }

  /** `n` bytes were read into the last region(). */
  commit(n: number): void {
    this.fill += n;
    if (this.fill === BATCH) this.flush();
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, BATCH - this.fill);
      chunk.copy(this.current, this.fill, at, at + n);
      this.fill += n;
      at += n;
      if (this.fill === BATCH) this.flush();
    }
  }

  /** Hash the current batch and queue it for writing. */
  flush(): void {
    if (this.fill === 0) return;
    const buf = this.current;
    const len = this.fill;
    this.hash.update(buf.subarray(0, len));
    this.queue.push({ buf, len });
    this.current = this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH);
    this.fill = 0;
    this.pump();
  }

  private wakeIdle(): void {
    const waiters = this.idle;
    this.idle = [];
    for (const w of waiters) w();
  }

  private pump(): void {
    if (this.writing || this.error) return;
    const next = this.queue[0];
    if (!next) {
      this.wakeIdle();
      return;
    }
    this.writing = true;
    const writeFrom = (off: number): void => {
      fs.write(this.fd, next.buf, off, next.len - off, this.position + off, (err, n) => {
        if (err) {
          this.writing = false;
          this.error = fsError(err, `cannot write ${this.where}`);
          this.onFail(this.error);
          this.wakeIdle();
          return;
        }
        if (off + n < next.len) {
          writeFrom(off + n);
          return;
        }
        this.position += next.len;
        this.written = this.position;
        this.queue.shift();
        if (this.free.length < MAX_BACKLOG) this.free.push(next.buf);
        this.writing = false;
        this.backgroundSync(next.len);
        if (this.queue.length === MAX_BACKLOG - 1) this.onResume();
        this.pump();
      });
    };
    writeFrom(0);
  }

  /**
   * Start writeback every SYNC_EVERY bytes in the background, so the final fsync before the rename
   * has little left to do instead of stalling on the whole file.
   */
  private backgroundSync(n: number): void {
    this.sinceSync += n;
    if (!this.durable || this.syncing || this.sinceSync < SYNC_EVERY) return;
    this.sinceSync = 0;
    this.syncing = true;
    fs.fdatasync(this.fd, () => {
      this.syncing = false;
      this.wakeIdle();
    });
  }

  /** Flush what is buffered and wait until every queued write finished (or one failed). */
  async settle(): Promise<void> {
    this.flush();
    while ((this.writing || this.queue.length > 0) && !this.error) {
      await new Promise<void>((resolve) => this.idle.push(resolve));
    }
    // Wait for a background fdatasync without spinning the event loop (it can take a while on a slow disk).
    while (this.syncing) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.error) throw this.error;
  }
}

/**
 * The client's side of one connection, as a ReadSink: header bytes land in a small scratch buffer
 * and go to a FrameReader; body bytes land directly in the PartWriter's batches (no copy, no
 * allocation per read); whatever follows the body lands in scratch again (the trailer).
 */
class Receiver implements ReadSink {
  readonly reader = new FrameReader();
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private body: { remaining: number; writer: PartWriter; resolve: () => void; onBytes: (n: number) => void } | undefined;
  private bodyRead = false;
  private wake: (() => void) | undefined;
  socket: StreamSocket | undefined;
  /** Set once the peer ended its side, closed, or failed. */
  gone: Error | undefined;
  ended = false;

  buffer(): Buffer {
    if (this.body && this.body.remaining > 0 && !this.body.writer.failed) {
      this.bodyRead = true;
      return this.body.writer.region(this.body.remaining);
    }
    this.bodyRead = false;
    return this.scratch;
  }

  received(n: number, buf: Buffer): boolean {
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
  receiveBody(length: number, writer: PartWriter, onBytes: (n: number) => void): Promise<void> {
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

interface Conn {
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

export async function fetchFile(opts: FetchOptions): Promise<FetchResult> {
  const host = opts.host ?? FETCH_DEFAULTS.host;
  const port = opts.port ?? FETCH_DEFAULTS.port;
  const timeoutMs = opts.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
  const outDir = opts.outDir ?? '.';
  const localName = localNameOf(opts.name);
  const target = formatHostPort(host, port);
  const started = performance.now();

  try {
    const st = await fsp.stat(outDir);
    if (!st.isDirectory()) throw new NetkitError('LOCAL_IO', `--out ${outDir} is not a directory`);
  } catch (err) {
    if (isNetkitError(err)) throw err;
    throw new NetkitError('LOCAL_IO', `--out ${outDir}: ${errnoOf(err) === 'ENOENT' ? 'no such directory' : (errnoOf(err) ?? String(err))}`, 'create it first, or choose another --out', { cause: err });
  }
  const finalPath = path.join(outDir, localName);
  const partPath = `${finalPath}.part`;
  const infoPath = `${finalPath}.part.json`;
  if (!opts.force && (await exists(finalPath))) {
    throw new NetkitError('EXISTS', `${finalPath} already exists`, 'use --force to overwrite it, or choose another --out');
  }

  const common = { opts, host, port, timeoutMs, target, finalPath, partPath, infoPath, started, localName };
  if (opts.classic && opts.secret) {
    throw new NetkitError('USAGE', 'a classic fetch cannot use a secret: the classic protocol cannot authenticate', 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  if (opts.classic) return fetchClassic(common);
  // One retry from zero when the server says the partial file is stale.
  try {
    return await fetchV1(common, true);
  } catch (err) {
    if (err instanceof RestartFromZero) {
      opts.onNotice?.(err.message);
      await removeQuietly(partPath, infoPath);
      return fetchV1(common, false);
    }
    throw err;
  }
}

class RestartFromZero extends Error {}

interface Common {
  opts: FetchOptions;
  host: string;
  port: number;
  timeoutMs: number;
  target: string;
  finalPath: string;
  partPath: string;
  infoPath: string;
  started: number;
  localName: string;
}

async function connect(c: Common): Promise<Conn> {
  const receiver = new Receiver();
  const socket = await c.opts.transport.connect({ host: c.host, port: c.port, timeoutMs: c.timeoutMs, sink: receiver });
  socket.on('error', () => undefined);
  receiver.attach(socket, endsFor(c.target));
  if (!sinkAttached(socket)) feedSink(socket, receiver);
  socket.setTimeout(c.timeoutMs, () => {
    socket.destroy(new NetkitError('TIMEOUT', `${c.target} sent nothing for ${(socket.timeout || c.timeoutMs) / 1000}s`, 'is the server overloaded? try again, or raise --timeout'));
  });
  return { socket, receiver };
}

const WRITE_ENDS: EndFactory = {
  closed: () => new NetkitError('PEER_CLOSED', 'the connection closed before the request was sent'),
  failed: (err) => new NetkitError('PEER_CLOSED', `cannot send the request: ${err.message}`),
};

/** Move the verified partial file into place; without --force, never replace an existing file. */
async function publish(partPath: string, finalPath: string, force: boolean): Promise<void> {
  if (force) {
    try {
      await fsp.rename(partPath, finalPath);
    } catch (err) {
      throw fsError(err, `cannot move ${partPath} to ${finalPath}`);
    }
    return;
  }
  try {
    // link() fails with EEXIST instead of replacing: a file that appeared meanwhile is never clobbered.
    await fsp.link(partPath, finalPath);
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') {
      throw new NetkitError('EXISTS', `${finalPath} appeared during the download; the verified data is kept in ${partPath}`, 'use --force to overwrite it');
    }
    if (errnoOf(err) === 'EPERM' || errnoOf(err) === 'ENOTSUP' || errnoOf(err) === 'EOPNOTSUPP' || errnoOf(err) === 'EXDEV') {
      // File systems without hard links: an exclusive create then rename keeps the no-clobber rule.
      let claim: fsp.FileHandle;
      try {
        claim = await fsp.open(finalPath, 'wx');
      } catch (e) {
        if (errnoOf(e) === 'EEXIST') throw new NetkitError('EXISTS', `${finalPath} appeared during the download; the verified data is kept in ${partPath}`, 'use --force to overwrite it');
        throw fsError(e, `cannot create ${finalPath}`);
      }
      await claim.close();
      try {
        await fsp.rename(partPath, finalPath);
      } catch (e) {
        throw fsError(e, `cannot move ${partPath} to ${finalPath}`);
      }
      return;
    }
    throw fsError(err, `cannot create ${finalPath}`);
  }
  await fsp.unlink(partPath).catch(() => undefined);
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // not every platform can fsync a directory; the file itself was synced
  }
}

/** Flush the partial file (unless --no-fsync) and close it; errors name the partial file. */
function flushAndClose(fd: number, partPath: string, fsync: boolean): void {
  try {
    if (fsync) fs.fsyncSync(fd);
  } catch (err) {
    throw fsError(err, `cannot write ${partPath}`);
  }
  fs.closeSync(fd);
}

/**
 * Give the verified, closed partial file its final name (never clobbering without --force), remove
 * what only the partial file needed, and make the rename itself durable.
 */
async function publishPart(c: Common, leftovers: readonly string[]): Promise<void> {
  await publish(c.partPath, c.finalPath, c.opts.force === true);
  await removeQuietly(...leftovers);
  if (c.opts.fsync !== false) await syncDir(path.dirname(c.finalPath));
}

/**
 * After a failure: drop the connection, let queued writes finish, close the partial file, then remove
 * the files `worthless` names (asked only once the writes have settled, so it sees every byte written).
 */
async function abandonPart(socket: StreamSocket, writer: PartWriter | undefined, fd: number | undefined, worthless: () => readonly string[]): Promise<void> {
  socket.destroy();
  if (writer) await writer.settle().catch(() => undefined);
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already reported
  }
  await removeQuietly(...worthless());
}

async function fetchV1(c: Common, mayResume: boolean): Promise<FetchResult> {
  const { opts } = c;
  // Resume only what this same request to this same server started.
  let offset = 0;
  let validator = Buffer.alloc(0);
  let prefixHash: Hash | undefined;
  if (mayResume) {
    const info = await readPartInfo(c.infoPath);
    if (info && info.host === c.host && info.port === c.port && info.name === opts.name) {
      let partSize = -1;
      try {
        const st = await fsp.stat(c.partPath);
        if (st.isFile()) partSize = st.size;
      } catch {
        partSize = -1;
      }
      if (partSize > 0 && partSize <= info.size) {
        offset = partSize;
        validator = Buffer.from(info.validator, 'hex');
      }
    }
  }

  const { socket, receiver } = await connect(c);
  const { reader } = receiver;
  let fd: number | undefined;
  let writer: PartWriter | undefined;
  let size = 0;
  let handshake = true;
  const key = opts.secret;
  let nonces: HandshakeNonces = { client: Buffer.alloc(0), server: Buffer.alloc(0) };
  try {
    const clientNonce = randomBytes(NONCE_LENGTH);
    await writeAll(socket, Buffer.concat([encodePreamble(), encodeHello({ nonce: clientNonce, flags: 0 })]), WRITE_ENDS);
    const first = await receiver.until(() => reader.next());
    if (first.type === FrameType.RESPONSE) throwRefusal(decodeResponse(first), c);
    const hello = decodeHello(first);
    nonces = { client: clientNonce, server: hello.nonce };
    if (!key && (hello.flags & HelloFlag.AUTH_REQUIRED) !== 0) {
      throw new NetkitError('UNAUTHORIZED', `${c.target} requires a shared secret; nothing was requested`, 'set NETKIT_TOKEN or --token-file (the same secret as the server)');
    }
    const request = encodeRequest({ name: opts.name, offset, validator }, key ? [MAC_PLACEHOLDER] : []);
    await writeAll(socket, key ? sealFrame('client', key, nonces, request) : request, WRITE_ENDS);
    const responseFrame = await receiver.until(() => reader.next());
    // Before believing any field (a CHANGED would delete the partial file; OK would start writing).
    if (key) requireProof('server', key, nonces, responseFrame, c);
    const response = decodeResponse(responseFrame);
    if (response.status !== Status.OK) {
      if (offset > 0 && (response.status === Status.CHANGED || response.status === Status.BAD_OFFSET)) {
        throw new RestartFromZero(`the file changed on the server since the partial download (${formatBytes(offset)} in ${c.partPath}); starting over`);
      }
      throwRefusal(response, c);
    }
    handshake = false;
    if (response.offset !== offset) throw new NetkitError('PROTOCOL', `${c.target} answered for offset ${response.offset}, not ${offset}`);
    size = response.size;
    await checkRoom(path.dirname(c.finalPath), size - offset);
    if (offset > 0) {
      opts.onNotice?.(`resuming ${c.localName} at ${formatBytes(offset)} of ${formatBytes(size)}`);
      // The server hashes its copy of [0, offset) now (unless cached): hash ours at the same time, with
      // our silence timeout off (the socket pauses once 64 KiB of early body bytes are buffered)...
      socket.setTimeout(0);
      prefixHash = await hashPrefix(c.partPath, offset);
      // ...then, until the first body byte, allow for a server that hashes more slowly than we did.
      socket.setTimeout(c.timeoutMs + prefixAllowanceMs(offset));
    } else {
      const info: PartInfo = { netkit: 1, host: c.host, port: c.port, name: opts.name, size, validator: response.validator.toString('hex') };
      try {
        await fsp.writeFile(c.infoPath, `${JSON.stringify(info)}\n`);
      } catch (err) {
        throw fsError(err, `cannot write ${c.infoPath}`);
      }
    }
    try {
      fd = fs.openSync(c.partPath, offset > 0 ? 'r+' : 'w', 0o644);
    } catch (err) {
      throw fsError(err, `cannot write ${c.partPath}`);
    }
    const hash = prefixHash ?? createHash('sha256');
    writer = new PartWriter(fd, c.partPath, offset, hash, opts.fsync !== false);
    let got = 0;
    let reported = 0;
    opts.onProgress?.(offset, size);
    await receiver.receiveBody(size - offset, writer, (n) => {
      if (got === 0 && offset > 0) socket.setTimeout(c.timeoutMs);
      got += n;
      if (got - reported >= BATCH || got === size - offset) {
        reported = got;
        opts.onProgress?.(offset + got, size);
      }
    });
    const trailerFrame = await receiver.until(() => reader.next());
    if (key) {
      try {
        requireProof('trailer', key, nonces, trailerFrame, c);
      } catch (err) {
        // Bytes from a peer that could not vouch for them: never under the final name, not kept for a resume.
        socket.destroy();
        await writer.settle().catch(() => undefined);
        fs.closeSync(fd);
        fd = undefined;
        await removeQuietly(c.partPath, c.infoPath);
        throw err;
      }
    }
    const trailer = decodeTrailer(trailerFrame);
    socket.destroy();
    await writer.settle();
    const digest = hash.digest();
    if (!digest.equals(trailer.sha256)) {
      fs.closeSync(fd);
      fd = undefined;
      await removeQuietly(c.partPath, c.infoPath);
      throw new NetkitError(
        'INTEGRITY',
        `${c.localName} did not verify: SHA-256 ${digest.toString('hex')} here, ${trailer.sha256.toString('hex')} on the server; the partial file was removed`,
        'run the fetch again; if it fails again, the file is changing on the server or the network corrupts data',
      );
    }
    flushAndClose(fd, c.partPath, opts.fsync !== false);
    fd = undefined;
    await publishPart(c, [c.infoPath]);
    return {
      name: opts.name,
      path: c.finalPath,
      size,
      sha256: digest.toString('hex'),
      verified: true,
      protocol: 'v1',
      resumedFrom: offset,
      received: size - offset,
      durationMs: performance.now() - c.started,
      host: c.host,
      port: c.port,
    };
  } catch (err) {
    // Nothing received and nothing from before: the partial file is worthless.
    await abandonPart(socket, writer, fd, () => (offset === 0 && (writer?.written ?? 0) === 0 ? [c.partPath, c.infoPath] : []));
    // A failed write (disk full, permission) is the root cause even when it surfaced as the connection
    // closing: the failure destroys the socket, and whatever was waiting on it sees that first.
    if (writer?.failed) throw writer.failed;
    if (handshake && isNetkitError(err) && (err.code === 'PEER_CLOSED' || err.code === 'PROTOCOL' || err.code === 'TOO_LARGE')) {
      // Something answers on that port, but not a netkit v1 server: say what it probably is.
      throw new NetkitError(
        'PROTOCOL',
        `${c.target} does not speak netkit file protocol v1 (${err.message})`,
        'is that a netkit file server? a seed (classic) server needs --classic',
        { cause: err },
      );
    }
    if (handshake && isNetkitError(err) && err.code === 'TIMEOUT') {
      throw new NetkitError('TIMEOUT', `${err.message} in answer to the handshake`, 'is that a netkit file server (and not, e.g., a TLS one: then use --tls)? or raise --timeout', { cause: err });
    }
    if (isNetkitError(err) && (err.code === 'PEER_CLOSED' || err.code === 'TIMEOUT') && size > 0) {
      const have = writer?.written ?? offset;
      throw new NetkitError(err.code, `${err.message}, after ${formatBytes(have)} of ${formatBytes(size)}; ${c.partPath} is kept`, 'run the same fetch again to resume', { cause: err });
    }
    throw err;
  }
}

/**
 * A client with a secret believes a RESPONSE or TRAILER only with the server's valid proof; anything
 * else is UNAUTHORIZED, whatever the HELLO flags said (no downgrade). A frame of the wrong type is
 * left to the decoder, which reports it as a protocol error.
 */
function requireProof(kind: 'server' | 'trailer', key: KeyObject, nonces: HandshakeNonces, frame: Frame, c: Common): void {
  if (frame.type !== (kind === 'server' ? FrameType.RESPONSE : FrameType.TRAILER)) return;
  const verdict = checkFrame(kind, key, nonces, frame.payload);
  if (verdict === 'ok') return;
  const what = kind === 'server' ? 'answer' : 'end-of-transfer frame (TRAILER)';
  const nothing = kind === 'server' ? 'nothing was written' : 'the received bytes were removed';
  let refused = false;
  if (kind === 'server') {
    try {
      refused = decodeResponse(frame).status === Status.UNAUTHORIZED;
    } catch {
      // unreadable as well as unproven
    }
  }
  const why = refused
    ? 'it refused our proof, and its refusal does not carry a valid proof either: the two sides hold different secrets'
    : verdict === 'missing'
      ? `its ${what} carries no MAC: a server without a secret, or something else answering in its place`
      : `the MAC on its ${what} does not verify: the server holds a different secret, or the bytes were altered on the way`;
  throw new NetkitError('UNAUTHORIZED', `${c.target} could not prove it knows the secret (${why}); ${nothing}`, 'give both sides the same secret (NETKIT_TOKEN or --token-file)');
}

function throwRefusal(r: Response, c: Common): never {
  const said = r.message ? `: ${sanitize(r.message, 200)}` : '';
  const name = sanitize(c.opts.name, 200);
  switch (r.status) {
    case Status.NOT_FOUND:
      throw new NetkitError('NOT_FOUND', `${c.target} has no file '${name}'${said}`, 'check the name: it is relative to the directory the server serves');
    case Status.FORBIDDEN:
      throw new NetkitError('FORBIDDEN', `${c.target} refused '${name}'${said}`, 'only regular files inside the served directory can be fetched');
    case Status.BAD_REQUEST:
      throw new NetkitError('BAD_REQUEST', `${c.target} rejected the request for '${name}'${said}`);
    case Status.BUSY:
      throw new NetkitError('BUSY', `${c.target} is busy${said}`, 'try again in a moment');
    case Status.UNAUTHORIZED:
      throw new NetkitError('UNAUTHORIZED', `${c.target} refused the request as unauthorized${said}`, 'give both sides the same secret (NETKIT_TOKEN or --token-file)');
    case Status.UNSUPPORTED_VERSION:
      throw new NetkitError('PROTOCOL', `${c.target} does not speak file protocol version 1${said}`, 'upgrade netkit on one side');
    default:
      throw new NetkitError(statusErrorCode(r.status), `${c.target} failed (${statusName(r.status)})${said}`);
  }
}

/** How long a classic stream must stay silent after its announced size before the transfer counts as complete. */
const CLASSIC_SETTLE_MS = 500;

async function fetchClassic(c: Common): Promise<FetchResult> {
  const { opts } = c;
  const nameBytes = Buffer.from(opts.name, 'utf8');
  if (nameBytes.length > 1024) throw new NetkitError('USAGE', 'a classic name must be at most 1024 bytes');
  const { socket, receiver } = await connect(c);
  const { reader } = receiver;
  let fd: number | undefined;
  let writer: PartWriter | undefined;
  const hash = createHash('sha256');
  try {
    // The seed server reads the name with a single recv(1024): send it in one write, nothing else.
    await writeAll(socket, nameBytes, WRITE_ENDS);
    const head = await receiver.until(
      () => parseClassicHead(reader.peekAll(), false),
      () => parseClassicHead(reader.peekAll(), true),
    );
    if (head.kind === 'missing') {
      throw new NetkitError('NOT_FOUND', `${c.target} (classic) has no file '${sanitize(opts.name, 200)}'`, 'a classic server answers -1 for every refusal: missing, forbidden, busy or too large');
    }
    const size = head.size;
    const digits = /^\d*/.exec(reader.peekAll().subarray(0, 20).toString('latin1'))![0];
    reader.take(head.headerLength);
    try {
      await checkRoom(path.dirname(c.finalPath), size);
    } catch (err) {
      if (!isNetkitError(err)) throw err;
      throw new NetkitError(err.code, `${err.message} (the classic server announced ${size} bytes; if the file starts with digits that size is misread: the classic protocol cannot tell)`, err.hint);
    }
    try {
      fd = fs.openSync(c.partPath, 'w', 0o644);
    } catch (err) {
      throw fsError(err, `cannot write ${c.partPath}`);
    }
    writer = new PartWriter(fd, c.partPath, 0, hash, opts.fsync !== false);
    let got = 0;
    let reported = 0;
    opts.onProgress?.(0, size);
    const short = async (): Promise<NetkitError> => {
      const why = explainShortClassic(digits, got, size, head.headerLength + got);
      // Misread boundary: every byte in the partial file is shifted, so it is worthless.
      const misread = why.includes('starts with digits');
      if (misread) {
        await writer?.settle().catch(() => undefined);
        if (fd !== undefined) fs.closeSync(fd);
        fd = undefined;
        await removeQuietly(c.partPath);
      }
      return new NetkitError(
        'PEER_CLOSED',
        `${why}${misread ? '' : `; ${c.partPath} is kept`}`,
        'the classic protocol can neither verify nor resume; fetch from a netkit server without --classic',
      );
    };
    try {
      await receiver.receiveBody(size, writer, (n) => {
        got += n;
        if (got - reported >= BATCH || got === size) {
          reported = got;
          opts.onProgress?.(got, size);
        }
      });
    } catch (err) {
      if (receiver.ended) throw await short();
      throw err;
    }
    // No trailer in classic: bytes beyond the announced size mean the size was misread. The seed
    // server sends everything at once and then closes, but a seed server that keeps serving holds the
    // connection open (the seed client stops at the size and never waits for the end), so a short
    // silence counts as the end too.
    const endSeen = receiver.until(
      () => {
        if (reader.buffered > 0) {
          throw new NetkitError('PROTOCOL', `the classic server sent more than the ${size} bytes it announced; nothing was saved as final`, 'the classic protocol cannot verify; fetch from a netkit server without --classic');
        }
        return receiver.ended ? true : undefined;
      },
      () => true,
    );
    endSeen.catch(() => undefined); // settled below, or moot once the silence has won
    let settle: NodeJS.Timeout | undefined;
    await Promise.race([endSeen, new Promise((resolve) => (settle = setTimeout(resolve, Math.min(CLASSIC_SETTLE_MS, c.timeoutMs))))]);
    clearTimeout(settle);
    socket.destroy();
    await writer.settle();
    flushAndClose(fd, c.partPath, opts.fsync !== false);
    fd = undefined;
    await publishPart(c, []);
    return {
      name: opts.name,
      path: c.finalPath,
      size,
      sha256: hash.digest('hex'),
      verified: false,
      protocol: 'classic',
      resumedFrom: 0,
      received: size,
      durationMs: performance.now() - c.started,
      host: c.host,
      port: c.port,
    };
  } catch (err) {
    await abandonPart(socket, writer, fd, () => ((writer?.written ?? 0) === 0 ? [c.partPath] : []));
    throw writer?.failed ?? err;
  }
}
