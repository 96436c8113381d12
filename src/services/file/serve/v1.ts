// The v1 connection (docs/protocol.md section 2): preamble and HELLOs, then either the single exchange of an older client (one REQUEST or LIST, then close) or a pipelined session.
import { randomBytes } from 'node:crypto';
import { isNetkitError } from '../../../errors.js';
import { MAC_PLACEHOLDER, sealFrame } from '../../../protocol/auth-frames.js';
import type { FileMacKind, HandshakeNonces } from '../../../protocol/auth.js';
import { decodeList } from '../../../protocol/file-list.js';
import {
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
  type Field,
  type Frame,
  type Request,
  type StatusValue,
} from '../../../protocol/file-v1.js';
import { smallAnswer, streamLarge } from './answer.js';
import type { Protocol } from './dispatch.js';
import { prepareFile } from './prepare.js';
import type { Session } from './session.js';
import { ConnectionEnd, type Outcome } from './types.js';
import { admit } from './v1-auth.js';
import { prepareList, streamListing } from './v1-list.js';
import { serveSession } from './v1-session.js';

/** A v1 connection: the session plus the handshake state that decides whether (and how) frames are sealed. */
export class V1 {
  /** Both HELLO nonces, once exchanged: from then on a server with a secret seals what it sends. */
  nonces: HandshakeNonces | undefined;
  /** Both HELLOs set SESSION: several requests, and sequence numbers in every MAC. */
  session = false;

  constructor(readonly s: Session) {}

  /** The AUTH_MAC placeholder to end a frame with, when it will be sealed. */
  get proof(): readonly Field[] {
    return this.s.ctx.key && this.nonces ? [MAC_PLACEHOLDER] : [];
  }

  /** Seal a frame (when there is a secret and the HELLOs are exchanged) for request `seq` of a session. */
  seal(kind: FileMacKind, frame: Buffer, seq?: number): Buffer {
    const key = this.s.ctx.key;
    return key && this.nonces ? sealFrame(kind, key, this.nonces, frame, this.session ? seq : undefined) : frame;
  }

  /** End the exchange with a RESPONSE refusal: send it (sealed after the HELLOs), half-close, linger. */
  async refuse(status: StatusValue, outcome: Outcome, detail: string, extra?: { size?: number; validator?: Buffer; seq?: number }): Promise<void> {
    this.s.outcome(outcome, detail);
    const response = encodeResponse(
      { status, size: extra?.size ?? 0, offset: 0, validator: extra?.validator ?? Buffer.alloc(0), message: detail, version: status === Status.UNSUPPORTED_VERSION ? VERSION : undefined },
      this.proof,
    );
    await this.s.writeAll(this.seal('server', response, extra?.seq));
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
  let frame: Frame;
  try {
    const hello = decodeHello((await s.readUntil(() => s.reader.next()))!);
    // SESSION is echoed only to a client that asked, so an older client sees the HELLO it always saw.
    v1.session = (hello.flags & HelloFlag.SESSION) !== 0;
    const serverNonce = randomBytes(32);
    const flags = (s.ctx.key ? HelloFlag.AUTH_REQUIRED : 0) | (v1.session ? HelloFlag.SESSION : 0);
    await s.writeAll(encodeHello({ nonce: serverNonce, flags }));
    v1.nonces = { client: hello.nonce, server: serverNonce };
    if (v1.session) return await serveSession(v1);
    frame = (await s.readUntil(() => s.reader.next()).catch((err: unknown) => {
      // What a client without the secret does after our AUTH_REQUIRED HELLO: name it in the log.
      if (s.ctx.key && err instanceof ConnectionEnd && err.outcome === 'aborted') throw new ConnectionEnd('unauthorized', `the client left after the HELLO that requires a secret (it has none?): ${err.detail}`);
      throw err;
    }))!;
  } catch (err) {
    if (isNetkitError(err)) return v1.refuse(Status.BAD_REQUEST, 'bad-request', err.message);
    throw err;
  }
  if (s.ctx.key && !(await admit(v1, frame))) return;
  try {
    if (frame.type === FrameType.LIST) return await listSingle(v1, frame);
    const request = decodeRequest(frame);
    s.conn.requestComplete();
    s.entry.name = request.name;
    s.entry.offset = request.offset;
    await answerSingle(v1, request);
  } catch (err) {
    if (isNetkitError(err)) return v1.refuse(Status.BAD_REQUEST, 'bad-request', err.message);
    throw err;
  }
}

/** The single exchange of a client that did not ask for a session: one file, as netkit always served it. */
async function answerSingle(v1: V1, request: Request): Promise<void> {
  const { s } = v1;
  const p = await prepareFile(s.ctx, request, false);
  if (p.kind === 'refused') {
    if (p.size !== undefined) s.entry.size = p.size;
    return v1.refuse(p.status, p.outcome, p.detail, p);
  }
  s.conn.enter('transfer');
  if (p.kind === 'small') {
    const { parts, answered } = smallAnswer(v1, p, request, undefined);
    s.entry.size = answered.size;
    await s.writeAll(Buffer.concat(parts));
    s.entry.bytes = answered.bytes;
    s.entry.outcome = 'ok';
    return s.finish();
  }
  const r = await streamLarge(v1, request, undefined, { onSent: (n) => (s.entry.bytes = n), onSize: (n) => (s.entry.size = n) });
  if ('kind' in r) return v1.refuse(r.status, r.outcome, r.detail, r);
  s.outcome(r.outcome, r.detail);
  await s.finish();
}

/** A LIST from a client that did not ask for a session: the listing, then close. */
async function listSingle(v1: V1, frame: Frame): Promise<void> {
  const { s } = v1;
  const req = decodeList(frame);
  s.conn.requestComplete();
  s.entry.name = req.name;
  const p = await prepareList(s.ctx, req);
  if (p.kind === 'refused') return v1.refuse(p.status, p.outcome, p.detail);
  s.conn.enter('transfer');
  const r = await streamListing(v1, p.listing, undefined);
  s.outcome(r.outcome, r.detail);
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
