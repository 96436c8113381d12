// Preparing the answer to a REQUEST before its turn: the jail and the resume checks, and for a small file its whole content and hash (from a reader thread), so a session's answers go out back to back.
import { isNetkitError, type NetkitError } from '../../../errors.js';
import { Status, type Request, type StatusValue } from '../../../protocol/file-v1.js';
import type { FileFacts } from './reader-pool.js';
import { validatorOf, type Identity } from './hash-cache.js';
import { isDirectoryRefusal, normaliseName, openInJail, type JailedFile } from './jail.js';
import { modeOf, mtimeMsOf } from './listing.js';
import { refusalOutcome, type ServeContext } from './session.js';
import type { Outcome } from './types.js';

export { SMALL_FILE } from './reader-pool.js';
/** The largest size a v1 SIZE carries exactly (readers refuse u64 values above it). */
export const MAX_SIZE = BigInt(Number.MAX_SAFE_INTEGER);

/** The status a v1 client receives for a jail or codec refusal. */
export const REFUSAL_STATUS = { 'not-found': Status.NOT_FOUND, forbidden: Status.FORBIDDEN, 'bad-request': Status.BAD_REQUEST } as const;

export type { FileFacts } from './reader-pool.js';

export type Refused = { kind: 'refused'; status: StatusValue; outcome: Outcome; detail: string; size?: number; validator?: Buffer };

export type Prepared =
  | Refused
  /** Read whole, hashed and checked; nothing is held open. */
  | { kind: 'small'; facts: FileFacts; data: Buffer; digest: Buffer }
  /** Opened and streamed at its turn. */
  | { kind: 'large' };

/** The facts of a file from a bigint fstat (the large-file path, on the event loop). */
export function factsOf(st: Identity & { mode: bigint }): FileFacts {
  const f: FileFacts = { size: st.size > MAX_SIZE ? -1 : Number(st.size), validator: validatorOf(st), mtimeMs: mtimeMsOf(st), mode: modeOf(st) };
  if (st.size > MAX_SIZE) f.sizeText = String(st.size);
  return f;
}

function refused(status: StatusValue, outcome: Outcome, detail: string, extra?: { size: number; validator: Buffer }): Refused {
  return { kind: 'refused', status, outcome, detail, ...extra };
}

/** A jail refusal as the client hears it: a session client gets IS_DIRECTORY for a directory. */
function jailRefused(err: NetkitError, session: boolean): Refused {
  if (session && isDirectoryRefusal(err)) return refused(Status.IS_DIRECTORY, 'is-directory', err.message);
  const outcome = refusalOutcome(err);
  return refused(REFUSAL_STATUS[outcome], outcome, err.message);
}

/** The size limit and the resume checks (docs/protocol.md 2.6), in the order the server applies them. */
function check(request: Request, facts: FileFacts): Refused | FileFacts {
  if (facts.size < 0) return refused(Status.FORBIDDEN, 'too-large', `the file is ${facts.sizeText} bytes, more than 2^53 - 1, the largest size file protocol v1 carries exactly`);
  const offset = request.offset;
  if (offset > 0) {
    if (request.validator.length === 0) return refused(Status.BAD_REQUEST, 'bad-request', 'a resumed request must carry the validator');
    if (!request.validator.equals(facts.validator)) return refused(Status.CHANGED, 'changed', 'the file changed since the partial download', facts);
    if (offset > facts.size) return refused(Status.BAD_OFFSET, 'bad-offset', `offset ${offset} is past the end of the file (${facts.size} bytes)`, facts);
  }
  return facts;
}

/**
 * Everything about a REQUEST that can be done before its turn, by a reader thread: the jail, the size,
 * the resume checks, and for a file of at most SMALL_FILE bytes its content, SHA-256 and identity
 * check (a file that changes while it is read twice in a row is refused as CHANGED). Never throws: an
 * unexpected failure is an INTERNAL refusal. A large file is opened at its turn (openForStream).
 */
export async function prepareFile(ctx: ServeContext, request: Request, session: boolean): Promise<Prepared> {
  let segments: string[];
  try {
    segments = normaliseName(request.name);
  } catch (err) {
    return jailRefused(err as NetkitError, session);
  }
  const r = await ctx.readers.read(ctx.root, segments.join('/'), ctx.refuseHardLinks);
  switch (r.k) {
    case 'refused':
      return jailRefused(r.error, session);
    case 'error':
      return refused(Status.INTERNAL, 'error', r.message);
    case 'changed':
      return refused(Status.CHANGED, 'changed', `the file changed while it was read (${r.change}); fetch it again`, { size: Math.max(0, r.facts.size), validator: r.facts.validator });
    case 'large': {
      const c = check(request, r.facts);
      return 'kind' in c ? c : { kind: 'large' };
    }
    case 'small': {
      const c = check(request, r.facts);
      return 'kind' in c ? c : { kind: 'small', facts: c, data: r.data, digest: r.digest };
    }
  }
}

/** A large file at its turn: opened (asynchronously, under the same jail) and checked again on its descriptor. */
export async function openForStream(ctx: ServeContext, request: Request, session: boolean): Promise<Refused | { file: JailedFile; facts: FileFacts }> {
  let file: JailedFile;
  try {
    file = await openInJail(ctx.root, request.name, { refuseHardLinks: ctx.refuseHardLinks });
  } catch (err) {
    if (!isNetkitError(err)) return refused(Status.INTERNAL, 'error', `cannot open the file: ${(err as { code?: string }).code ?? String(err)}`);
    return jailRefused(err, session);
  }
  const c = check(request, factsOf(file.stat));
  if ('kind' in c) {
    await file.handle.close().catch(() => undefined);
    return c;
  }
  return { file, facts: c };
}
