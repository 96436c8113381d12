// `netkit file fetch NAME` for one file: v1 through the set engine (session, early request, resume, retries), or one connection per attempt for the classic protocol and HTTP.
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetkitError } from '../../../errors.js';
import { formatBytes } from '../../../cli/output.js';
import { formatHostPort } from '../../../transport/tcp.js';
import { ChangedError } from './answers.js';
import { attemptClassic } from './classic.js';
import { FETCH_DEFAULTS, localNameOf, type Ctx, type FetchOptions, type FetchResult, type PartState, type Tally } from './context.js';
import { attemptHttp } from './http.js';
import { interruption } from './receiver.js';
import { Retries } from './retry.js';
import { closeQuietly, failedStaged, resetPart, takeLeftover } from './staged.js';
import { Staging, nameTaken } from './staging.js';
import { checkOutDir, targetSegments } from './staging-paths.js';
import { runSet } from './tree.js';
import { flushFile, syncDir } from './writer.js';

export { FETCH_DEFAULTS, localNameOf, type FetchOptions, type FetchResult, type RetryNotice } from './context.js';

/** Fetch one file (v1, classic or HTTP). A directory is refused (FORBIDDEN), as it always was for this call. */
export async function fetchFile(opts: FetchOptions): Promise<FetchResult> {
  if (opts.classic && opts.secret) {
    throw new NetkitError('USAGE', 'a classic fetch cannot use a secret: the classic protocol cannot authenticate', 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  const localName = opts.saveAs ?? localNameOf(opts.name);
  if (opts.classic || opts.http) return fetchByAttempts(opts, localName);
  return fetchV1(opts);
}

async function fetchV1(opts: FetchOptions): Promise<FetchResult> {
  const host = opts.host ?? FETCH_DEFAULTS.host;
  const port = opts.port ?? FETCH_DEFAULTS.port;
  const run = await runSet(
    {
      names: [opts.name],
      transport: opts.transport,
      host,
      port,
      outDir: opts.outDir ?? '.',
      rename: opts.saveAs,
      force: opts.force,
      checksum: opts.checksum,
      preserve: opts.preserve,
      fsync: opts.fsync,
      timeoutMs: opts.timeoutMs,
      retries: opts.retries,
      secret: opts.secret,
      signal: opts.signal,
      onNotice: opts.onNotice,
      onRetry: opts.onRetry,
      onProgress: opts.onProgress ? (p) => opts.onProgress!(p.bytesDone, p.bytesTotal) : undefined,
    },
    { single: true, filesOnly: true },
  );
  if (run.singleError !== undefined) throw run.singleError;
  if (run.fatal) throw run.fatal;
  const o = run.outcomes[0];
  if (!o) throw new NetkitError('INTERNAL', `no outcome for '${opts.name}'`);
  if (o.status === 'failed') throw new NetkitError((o.error?.code ?? 'FAILED') as 'FAILED', o.error?.message ?? 'failed');
  return {
    name: opts.name,
    path: o.path,
    size: o.size ?? 0,
    sha256: o.sha256 ?? '',
    verified: o.status === 'fetched',
    protocol: 'v1',
    resumedFrom: o.resumedFrom ?? 0,
    received: run.received,
    retries: run.retries,
    durationMs: run.result().durationMs,
    host,
    port,
    ...(o.status === 'skipped' ? { skipped: o.reason ?? 'already there' } : {}),
  };
}

/**
 * One connection per attempt (classic: one attempt, no resume; HTTP: Range resumes and retries): staging,
 * lock, leftover, attempts with back-off, publish.
 */
async function fetchByAttempts(opts: FetchOptions, localName: string): Promise<FetchResult> {
  const host = opts.host ?? FETCH_DEFAULTS.host;
  const port = opts.port ?? FETCH_DEFAULTS.port;
  const timeoutMs = opts.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
  const maxRetries = opts.classic ? 0 : (opts.retries ?? FETCH_DEFAULTS.retries);
  const outDir = opts.outDir ?? '.';
  const target = formatHostPort(host, port);
  const started = performance.now();
  // Before anything is created: a name netkit cannot save under (`.netkit`) is a usage error, and an
  // existing file is the answer even where OUT is read-only.
  targetSegments(localName);
  checkOutDir(outDir);
  const finalPath = path.join(outDir, localName);
  if (!opts.force && (await nameTaken(finalPath))) {
    throw new NetkitError('EXISTS', `${finalPath} already exists`, 'use --force to overwrite it, or choose another --out');
  }
  const staging = await Staging.open(outDir);
  const entry = staging.file(localName);
  const lock = await entry.lock(`fetching ${localName} into ${outDir}`);
  let part: PartState | undefined;
  const retrier = new Retries(maxRetries);
  try {
    part = await takeLeftover(entry, opts.name, localName, opts.classic === true, opts.onNotice);
    let resumedFrom = part.have;
    const c: Ctx = { opts, host, port, target, timeoutMs, entry, localName };
    const tally: Tally = { received: 0, reached: false };
    let restarted = false;
    for (;;) {
      const before = part.have;
      try {
        opts.signal?.throwIfAborted();
        const got: { size: number; sha256: string; verified?: boolean; restarted?: boolean } = await (opts.http ? attemptHttp(c, part, tally) : attemptClassic(c, part, tally));
        // An HTTP server may answer a resume with the whole file: then nothing was resumed after all.
        if (got.restarted) resumedFrom = 0;
        await flushFile(part.fd!, entry.partPath, opts.fsync !== false);
        await entry.publish(part.fd!, opts.force === true);
        closeQuietly(part.fd);
        part.fd = undefined;
        if (opts.fsync !== false) await syncDir(path.dirname(entry.finalPath));
        return {
          name: opts.name,
          path: entry.finalPath,
          size: got.size,
          sha256: got.sha256,
          verified: got.verified ?? false,
          protocol: opts.http ? 'http' : 'classic',
          ...(opts.http ? { url: opts.http.url } : {}),
          resumedFrom,
          received: tally.received,
          retries: retrier.count,
          durationMs: performance.now() - started,
          host,
          port,
        };
      } catch (err) {
        if (opts.signal?.aborted) throw interruption(opts.signal);
        if (err instanceof ChangedError && err.when === 'resume' && !restarted) {
          restarted = true;
          opts.onNotice?.(`${err.message}: discarding ${formatBytes(part.have)} in ${entry.partPath} and starting over`);
          resetPart(part);
          resumedFrom = 0;
          continue;
        }
        const step = retrier.next(err, tally.reached, !(err instanceof ChangedError) && part.have > before);
        if (step === undefined) throw err;
        let discarded = 0;
        if (err instanceof ChangedError) {
          discarded = part.have;
          resetPart(part);
          resumedFrom = 0;
        }
        opts.onRetry?.({ reason: step.reason, have: part.have, size: part.info?.size, discarded, delayMs: step.delayMs, attempt: retrier.count, of: maxRetries });
        try {
          await sleep(step.delayMs, undefined, { signal: opts.signal });
        } catch {
          throw interruption(opts.signal);
        }
      }
    }
  } catch (err) {
    throw await failedStaged(err, part && { entry, lock, part, restarted: false }, opts.classic === true, retrier.count);
  } finally {
    closeQuietly(part?.fd);
    await lock.release();
    await staging.tidy();
  }
}
