// Which failures a retry can fix, what to call them in the retry line, how long to wait before the next attempt, and when to give up early.
import { isNetkitError } from '../../../errors.js';
import { BusyError, ChangedError } from './answers.js';
import { SlowPeerError } from './receiver.js';

/** The first wait; each attempt in a row that brings nothing doubles it, up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 1000;
export const MAX_BACKOFF_MS = 30_000;
/** A busy server that asks for a longer wait than this is not waited for: the fetch fails and says so. */
export const MAX_RETRY_AFTER_MS = 300_000;

/** The wait before the next attempt, after `idle` attempts in a row that brought no new byte (1 or more). */
export function backoffMs(idle: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, Math.min(idle - 1, 16)));
}

/**
 * The retry line's reason for a failure a new connection may fix, or undefined when retrying cannot
 * help (not found, forbidden, unauthorized, a changed certificate, integrity, disk full, exists, a
 * usage or protocol error, a BUSY that does not say when to come back). Before the server answered
 * once in this run, nothing is retried: a refused or unreachable first connection is a wrong address,
 * not a blip.
 */
export function retryReason(err: unknown, reached: boolean): string | undefined {
  if (!reached || !isNetkitError(err)) return undefined;
  if (err instanceof ChangedError) return err.when === 'stream' ? 'the file changed on the server while it was sent' : undefined;
  if (err instanceof BusyError) return err.retryAfterMs === undefined || err.retryAfterMs > MAX_RETRY_AFTER_MS ? undefined : `the server is busy (${err.why})`;
  if (err instanceof SlowPeerError) return /handshake|answer/.test(err.message) ? 'the server answered too slowly' : 'the transfer stalled';
  switch (err.code) {
    case 'PEER_CLOSED':
      return 'connection lost';
    case 'TIMEOUT':
      return /^cannot connect/.test(err.message) ? 'no answer to a new connection' : 'the server went silent';
    case 'CONNECT_REFUSED':
      return 'connection refused';
    case 'UNREACHABLE':
      return 'server unreachable';
    case 'HOST_NOT_FOUND':
      return 'the host name did not resolve';
    default:
      return undefined;
  }
}

/** One retry about to happen: why, and the wait before it. */
export interface RetryStep {
  reason: string;
  delayMs: number;
}

/**
 * The retry budget of one fetch and its back-off. An attempt that brought new bytes starts the doubling
 * again at 1 s; one that brought nothing, was only dripped at (SlowPeerError) or was turned away as
 * busy doubles it. A server that was too slow twice in a row is not retried further: it is alive and
 * talking, so waiting longer would only let it hold the fetch (the fetch then fails within about twice
 * --timeout). A BUSY that says "try again in N s" waits at least that long.
 */
export class Retries {
  /** Retries spent so far (also on files that changed while they were sent). */
  count = 0;
  private idle = 0;
  private lastSlow = false;

  constructor(readonly max: number) {}

  /** Retries still allowed. */
  get left(): boolean {
    return this.count < this.max;
  }

  /** After a failed attempt: the retry to make (and it is counted), or undefined to give up with `err`. */
  next(err: unknown, reached: boolean, progressed: boolean): RetryStep | undefined {
    const reason = retryReason(err, reached);
    if (reason === undefined || !this.left) return undefined;
    const slow = err instanceof SlowPeerError;
    if (slow && this.lastSlow) {
      err.repeated = true;
      return undefined;
    }
    this.lastSlow = slow;
    this.idle = progressed && !slow && !(err instanceof BusyError) ? 1 : this.idle + 1;
    this.count += 1;
    const asked = err instanceof BusyError ? (err.retryAfterMs ?? 0) : 0;
    return { reason, delayMs: Math.max(backoffMs(this.idle), asked) };
  }
}

/** ` (after 3 retries)` for a failure that ends a fetch, or '' without retries. */
export function afterRetries(retries: number, err?: unknown): string {
  if (retries <= 0) return '';
  const again = err instanceof SlowPeerError && err.repeated ? '; it was too slow twice in a row' : '';
  return ` (after ${retries} ${retries === 1 ? 'retry' : 'retries'}${again})`;
}
