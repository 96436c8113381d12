// The state of one fetch of a set of files: what is queued, in flight, done; per-file outcomes and counts; progress.
import { performance } from 'node:perf_hooks';
import { NetkitError, isNetkitError } from '../../../errors.js';
import type { LocalTree } from './local-tree.js';
import { Retries } from './retry.js';
import type { NameSpec } from './names.js';
import type { FileOutcome, SetOptions, SetProgress, SetResult } from './set-types.js';
import type { SmallFile, SmallFiles } from './small-files.js';
import type { Staged } from './staged.js';
import type { Staging } from './staging.js';

/** One file to fetch. */
export interface Item {
  /** The name to REQUEST (root-relative). */
  remote: string;
  /** Where it lands, relative to OUT. */
  target: string;
  spec: NameSpec;
  /** Named on the command line (single-file rules: an existing file is refused), or found in a listing. */
  origin: 'name' | 'listing';
  /** From the listing, then from the RESPONSE (fresher). */
  size: number | undefined;
  mtimeMs: number | undefined;
  mode: number | undefined;
  /** An existing local file of the same size: fetch, then compare SHA-256 before writing anything. */
  compare: boolean;
  /** Publish over whatever has the name (--force). */
  replace: boolean;
  /** Received into a resumable partial file (large, or resuming); else into memory. */
  staged?: Staged | undefined;
  /** Bytes already on disk from an earlier run when this run first asked for it. */
  resumedFrom: number;
  /** Asked for at least once in this run (a later offset is this run's own progress, not a resume). */
  asked?: boolean;
  /** Retries spent on this file alone (it changed while it was sent, or the server was busy with it): its own back-off. */
  changes: number;
  /** Not to be asked again before this time (ms, performance.now()): a file that just changed. */
  notBefore?: number;
  ended: boolean;
}

export type Op =
  | { t: 'get'; item: Item; seq?: number; offset?: number }
  | {
      t: 'list';
      spec: NameSpec;
      dir: string;
      recursive: boolean;
      /** A listing of a plain NAME's parent, to learn what NAME is (its local copy exists). */
      probe?: boolean;
      seq?: number;
    };

export class RunState {
  readonly started = performance.now();
  readonly queue: Op[] = [];
  readonly inflight: Op[] = [];
  readonly outcomes: FileOutcome[] = [];
  /** target -> remote of every file planned, so two names never land on one target. */
  readonly planned = new Map<string, string>();
  /** Listed directories (relative to OUT) and the server's time and mode for each. */
  readonly dirs = new Map<string, { mtimeMs: number; mode: number }>();
  /** Background work (a large file's flush and publish) still running. */
  readonly finishing = new Set<Promise<void>>();
  /** Small files handed to the disk, and the file each one is. */
  readonly smallItems = new Map<SmallFile, Item>();
  /** Names in staging when the fetch began (KEY.part: a partial download to resume). */
  stagingNames = new Set<string>();
  /** Some partial download waits in staging (else no file needs its staging key looked up). */
  partials = false;
  fetched = 0;
  skipped = 0;
  failed = 0;
  resumed = 0;
  bytes = 0;
  received = 0;
  /** The retry budget, its back-off, and how many retries were spent. */
  readonly retrier: Retries;
  skippedByServer = 0;
  filesTotal = 0;
  filesDone = 0;
  bytesTotal = 0;
  bytesDone = 0;
  current = '';
  session = false;
  /** The server answered a HELLO in this run. */
  reached = false;
  /** One plain NAME that is a file: its failure is the command's failure, with the single-file messages. */
  single: boolean;
  /** A directory NAME is refused rather than fetched whole. */
  filesOnly = false;
  /** The single file's error, thrown by fetchFile. */
  singleError: unknown;
  /** A failure that stops the whole fetch (disk full, interrupted, retries exhausted). */
  fatal: NetkitError | undefined;
  readonly umask = process.umask();
  private lastProgress = 0;
  private lastBytes = 0;

  constructor(
    readonly opts: SetOptions,
    readonly staging: Staging,
    readonly tree: LocalTree,
    readonly small: SmallFiles,
  ) {
    this.single = false;
    this.retrier = new Retries(opts.retries ?? 5);
  }

  get retries(): number {
    return this.retrier.count;
  }

  get target(): string {
    return this.opts.host.includes(':') ? `[${this.opts.host}]:${this.opts.port}` : `${this.opts.host}:${this.opts.port}`;
  }

  get timeoutMs(): number {
    return this.opts.timeoutMs ?? 10_000;
  }

  get fsync(): boolean {
    return this.opts.fsync !== false;
  }

  get preserve(): boolean {
    return this.opts.preserve !== false;
  }

  /** A new file to fetch: counted in the totals. */
  plan(item: Item): void {
    this.filesTotal += 1;
    this.bytesTotal += item.size ?? 0;
    this.planned.set(item.target, item.remote);
  }

  /** A file that ends: record its outcome once and tell the caller. */
  end(item: Item | undefined, outcome: FileOutcome): void {
    if (item) {
      if (item.ended) return;
      item.ended = true;
    } else {
      this.filesTotal += 1;
    }
    this.filesDone += 1;
    if (outcome.status === 'fetched') {
      this.fetched += 1;
      this.bytes += outcome.size ?? 0;
      if ((outcome.resumedFrom ?? 0) > 0) this.resumed += 1;
    } else if (outcome.status === 'skipped') {
      this.skipped += 1;
      // A skipped file has nothing left to come: its bytes count as present.
      if (item?.size !== undefined) this.bytesDone += item.size;
    } else {
      this.failed += 1;
      if (item?.size !== undefined) this.bytesTotal -= item.size;
    }
    if (this.opts.keepOutcomes !== false || outcome.status === 'failed' || this.single) this.outcomes.push(outcome);
    this.opts.onFile?.(outcome);
    this.progress(true);
  }

  /** A file that failed (or a NAME that resolved to nothing). */
  fail(item: Item | undefined, name: string, target: string, err: unknown): void {
    const e = isNetkitError(err) ? err : new NetkitError('FAILED', err instanceof Error ? err.message : String(err));
    if (this.single && item) this.singleError = err;
    this.end(item, { name, path: target, status: 'failed', size: item?.size, error: { code: e.code, exitCode: e.exitCode, message: e.message } });
  }

  skip(item: Item, reason: string): void {
    this.end(item, { name: item.remote, path: this.tree.pathOf(item.target), status: 'skipped', size: item.size, reason });
  }

  /** Body bytes arrived. */
  gotBytes(n: number): void {
    this.received += n;
    this.bytesDone += n;
    this.progress(false);
  }

  progress(force: boolean): void {
    if (!this.opts.onProgress) return;
    // Often enough for a bar and for a caller that acts at a byte count; not once per small read.
    const now = performance.now();
    if (!force && now - this.lastProgress < 50 && this.bytesDone - this.lastBytes < 256 * 1024) return;
    this.lastProgress = now;
    this.lastBytes = this.bytesDone;
    const p: SetProgress = { filesDone: this.filesDone, filesTotal: this.filesTotal, bytesDone: this.bytesDone, bytesTotal: this.bytesTotal, current: this.current, set: !this.single };
    this.opts.onProgress(p);
  }

  result(): SetResult {
    return {
      files: this.outcomes,
      fetched: this.fetched,
      skipped: this.skipped,
      failed: this.failed,
      resumed: this.resumed,
      dirs: this.dirs.size,
      skippedByServer: this.skippedByServer,
      bytes: this.bytes,
      received: this.received,
      retries: this.retries,
      durationMs: performance.now() - this.started,
      host: this.opts.host,
      port: this.opts.port,
      session: this.session,
    };
  }
}
