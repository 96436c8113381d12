// Which failures a retry can fix, what to call them in the retry line, and how long to wait before the next attempt.
import { isNetkitError } from '../../../errors.js';
import { ChangedError } from './answers.js';

/** The first wait; each attempt in a row that brings nothing doubles it, up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 1000;
export const MAX_BACKOFF_MS = 30_000;

/** The wait before the next attempt, after `idle` attempts in a row that brought no new byte (1 or more). */
export function backoffMs(idle: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, Math.min(idle - 1, 16)));
}

/**
 * The retry line's reason for a failure a new connection may fix, or undefined when retrying cannot
 * help (not found, forbidden, unauthorized, a changed certificate, integrity, disk full, exists, a
 * usage or protocol error). Before the server answered once in this run, nothing is retried: a refused
 * or unreachable first connection is a wrong address, not a blip.
 */
export function retryReason(err: unknown, reached: boolean): string | undefined {
  if (!reached || !isNetkitError(err)) return undefined;
  if (err instanceof ChangedError) return err.when === 'stream' ? 'the file changed on the server while it was sent' : undefined;
  switch (err.code) {
    case 'PEER_CLOSED':
      return 'connection lost';
    case 'TIMEOUT':
      return /stalled/.test(err.message) ? 'the transfer stalled' : /^cannot connect/.test(err.message) ? 'no answer to a new connection' : 'the server went silent';
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
