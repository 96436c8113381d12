// `netkit file fetch NAME...`: a set of files, globs and directories over one pipelined session (or one connection per file from an older server), with retries that resume the whole set.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetkitError, isNetkitError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import { Reconnect, answerGet, failItem, prepareStaged, releaseStaged, runLevel } from './answer.js';
import { listFrame, readListingFrames } from './list-read.js';
import { LocalTree } from './local-tree.js';
import { parseName, rootTargetOf, type NameSpec } from './names.js';
import { afterListing, afterProbe, initialOps, needsStaging, plainTarget } from './plan.js';
import { interruption } from './receiver.js';
import { afterRetries } from './retry.js';
import { openSession, type FrameBuilder, type SessionConn } from './session-conn.js';
import { SmallFiles } from './small-files.js';
import { stagedRequest } from './staged.js';
import { Staging } from './staging.js';
import { checkOutDir, targetSegments } from './staging-paths.js';
import type { SetOptions } from './set-types.js';
import { RunState, type Op } from './tree-state.js';
import { encodeRequest } from '../../../protocol/file-v1.js';

/** Requests sent and not yet fully answered, at most. */
export const WINDOW = 64;

/**
 * Fetch every NAME. Per-file failures are recorded and the others go on; what stops the whole fetch
 * (interrupted, disk full, the retries used up, a server that cannot be trusted) is `run.fatal`.
 * `single`: one plain NAME, reported with the single-file messages if it is a file; `filesOnly`: a
 * directory is refused (FORBIDDEN) instead of fetched whole.
 */
export async function runSet(opts: SetOptions, how: { single?: boolean; filesOnly?: boolean } = {}): Promise<RunState> {
  if (opts.rename !== undefined && opts.names.length !== 1) throw new NetkitError('USAGE', '-o NEWNAME names one file or directory; with several NAMEs, -o must be an existing directory');
  const specs: NameSpec[] = uniqueNames(opts.names.map((n) => parseName(n, opts.rename)), opts.onNotice);
  if (opts.rename !== undefined && specs[0]!.kind === 'glob') throw new NetkitError('USAGE', '-o NEWNAME cannot name what a glob matches; -o must be an existing directory');
  // Every local name the NAMEs give (`.netkit`, a name too long) is checked before anything is created in OUT.
  for (const spec of specs) {
    const top = spec.kind === 'plain' ? plainTarget(spec) : rootTargetOf(spec);
    if (top !== undefined) targetSegments(top);
  }
  checkOutDir(opts.outDir);
  const staging = await Staging.open(opts.outDir);
  const tree = new LocalTree(opts.outDir);
  let run: RunState | undefined;
  const small = new SmallFiles(staging, tree, opts.fsync !== false, (f, outcome) => {
    const item = run!.smallItems.get(f)!;
    run!.smallItems.delete(f);
    if (outcome.kind === 'published') run!.end(item, { name: item.remote, path: tree.pathOf(item.target), status: 'fetched', size: f.size, sha256: f.sha256.toString('hex'), resumedFrom: 0 });
    else if (outcome.kind === 'same') run!.skip(item, 'an identical copy appeared meanwhile', f.sha256);
    else {
      if (outcome.error.code === 'DISK_FULL') run!.fatal ??= outcome.error;
      run!.fail(item, item.remote, tree.pathOf(item.target), outcome.error);
    }
  });
  run = new RunState(opts, staging, tree, small);
  run.single = how.single === true && specs.length === 1 && specs[0]!.kind === 'plain';
  run.filesOnly = how.filesOnly === true;
  try {
    run.stagingNames = await staging.names();
    run.partials = [...run.stagingNames].some((n) => n.endsWith('.part'));
    await initialOps(run, specs);
    await loop(run);
  } catch (err) {
    if (!isNetkitError(err)) throw err;
    run.fatal ??= opts.signal?.aborted ? interruption(opts.signal) : err;
  } finally {
    await small.drain();
    await small.close();
    while (run.finishing.size > 0) await Promise.allSettled([...run.finishing]);
    await wrapUp(run);
  }
  return run;
}

/** The NAMEs less those that ask the server for the same thing as an earlier one (`run.sh ./run.sh`): each is fetched once, and said so once. */
function uniqueNames(specs: NameSpec[], notice: ((message: string) => void) | undefined): NameSpec[] {
  const first = new Map<string, NameSpec>();
  const said = new Set<string>();
  return specs.filter((spec) => {
    const key = `${spec.kind === 'glob' ? `glob:${spec.pattern!}` : spec.remote}`;
    const earlier = first.get(key);
    if (earlier === undefined) {
      first.set(key, spec);
      return true;
    }
    if (!said.has(key)) notice?.(spec.arg === earlier.arg ? `'${sanitize(spec.arg, 200)}' is given more than once: fetched once` : `'${sanitize(spec.arg, 200)}' names the same as '${sanitize(earlier.arg, 200)}' on the server: fetched once`);
    said.add(key);
    return false;
  });
}

/** After the last file: directories get the server's times and modes (deepest first); what never ended is let go, its partial file kept. */
async function wrapUp(run: RunState): Promise<void> {
  if (run.preserve && !run.fatal) {
    // Deepest first, the directories of one depth together (a NAME's own directory too, unless listed).
    const byDepth = new Map<number, Array<[string, { mtimeMs: number; mode: number }]>>();
    for (const d of [...run.dirs.entries(), ...[...run.tops.entries()].filter(([rel]) => !run.dirs.has(rel))]) {
      const depth = d[0].split('/').length;
      const level = byDepth.get(depth);
      if (level) level.push(d);
      else byDepth.set(depth, [d]);
    }
    for (const depth of [...byDepth.keys()].sort((a, b) => b - a)) {
      await Promise.all(byDepth.get(depth)!.map(([rel, meta]) => run.tree.finishDir(rel, meta, run.umask).catch((err: unknown) => run.opts.onNotice?.(err instanceof Error ? err.message : String(err)))));
    }
  }
  const fatal = run.fatal;
  if (fatal && !run.single) run.fatal = setFailure(run, fatal);
  for (const op of [...run.inflight, ...run.queue]) {
    if (op.t !== 'get') continue;
    if (run.single && fatal) {
      // The one file's own message: the retries spent, and what is kept for a resume.
      run.singleError ??= op.item.staged ? await releaseStaged(op.item, fatal, run.retries) : withRetries(fatal, run.retries, op.item.target);
      continue;
    }
    await releaseStaged(op.item);
  }
  await run.staging.tidy();
}

/** A failure that ends the fetch of one file received into memory (nothing is kept), with the retries it spent. */
function withRetries(err: NetkitError, retries: number, target: string): NetkitError {
  if (err.code === 'INTERRUPTED' || err.code === 'TERMINATED') return new NetkitError(err.code, `interrupted before ${target} arrived; nothing to resume`);
  const after = afterRetries(retries, err);
  return after === '' ? err : new NetkitError(err.code, `${err.message}${after}`, err.hint, { cause: err });
}

/** What stopped a set of files, with the retries it spent, how far it got and how to go on. */
function setFailure(run: RunState, err: NetkitError): NetkitError {
  const there = run.fetched + run.skipped;
  const kept = run.inflight.concat(run.queue).some((op) => op.t === 'get' && (op.item.staged?.part.have ?? 0) > 0) ? ` (partial downloads kept in ${run.staging.dir})` : '';
  const progress = `${there} of ${run.filesTotal} ${run.filesTotal === 1 ? 'file is' : 'files are'} there${kept}`;
  if (err.code === 'INTERRUPTED' || err.code === 'TERMINATED') return new NetkitError(err.code, `interrupted: ${progress}; run the same command to fetch the rest`);
  const network = ['PEER_CLOSED', 'TIMEOUT', 'CONNECT_REFUSED', 'UNREACHABLE', 'HOST_NOT_FOUND'].includes(err.code);
  // Before the first byte moved (not enough room, say), the message needs no progress report.
  if (!run.reached || (!network && run.retries === 0 && there === 0 && kept === '' && run.received === 0)) return err;
  const again = 'run the same command again: what is there is skipped, partial downloads resume';
  const hint = network || err.hint === undefined ? again : ['BUSY', 'DISK_FULL', 'LOCAL_IO'].includes(err.code) ? `${err.hint}; then ${again}` : err.hint;
  return new NetkitError(err.code, `${err.message}${afterRetries(run.retries, err)}; ${progress}`, hint, { cause: err });
}

const pending = (run: RunState): boolean => run.queue.length > 0 || run.inflight.length > 0;

async function loop(run: RunState): Promise<void> {
  while (pending(run) && !run.fatal) {
    const before = run.received;
    try {
      await attempt(run);
    } catch (err) {
      if (run.opts.signal?.aborted) throw interruption(run.opts.signal);
      // What was asked and not answered is asked again, first, on the next connection.
      for (const op of run.inflight.splice(0).reverse()) run.queue.unshift(op.t === 'get' ? { t: 'get', item: op.item } : { ...op, seq: undefined });
      if (err instanceof Reconnect) continue;
      const step = run.retrier.next(err, run.reached, run.received > before);
      if (step === undefined) throw err;
      const st = run.single ? run.queue.find((o) => o.t === 'get')?.item.staged : undefined;
      run.opts.onRetry?.({
        reason: step.reason,
        have: run.single ? (st?.part.have ?? 0) : run.bytesDone,
        size: run.single ? st?.part.info?.size : run.bytesTotal,
        discarded: 0,
        delayMs: step.delayMs,
        attempt: run.retries,
        of: run.retrier.max,
        ...(run.single ? {} : { files: { done: run.filesDone, total: run.filesTotal } }),
      });
      try {
        await sleep(step.delayMs, undefined, { signal: run.opts.signal });
      } catch {
        throw interruption(run.opts.signal);
      }
    }
  }
  if (run.fatal) throw run.fatal;
}

/** The request for an op: a LIST, or a REQUEST from what its partial file holds (a resumed prefix counts as present). */
function frameOf(run: RunState, op: Op): FrameBuilder {
  if (op.t === 'list') return listFrame(op.dir, op.recursive, !op.probe);
  const st = op.item.staged;
  if (!st) {
    op.offset = 0;
    op.item.asked = true;
    return (extra) => encodeRequest({ name: op.item.remote, offset: 0, validator: Buffer.alloc(0) }, extra);
  }
  const r = stagedRequest(op.item.remote, st.part);
  op.offset = r.offset;
  if (!op.item.asked && r.offset > 0) {
    op.item.resumedFrom = r.offset;
    run.bytesDone += r.offset;
  }
  op.item.asked = true;
  return r.build;
}

/**
 * Get the first queued op ready to send (its partial file locked and opened); false when none can go
 * now. A file to be asked again later is waited for only between connections (`connected` false): an
 * open connection would fall silent meanwhile, so it ends and the next one starts after the wait.
 */
async function ready(run: RunState, connected = false): Promise<boolean> {
  while (run.queue.length > 0) {
    const op = run.queue[0]!;
    if (op.t === 'list') return true;
    const { item } = op;
    if (item.notBefore !== undefined && item.notBefore > performance.now()) {
      if (run.inflight.length > 0 || connected) return false;
      await sleep(item.notBefore - performance.now(), undefined, { signal: run.opts.signal }).catch(() => undefined);
      run.opts.signal?.throwIfAborted();
    }
    if (!item.staged && needsStaging(run, item)) {
      try {
        await prepareStaged(run, item);
      } catch (err) {
        if (runLevel(err) && !(isNetkitError(err) && err.code === 'LOCKED')) throw err;
        run.queue.shift();
        await failItem(run, item, err);
        continue;
      }
    }
    return true;
  }
  return false;
}

/** Send queued ops while the window has room (one per connection without a session). */
async function pump(run: RunState, sc: SessionConn, live: () => boolean): Promise<void> {
  const frames: Buffer[] = [];
  const flush = (): void => {
    if (frames.length > 0 && !sc.socket.destroyed) sc.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    frames.length = 0;
  };
  try {
    while (live() && run.inflight.length < (sc.session ? WINDOW : 1)) {
      if (!sc.session && sentOn.get(sc)) break;
      const head = run.queue[0];
      if (head?.t === 'get' && !head.item.staged && needsStaging(run, head.item)) flush(); // before a wait on the disk
      if (!(await ready(run, true)) || !live()) break;
      const op = run.queue.shift()!;
      if (op.t === 'list' && !sc.session) {
        await unsupportedList(run, op);
        continue;
      }
      const { bytes, seq } = sc.request(frameOf(run, op));
      op.seq = seq;
      run.inflight.push(op);
      sentOn.set(sc, true);
      frames.push(bytes);
      if (frames.length >= 32) flush();
    }
  } finally {
    flush();
  }
}
const sentOn = new WeakMap<SessionConn, boolean>();

/** An older server (no SESSION flag) cannot list: a probe becomes a plain request, anything else fails. */
async function unsupportedList(run: RunState, op: Op & { t: 'list' }): Promise<void> {
  if (op.probe) return afterProbe(run, op, undefined);
  run.fail(undefined, op.spec.arg, run.tree.pathOf(''), new NetkitError('PROTOCOL', `${run.target} is an older netkit server that cannot list directories, so '${sanitize(op.spec.arg, 200)}' cannot be fetched from it`, 'name each file, or upgrade netkit on the server'), 'name');
}

/** One connection: the HELLO (with the first request when there is no secret), then answers in order while the window refills. */
async function attempt(run: RunState): Promise<void> {
  const canEarly = await ready(run);
  const first = canEarly ? run.queue[0] : undefined;
  const { sc, early } = await openSession(
    { transport: run.opts.transport, host: run.opts.host, port: run.opts.port, target: run.target, timeoutMs: run.timeoutMs, signal: run.opts.signal, key: run.opts.secret, reached: run.reached },
    first ? frameOf(run, first) : undefined,
    first?.t === 'get' ? { target: run.target, name: first.item.remote } : undefined,
  );
  run.reached = true;
  run.session ||= sc.session;
  let open = true;
  const live = (): boolean => open && !sc.socket.destroyed;
  try {
    if (early && first) {
      run.queue.shift();
      first.seq = 0;
      run.inflight.push(first);
      sentOn.set(sc, true);
      if (first.t === 'list' && !sc.session) {
        // An older server answers a LIST with an error and closes: nothing to read.
        run.inflight.shift();
        await unsupportedList(run, first);
        sc.destroy();
        return;
      }
    }
    let failure: unknown;
    let pumping: Promise<void> = Promise.resolve();
    const refill = (): Promise<void> =>
      (pumping = pumping
        .then(() => pump(run, sc, live))
        .catch((err: unknown) => {
          failure ??= err;
          sc.destroy();
        }));
    const check = (): void => {
      if (failure !== undefined) throw failure;
    };
    await refill();
    check();
    while (pending(run)) {
      if (run.inflight.length === 0) {
        if (!sc.session && sentOn.get(sc)) break; // one request per connection: the next needs a new one
        await refill();
        check();
        if (run.inflight.length === 0) break;
        continue;
      }
      const op = run.inflight[0]!;
      try {
        if (op.t === 'list') await answerList(run, sc, op);
        else await answerGet(run, sc, op);
      } catch (err) {
        check();
        if (err instanceof Reconnect) run.inflight.shift();
        throw err;
      }
      run.inflight.shift();
      if (run.fatal) throw run.fatal;
      // Refill in batches (one write for many requests), long before the server runs out of work.
      if (sc.session && (run.inflight.length <= WINDOW / 2 || run.queue[0]?.t === 'list' || run.inflight.length === 0)) {
        await refill();
        check();
      }
    }
    await pumping;
    check();
  } catch (err) {
    open = false;
    sc.destroy();
    throw err;
  }
  // Half-close once every answer is in: the server ends the session at once. (Not earlier: a relay
  // that does not pass half-closes, such as socat, would cut the answers still on their way.)
  open = false;
  sc.end();
  const timer = setTimeout(() => sc.destroy(), 2000);
  timer.unref();
  sc.socket.once('close', () => clearTimeout(timer));
}

/** The answer to a LIST: a probe tells what a NAME is, a listing plans its files; a refusal fails that NAME only. */
async function answerList(run: RunState, sc: SessionConn, op: Op & { t: 'list' }): Promise<void> {
  const asked = { target: run.target, name: op.dir === '' ? '.' : op.dir, directory: !op.probe };
  let answer;
  try {
    answer = await readListingFrames(sc, op.seq!, asked);
  } catch (err) {
    if (isNetkitError(err) && err.code === 'TOO_LARGE' && !sc.socket.destroyed) {
      // Our own cap: the rest of the listing is still on its way, so the connection cannot go on.
      run.fail(undefined, op.spec.arg, run.tree.pathOf(''), err, 'name');
      sc.destroy();
      throw new Reconnect();
    }
    if (runLevel(err)) throw err;
    if (op.probe) return afterProbe(run, op, undefined);
    run.fail(undefined, op.spec.arg, run.tree.pathOf(''), err, 'name');
    return;
  }
  if (op.probe) return afterProbe(run, op, answer);
  await afterListing(run, op, answer);
}
