// HTTP with a secret: plain HTTP is refused (it would carry the token in clear); over HTTPS a bearer token is checked in constant time, with the per-source hold-off after failures.
import type { KeyObject } from 'node:crypto';
import { constantTimeEqual, deriveKey } from '../../../protocol/auth.js';
import type { Exchange } from './http.js';
import { holdOff } from './v1-auth.js';

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="netkit"' };

/** The secret's text as a bearer token would carry it: the same normalisation as a token file (trimmed, printable ASCII). */
function tokenText(presented: string): string | undefined {
  const t = presented.trim();
  return t.length > 0 && t.length <= 1024 && /^[\x20-\x7e]+$/.test(t) ? t : undefined;
}

/**
 * Whether `presented` is the server's secret. The server keeps only k_file, so the presented token goes
 * through the same key derivation and the two keys are compared in constant time: neither the length
 * of the token nor where it first differs shows in the timing of the comparison.
 */
export function bearerMatches(presented: string, key: KeyObject): boolean {
  const text = tokenText(presented);
  const theirs = deriveKey(text ?? ' ', 'file').export();
  return constantTimeEqual(theirs, key.export()) && text !== undefined;
}

/**
 * Admit a request on a server with a secret, or answer 401 and return false. Plain HTTP is refused
 * without looking at any credential: a token sent in clear is already lost. Over TLS a missing
 * Authorization header is no guess and costs nothing; a wrong token counts as a failed proof of the
 * secret for its source, exactly as in file protocol v1, and is answered only after the hold-off.
 */
export async function checkBearer(x: Exchange): Promise<boolean> {
  const { s, req } = x;
  if (!x.secure) {
    await x.text(401, 'unauthorized', 'this server requires the shared secret, and HTTP can carry it only over TLS: the server must run with --tls, and clients use https:// with "Authorization: Bearer <secret>"', CHALLENGE);
    return false;
  }
  const throttle = s.ctx.throttle!;
  const source = s.conn.source;
  const heldOff = throttle.blockedFor(source);
  if (heldOff > 0) {
    const secs = Math.ceil(heldOff / 1000);
    await x.text(401, 'unauthorized', `too many failed attempts from this address; try again in ${secs}s`, { ...CHALLENGE, 'Retry-After': secs });
    return false;
  }
  const m = /^\s*Bearer\s+(.+?)\s*$/i.exec(req.header('authorization') ?? '');
  if (!m) {
    await x.text(401, 'unauthorized', 'this server requires the shared secret: send "Authorization: Bearer <secret>"', CHALLENGE);
    return false;
  }
  if (bearerMatches(m[1]!, s.ctx.key!)) {
    throttle.recordSuccess(source);
    return true;
  }
  const { failures, delayMs } = throttle.recordFailure(source);
  await holdOff(s.socket, delayMs);
  await x.text(401, 'unauthorized', 'the bearer token is not the secret this server requires', CHALLENGE);
  x.entry.detail = `the bearer token is not the secret (failure ${failures} from this address, answered after ${delayMs} ms)`;
  return false;
}
