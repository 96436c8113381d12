// `netkit file fetch NAME -o -`: one file's bytes to a stream (stdout) as they arrive, checked against the server's SHA-256 at the end; a lost connection resumes at the byte the stream has.
import { createHash, type Hash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { NetkitError } from '../../../errors.js';
import { formatBytes } from '../../../cli/output.js';
import { FrameType, Status, decodeResponse, decodeTrailer, encodeRequest } from '../../../protocol/file-v1.js';
import { ChangedError, throwRefusal } from './answers.js';
import { FETCH_DEFAULTS, type FetchOptions, type FetchResult } from './context.js';
import { guardStall, interruption, type BodySink } from './receiver.js';
import { Retries, afterRetries } from './retry.js';
import { openSession } from './session-conn.js';
import { prefixAllowanceMs } from '../../file-stream.js';

/** Bytes handed to the stream and not yet taken by it, at most, before the socket waits. */
const HIGH_WATER = 1024 * 1024;

/** A body that goes to a stream: each chunk hashed and written; the socket pauses while the stream is behind. */
class StreamSink implements BodySink {
  private buf = Buffer.allocUnsafe(64 * 1024);
  failed: NetkitError | undefined;
  onResume: () => void = () => undefined;
  onFail: (err: NetkitError) => void = () => undefined;
  written = 0;

  constructor(
    private readonly out: Writable,
    private readonly hash: Hash,
  ) {
    out.on('drain', () => this.onResume());
  }

  get high(): boolean {
    return this.out.writableLength >= HIGH_WATER;
  }

  region(max: number): Buffer {
    if (this.buf.length < 16 * 1024) this.buf = Buffer.allocUnsafe(64 * 1024);
    return this.buf.subarray(0, Math.min(max, this.buf.length));
  }

  commit(n: number): void {
    const chunk = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n); // the stream keeps the chunk: the next read goes after it
    this.emit(chunk);
  }

  push(chunk: Buffer): void {
    this.emit(Buffer.from(chunk));
  }

  private emit(chunk: Buffer): void {
    this.hash.update(chunk);
    this.written += chunk.length;
    this.out.write(chunk);
  }
}

/**
 * Fetch one file into `out`. Nothing is staged: the bytes go out as they come, and the SHA-256 is
 * checked at the end (INTEGRITY if it differs: the bytes already written cannot be taken back). A
 * directory is a usage error. Retries resume at the offset already written, with the server's validator.
 */
export async function fetchToStream(opts: FetchOptions, out: Writable): Promise<FetchResult> {
  const host = opts.host ?? FETCH_DEFAULTS.host;
  const port = opts.port ?? FETCH_DEFAULTS.port;
  const timeoutMs = opts.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
  const max = opts.retries ?? FETCH_DEFAULTS.retries;
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const asked = { target, name: opts.name };
  const started = performance.now();
  const hash = createHash('sha256');
  const sink = new StreamSink(out, hash);
  let validator = Buffer.alloc(0);
  let size: number | undefined;
  let reached = false;
  const retrier = new Retries(max);
  let received = 0;
  for (;;) {
    const before = sink.written;
    try {
      const offset = sink.written;
      const build = (extra: Parameters<typeof encodeRequest>[1]): Buffer => encodeRequest({ name: opts.name, offset, validator: offset > 0 ? validator : Buffer.alloc(0) }, extra);
      const { sc, early } = await openSession({ transport: opts.transport, host, port, target, timeoutMs, signal: opts.signal, key: opts.secret, reached }, build, asked);
      reached = true;
      try {
        let seq = 0;
        if (!early) {
          const req = sc.request(build);
          seq = req.seq;
          sc.socket.write(req.bytes);
        }
        sc.end();
        const head = await sc.next();
        sc.prove('server', head, seq, asked);
        const r = decodeResponse(head);
        if (r.status === Status.IS_DIRECTORY || (r.status === Status.FORBIDDEN && /directory/.test(r.message))) {
          throw new NetkitError('USAGE', `'${opts.name}' is a directory: -o - writes one file`, 'fetch a directory into a directory: -o DIR');
        }
        if (r.status !== Status.OK) {
          if (offset > 0 && (r.status === Status.CHANGED || r.status === Status.BAD_OFFSET)) {
            throw new NetkitError('CHANGED', `the file changed on the server after ${formatBytes(offset)} of it went to stdout; what was written cannot be taken back`, 'run the fetch again');
          }
          throwRefusal(r, asked);
        }
        if (r.offset !== offset) throw new NetkitError('PROTOCOL', `${target} answered for offset ${r.offset}, not ${offset}`);
        size = r.size;
        validator = Buffer.from(r.validator);
        if (offset > 0) sc.socket.setTimeout(timeoutMs + prefixAllowanceMs(offset));
        opts.onProgress?.(offset, size);
        let guard: { stop(): void } | undefined;
        try {
          await sc.conn.receiver.receiveBody(size - offset, sink, (n) => {
            received += n;
            if (guard === undefined) {
              sc.socket.setTimeout(timeoutMs);
              guard = guardStall(sc.conn, target, timeoutMs);
            }
            opts.onProgress?.(sink.written, size!);
          });
        } finally {
          guard?.stop();
        }
        const end = await sc.next();
        if (end.type === FrameType.RESPONSE) {
          sc.prove('server', end, seq, asked);
          const late = decodeResponse(end);
          if (late.status === Status.CHANGED) throw new ChangedError('stream', 'the file changed on the server while it was sent; what went to stdout is a mix of two versions');
          throwRefusal(late, asked);
        }
        sc.prove('trailer', end, seq, asked);
        const trailer = decodeTrailer(end);
        const digest = hash.digest();
        if (!digest.equals(trailer.sha256)) {
          throw new NetkitError('INTEGRITY', `the ${formatBytes(size)} written to stdout did not verify: SHA-256 ${digest.toString('hex')} here, ${trailer.sha256.toString('hex')} on the server`, 'do not use that output; run the fetch again');
        }
        return { name: opts.name, path: '-', size, sha256: digest.toString('hex'), verified: true, protocol: 'v1', resumedFrom: 0, received, retries: retrier.count, durationMs: performance.now() - started, host, port };
      } finally {
        sc.destroy();
      }
    } catch (err) {
      if (opts.signal?.aborted) throw interruption(opts.signal);
      const step = err instanceof ChangedError ? undefined : retrier.next(err, reached, sink.written > before);
      if (step === undefined) throw withRetries(err, retrier.count, sink.written);
      opts.onRetry?.({ reason: step.reason, have: sink.written, size, discarded: 0, delayMs: step.delayMs, attempt: retrier.count, of: max });
      try {
        await sleep(step.delayMs, undefined, { signal: opts.signal });
      } catch {
        throw interruption(opts.signal);
      }
    }
  }
}

/** The failure that ends a fetch to stdout, with the retries it spent. */
function withRetries(err: unknown, retries: number, written: number): unknown {
  const after = afterRetries(retries, err);
  if (after === '' || !(err instanceof NetkitError) || err.code === 'INTERRUPTED' || err.code === 'TERMINATED') return err;
  return new NetkitError(err.code, `${err.message}${after}; ${formatBytes(written)} went to stdout`, err.hint, { cause: err });
}
