// A v1 server with a secret: check the client's proof on each REQUEST or LIST before anything touches the file system, with the per-source hold-off after failures.
import { checkFrame } from '../../../protocol/auth-frames.js';
import { decodeList } from '../../../protocol/file-list.js';
import { FrameType, Status, Tag, decodeFields, decodeRequest, type Frame } from '../../../protocol/file-v1.js';
import type { StreamSocket } from '../../../transport/tcp.js';
import type { V1 } from './v1.js';

/** The name an unauthenticated REQUEST or LIST asked for, for the log only (never acted on); undefined if unreadable. */
export function requestedName(frame: Frame): string | undefined {
  try {
    return frame.type === FrameType.LIST ? decodeList(frame).name : decodeRequest(frame).name;
  } catch {
    return undefined;
  }
}

/** Wait `ms`, or less if the socket closes first (server shutdown, eviction, client gone). */
export function holdOff(socket: StreamSocket, ms: number): Promise<void> {
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

/** The verdict on one request's proof. A refusal ends the connection; `delayMs` is the hold-off its answer waits. */
export type Authorization = { ok: true } | { ok: false; why: string; delayMs: number; detail?: string };

/** Whether a frame carries an AUTH_MAC field at all (a frame that cannot be split has none we can find). */
function hasMac(frame: Frame): boolean {
  try {
    return decodeFields(frame.payload).has(Tag.AUTH_MAC);
  } catch {
    return false;
  }
}

/**
 * Judge the proof of request number `seq` (undefined outside a session), at once, in arrival order.
 * A source still held off by earlier failures is refused without checking (its guess is not even
 * tested). A frame with no AUTH_MAC at all tests no guess (a client without the secret, maybe sending
 * its request early with its HELLO): refused without counting a failure or holding anyone off. Any
 * other frame without a valid proof (a wrong MAC, a malformed one, a frame that is neither REQUEST nor
 * LIST) is a failure: counted now, and answered after the hold-off it earns.
 */
export function authorize(v1: V1, frame: Frame, seq: number | undefined): Authorization {
  const { s } = v1;
  const key = s.ctx.key!;
  const throttle = s.ctx.throttle!;
  const source = s.conn.source;
  const heldOff = throttle.blockedFor(source);
  if (heldOff > 0) return { ok: false, why: `too many failed proofs from this address; try again in ${Math.ceil(heldOff / 1000)}s`, delayMs: 0 };
  const proofFrame = frame.type === FrameType.REQUEST || frame.type === FrameType.LIST;
  const verdict = proofFrame ? checkFrame('client', key, v1.nonces!, frame.payload, seq) : hasMac(frame) ? 'malformed' : 'missing';
  if (verdict === 'ok') {
    throttle.recordSuccess(source);
    return { ok: true };
  }
  if (verdict === 'missing') return { ok: false, why: 'this server requires the shared secret', delayMs: 0, detail: 'the request carries no proof of the secret (not counted as a failure)' };
  const { failures, delayMs } = throttle.recordFailure(source);
  const why = verdict === 'bad-mac' ? 'the proof of the secret does not verify' : 'the proof of the secret is malformed';
  return { ok: false, why, delayMs, detail: `${why} (failure ${failures} from this address, answered after ${delayMs} ms)` };
}

/**
 * The single exchange: authorize the one request, and on a refusal wait out the hold-off (on this
 * connection alone, so guessing is slow for that source and nobody else waits), answer UNAUTHORIZED
 * and close. Returns false when the connection was refused.
 */
export async function admit(v1: V1, frame: Frame): Promise<boolean> {
  const { s } = v1;
  s.entry.name = requestedName(frame);
  const verdict = authorize(v1, frame, undefined);
  if (verdict.ok) return true;
  // The header deadline no longer applies: the hold-off (at most 30 s by default) bounds this wait.
  // The connection stays in its header phase, so a newcomer may still evict it when the server is full.
  s.conn.requestComplete();
  await holdOff(s.socket, verdict.delayMs);
  await v1.refuse(Status.UNAUTHORIZED, 'unauthorized', verdict.why);
  if (verdict.detail) s.entry.detail = verdict.detail;
  return false;
}
