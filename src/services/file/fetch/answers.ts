// What a v1 server's answers mean for the fetch: refusals as errors with hints, and the proofs a client with a secret insists on.
import type { KeyObject } from 'node:crypto';
import { NetkitError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import { FrameType, Status, decodeResponse, statusErrorCode, statusName, type Frame, type Response } from '../../../protocol/file-v1.js';
import { checkFrame } from '../../../protocol/auth-frames.js';
import type { HandshakeNonces } from '../../../protocol/auth.js';

/** Who is asked for what, for messages. */
export interface Asked {
  target: string;
  name: string;
  /** A directory was asked for (a LIST), so a missing one is said to be a directory. */
  directory?: boolean;
}

/** The file changed on the server: at the resume request (its validator no longer matches) or while it was sent. */
export class ChangedError extends NetkitError {
  constructor(
    readonly when: 'resume' | 'stream',
    message: string,
  ) {
    super('CHANGED', message, 'run the same fetch again to fetch the new version');
  }
}

/**
 * A client with a secret believes a RESPONSE or TRAILER only with the server's valid proof; anything
 * else is UNAUTHORIZED, whatever the HELLO flags said (no downgrade). A frame of the wrong type is
 * left to the decoder, which reports it as a protocol error. A listing's END is proven as a TRAILER
 * is. `seq` is the request's number in a session (undefined outside one).
 */
export function requireProof(kind: 'server' | 'trailer', key: KeyObject, nonces: HandshakeNonces, frame: Frame, c: Asked, seq?: number): void {
  const proven: readonly number[] = kind === 'server' ? [FrameType.RESPONSE] : [FrameType.TRAILER, FrameType.END];
  if (!proven.includes(frame.type)) return;
  const verdict = checkFrame(kind, key, nonces, frame.payload, seq);
  if (verdict === 'ok') return;
  const what = kind === 'server' ? 'answer' : frame.type === FrameType.END ? 'end-of-listing frame (END)' : 'end-of-transfer frame (TRAILER)';
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

/**
 * The server is busy. When its message says when to come back (`… try again in 2s`), a retry waits at
 * least that long; otherwise busy is not retried (a server at its connection limit).
 */
export class BusyError extends NetkitError {
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    /** The server's own words, for the retry line. */
    readonly why: string,
    retryAfterMs?: number,
  ) {
    super('BUSY', message, retryAfterMs === undefined ? 'try again in a moment' : `try again in ${Math.ceil(retryAfterMs / 1000)}s`);
    this.retryAfterMs = retryAfterMs;
  }
}

/** The wait a BUSY message asks for (`try again in N s`), in ms. */
export function retryAfterOf(message: string): number | undefined {
  const m = /try again in (\d{1,5}(?:\.\d+)?) ?s\b/.exec(message);
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

export function throwRefusal(r: Response, c: Asked): never {
  const said = r.message ? `: ${sanitize(r.message, 200)}` : '';
  const name = sanitize(c.name, 200);
  switch (r.status) {
    case Status.NOT_FOUND:
      throw new NetkitError('NOT_FOUND', `${c.target} has no ${c.directory ? 'directory' : 'file'} '${name}'${said}`, 'check the name: it is relative to the directory the server serves');
    case Status.FORBIDDEN:
      throw new NetkitError('FORBIDDEN', `${c.target} refused '${name}'${said}`, 'only regular files inside the served directory can be fetched');
    case Status.BAD_REQUEST:
      // Refused in place of its HELLO (a plain client on a TLS server), no name was asked for yet.
      throw new NetkitError('BAD_REQUEST', name === '' ? `${c.target} refused the connection${said}` : `${c.target} rejected the request for '${name}'${said}`);
    case Status.BUSY: {
      const why = sanitize(r.message.replace(/;?\s*try again in .*$/, ''), 200) || 'busy';
      throw new BusyError(`${c.target} is busy${said}`, why, retryAfterOf(r.message));
    }
    case Status.UNAUTHORIZED:
      throw new NetkitError('UNAUTHORIZED', `${c.target} refused the request as unauthorized${said}`, 'give both sides the same secret (NETKIT_TOKEN or --token-file)');
    case Status.IS_DIRECTORY:
      throw new NetkitError('FORBIDDEN', `${c.target}: '${name}' is a directory${/^is a directory$/i.test(r.message) ? '' : said}`, 'fetch it as a tree: NAME/ (or a glob)');
    case Status.NOT_DIRECTORY:
      // The server's message says what the status says ("not a directory"): it is said once.
      throw new NetkitError('FORBIDDEN', `${c.target}: '${name}' is a file, not a directory${/^not a directory$/i.test(r.message) ? '' : said}`, `fetch it with: netkit file fetch '${name}'`);
    case Status.UNSUPPORTED_VERSION:
      throw new NetkitError('PROTOCOL', `${c.target} does not speak file protocol version 1${said}`, 'upgrade netkit on one side');
    default:
      throw new NetkitError(statusErrorCode(r.status), `${c.target} failed (${statusName(r.status)})${said}`);
  }
}
