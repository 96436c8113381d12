// `netkit file fetch`: one fetch from start to published file: staging, lock, resume, attempts and retries, interruption.
import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetkitError, isNetkitError } from '../../../errors.js';
import { formatBytes, sanitize } from '../../../cli/output.js';
import { formatHostPort } from '../../../transport/tcp.js';
import { ChangedError } from './answers.js';
import { attemptClassic } from './classic.js';
import { FETCH_DEFAULTS, localNameOf, type Ctx, type FetchOptions, type FetchResult, type PartState } from './context.js';
import { backoffMs, retryReason } from './retry.js';
import { Staging, nameTaken, type StagedFile } from './staging.js';
import { attemptHttp } from './http.js';
import { attemptV1, progressText, type Tally } from './v1.js';
import { interruption } from './receiver.js';
import { flushFile, syncDir } from './writer.js';

export { FETCH_DEFAULTS, localNameOf, type FetchOptions, type FetchResult, type RetryNotice } from './context.js';

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

/** Throw the partial file's bytes away but keep it open for the next attempt. */
function reset(part: PartState): void {
  part.have = 0;
  part.hash = undefined;
  part.info = undefined;
  if (part.fd !== undefined) fs.ftruncateSync(part.fd, 0);
}

/**
 * What an earlier run left for this target, if it can be resumed; otherwise it is discarded, and
 * the notice says why and how many bytes went.
 */
async function takeLeftover(entry: StagedFile, opts: FetchOptions, localName: string, classic: boolean): Promise<PartState> {
  const part: PartState = { fd: undefined, have: 0, hash: undefined, info: undefined };
  const { found, dropped } = await entry.leftover();
  if (dropped) opts.onNotice?.(`starting over: ${dropped}; it was removed`);
  if (!found) return part;
  part.fd = found.fd;
  if (found.bytes === 0) return part;
  const { info } = found;
  let why: string | undefined;
  if (classic) why = 'a classic fetch cannot resume it';
  else if (!info) why = 'there is no record of where it came from';
  else if (info.name !== opts.name) why = `it is of '${sanitize(info.name, 200)}' from ${sanitize(info.server)}, not of '${sanitize(opts.name, 200)}'`;
  else if (found.bytes > info.size) why = `it is larger (${formatBytes(found.bytes)}) than the file it came from (${formatBytes(info.size)})`;
  if (why !== undefined) {
    opts.onNotice?.(`starting over: discarding the partial download of ${localName} (${formatBytes(found.bytes)} in ${entry.partPath}): ${why}`);
    reset(part);
    return part;
  }
  part.have = found.bytes;
  part.info = info;
  return part;
}

export async function fetchFile(opts: FetchOptions): Promise<FetchResult> {
  const host = opts.host ?? FETCH_DEFAULTS.host;
  const port = opts.port ?? FETCH_DEFAULTS.port;
  const timeoutMs = opts.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
  const maxRetries = opts.classic ? 0 : (opts.retries ?? FETCH_DEFAULTS.retries);
  const outDir = opts.outDir ?? '.';
  const localName = localNameOf(opts.name);
  const target = formatHostPort(host, port);
  const started = performance.now();
  if (opts.classic && opts.secret) {
    throw new NetkitError('USAGE', 'a classic fetch cannot use a secret: the classic protocol cannot authenticate', 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  // Before anything is created: an existing file is the answer even where OUT is read-only.
  const finalPath = path.join(outDir, localName);
  if (!opts.force && (await nameTaken(finalPath))) {
    throw new NetkitError('EXISTS', `${finalPath} already exists`, 'use --force to overwrite it, or choose another --out');
  }
  const staging = await Staging.open(outDir);
  const entry = staging.file(localName);
  const lock = await entry.lock(`fetching ${localName} into ${outDir}`);
  let part: PartState | undefined;
  let retries = 0;
  try {
    part = await takeLeftover(entry, opts, localName, opts.classic === true);
    let resumedFrom = part.have;
    const c: Ctx = { opts, host, port, target, timeoutMs, entry, localName };
    const tally: Tally = { received: 0, reached: false };
    let idle = 0;
    let restarted = false;
    for (;;) {
      const before = part.have;
      try {
        opts.signal?.throwIfAborted();
        const got: { size: number; sha256: string; verified?: boolean; restarted?: boolean } = await (opts.http ? attemptHttp(c, part, tally) : opts.classic ? attemptClassic(c, part, tally) : attemptV1(c, part, tally));
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
          verified: got.verified ?? !opts.classic,
          protocol: opts.http ? 'http' : opts.classic ? 'classic' : 'v1',
          ...(opts.http ? { url: opts.http.url } : {}),
          resumedFrom,
          received: tally.received,
          retries,
          durationMs: performance.now() - started,
          host,
          port,
        };
      } catch (err) {
        if (opts.signal?.aborted) throw interruption(opts.signal);
        if (err instanceof ChangedError && err.when === 'resume' && !restarted) {
          restarted = true;
          opts.onNotice?.(`${err.message}: discarding ${formatBytes(part.have)} in ${entry.partPath} and starting over`);
          reset(part);
          resumedFrom = 0;
          continue;
        }
        const reason = retryReason(err, tally.reached);
        if (reason === undefined || retries >= maxRetries) throw err;
        let discarded = 0;
        if (err instanceof ChangedError) {
          discarded = part.have;
          reset(part);
          resumedFrom = 0;
        }
        idle = part.have > before ? 1 : idle + 1;
        const delayMs = backoffMs(idle);
        retries += 1;
        opts.onRetry?.({ reason, have: part.have, size: part.info?.size, discarded, delayMs, attempt: retries, of: maxRetries });
        try {
          await sleep(delayMs, undefined, { signal: opts.signal });
        } catch {
          throw interruption(opts.signal);
        }
      }
    }
  } catch (err) {
    throw await failed(err, entry, part, opts, retries);
  } finally {
    closeQuietly(part?.fd);
    await lock.release();
    await staging.tidy();
  }
}

/** After the last attempt failed: keep the partial file only where a resume can use it, and say truthfully which. */
async function failed(err: unknown, entry: StagedFile, part: PartState | undefined, opts: FetchOptions, retries: number): Promise<unknown> {
  if (!isNetkitError(err) || part === undefined) return err;
  const after = retries > 0 ? ` (after ${retries} ${retries === 1 ? 'retry' : 'retries'})` : '';
  const worthless = part.have === 0 || opts.classic === true || err.code === 'INTEGRITY' || err instanceof ChangedError;
  if (worthless) {
    closeQuietly(part.fd);
    part.fd = undefined;
    await entry.discard();
  }
  const progress = progressText(part.have, part.info?.size);
  if (err.code === 'INTERRUPTED' || err.code === 'TERMINATED') {
    const message = !worthless
      ? `interrupted: ${entry.partPath} kept (${progress}); run the same command to resume`
      : opts.classic
        ? 'interrupted; nothing was kept (a classic fetch cannot resume)'
        : `interrupted before any byte of ${entry.target} arrived; nothing to resume`;
    return new NetkitError(err.code, message);
  }
  if (err instanceof ChangedError && err.when === 'stream') {
    return new NetkitError('CHANGED', `${err.message}${after}; the partial download was discarded and nothing was saved`, 'run the same fetch again to fetch the new version', { cause: err });
  }
  if (!worthless && (err.code === 'PEER_CLOSED' || err.code === 'TIMEOUT')) {
    return new NetkitError(err.code, `${err.message}${after}; ${entry.partPath} is kept (${progress})`, 'run the same fetch again to resume', { cause: err });
  }
  return err;
}
