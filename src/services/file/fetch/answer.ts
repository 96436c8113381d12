// The answer to one REQUEST of a tree fetch: a refusal for that file only, a directory to list instead, or the body (into memory or a partial file), its TRAILER, the SHA-256 check and the hand-off to the disk.
import { hash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { NetkitError, isNetkitError } from '../../../errors.js';
import { formatBytes, sanitize } from '../../../cli/output.js';
import { FrameType, Status, decodeResponse, decodeTrailer, type Response } from '../../../protocol/file-v1.js';
import { BusyError, ChangedError, throwRefusal, type Asked } from './answers.js';
import { localMode, timeFor } from './local-tree.js';
import { afterRetries, backoffMs, retryReason } from './retry.js';
import type { SessionConn } from './session-conn.js';
import { MemorySink, SMALL_FILE } from './small-files.js';
import { closeQuietly, failedStaged, receiveStaged, resetPart, takeLeftover, type Staged } from './staged.js';
import { nameTaken } from './staging.js';
import type { Item, Op, RunState } from './tree-state.js';
import { decide } from './plan.js';

/** Failures that end the connection (or the whole fetch), not just one file. */
const RUN_LEVEL = new Set(['PEER_CLOSED', 'TIMEOUT', 'PROTOCOL', 'TOO_LARGE', 'UNAUTHORIZED', 'BUSY', 'CONNECT_REFUSED', 'UNREACHABLE', 'HOST_NOT_FOUND', 'TLS_TRUST', 'INTERRUPTED', 'TERMINATED', 'DISK_FULL']);

export function runLevel(err: unknown): boolean {
  return !isNetkitError(err) || RUN_LEVEL.has(err.code);
}

/** The mode and time a received file is published with (none kept with --no-preserve, or from a server that sends none). */
export function metaOf(run: RunState, item: Item): { mode: number; mtimeMs: number | undefined } {
  if (!run.preserve) return { mode: 0o666, mtimeMs: undefined };
  return { mode: item.mode === undefined ? 0o666 : localMode(item.mode, run.umask), mtimeMs: item.mtimeMs };
}

/** Take the lock and any leftover of a file that goes through a partial file in staging. */
export async function prepareStaged(run: RunState, item: Item): Promise<void> {
  if (item.staged) return;
  if (item.origin === 'name' && !item.replace && !item.compare && !item.decideOnAnswer && (await nameTaken(run.tree.pathOf(item.target)))) {
    throw new NetkitError('EXISTS', `${run.tree.pathOf(item.target)} already exists`, 'use --force to overwrite it, or choose another --out');
  }
  const entry = run.staging.file(item.target);
  const lock = await entry.lock(`fetching ${item.target} into ${run.opts.outDir}`);
  try {
    const part = await takeLeftover(entry, item.remote, item.target, false, run.opts.onNotice);
    item.staged = { entry, lock, part, restarted: false };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/** Give up a file's partial-file state: keep what a resume can use (or discard it), release the lock. */
export async function releaseStaged(item: Item, err?: unknown, retries = 0): Promise<unknown> {
  const st = item.staged;
  if (!st) return err;
  item.staged = undefined;
  const said = err === undefined ? undefined : await failedStaged(err, st, false, retries);
  if (err === undefined && st.part.have === 0) await st.entry.discard();
  closeQuietly(st.part.fd);
  st.part.fd = undefined;
  await st.lock.release();
  return said;
}

/** A file's failure: its partial file kept or discarded as a resume needs, recorded, and the fetch goes on. */
export async function failItem(run: RunState, item: Item, err: unknown): Promise<void> {
  // The retries of a set were spent on its connections, not on this file: only the one file's message counts them.
  const said = await releaseStaged(item, err, run.single ? run.retries : 0);
  run.fail(item, item.remote, run.tree.pathOf(item.target), said ?? err);
}

/**
 * Ask for a file again after `delayMs` (a retry, with its line). `discarded`: the bytes received are
 * worthless (the file changed), so its partial file starts over; otherwise what it holds is resumed.
 */
function askAgain(run: RunState, item: Item, reason: string, delayMs: number, discarded: number | undefined): void {
  const have = discarded !== undefined ? 0 : (item.staged?.part.have ?? 0);
  run.opts.onRetry?.({ reason: run.single ? reason : `${item.target}: ${reason}`, have, size: discarded !== undefined ? undefined : item.size, discarded: discarded ?? 0, delayMs, attempt: run.retries, of: run.retrier.max });
  if (discarded !== undefined && item.staged) resetPart(item.staged.part);
  item.notBefore = performance.now() + delayMs;
  run.bytesDone -= discarded ?? 0;
  run.queue.push({ t: 'get', item });
}

/** The file changed while it was sent: fetch it again later (a retry), or fail with CHANGED when none is left. */
async function changedWhileSent(run: RunState, op: Op & { t: 'get' }, discarded: number): Promise<void> {
  const { item } = op;
  if (!run.retrier.left) {
    const err = new ChangedError('stream', 'the file changed on the server while it was sent');
    if (item.staged) return failItem(run, item, err);
    return void run.fail(item, item.remote, run.tree.pathOf(item.target), new NetkitError('CHANGED', `${err.message}${afterRetries(run.retries)}; nothing was saved`, 'run the same fetch again to fetch the new version'));
  }
  run.retrier.count += 1;
  item.changes += 1;
  askAgain(run, item, 'the file changed on the server while it was sent', backoffMs(item.changes), discarded);
}

/** The server is busy with this file (its prefix-hash budget) and says when to come back: a retry then, or the failure when none is left. */
async function busyFor(run: RunState, item: Item, err: unknown): Promise<void> {
  const reason = retryReason(err, true);
  if (!(err instanceof BusyError) || reason === undefined || !run.retrier.left) return failItem(run, item, err);
  run.retrier.count += 1;
  item.changes += 1;
  askAgain(run, item, reason, Math.max(backoffMs(item.changes), err.retryAfterMs ?? 0), undefined);
}

/**
 * Read the answer to a REQUEST (its RESPONSE first). A refusal fails only this file; IS_DIRECTORY for a
 * NAME turns it into a listing; OK brings the body and TRAILER. Throws only what ends the connection.
 */
export async function answerGet(run: RunState, sc: SessionConn, op: Op & { t: 'get' }): Promise<void> {
  const { item } = op;
  const seq = op.seq!;
  const asked: Asked = { target: run.target, name: item.remote };
  const head = sc.ready() ?? (await sc.next());
  sc.prove('server', head, seq, asked);
  const r = decodeResponse(head);
  try {
    if (r.status !== Status.OK) return await refused(run, op, r, asked);
    run.current = item.target;
    if (item.size === undefined) run.bytesTotal += r.size;
    else if (item.size !== r.size) run.bytesTotal += r.size - item.size;
    item.size = r.size;
    if (r.mtimeMs !== undefined) item.mtimeMs = r.mtimeMs;
    if (r.mode !== undefined) item.mode = r.mode;
    if (item.decideOnAnswer) await decideOnAnswer(run, sc, item);
    if (!item.staged && r.size > SMALL_FILE) {
      // Listed as small, larger now: it needs a partial file after all (the request asked from 0).
      await prepareStaged(run, item);
      if (item.staged!.part.have > 0) resetPart(item.staged!.part);
    }
    if (item.staged) return await receiveLarge(run, sc, op, r, item.staged, asked);
    return await receiveSmall(run, sc, op, r, asked);
  } catch (err) {
    if (runLevel(err)) throw err;
    if (err instanceof ChangedError && err.when === 'stream') return changedWhileSent(run, op, item.staged?.part.have ?? 0);
    await failItem(run, item, err);
    // A local write failure destroyed the socket under the body: the rest come over a new connection.
    if (sc.socket.destroyed) throw new Reconnect();
  }
}

/**
 * No listing said what the server has (an older server cannot list): the local copy is compared with
 * the RESPONSE's SIZE and MTIME before any byte is taken. Skipped or refused, the body still on its way
 * is not read: the connection ends and the next file takes a new one.
 */
async function decideOnAnswer(run: RunState, sc: SessionConn, item: Item): Promise<void> {
  item.decideOnAnswer = false;
  const verdict = decide(run, item, await run.tree.present(item.target));
  if (verdict === 'fetch' || verdict === 'compare') {
    item.compare = verdict === 'compare';
    return;
  }
  if (verdict === 'skip') {
    await releaseStaged(item);
    run.skip(item, 'same size and time');
  } else await failItem(run, item, verdict);
  sc.destroy();
  throw new Reconnect();
}

/** The connection is gone for a reason that is no network failure: reconnect without counting a retry. */
export class Reconnect extends Error {
  constructor() {
    super('reconnect');
  }
}

function refusalOf(r: Response, asked: Asked): unknown {
  try {
    throwRefusal(r, asked);
  } catch (err) {
    return err;
  }
}

async function refused(run: RunState, op: Op & { t: 'get' }, r: Response, asked: Asked): Promise<void> {
  const { item } = op;
  if (r.status === Status.IS_DIRECTORY && item.origin === 'name' && !run.filesOnly) {
    await releaseStaged(item);
    item.ended = true;
    run.filesTotal -= 1;
    run.planned.delete(item.target);
    run.single = false;
    run.queue.push({ t: 'list', spec: { ...item.spec, kind: 'dir' }, dir: item.remote, recursive: true });
    return;
  }
  if (r.status === Status.BUSY) {
    // The server will not hash this file's resumed prefix for us yet: ask again when it says, while retries remain.
    return busyFor(run, item, refusalOf(r, asked));
  }
  if (r.status === Status.CHANGED && (op.offset ?? 0) === 0) {
    // The file changed while the server read it ahead: ask again (counted as a retry).
    return changedWhileSent(run, op, 0);
  }
  const st = item.staged;
  if (st && (op.offset ?? 0) > 0 && (r.status === Status.CHANGED || r.status === Status.BAD_OFFSET)) {
    const err = new ChangedError('resume', 'the file changed on the server since the partial download');
    if (!st.restarted) {
      st.restarted = true;
      run.opts.onNotice?.(`${err.message}: discarding ${formatBytes(st.part.have)} in ${st.entry.partPath} and starting over`);
      run.bytesDone -= st.part.have;
      resetPart(st.part);
      item.resumedFrom = 0;
      run.queue.unshift({ t: 'get', item });
      return;
    }
    throw err;
  }
  if (!run.session && r.status === Status.FORBIDDEN && r.message === 'is a directory' && item.origin === 'name' && !run.filesOnly) {
    // An older server (no sessions) refuses a directory: it cannot list it either.
    return failItem(run, item, new NetkitError('PROTOCOL', `${run.target} is an older netkit server that cannot list directories, so '${sanitize(item.remote, 200)}' (a directory there) cannot be fetched from it`, 'name each file, or upgrade netkit on the server'));
  }
  throwRefusal(r, asked);
}

async function receiveLarge(run: RunState, sc: SessionConn, op: Op & { t: 'get' }, r: Response, st: Staged, asked: Asked): Promise<void> {
  const { item } = op;
  const offset = op.offset ?? 0;
  const got = await receiveStaged(sc, op.seq!, st, r, offset, {
    name: item.remote,
    target: item.target,
    timeoutMs: run.timeoutMs,
    fsync: run.fsync,
    signal: run.opts.signal,
    onNotice: run.opts.onNotice,
    onBytes: (n) => run.gotBytes(n),
  }, asked);
  const task = (async () => {
    try {
      const keep = await compareWithLocal(run, item, got.sha256);
      if (keep === 'same') {
        await releaseStaged(item);
        await st.entry.discard();
        return;
      }
      const meta = metaOf(run, item);
      await got.finish((fd) => st.entry.publish(fd, item.replace || keep === 'replace', meta));
      await releaseStaged(item);
      run.end(item, { name: item.remote, path: st.entry.finalPath, status: 'fetched', size: got.size, sha256: got.sha256.toString('hex'), resumedFrom: item.resumedFrom });
    } catch (err) {
      if (isNetkitError(err) && err.code === 'DISK_FULL') run.fatal ??= err;
      await failItem(run, item, err);
    }
  })();
  run.finishing.add(task);
  void task.finally(() => run.finishing.delete(task));
  // Bound what waits behind the socket: a few large files at most.
  while (run.finishing.size > 2) await Promise.race(run.finishing);
}

async function receiveSmall(run: RunState, sc: SessionConn, op: Op & { t: 'get' }, r: Response, asked: Asked): Promise<void> {
  const { item } = op;
  const { socket, receiver } = sc.conn;
  let sink = run.small.take(r.size);
  if (!sink) {
    // The disk is behind: stop reading (our own wait, not the server's silence).
    socket.setTimeout(0);
    while (!(sink = run.small.take(r.size))) await run.small.roomFor();
    socket.setTimeout(run.timeoutMs);
  }
  let added = false;
  try {
    let counted = 0;
    await receiver.receiveBody(r.size, sink, (n) => {
      counted += n;
      run.gotBytes(n);
    });
    const end = sc.ready() ?? (await sc.next());
    if (end.type === FrameType.RESPONSE) {
      sc.prove('server', end, op.seq!, asked);
      const late = decodeResponse(end);
      if (late.status === Status.CHANGED) return await changedWhileSent(run, op, counted);
      throwRefusal(late, asked);
    }
    sc.prove('trailer', end, op.seq!, asked);
    const trailer = decodeTrailer(end);
    const digest = hash('sha256', sink.data, 'buffer') as unknown as Buffer;
    if (!digest.equals(trailer.sha256)) {
      run.bytesDone -= counted;
      throw new NetkitError('INTEGRITY', `${item.target} did not verify: SHA-256 ${digest.toString('hex')} here, ${trailer.sha256.toString('hex')} on the server; nothing was saved`, 'run the fetch again; if it fails again, the file is changing on the server or the network corrupts data');
    }
    const keep = item.compare ? await compareWithLocal(run, item, digest) : 'write';
    if (keep === 'same') return;
    const meta = metaOf(run, item);
    const f = { target: item.target, sink, size: r.size, mtimeMs: meta.mtimeMs, mode: meta.mode, replace: item.replace || keep === 'replace', sha256: digest };
    run.smallItems.set(f, item);
    run.small.add(f);
    added = true;
  } finally {
    if (!added) run.small.drop(sink);
  }
}

/**
 * For a file whose local copy has the same size: compare SHA-256 before writing. Identical: skipped
 * (its time set to the server's when times are kept). Different: replaced with --force, else reported.
 */
async function compareWithLocal(run: RunState, item: Item, digest: Buffer): Promise<'write' | 'same' | 'replace'> {
  if (!item.compare) return 'write';
  const here = await run.tree.hashOf(item.target);
  if (here.equals(digest)) {
    const meta = metaOf(run, item);
    if (meta.mtimeMs !== undefined) await fsp.lutimes(run.tree.pathOf(item.target), timeFor(meta.mtimeMs), timeFor(meta.mtimeMs)).catch(() => undefined);
    run.skip(item, 'same SHA-256', digest);
    return 'same';
  }
  if (run.opts.force) return 'replace';
  throw new NetkitError('EXISTS', `${run.tree.pathOf(item.target)} already exists and differs from the server's copy (same size, another SHA-256)`, 'use --force to overwrite it');
}
