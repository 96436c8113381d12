// `netkit file fetch NAME` for one file: through the set engine (v1: session, early request, resume, retries), or the classic protocol's one-shot fetch.
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { NetkitError } from '../../../errors.js';
import { formatHostPort } from '../../../transport/tcp.js';
import { attemptClassic } from './classic.js';
import { FETCH_DEFAULTS, localNameOf, type Ctx, type FetchOptions, type FetchResult, type PartState, type Tally } from './context.js';
import { closeQuietly, failedStaged, takeLeftover } from './staged.js';
import { Staging, nameTaken } from './staging.js';
import { interruption } from './receiver.js';
import { runSet } from './tree.js';
import { flushFile, syncDir } from './writer.js';

export { FETCH_DEFAULTS, localNameOf, type FetchOptions, type FetchResult, type RetryNotice } from './context.js';

/** Fetch one file (v1 or classic). A directory is refused (FORBIDDEN), as it always was for this call. */
export async function fetchFile(opts: FetchOptions): Promise<FetchResult> {
  const host = opts.host ?? FETCH_DEFAULTS.host;
  const port = opts.port ?? FETCH_DEFAULTS.port;
  if (opts.classic && opts.secret) {
    throw new NetkitError('USAGE', 'a classic fetch cannot use a secret: the classic protocol cannot authenticate', 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  const localName = localNameOf(opts.name);
  if (opts.classic) return fetchClassic(opts, host, port, localName);
  const run = await runSet(
    {
      names: [opts.name],
      transport: opts.transport,
      host,
      port,
      outDir: opts.outDir ?? '.',
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

/** A classic (seed) fetch: one connection, no resume, the whole file each attempt. */
async function fetchClassic(opts: FetchOptions, host: string, port: number, localName: string): Promise<FetchResult> {
  const timeoutMs = opts.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
  const outDir = opts.outDir ?? '.';
  const target = formatHostPort(host, port);
  const started = performance.now();
  // Before anything is created: an existing file is the answer even where OUT is read-only.
  const finalPath = path.join(outDir, localName);
  if (!opts.force && (await nameTaken(finalPath))) {
    throw new NetkitError('EXISTS', `${finalPath} already exists`, 'use --force to overwrite it, or choose another --out');
  }
  const staging = await Staging.open(outDir);
  const entry = staging.file(localName);
  const lock = await entry.lock(`fetching ${localName} into ${outDir}`);
  let part: PartState | undefined;
  try {
    part = await takeLeftover(entry, opts.name, localName, true, opts.onNotice);
    const c: Ctx = { opts, host, port, target, timeoutMs, entry, localName };
    const tally: Tally = { received: 0, reached: false };
    try {
      opts.signal?.throwIfAborted();
      const got = await attemptClassic(c, part, tally);
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
        verified: false,
        protocol: 'classic',
        resumedFrom: 0,
        received: tally.received,
        retries: 0,
        durationMs: performance.now() - started,
        host,
        port,
      };
    } catch (err) {
      if (opts.signal?.aborted) throw interruption(opts.signal);
      throw err;
    }
  } catch (err) {
    throw await failedStaged(err, part && { entry, lock, part, restarted: false }, true, 0);
  } finally {
    closeQuietly(part?.fd);
    await lock.release();
    await staging.tidy();
  }
}
