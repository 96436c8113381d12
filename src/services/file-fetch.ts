// `netkit file fetch`: download one file into a partial file, verify it, resume it, and move it into place without clobbering.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { NetkitError, errnoOf, fsError, isNetkitError } from '../errors.js';
import { sanitize, formatBytes } from '../cli/output.js';
import {
  FrameReader,
  NONCE_LENGTH,
  FrameType,
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
import { explainShortClassic, parseClassicHead } from '../protocol/file-classic.js';
import { formatHostPort, socketError, type StreamSocket, type StreamTransport } from '../transport/tcp.js';
import { readUntil, writeAll, type EndFactory } from './file-stream.js';

export const FETCH_DEFAULTS = {
  host: 'localhost',
  port: 8881,
  timeoutMs: 10_000,
} as const;

/** Received bytes are batched into buffers this large: SHA-256 and write() are much faster on big pieces. */
const BATCH = 1024 * 1024;
/** Buffers waiting for the disk before the socket is paused (backpressure towards the server). */
const MAX_BACKLOG = 4;

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
 * Writes received bytes to the partial file: copies them into 1 MiB batches, hashes each batch once,
 * and writes batches in order, one at a time (so a crash never leaves a hole before the file's end).
 * Tells the caller to pause the socket while the disk is behind.
 */
class PartWriter {
  private current: Buffer;
  private fill = 0;
  private readonly free: Buffer[] = [];
  private readonly queue: Array<{ buf: Buffer; len: number }> = [];
  private writing = false;
  private error: NetkitError | undefined;
  private idle: Array<() => void> = [];
  /** Bytes durably handed to the file system (the file's length after the pending writes). */
  written: number;

  constructor(
    private readonly fd: number,
    private readonly where: string,
    start: number,
    private readonly hash: Hash,
    private readonly onBacklog: (high: boolean) => void,
    private readonly onFail: (err: NetkitError) => void,
  ) {
    this.written = start;
    this.position = start;
    this.current = Buffer.allocUnsafeSlow(BATCH);
  }

  private position: number;

  get failed(): NetkitError | undefined {
    return this.error;
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
    if (this.queue.length >= MAX_BACKLOG) this.onBacklog(true);
    this.pump();
  }

  private pump(): void {
    if (this.writing || this.error) return;
    const next = this.queue[0];
    if (!next) {
      const waiters = this.idle;
      this.idle = [];
      for (const w of waiters) w();
      return;
    }
    this.writing = true;
    const writeFrom = (off: number): void => {
      fs.write(this.fd, next.buf, off, next.len - off, this.position + off, (err, n) => {
        if (err) {
          this.writing = false;
          this.error = fsError(err, `cannot write ${this.where}`);
          this.onFail(this.error);
          const waiters = this.idle;
          this.idle = [];
          for (const w of waiters) w();
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
        if (this.queue.length <= 1) this.onBacklog(false);
        this.pump();
      });
    };
    writeFrom(0);
  }

  /** Flush what is buffered and wait until every queued write finished (or one failed). */
  async settle(): Promise<void> {
    this.flush();
    if (this.writing || (this.queue.length > 0 && !this.error)) {
      await new Promise<void>((resolve) => this.idle.push(resolve));
    }
    if (this.error) throw this.error;
  }
}

interface Conn {
  socket: StreamSocket;
  target: string;
  ends: EndFactory;
}

function endsFor(target: string, during: string): EndFactory {
  return {
    closed: () => new NetkitError('PEER_CLOSED', `${target} closed the connection ${during}`, 'is the server still running? run the same fetch again to retry'),
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

async function connect(c: Common, during: string): Promise<Conn> {
  const socket = await c.opts.transport.connect({ host: c.host, port: c.port, timeoutMs: c.timeoutMs });
  socket.on('error', () => undefined);
  socket.pause();
  socket.setTimeout(c.timeoutMs, () => {
    socket.destroy(new NetkitError('TIMEOUT', `${c.target} sent nothing for ${c.timeoutMs / 1000}s ${during}`, 'is the server overloaded? try again, or raise --timeout'));
  });
  return { socket, target: c.target, ends: endsFor(c.target, during) };
}

/** A socket destroyed with a NetkitError (our timeout) reports that error rather than the close it caused. */
function cause(socket: StreamSocket, err: unknown): unknown {
  const destroyedWith = (socket as { errored?: unknown }).errored;
  return isNetkitError(destroyedWith) ? destroyedWith : err;
}

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
        prefixHash = await hashPrefix(c.partPath, offset);
      }
    }
  }

  const conn = await connect(c, 'during the handshake');
  const { socket } = conn;
  const reader = new FrameReader();
  let fd: number | undefined;
  let writer: PartWriter | undefined;
  let size = 0;
  let received = 0;
  try {
    await writeAll(socket, Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(NONCE_LENGTH), flags: 0 })]), conn.ends);
    const first = await readUntil(socket, reader, () => reader.next(), conn.ends);
    if (first.type === FrameType.RESPONSE) throwRefusal(decodeResponse(first), c);
    decodeHello(first);
    await writeAll(socket, encodeRequest({ name: opts.name, offset, validator }), conn.ends);
    const response = decodeResponse(await readUntil(socket, reader, () => reader.next(), conn.ends));
    if (response.status !== Status.OK) {
      if (offset > 0 && (response.status === Status.CHANGED || response.status === Status.BAD_OFFSET)) {
        throw new RestartFromZero(`the file changed on the server since the partial download (${formatBytes(offset)} kept in ${c.partPath}); starting over`);
      }
      throwRefusal(response, c);
    }
    if (response.offset !== offset) throw new NetkitError('PROTOCOL', `${c.target} answered for offset ${response.offset}, not ${offset}`);
    size = response.size;
    await checkRoom(path.dirname(c.finalPath), size - offset);
    if (offset > 0) {
      opts.onNotice?.(`resuming ${c.localName} at ${formatBytes(offset)} of ${formatBytes(size)}`);
    } else {
      const info: PartInfo = { netkit: 1, host: c.host, port: c.port, name: opts.name, size, validator: response.validator.toString('hex') };
      await fsp.writeFile(c.infoPath, `${JSON.stringify(info)}\n`).catch((err: unknown) => {
        throw fsError(err, `cannot write ${c.infoPath}`);
      });
    }
    try {
      fd = fs.openSync(c.partPath, offset > 0 ? 'r+' : 'w', 0o644);
    } catch (err) {
      throw fsError(err, `cannot write ${c.partPath}`);
    }
    const hash = prefixHash ?? createHash('sha256');
    const trailerFrame = await receiveBody(conn, reader, size - offset, (w) => {
      writer = w;
    }, fd, c.partPath, offset, hash, (n) => {
      received = n;
      opts.onProgress?.(offset + n, size);
    });
    received = size - offset;
    await writer!.settle();
    const trailer = decodeTrailer(trailerFrame);
    const digest = hash.digest();
    socket.destroy();
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
    try {
      fs.fsyncSync(fd);
    } catch (err) {
      throw fsError(err, `cannot write ${c.partPath}`);
    }
    fs.closeSync(fd);
    fd = undefined;
    await publish(c.partPath, c.finalPath, opts.force === true);
    await removeQuietly(c.infoPath);
    await syncDir(path.dirname(c.finalPath));
    return {
      name: opts.name,
      path: c.finalPath,
      size,
      sha256: digest.toString('hex'),
      verified: true,
      protocol: 'v1',
      resumedFrom: offset,
      received,
      durationMs: performance.now() - c.started,
      host: c.host,
      port: c.port,
    };
  } catch (err) {
    const reason = cause(socket, err);
    socket.destroy();
    if (writer) await writer.settle().catch(() => undefined);
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already reported
      }
      // Nothing received and nothing from before: the partial file is worthless.
      if (offset === 0 && (writer?.written ?? 0) === 0) await removeQuietly(c.partPath, c.infoPath);
    }
    if (isNetkitError(reason) && (reason.code === 'PEER_CLOSED' || reason.code === 'TIMEOUT') && size > 0) {
      const have = writer?.written ?? offset;
      throw new NetkitError(
        reason.code,
        `${reason.message} after ${formatBytes(have)} of ${formatBytes(size)}; the partial file ${c.partPath} is kept`,
        'run the same fetch again to resume',
        { cause: reason },
      );
    }
    throw reason;
  }
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
      throw new NetkitError('UNAUTHORIZED', `${c.target} requires a shared secret${said}`);
    case Status.UNSUPPORTED_VERSION:
      throw new NetkitError('PROTOCOL', `${c.target} does not speak file protocol version 1${said}`, 'upgrade netkit on one side');
    default:
      throw new NetkitError(statusErrorCode(r.status), `${c.target} failed (${statusName(r.status)})${said}`);
  }
}

/**
 * Receive `length` body bytes into the partial file, then the TRAILER frame. Resolves with the trailer
 * frame once every body byte is queued for writing.
 */
function receiveBody(
  conn: Conn,
  reader: FrameReader,
  length: number,
  setWriter: (w: PartWriter) => void,
  fd: number,
  where: string,
  start: number,
  hash: Hash,
  onBytes: (n: number) => void,
): Promise<Frame> {
  const { socket } = conn;
  return new Promise<Frame>((resolve, reject) => {
    let remaining = length;
    let got = 0;
    let settled = false;
    const trailerReader = new FrameReader();
    let paused = false;
    const finish = (err: unknown, frame?: Frame): void => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve(frame!);
    };
    const writer = new PartWriter(
      fd,
      where,
      start,
      hash,
      (high) => {
        if (high && !paused) {
          paused = true;
          socket.pause();
        } else if (!high && paused && !settled) {
          paused = false;
          socket.resume();
        }
      },
      (err) => {
        finish(err);
        socket.destroy();
      },
    );
    setWriter(writer);
    let lastReport = 0;
    const onData = (chunk: Buffer): void => {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.length);
        writer.push(n === chunk.length ? chunk : chunk.subarray(0, n));
        remaining -= n;
        got += n;
        if (got - lastReport >= BATCH || remaining === 0) {
          lastReport = got;
          onBytes(got);
        }
        if (n === chunk.length) return;
        chunk = chunk.subarray(n);
      }
      trailerReader.push(chunk);
      try {
        const frame = trailerReader.next();
        if (frame) finish(undefined, frame);
      } catch (err) {
        finish(err);
      }
    };
    const onEnd = (): void => finish(conn.ends.closed('end'));
    const onClose = (): void => finish(conn.ends.closed('close'));
    const onError = (e: Error): void => finish(conn.ends.failed(e));
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    const early = reader.takeRest();
    if (early.length > 0) onData(early);
    if (!settled) {
      if (length === 0) onBytes(0);
      socket.resume();
    }
  });
}

async function fetchClassic(c: Common): Promise<FetchResult> {
  const { opts } = c;
  const conn = await connect(c, 'before answering');
  const { socket } = conn;
  const reader = new FrameReader();
  let fd: number | undefined;
  let writer: PartWriter | undefined;
  const hash = createHash('sha256');
  let size = 0;
  let total = 0;
  try {
    // The seed server reads the name with a single recv(1024): send it in one write, nothing else.
    const nameBytes = Buffer.from(opts.name, 'utf8');
    if (nameBytes.length > 1024) throw new NetkitError('USAGE', 'a classic name must be at most 1024 bytes');
    await writeAll(socket, nameBytes, conn.ends);
    let ended = false;
    const head = await readUntil(socket, reader, () => parseClassicHead(reader.peekAll(), ended), {
      closed: (what) => {
        if (what === 'end') {
          ended = true;
          try {
            const h = parseClassicHead(reader.peekAll(), true);
            if (h) return new HeadAtEnd(h);
          } catch (err) {
            return err as Error;
          }
        }
        return conn.ends.closed(what);
      },
      failed: conn.ends.failed,
    }).catch((err: unknown) => {
      if (err instanceof HeadAtEnd) return err.head;
      throw err;
    });
    if (head.kind === 'missing') {
      throw new NetkitError('NOT_FOUND', `${c.target} (classic) has no file '${sanitize(opts.name, 200)}'`, 'a classic server answers -1 for every refusal: missing, forbidden, busy or too large');
    }
    size = head.size;
    const digits = reader.peekAll().subarray(0, Math.min(head.headerLength + 16, reader.buffered)).toString('latin1').match(/^\d*/)![0];
    reader.take(head.headerLength);
    total = head.headerLength;
    await checkRoom(path.dirname(c.finalPath), size).catch((err: unknown) => {
      if (isNetkitError(err)) {
        throw new NetkitError(err.code, `${err.message} (the classic server announced ${size} bytes; if the file starts with digits, that size is wrong: the classic protocol cannot tell)`, err.hint);
      }
      throw err;
    });
    try {
      fd = fs.openSync(c.partPath, 'w', 0o644);
    } catch (err) {
      throw fsError(err, `cannot write ${c.partPath}`);
    }
    // No trailer in classic: the body must be exactly `size` bytes and then the stream must end.
    await receiveClassicBody(conn, reader, size, (w) => (writer = w), fd, c.partPath, hash, (n) => opts.onProgress?.(n, size)).catch((err: unknown) => {
      if (err instanceof ShortClassic) {
        throw new NetkitError('PEER_CLOSED', `${explainShortClassic(digits, err.received, size, head.headerLength + err.received)}; the partial file ${c.partPath} is kept`, 'the classic protocol cannot verify or resume; fetch from a netkit server without --classic');
      }
      throw err;
    });
    await writer!.settle();
    socket.destroy();
    try {
      fs.fsyncSync(fd);
    } catch (err) {
      throw fsError(err, `cannot write ${c.partPath}`);
    }
    fs.closeSync(fd);
    fd = undefined;
    await publish(c.partPath, c.finalPath, opts.force === true);
    await syncDir(path.dirname(c.finalPath));
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
    const reason = cause(socket, err);
    socket.destroy();
    if (writer) await writer.settle().catch(() => undefined);
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already reported
      }
      if ((writer?.written ?? 0) === 0) await removeQuietly(c.partPath);
    }
    void total;
    throw reason;
  }
}

class HeadAtEnd extends Error {
  constructor(readonly head: NonNullable<ReturnType<typeof parseClassicHead>>) {
    super('classic head at end of stream');
  }
}

class ShortClassic extends Error {
  constructor(readonly received: number) {
    super('short classic body');
  }
}

function receiveClassicBody(
  conn: Conn,
  reader: FrameReader,
  length: number,
  setWriter: (w: PartWriter) => void,
  fd: number,
  where: string,
  hash: Hash,
  onBytes: (n: number) => void,
): Promise<void> {
  const { socket } = conn;
  return new Promise<void>((resolve, reject) => {
    let got = 0;
    let settled = false;
    let paused = false;
    let lastReport = 0;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const writer = new PartWriter(
      fd,
      where,
      0,
      hash,
      (high) => {
        if (high && !paused) {
          paused = true;
          socket.pause();
        } else if (!high && paused && !settled) {
          paused = false;
          socket.resume();
        }
      },
      (err) => {
        finish(err);
        socket.destroy();
      },
    );
    setWriter(writer);
    const onData = (chunk: Buffer): void => {
      if (got + chunk.length > length) {
        finish(new NetkitError('PROTOCOL', `the classic server sent more than the ${length} bytes it announced; nothing was saved as final`, 'the size field was probably misread: the classic protocol cannot verify; fetch from a netkit server without --classic'));
        return;
      }
      writer.push(chunk);
      got += chunk.length;
      if (got - lastReport >= BATCH || got === length) {
        lastReport = got;
        onBytes(got);
      }
    };
    // The seed server closes after the last byte; only then is it certain no extra byte follows.
    const onEnd = (): void => (got === length ? finish() : finish(new ShortClassic(got)));
    const onClose = (): void => (got === length ? finish() : finish(new ShortClassic(got)));
    const onError = (e: Error): void => finish(conn.ends.failed(e));
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    const early = reader.takeRest();
    if (early.length > 0) onData(early);
    if (!settled) {
      if (socket.readableEnded) onEnd();
      else socket.resume();
    }
  });
}
