// What a fetch of several files (names, globs, directories) is given and what it returns: per-file outcomes, counts, and the progress it reports.
import type { KeyObject } from 'node:crypto';
import type { StreamTransport } from '../../../transport/tcp.js';
import type { RetryNotice } from './context.js';

export interface SetOptions {
  /** NAMEs as typed: files, directories (fetched whole), globs. */
  names: string[];
  transport: StreamTransport;
  host: string;
  port: number;
  /** The directory everything lands in. */
  outDir: string;
  /** `-o NEWNAME`: the local name of the one file or directory NAME. */
  rename?: string | undefined;
  /** Replace an existing file that differs. */
  force?: boolean;
  /** Compare an existing file by SHA-256 instead of size and modification time. */
  checksum?: boolean;
  /** Keep the server's modification times and permission bits (default true). */
  preserve?: boolean;
  fsync?: boolean;
  timeoutMs?: number;
  retries?: number;
  secret?: KeyObject | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: (p: SetProgress) => void;
  onNotice?: (message: string) => void;
  onRetry?: (retry: RetryNotice) => void;
  /** Each file as it ends (fetched, skipped or failed), in the order they end. */
  onFile?: (f: FileOutcome) => void;
  /** Keep every file's outcome in the result (default true); false keeps only the failed ones (memory). */
  keepOutcomes?: boolean;
}

export interface SetProgress {
  /** Files ended (fetched, skipped, failed) and known so far. */
  filesDone: number;
  filesTotal: number;
  /** Bytes present of the files to fetch (a resumed prefix included), and their total. */
  bytesDone: number;
  bytesTotal: number;
  /** The file being received, relative to --out. */
  current: string;
  /** False while this is one file named on the command line (then show it as one file). */
  set: boolean;
}

export type FileStatus = 'fetched' | 'skipped' | 'failed';

export interface FileOutcome {
  /** The name on the server (root-relative), or the NAME as typed when it could not be resolved. */
  name: string;
  /** Where it is (or would be) saved. */
  path: string;
  status: FileStatus;
  size?: number;
  sha256?: string;
  /** fetched: bytes kept from an earlier run's partial download. */
  resumedFrom?: number;
  /** skipped: why ("same size and time", "same SHA-256"). */
  reason?: string;
  /** failed: the error. */
  error?: { code: string; exitCode: number; message: string };
  /** failed, when it was not a file: a NAME that brought nothing (a missing directory, a glob matching nothing), or a listed directory. */
  kind?: 'name' | 'directory';
}

export interface SetResult {
  /** Every file's outcome, or only the failed ones when the caller asked so (keepOutcomes: false). */
  files: FileOutcome[];
  fetched: number;
  skipped: number;
  /** Failures: files, and NAMEs or directories (their outcome's `kind` says so). */
  failed: number;
  /** Files of the set that never ended: the fetch stopped first (interrupted, disk full, retries used up). */
  unfinished: number;
  /** Files that continued an earlier run's partial download. */
  resumed: number;
  /** Directories created or confirmed. */
  dirs: number;
  /** Entries the server left out of its listings (links leaving the served directory, FIFOs, devices...), less the unreadable files and directories it named (those are failures). */
  skippedByServer: number;
  /** The entries of skippedByServer that the server named, and why (a server that does not name them sends only the count). */
  leftOut?: Array<{ name: string; reason: string }>;
  /** Bytes of the fetched files. */
  bytes: number;
  /** Bytes received over the network in this run. */
  received: number;
  retries: number;
  durationMs: number;
  host: string;
  port: number;
  /** Whether the server spoke sessions (several requests on one connection). */
  session: boolean;
}
