// The file server's public shapes (options, defaults, the per-connection log entry, the running server) and the error that ends a connection with an outcome.
import type { KeyObject } from 'node:crypto';
import type { StreamTransport } from '../../../transport/tcp.js';
import type { FailureThrottle } from '../../limits.js';
import type { PrefixBudgetOptions } from './prefix-budget.js';
import type { PrefixStatesOptions } from './prefix-states.js';

export const SERVE_DEFAULTS = {
  port: 8881,
  maxConnections: 64,
  /** Half the total: one host (or one IPv6 /64) cannot take every slot from everyone else. */
  maxPerSource: 32,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  graceMs: 10_000,
  /** A classic name is complete after this long without a new byte (the seed sends it in one send()). */
  classicGapMs: 50,
} as const;

export interface ServeOptions {
  dir: string;
  transport: StreamTransport;
  host?: string;
  port?: number;
  maxConnections?: number;
  /** Most connections at once from one source (sourceKey: an IPv4 address, an IPv6 /64). */
  maxPerSource?: number;
  /** From accept (TLS handshake included) to a complete request. */
  headerTimeoutMs?: number;
  /** A transfer whose client takes no byte for this long is cut. */
  idleTimeoutMs?: number;
  classicGapMs?: number;
  /** Refuse files with more than one hard link (docs/security.md section 3). */
  refuseHardLinks?: boolean;
  /** Serve HTTP/1.x on the port too (default true; `--no-http` turns it off). */
  http?: boolean;
  /** One call per connection when its outcome is known (per request for HTTP, which has several on one). */
  onLog?: (entry: TransferLog) => void;
  /**
   * k_file (Secret.key('file')): when set, every v1 REQUEST must carry a valid client proof and every
   * RESPONSE and TRAILER carries the server's (docs/protocol.md 2.9); classic clients are refused.
   */
  secret?: KeyObject;
  /** Per-source back-off for failed proofs (default: 250 ms doubling to 30 s); injectable for tests. */
  failureThrottle?: FailureThrottle;
  /** The per-source budget for hashing resumed prefixes (defaults in prefix-budget.ts); for tests. */
  prefixBudget?: PrefixBudgetOptions;
  /** The SHA-256 states kept where transfers got to (defaults in prefix-states.ts); for tests. */
  prefixStates?: PrefixStatesOptions;
}

export type Outcome =
  | 'ok'
  | 'not-found'
  | 'forbidden'
  | 'bad-request'
  | 'busy'
  | 'changed'
  | 'bad-offset'
  | 'unsupported-version'
  | 'too-large'
  | 'unauthorized'
  | 'timeout'
  /** The server was full and this connection, still in its header, gave its slot to a newcomer. */
  | 'evicted'
  | 'aborted'
  | 'error';

export interface TransferLog {
  peer: string;
  protocol: 'v1' | 'classic' | 'http' | 'unknown';
  /** For HTTP: the method and the status answered. */
  method?: string;
  status?: number;
  /** The requested name as received (unsanitised: the CLI sanitises before printing). */
  name?: string;
  /** Body bytes written to the socket. */
  bytes: number;
  /** For v1: where the body started (resume); for HTTP, where the range started. */
  offset?: number;
  size?: number;
  durationMs: number;
  outcome: Outcome;
  /** Why, for refusals and failures; for a session, a summary of its answers. */
  detail?: string;
  /** Set for a v1 session (several requests on one connection): how many were answered. `name` is the first. */
  requests?: number;
}

export interface CloseResult {
  /** Transfers that finished within the grace period. */
  finished: number;
  /** Connections cut when the grace period ran out (or that were still in their header). */
  aborted: number;
}

export interface FileServer {
  readonly host: string;
  readonly port: number;
  /** The served directory (a realpath). */
  readonly root: string;
  readonly transport: string;
  /** Whether HTTP is served on the port too. */
  readonly http: boolean;
  /** Connections holding a slot right now. */
  connections(): number;
  /** Stop accepting; drop idle connections; let transfers finish for up to graceMs, then cut them. */
  close(graceMs?: number): Promise<CloseResult>;
}

/** Thrown inside a connection handler, or passed to socket.destroy(), to end it with a logged outcome. */
export class ConnectionEnd extends Error {
  constructor(
    readonly outcome: Outcome,
    readonly detail: string,
  ) {
    super(detail);
  }
}
