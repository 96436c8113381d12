// What every protocol session shares: the server's context, the connection with its reader and log entry, and socket helpers that end in a ConnectionEnd.
import type { KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { NetkitError } from '../../../errors.js';
import { FrameReader } from '../../../protocol/file-v1.js';
import type { HttpConnections } from '../../../transport/http.js';
import type { StreamSocket } from '../../../transport/tcp.js';
import { errnoText, linger, readUntil, writeAll, type EndFactory } from '../../file-stream.js';
import type { FailureThrottle } from '../../limits.js';
import type { BufferPool } from './body.js';
import type { Conn, ConnectionTable } from './connections.js';
import type { HashCache } from './hash-cache.js';
import type { JailedFile } from './jail.js';
import type { PrefetchBudget } from './prefetch-budget.js';
import type { PrefixHashBudget } from './prefix-budget.js';
import type { PrefixStates } from './prefix-states.js';
import type { ReaderPool } from './reader-pool.js';
import { ConnectionEnd, type Outcome, type TransferLog } from './types.js';

/** How long to keep reading (and discarding) after our last byte, so closing never resets the answer away. */
export const LINGER_MS = 2_000;

/** Everything a session may use that outlives one connection. */
export interface ServeContext {
  /** The served directory (a realpath). */
  readonly root: string;
  readonly key?: KeyObject;
  readonly throttle?: FailureThrottle;
  readonly table: ConnectionTable;
  readonly pool: BufferPool;
  readonly hashCache: HashCache;
  readonly prefixBudget: PrefixHashBudget;
  /** SHA-256 states where transfers got to, so a resume hashes forward from one. */
  readonly prefixStates: PrefixStates;
  /** Reader threads that open and read small files, and read directories, for every connection. */
  readonly readers: ReaderPool;
  /** Memory for small files read ahead of their turn in sessions. */
  readonly prefetch: PrefetchBudget;
  readonly idleTimeoutMs: number;
  readonly classicGapMs: number;
  readonly refuseHardLinks: boolean;
  /** HTTP on the port, when it is on. */
  readonly http?: HttpConnections;
  /** Report one finished exchange (a protocol with several requests per connection logs each). */
  readonly log: (entry: TransferLog) => void;
}

/** The outcome of a jail or codec refusal (NetkitError code NOT_FOUND, FORBIDDEN, or anything else). */
export function refusalOutcome(err: NetkitError): 'not-found' | 'forbidden' | 'bad-request' {
  return err.code === 'NOT_FOUND' ? 'not-found' : err.code === 'FORBIDDEN' ? 'forbidden' : 'bad-request';
}

export const ENDS: EndFactory = {
  closed: (what) =>
    new ConnectionEnd('aborted', what === 'end' ? 'the client closed its side before the exchange was complete' : 'the connection closed'),
  failed: (err) => new ConnectionEnd('aborted', `connection error: ${errnoText(err)}`),
};

/** One connection being served: its protocol session reads through `reader` and fills `entry`. */
export class Session {
  readonly reader = new FrameReader();
  readonly entry: TransferLog;
  /** The file being served, closed when the session ends. */
  file: JailedFile | undefined;
  /** The protocol logged each of its requests itself: the connection's own entry is not logged. */
  logged = false;

  constructor(
    readonly conn: Conn,
    readonly ctx: ServeContext,
  ) {
    this.entry = { peer: conn.peer, protocol: 'unknown', bytes: 0, durationMs: 0, outcome: 'error' };
  }

  /** The stream the session speaks on (the TLS socket once a handshake is done). */
  get socket(): StreamSocket {
    return this.conn.socket;
  }

  readUntil<T>(parse: () => T | undefined, gap?: { ms: number; onGap: () => T | undefined }): Promise<T> {
    return readUntil(this.socket, this.reader, parse, ENDS, gap as { ms: number; onGap: () => T } | undefined);
  }

  writeAll(bytes: Buffer): Promise<void> {
    return writeAll(this.socket, bytes, ENDS);
  }

  /** Record the outcome of the exchange. */
  outcome(outcome: Outcome, detail?: string): void {
    this.entry.outcome = outcome;
    this.entry.detail = detail;
  }

  /** After the last byte of an answer: no deadline but the linger, half-close, discard input, close. */
  async finish(): Promise<void> {
    this.conn.requestComplete();
    this.conn.enter('closing');
    await linger(this.socket, LINGER_MS);
  }

  /**
   * The session threw: take the outcome from the error, or from the reason the socket was destroyed
   * with (a deadline or an eviction reports itself, not the generic close that followed).
   */
  failed(err: unknown): void {
    if (err instanceof ConnectionEnd) this.outcome(err.outcome, err.detail);
    else this.outcome('error', err instanceof Error ? err.message : String(err));
    const destroyedWith = (this.socket as { errored?: unknown }).errored ?? (this.conn.raw as { errored?: unknown }).errored;
    if (destroyedWith instanceof ConnectionEnd) this.outcome(destroyedWith.outcome, destroyedWith.detail);
    this.conn.cut();
  }

  /** Close the file, if any; the log entry gets its duration. */
  async close(): Promise<void> {
    await this.file?.handle.close().catch(() => undefined);
    this.file = undefined;
    this.entry.durationMs = performance.now() - this.conn.started;
  }
}
