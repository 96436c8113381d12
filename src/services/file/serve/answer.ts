// Answering one prepared REQUEST on a v1 connection: a refusal, a small file as one write, or a large one streamed with its prefix hash, then the TRAILER, or CHANGED when the file changed while it was sent.
import type { BigIntStats } from 'node:fs';
import { Status, encodeResponse, encodeTrailer, type Request } from '../../../protocol/file-v1.js';
import { prefixAllowanceMs } from '../../file-stream.js';
import { hashRange, sendBody } from './body.js';
import { identityChange, validatorOf } from './hash-cache.js';
import { IdleDeadline } from './idle.js';
import type { PrefixAdmission } from './prefix-budget.js';
import { MAX_SIZE, openForStream, type Prepared, type Refused } from './prepare.js';
import type { Outcome } from './types.js';
import type { V1 } from './v1.js';

/** What one answer did, for the log. */
export interface Answered {
  outcome: Outcome;
  detail?: string;
  /** Body bytes written. */
  bytes: number;
  /** The file's size, when known. */
  size?: number;
}

/** The RESPONSE refusal for a prepared refusal, sealed for request `seq`. */
export function refusalFrame(v1: V1, p: Refused, seq: number | undefined): Buffer {
  return v1.seal('server', encodeResponse({ status: p.status, size: p.size ?? 0, offset: 0, validator: p.validator ?? Buffer.alloc(0), message: p.detail }, v1.proof), seq);
}

/**
 * A small file's whole answer (RESPONSE, body [OFFSET, SIZE), TRAILER) as buffers to write in order:
 * no read, no wait, nothing to check at its turn (prepareFile read it and checked its identity).
 */
export function smallAnswer(v1: V1, p: Extract<Prepared, { kind: 'small' }>, request: Request, seq: number | undefined): { parts: Buffer[]; answered: Answered } {
  const { facts } = p;
  const response = v1.seal('server', encodeResponse({ status: Status.OK, size: facts.size, offset: request.offset, validator: facts.validator, message: '', mtimeMs: facts.mtimeMs, mode: facts.mode }, v1.proof), seq);
  const trailer = v1.seal('trailer', encodeTrailer({ sha256: p.digest }, v1.proof), seq);
  const body = p.data.subarray(request.offset);
  return { parts: [response, body, trailer], answered: { outcome: 'ok', bytes: body.length, size: facts.size } };
}

/**
 * Stream a large file at its turn: RESPONSE first, then (for a resume without a remembered digest)
 * the prefix hash under the per-source budget, the body with backpressure, and the TRAILER; or CHANGED
 * in its place when fstat after the last byte differs from before. `opts.idle` is the session's
 * deadline; a single exchange arms its own after the prefix hash. `opts.onSent` gets the running count
 * of body bytes. Always closes the file. A refusal found only now (BUSY from the prefix budget, or the
 * file turned out different when opened again) comes back to be answered like any other.
 */
export async function streamLarge(v1: V1, request: Request, seq: number | undefined, opts: { idle?: IdleDeadline; onSent: (bytes: number) => void; onSize?: (size: number) => void }): Promise<Answered | Refused> {
  const { s } = v1;
  const { ctx } = s;
  const opened = await openForStream(ctx, request, v1.session);
  if ('kind' in opened) return opened;
  const { file, facts } = opened;
  opts.onSize?.(facts.size);
  try {
    const { handle, stat: st } = file;
    const offset = request.offset;
    // A resume may take the whole-file digest from the cache instead of reading [0, OFFSET) again; a
    // full fetch always hashes what it sends (the cache cannot see a write through a shared mmap).
    const cached = offset > 0 ? ctx.hashCache.get(st) : undefined;
    // Otherwise it continues from the SHA-256 state kept where an earlier transfer got to, and hashes
    // only the bytes between that state and OFFSET (under the budget when they are many).
    const start = cached ? undefined : ctx.prefixStates.start(st, offset);
    const prefix = start ? admitPrefix(v1, offset - start.from) : undefined;
    if (prefix && !prefix.ok) return { kind: 'refused', status: Status.BUSY, outcome: 'busy', detail: `${prefix.why}; try again in ${Math.ceil(prefix.retryAfterMs / 1000)}s` };
    // RESPONSE goes out before the prefix hash, so the client hashes its copy of the prefix meanwhile.
    s.socket.write(v1.seal('server', encodeResponse({ status: Status.OK, size: facts.size, offset, validator: facts.validator, message: '', mtimeMs: facts.mtimeMs, mode: facts.mode }, v1.proof), seq));
    const hash = start?.hash;
    try {
      if (start && offset > start.from) await hashRange(s.socket, handle, start.from, offset, ctx.pool, start.hash);
    } finally {
      prefix?.release();
    }
    const recorder = hash ? ctx.prefixStates.recorder(st, offset, hash) : undefined;
    // A single exchange arms its deadline only now: the socket is silent both ways while we hash the
    // prefix (any length), and that silence is ours. A resuming client may still be hashing its own
    // copy: allow for that until it first drains what we sent.
    const allowance = offset > 0 ? prefixAllowanceMs(offset) : 0;
    const own = opts.idle ? undefined : new IdleDeadline(s.conn, ctx.idleTimeoutMs, allowance);
    opts.idle?.allow(allowance);
    const deadline = opts.idle ?? own!;
    let bytes = 0;
    try {
      bytes = await sendBody(s.socket, handle, offset, facts.size, {
        pool: ctx.pool,
        hash: recorder,
        onSent: (n) => opts.onSent((bytes = n)),
        onFlushed: () => deadline.progress(),
      });
    } finally {
      own?.stop();
      // Where this transfer got to (the end, or where the client went away), for its resume.
      recorder?.stop();
    }
    return finishLarge(v1, file.stat, await handle.stat({ bigint: true }), cached ?? hash!.digest(), cached !== undefined, seq, { outcome: 'ok', bytes, size: facts.size });
  } finally {
    await file.handle.close().catch(() => undefined);
  }
}

/**
 * The budget for hashing `forward` bytes of a resumed prefix: free up to one checkpoint step (the usual
 * resume continues from a state kept near its offset), charged to the client's address beyond that.
 */
function admitPrefix(v1: V1, forward: number): PrefixAdmission | undefined {
  const { ctx, conn } = v1.s;
  return forward > ctx.prefixStates.step ? ctx.prefixBudget.tryStart(conn.source, forward) : undefined;
}

/**
 * After the last body byte: unchanged identity, the TRAILER (and the digest is remembered); changed,
 * a CHANGED RESPONSE in its place, so a mix of old and new bytes is never called verified.
 */
function finishLarge(v1: V1, before: BigIntStats, after: BigIntStats, digest: Buffer, fromCache: boolean, seq: number | undefined, answered: Answered): Answered {
  const { s } = v1;
  const cache = s.ctx.hashCache;
  const change = identityChange(before, after);
  if (change) {
    cache.delete(before);
    s.ctx.prefixStates.delete(before);
    const detail = `the file changed while it was sent (${change}); fetch it again`;
    const size = after.size > MAX_SIZE ? 0 : Number(after.size);
    s.socket.write(v1.seal('server', encodeResponse({ status: Status.CHANGED, size, offset: 0, validator: validatorOf(after), message: detail }, v1.proof), seq));
    return { ...answered, outcome: 'changed', detail };
  }
  let detail: string | undefined;
  if (!fromCache) {
    const known = cache.get(before);
    if (known && !known.equals(digest)) {
      // The content changed without its identity changing (a write through a shared mmap): the
      // remembered digest is stale. The client gets the hash of the bytes it was sent.
      cache.delete(before);
      detail = 'the remembered SHA-256 no longer matched the content; dropped it';
    } else {
      cache.set(before, digest);
    }
  }
  s.socket.write(v1.seal('trailer', encodeTrailer({ sha256: digest }, v1.proof), seq));
  return { ...answered, detail };
}
