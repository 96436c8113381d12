// A file received into a resumable partial file in staging: its lock and leftover, the REQUEST from its offset, the body with its SHA-256, and the flush and publish behind the socket.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NetkitError, fsError, isNetkitError } from '../../../errors.js';
import { formatBytes, sanitize } from '../../../cli/output.js';
import { FrameType, Status, decodeResponse, decodeTrailer, encodeRequest, type Frame, type Response } from '../../../protocol/file-v1.js';
import { prefixAllowanceMs } from '../../file-stream.js';
import { ChangedError, throwRefusal, type Asked } from './answers.js';
import type { PartState } from './context.js';
import type { HeldLock } from './lock.js';
import { guardStall } from './receiver.js';
import { afterRetries } from './retry.js';
import type { FrameBuilder, SessionConn } from './session-conn.js';
import type { StagedFile } from './staging.js';
import { PartWriter, checkRoom, flushFile, hashPrefix, syncDir } from './writer.js';

/** A target's partial file, held for the whole fetch: its staging entry, lock, and what is on disk. */
export interface Staged {
  entry: StagedFile;
  lock: HeldLock;
  part: PartState;
  /** A resume of a file that changed meanwhile already started over once. */
  restarted: boolean;
}

/** Where an attempt is heard from. */
export interface StagedCtx {
  name: string;
  target: string;
  timeoutMs: number;
  fsync: boolean;
  signal?: AbortSignal | undefined;
  onNotice?: ((message: string) => void) | undefined;
  /** Body bytes as they arrive. */
  onBytes: (n: number) => void;
}

function reset(part: PartState): void {
  part.have = 0;
  part.hash = undefined;
  part.info = undefined;
  if (part.fd !== undefined) fs.ftruncateSync(part.fd, 0);
}

export { reset as resetPart };

/**
 * What an earlier run left for this target, if it can be resumed; otherwise it is discarded, and
 * the notice says why and how many bytes went.
 */
export async function takeLeftover(entry: StagedFile, name: string, localName: string, classic: boolean, onNotice?: (m: string) => void): Promise<PartState> {
  const part: PartState = { fd: undefined, have: 0, hash: undefined, info: undefined };
  const { found, dropped } = await entry.leftover();
  if (dropped) onNotice?.(`starting over: ${dropped}; it was removed`);
  if (!found) return part;
  part.fd = found.fd;
  if (found.bytes === 0) return part;
  const { info } = found;
  let why: string | undefined;
  if (classic) why = 'a classic fetch cannot resume it';
  else if (!info) why = 'there is no record of where it came from';
  else if (info.name !== name) why = `it is of '${sanitize(info.name, 200)}' from ${sanitize(info.server)}, not of '${sanitize(name, 200)}'`;
  else if (found.bytes > info.size) why = `it is larger (${formatBytes(found.bytes)}) than the file it came from (${formatBytes(info.size)})`;
  if (why !== undefined) {
    onNotice?.(`starting over: discarding the partial download of ${localName} (${formatBytes(found.bytes)} in ${entry.partPath}): ${why}`);
    reset(part);
    return part;
  }
  part.have = found.bytes;
  part.info = info;
  return part;
}

/** The REQUEST for the rest of the file: from what is on disk, with the validator that names the version it came from. */
export function stagedRequest(name: string, part: PartState): { offset: number; build: FrameBuilder } {
  const offset = part.have;
  const validator = offset > 0 && part.info ? Buffer.from(part.info.validator, 'hex') : Buffer.alloc(0);
  return { offset, build: (extra) => encodeRequest({ name, offset, validator }, extra) };
}

export function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

/** What is left once the body verified: settle the writes, flush, publish (by the caller's rules: force, mode, time). */
export type StagedFinish = (publish: (fd: number) => Promise<void>) => Promise<void>;

/**
 * After an OK RESPONSE `r` to a request sent at `offset`: receive the body into the partial file and
 * read its TRAILER (or a CHANGED in its place). Resolves once the SHA-256 verified, with the rest of the
 * work (the writes still queued, the flush, the publish) as a function to run behind the socket. On
 * failure `st.part` says what the next attempt keeps.
 */
export async function receiveStaged(sc: SessionConn, seq: number, st: Staged, r: Response, offset: number, c: StagedCtx, asked: Asked): Promise<{ size: number; sha256: Buffer; finish: StagedFinish }> {
  const { part, entry } = st;
  const { socket, receiver } = sc.conn;
  if (r.offset !== offset) throw new NetkitError('PROTOCOL', `${sc.target} answered for offset ${r.offset}, not ${offset}`);
  const size = r.size;
  await checkRoom(path.dirname(entry.finalPath), size - offset);
  if (offset === 0) {
    if (part.fd === undefined) part.fd = await entry.create();
    else await new Promise<void>((res, rej) => fs.ftruncate(part.fd!, 0, (err) => (err ? rej(fsError(err, `cannot write ${entry.partPath}`)) : res())));
    part.info = { netkit: 2, target: entry.target, name: c.name, server: sc.target, size, validator: r.validator.toString('hex') };
    await entry.writeInfo(part.info);
    part.hash = createHash('sha256');
  } else if (part.hash === undefined) {
    const begun = part.info && part.info.server !== sc.target ? ` (begun from ${sanitize(part.info.server)})` : '';
    c.onNotice?.(`resuming ${c.target} at ${formatBytes(offset)} of ${formatBytes(size)}${begun}`);
    // The server hashes its copy of [0, offset) now (unless cached): hash ours at the same time, with
    // our silence timeout off (the socket pauses once 64 KiB of early body bytes are buffered)...
    socket.setTimeout(0);
    part.hash = await hashPrefix(part.fd!, entry.partPath, offset, c.signal);
  }
  // ...then, until the first body byte, allow for a server that hashes more slowly than we did.
  socket.setTimeout(offset > 0 ? c.timeoutMs + prefixAllowanceMs(offset) : c.timeoutMs);
  const hash = part.hash!;
  const writer = new PartWriter(part.fd!, entry.partPath, offset, hash, c.fsync);
  let got = 0;
  let guard = size > offset ? undefined : guardStall(sc.conn, sc.target, c.timeoutMs);
  let poisoned = false;
  try {
    await receiver.receiveBody(size - offset, writer, (n) => {
      if (got === 0) {
        socket.setTimeout(c.timeoutMs);
        guard ??= guardStall(sc.conn, sc.target, c.timeoutMs);
      }
      got += n;
      c.onBytes(n);
    });
    const end: Frame = await sc.next();
    if (end.type === FrameType.RESPONSE) {
      // In place of the TRAILER: the file changed while it was sent (or another refusal).
      sc.prove('server', end, seq, asked);
      const late = decodeResponse(end);
      if (late.status === Status.CHANGED) throw new ChangedError('stream', 'the file changed on the server while it was sent');
      throwRefusal(late, asked);
    }
    try {
      sc.prove('trailer', end, seq, asked);
    } catch (err) {
      poisoned = true; // bytes from a peer that could not vouch for them: not kept for a resume either
      throw err;
    }
    const trailer = decodeTrailer(end);
    writer.flush();
    const digest = hash.digest();
    part.hash = undefined;
    if (!digest.equals(trailer.sha256)) {
      await writer.settle().catch(() => undefined);
      part.have = writer.written;
      throw new NetkitError(
        'INTEGRITY',
        `${c.target} did not verify: SHA-256 ${digest.toString('hex')} here, ${trailer.sha256.toString('hex')} on the server; the partial file was removed`,
        'run the fetch again; if it fails again, the file is changing on the server or the network corrupts data',
      );
    }
    const finish: StagedFinish = async (publish) => {
      try {
        await writer.settle();
      } finally {
        // What reached the disk stays for a later run, even when the disk filled up under the last writes.
        part.have = writer.written;
      }
      await flushFile(part.fd!, entry.partPath, c.fsync);
      await publish(part.fd!);
      closeQuietly(part.fd);
      part.fd = undefined;
      if (c.fsync) await syncDir(path.dirname(entry.finalPath));
    };
    return { size, sha256: digest, finish };
  } catch (err) {
    await writer.settle().catch(() => undefined);
    // What reached the disk stays for a later run (after a full disk, too); its hash is recomputed then.
    part.have = poisoned ? 0 : writer.written;
    if (writer.failed || poisoned) part.hash = undefined;
    if (writer.failed) throw writer.failed;
    throw err;
  } finally {
    guard?.stop();
  }
}

/** "16M of 64M", or "16M" while the size is unknown. */
export function progressText(have: number, size: number | undefined): string {
  return size === undefined ? formatBytes(have) : `${formatBytes(have)} of ${formatBytes(size)}`;
}

/** Failures whose message says all there is about the partial file already, or that happen before or after it matters. */
const SAYS_ITSELF = new Set(['EXISTS', 'PERMISSION', 'LOCKED', 'USAGE', 'INTEGRITY', 'CHANGED', 'OUTPUT', 'INTERNAL', 'FAILED']);
const NETWORK = new Set(['PEER_CLOSED', 'TIMEOUT', 'CONNECT_REFUSED', 'UNREACHABLE', 'HOST_NOT_FOUND']);

/** The hint of a failure after which the kept partial file is resumed by running the same fetch again. */
function resumeHint(err: NetkitError): string {
  const resume = 'run the same fetch again to resume';
  if (NETWORK.has(err.code) || err.hint === undefined) return resume;
  return ['BUSY', 'DISK_FULL', 'LOCAL_IO'].includes(err.code) ? `${err.hint}; then ${resume}` : err.hint;
}

/**
 * After the last attempt for one file failed: keep the partial file only where a resume can use it
 * (closing and discarding it otherwise), and say truthfully which in the error, with the retries spent.
 */
export async function failedStaged(err: unknown, st: Staged | undefined, classic: boolean, retries: number): Promise<unknown> {
  if (!isNetkitError(err) || st === undefined) return err;
  const { part, entry } = st;
  const after = afterRetries(retries, err);
  const worthless = part.have === 0 || classic || err.code === 'INTEGRITY' || err instanceof ChangedError;
  if (worthless) {
    closeQuietly(part.fd);
    part.fd = undefined;
    await entry.discard();
  }
  const progress = progressText(part.have, part.info?.size);
  if (err.code === 'INTERRUPTED' || err.code === 'TERMINATED') {
    const message = !worthless
      ? `interrupted: ${entry.partPath} kept (${progress}); run the same command to resume`
      : classic
        ? 'interrupted; nothing was kept (a classic fetch cannot resume)'
        : `interrupted before any byte of ${entry.target} arrived; nothing to resume`;
    return new NetkitError(err.code, message);
  }
  if (err instanceof ChangedError && err.when === 'stream') {
    return new NetkitError('CHANGED', `${err.message}${after}; the partial download was discarded and nothing was saved`, 'run the same fetch again to fetch the new version', { cause: err });
  }
  if (!worthless && !SAYS_ITSELF.has(err.code)) {
    return new NetkitError(err.code, `${err.message}${after}; ${entry.partPath} is kept (${progress})`, resumeHint(err), { cause: err });
  }
  if (after === '' || SAYS_ITSELF.has(err.code)) return err;
  return new NetkitError(err.code, `${err.message}${after}${part.have === 0 ? '; nothing had arrived to keep' : ''}`, err.hint, { cause: err });
}
