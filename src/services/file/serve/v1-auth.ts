// A v1 server with a secret: check the client's proof before anything touches the file system, with the per-source hold-off after failures.
import { checkFrame } from '../../../protocol/auth-frames.js';
import { FrameType, Status, decodeRequest, type Frame } from '../../../protocol/file-v1.js';
import type { StreamSocket } from '../../../transport/tcp.js';
import type { V1 } from './v1.js';

/** The name an unauthenticated REQUEST asked for, for the log only (never acted on); undefined if unreadable. */
function requestedName(frame: Frame): string | undefined {
  try {
    return decodeRequest(frame).name;
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

/**
 * A source still held off by earlier failures is refused without checking (its guess is not even
 * tested); a failed proof is refused only after the hold-off it earns, on this connection alone, so
 * guessing is slow for that source and nobody else waits. Returns false when the connection was refused.
 */
export async function admit(v1: V1, frame: Frame): Promise<boolean> {
  const { s } = v1;
  const key = s.ctx.key!;
  const throttle = s.ctx.throttle!;
  const source = s.conn.source;
  s.entry.name = requestedName(frame);
  const heldOff = throttle.blockedFor(source);
  if (heldOff > 0) {
    await v1.refuse(Status.UNAUTHORIZED, 'unauthorized', `too many failed proofs from this address; try again in ${Math.ceil(heldOff / 1000)}s`);
    return false;
  }
  const verdict = frame.type === FrameType.REQUEST ? checkFrame('client', key, v1.nonces!, frame.payload) : 'malformed';
  if (verdict === 'ok') {
    throttle.recordSuccess(source);
    return true;
  }
  const { failures, delayMs } = throttle.recordFailure(source);
  const why = verdict === 'missing' ? 'the request carries no proof of the secret' : verdict === 'bad-mac' ? 'the proof of the secret does not verify' : 'the proof of the secret is malformed';
  // The header deadline no longer applies: the hold-off (at most 30 s by default) bounds this wait.
  // The connection stays in its header phase, so a newcomer may still evict it when the server is full.
  s.conn.requestComplete();
  await holdOff(s.socket, delayMs);
  await v1.refuse(Status.UNAUTHORIZED, 'unauthorized', why);
  s.entry.detail = `${why} (failure ${failures} from this address, answered after ${delayMs} ms)`;
  return false;
}
