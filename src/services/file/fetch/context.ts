// What a fetch is given and what it returns, and the state one attempt hands the next (the partial file and its running hash).
import type { Hash, KeyObject } from 'node:crypto';
import { NetkitError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import type { StreamTransport } from '../../../transport/tcp.js';
import type { PartInfo, StagedFile } from './staging.js';

export const FETCH_DEFAULTS = {
  host: 'localhost',
  port: 8881,
  timeoutMs: 10_000,
  retries: 5,
} as const;

/** One automatic retry about to happen: why, how far the file got, and the wait before it. */
export interface RetryNotice {
  /** What went wrong, e.g. "connection lost", "the file changed on the server". */
  reason: string;
  /** Bytes of the file kept for the next attempt, and the file's size (undefined before the server said). */
  have: number;
  size: number | undefined;
  /** Bytes thrown away because they no longer belong (the file changed), else 0. */
  discarded: number;
  delayMs: number;
  /** This retry's number (1-based) and the most allowed. */
  attempt: number;
  of: number;
  /** For a set of files: how many have ended, of how many known (then `have` and `size` count the whole set). */
  files?: { done: number; total: number };
}

export interface FetchOptions {
  name: string;
  transport: StreamTransport;
  host?: string;
  port?: number;
  outDir?: string;
  /** The local name in `outDir` (`-o NEWNAME`); default: the last segment of `name`. */
  saveAs?: string;
  force?: boolean;
  timeoutMs?: number;
  /** Attempts after the first when the connection is lost, stalls or is refused mid-fetch (default 5; 0: none). */
  retries?: number;
  /** Speak the seed programs' classic protocol (no verification, no resume, no retry). */
  classic?: boolean;
  /** Fetch over HTTP(S) from any web server (`name` is then the URL's decoded path; see HttpSource). */
  http?: HttpSource;
  /**
   * Flush the file to the disk before giving it its final name (default true), so that a power failure
   * cannot leave a damaged file under that name. false trades that for speed, like nc, curl and rsync.
   */
  fsync?: boolean;
  /**
   * k_file (Secret.key('file')): seal the REQUEST and believe a RESPONSE or TRAILER only with the
   * server's valid proof, whatever its HELLO flags say (docs/security.md 4.3). Not with `classic`.
   */
  secret?: KeyObject;
  /** Aborting (reason 'SIGINT' or 'SIGTERM') stops the fetch, keeps what arrived for a resume, and fails with INTERRUPTED/TERMINATED. */
  signal?: AbortSignal;
  onProgress?: (received: number, total: number) => void;
  /** Keep the server's permission bits and modification time (default true). */
  preserve?: boolean;
  /** Compare an existing copy by SHA-256 instead of size and time. */
  checksum?: boolean;
  /** Things a person should know that are not errors: resuming, starting over. */
  onNotice?: (message: string) => void;
  onRetry?: (retry: RetryNotice) => void;
}

export interface FetchResult {
  /** The name requested. */
  name: string;
  /** Where the file was written. */
  path: string;
  size: number;
  /** Hex SHA-256 of the whole file (computed locally; for v1 it matched the server's). */
  sha256: string;
  /** True when the server's SHA-256 matched ours (v1; HTTP when the server sent a digest); classic transfers cannot be verified. */
  verified: boolean;
  protocol: 'v1' | 'classic' | 'http';
  /** For HTTP: the URL fetched. */
  url?: string;
  /** Bytes already present from an earlier run's partial download. */
  resumedFrom: number;
  /** Bytes received over the network this time, over every attempt. */
  received: number;
  /** Automatic retries this run needed. */
  retries: number;
  /** Set when nothing was written: the local copy is already the server's (why: "same size and time"). */
  skipped?: string;
  durationMs: number;
  host: string;
  port: number;
}

/** What a published file keeps from the server: its permission bits and modification time (ms), when known and wanted. */
export interface PublishMeta {
  mode?: number | undefined;
  mtimeMs?: number | undefined;
}

/** What attempts add up across a run. */
export interface Tally {
  /** Body bytes received over every attempt. */
  received: number;
  /** A server answered at least once in this run: later connection failures are blips, not misconfiguration. */
  reached: boolean;
}

/** Where an HTTP fetch goes, besides host and port. */
export interface HttpSource {
  /** The URL as given, for messages and the result. */
  url: string;
  scheme: 'http' | 'https';
  /** The request-target: the URL's path and query, percent-encoded as they are to be sent. */
  target: string;
  /** Sent as `Authorization: Bearer` (over HTTPS only: the caller never sets it for plain HTTP). */
  bearer?: string;
}

/** Everything an attempt needs that does not change between attempts. */
export interface Ctx {
  opts: FetchOptions;
  host: string;
  port: number;
  /** host:port for messages. */
  target: string;
  timeoutMs: number;
  entry: StagedFile;
  localName: string;
}

/** The partial download as it stands between attempts. */
export interface PartState {
  /** Our partial file, open; undefined until the server's first answer (nothing to write before). */
  fd: number | undefined;
  /** Bytes at the start of the file that the next attempt keeps (its resume offset). */
  have: number;
  /** SHA-256 over [0, have) when this run computed it; undefined: hash the file's prefix first. */
  hash: Hash | undefined;
  info: PartInfo | undefined;
}

/** The local file name: the last segment of the requested name, never a path chosen by the peer. */
export function localNameOf(name: string): string {
  const segments = name.split('/').filter((s) => s !== '');
  const last = segments[segments.length - 1];
  if (last === undefined || last === '.' || last === '..') {
    throw new NetkitError('USAGE', `cannot derive a local file name from '${sanitize(name)}'`, 'name a file, e.g. dir/file.bin');
  }
  if (/[\u0000-\u001f\u007f]/.test(last)) {
    throw new NetkitError('USAGE', `the name '${sanitize(name)}' contains control characters`);
  }
  return last;
}
