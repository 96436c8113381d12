// The v1 session (docs/protocol.md section 2): handshake, proof of the secret, the jailed file, resume, the body, and a TRAILER, or CHANGED when the file changed while it was sent.
import { createHash, randomBytes } from 'node:crypto';
import { isNetkitError } from '../../../errors.js';
import { MAC_PLACEHOLDER, sealFrame } from '../../../protocol/auth-frames.js';
import type { FileMacKind, HandshakeNonces } from '../../../protocol/auth.js';
import {
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
  type Request,
  type StatusValue,
} from '../../../protocol/file-v1.js';
import { prefixAllowanceMs } from '../../file-stream.js';
import { hashRange, sendBody } from './body.js';
import type { Protocol } from './dispatch.js';
import { identityChange, validatorOf } from './hash-cache.js';
import { IdleDeadline } from './idle.js';
import { openInJail } from './jail.js';
import { admit } from './v1-auth.js';
import { refusalOutcome, type Session } from './session.js';
import { ConnectionEnd, type Outcome } from './types.js';

/** The largest size a v1 SIZE carries exactly (readers refuse u64 values above it). */
const MAX_SIZE = BigInt(Number.MAX_SAFE_INTEGER);

/** The status a v1 client receives for a jail or codec refusal. */
const REFUSAL_STATUS = { 'not-found': Status.NOT_FOUND, forbidden: Status.FORBIDDEN, 'bad-request': Status.BAD_REQUEST } as const;

/** A v1 connection: the session plus the handshake state that decides whether frames are sealed. */
export class V1 {
  /** Both HELLO nonces, once exchanged: from then on a server with a secret seals what it sends. */
  nonces: HandshakeNonces | undefined;

  constructor(readonly s: Session) {}

  /** The AUTH_MAC placeholder to end a frame with, when it will be sealed. */
  get proof(): readonly Field[] {
    return this.s.ctx.key && this.nonces ? [MAC_PLACEHOLDER] : [];
  }

  seal(kind: FileMacKind, frame: Buffer): Buffer {
    const key = this.s.ctx.key;
    return key && this.nonces ? sealFrame(kind, key, this.nonces, frame) : frame;
  }

  /** End the exchange with a RESPONSE refusal: send it (sealed after the HELLOs), half-close, linger. */
  async refuse(status: StatusValue, outcome: Outcome, detail: string, extra?: { size?: number; validator?: Buffer }): Promise<void> {
    this.s.outcome(outcome, detail);
    const response = encodeResponse(
      { status, size: extra?.size ?? 0, offset: 0, validator: extra?.validator ?? Buffer.alloc(0), message: detail, version: status === Status.UNSUPPORTED_VERSION ? VERSION : undefined },
      this.proof,
    );
    await this.s.writeAll(this.seal('server', response));
    await this.s.finish();
  }
}

async function serveV1(s: Session): Promise<void> {
  const v1 = new V1(s);
  const preamble = await s.readUntil(() => s.reader.take(PREAMBLE_LENGTH));
  let version: number;
  try {
    version = decodePreamble(preamble);
  } catch {
    // Not netkit at all: nothing we say would be understood.
    throw new ConnectionEnd('bad-request', 'bad preamble');
  }
  if (version !== VERSION) return v1.refuse(Status.UNSUPPORTED_VERSION, 'unsupported-version', `this server speaks file protocol version ${VERSION}, not ${version}`);
  let request: Request;
  try {
    const hello = decodeHello((await s.readUntil(() => s.reader.next()))!);
    const serverNonce = randomBytes(32);
    await s.writeAll(encodeHello({ nonce: serverNonce, flags: s.ctx.key ? HelloFlag.AUTH_REQUIRED : 0 }));
    v1.nonces = { client: hello.nonce, server: serverNonce };
    const frame = (await s.readUntil(() => s.reader.next()).catch((err: unknown) => {
      // What a client without the secret does after our AUTH_REQUIRED HELLO: name it in the log.
      if (s.ctx.key && err instanceof ConnectionEnd && err.outcome === 'aborted') throw new ConnectionEnd('unauthorized', `the client left after the HELLO that requires a secret (it has none?): ${err.detail}`);
      throw err;
    }))!;
    if (s.ctx.key && !(await admit(v1, frame))) return;
    request = decodeRequest(frame);
  } catch (err) {
    if (isNetkitError(err)) return v1.refuse(Status.BAD_REQUEST, 'bad-request', err.message);
    throw err;
  }
  s.conn.requestComplete();
  s.entry.name = request.name;
  s.entry.offset = request.offset;
  await answer(v1, request);
}

/** Everything after a well-formed (and, with a secret, proven) REQUEST. */
async function answer(v1: V1, request: Request): Promise<void> {
  const { s } = v1;
  const { ctx } = s;
  try {
    s.file = await openInJail(ctx.root, request.name, { refuseHardLinks: ctx.refuseHardLinks });
  } catch (err) {
    if (!isNetkitError(err)) throw err;
    const outcome = refusalOutcome(err);
    return v1.refuse(REFUSAL_STATUS[outcome], outcome, err.message);
  }
  const { handle, stat: st } = s.file;
  if (st.size > MAX_SIZE) {
    return v1.refuse(Status.FORBIDDEN, 'too-large', `the file is ${st.size} bytes, more than 2^53 - 1, the largest size file protocol v1 carries exactly`);
  }
  const size = Number(st.size);
  const validator = validatorOf(st);
  s.entry.size = size;
  const offset = request.offset;
  if (offset > 0) {
    if (request.validator.length === 0) return v1.refuse(Status.BAD_REQUEST, 'bad-request', 'a resumed request must carry the validator');
    if (!request.validator.equals(validator)) return v1.refuse(Status.CHANGED, 'changed', 'the file changed since the partial download', { size, validator });
    if (offset > size) return v1.refuse(Status.BAD_OFFSET, 'bad-offset', `offset ${offset} is past the end of the file (${size} bytes)`, { size, validator });
  }
  // A resume may take the whole-file digest from the cache instead of reading [0, OFFSET) again; a
  // full fetch always hashes what it sends (the cache cannot see a write through a shared mmap).
  const cached = offset > 0 ? ctx.hashCache.get(st) : undefined;
  let prefix: { release: () => void } | undefined;
  if (offset > 0 && !cached) {
    const budget = ctx.prefixBudget.tryStart(s.conn.source, offset);
    if (!budget.ok) return v1.refuse(Status.BUSY, 'busy', `${budget.why}; try again in ${Math.ceil(budget.retryAfterMs / 1000)}s`);
    prefix = budget;
  }
  s.conn.enter('transfer');
  // RESPONSE goes out before the prefix hash, so the client hashes its copy of the prefix meanwhile.
  s.socket.write(v1.seal('server', encodeResponse({ status: Status.OK, size, offset, validator, message: '' }, v1.proof)));
  const hash = cached ? undefined : createHash('sha256');
  try {
    if (hash && offset > 0) await hashRange(s.socket, handle, 0, offset, ctx.pool, hash);
  } finally {
    prefix?.release();
  }
  // Armed only now: the socket is silent both ways while we hash the prefix (any length), and that
  // silence is ours. A resuming client may still be hashing its own copy: allow for that until it
  // first drains what we sent.
  const idle = new IdleDeadline(s.conn, ctx.idleTimeoutMs, offset > 0 ? prefixAllowanceMs(offset) : 0);
  try {
    s.entry.bytes = await sendBody(s.socket, handle, offset, size, {
      pool: ctx.pool,
      hash,
      onSent: (n) => (s.entry.bytes = n),
      onFlushed: () => idle.progress(),
    });
    await finishBody(v1, cached ?? hash!.digest(), cached !== undefined);
  } finally {
    idle.stop();
  }
}

/**
 * After the last body byte: check the file's identity again on the open descriptor. Unchanged, send
 * the TRAILER (and keep the digest); changed, send a CHANGED RESPONSE in its place, so a mix of old and
 * new bytes is never called verified.
 */
async function finishBody(v1: V1, digest: Buffer, fromCache: boolean): Promise<void> {
  const { s } = v1;
  const { stat: before, handle } = s.file!;
  const after = await handle.stat({ bigint: true });
  const change = identityChange(before, after);
  const cache = s.ctx.hashCache;
  if (change) {
    cache.delete(before);
    const detail = `the file changed while it was sent (${change}); fetch it again`;
    const size = after.size > MAX_SIZE ? 0 : Number(after.size);
    await v1.refuse(Status.CHANGED, 'changed', detail, { size, validator: validatorOf(after) });
    return;
  }
  if (!fromCache) {
    const known = cache.get(before);
    if (known && !known.equals(digest)) {
      // The content changed without its identity changing (a write through a shared mmap): the
      // remembered digest is stale. The client gets the hash of the bytes it was sent.
      cache.delete(before);
      s.entry.detail = 'the remembered SHA-256 no longer matched the content; dropped it';
    } else {
      cache.set(before, digest);
    }
  }
  await s.writeAll(v1.seal('trailer', encodeTrailer({ sha256: digest }, v1.proof)));
  s.entry.outcome = 'ok';
  await s.finish();
}

/** Over the limits, or plain on a TLS server: a RESPONSE in place of the server HELLO. */
async function refuseEarly(s: Session, why: 'busy' | 'bad-request', message: string, detail: string): Promise<void> {
  s.outcome(why, detail);
  const status = why === 'busy' ? Status.BUSY : Status.BAD_REQUEST;
  await s.writeAll(encodeResponse({ status, size: 0, offset: 0, validator: Buffer.alloc(0), message }));
  await s.finish();
}

export const v1Protocol: Protocol = {
  name: 'v1',
  // 0x89 can never start a UTF-8 name, so one byte tells v1 from classic.
  claims: (first) => first[0] === MAGIC[0],
  serve: serveV1,
  refuse: refuseEarly,
};
