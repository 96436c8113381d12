// One v1 attempt: handshake, request from the resume offset, body straight into the partial file, trailer and SHA-256 check.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NetkitError, fsError, isNetkitError } from '../../../errors.js';
import { formatBytes, sanitize } from '../../../cli/output.js';
import {
  NONCE_LENGTH,
  FrameType,
  HelloFlag,
  Status,
  decodeHello,
  decodeResponse,
  decodeTrailer,
  encodePreamble,
  encodeHello,
  encodeRequest,
} from '../../../protocol/file-v1.js';
import { MAC_PLACEHOLDER, sealFrame } from '../../../protocol/auth-frames.js';
import type { HandshakeNonces } from '../../../protocol/auth.js';
import { prefixAllowanceMs, writeAll } from '../../file-stream.js';
import { ChangedError, requireProof, throwRefusal } from './answers.js';
import type { Ctx, PartState } from './context.js';
import { connect, guardStall, interruption, WRITE_ENDS } from './receiver.js';
import { BATCH, PartWriter, checkRoom, hashPrefix } from './writer.js';

/** What attempts add up across a run. */
export interface Tally {
  /** Body bytes received over every attempt. */
  received: number;
  /** A v1 server answered our HELLO at least once in this run: later connection failures are blips, not misconfiguration. */
  reached: boolean;
}


function truncate(fd: number, where: string): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, 0, (err) => (err ? reject(fsError(err, `cannot write ${where}`)) : resolve())));
}

/**
 * Fetch the rest of the file once: from `part.have` on, into `part.fd`. On success the whole file is
 * on disk and verified; on failure `part` says what the next attempt can keep.
 */
export async function attemptV1(c: Ctx, part: PartState, tally: Tally): Promise<{ size: number; sha256: string }> {
  const { opts, entry } = c;
  const reachedBefore = tally.reached;
  const conn = await connect({ transport: opts.transport, host: c.host, port: c.port, target: c.target, timeoutMs: c.timeoutMs, signal: opts.signal });
  const { socket, receiver } = conn;
  const { reader } = receiver;
  const onAbort = (): void => void socket.destroy(interruption(opts.signal));
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) onAbort();
  let writer: PartWriter | undefined;
  let guard: { stop(): void } | undefined;
  let handshake = true;
  let poisoned = false;
  const key = opts.secret;
  const offset = part.have;
  const asked = { target: c.target, name: opts.name };
  try {
    const clientNonce = randomBytes(NONCE_LENGTH);
    await writeAll(socket, Buffer.concat([encodePreamble(), encodeHello({ nonce: clientNonce, flags: 0 })]), WRITE_ENDS);
    const first = await receiver.until(() => reader.next());
    if (first.type === FrameType.RESPONSE) throwRefusal(decodeResponse(first), asked);
    const hello = decodeHello(first);
    tally.reached = true;
    const nonces: HandshakeNonces = { client: clientNonce, server: hello.nonce };
    if (!key && (hello.flags & HelloFlag.AUTH_REQUIRED) !== 0) {
      throw new NetkitError('UNAUTHORIZED', `${c.target} requires a shared secret; nothing was requested`, 'set NETKIT_TOKEN or --token-file (the same secret as the server)');
    }
    const validator = offset > 0 && part.info ? Buffer.from(part.info.validator, 'hex') : Buffer.alloc(0);
    const request = encodeRequest({ name: opts.name, offset, validator }, key ? [MAC_PLACEHOLDER] : []);
    await writeAll(socket, key ? sealFrame('client', key, nonces, request) : request, WRITE_ENDS);
    const responseFrame = await receiver.until(() => reader.next());
    // Before believing any field (a CHANGED would discard the partial file; OK would start writing).
    if (key) requireProof('server', key, nonces, responseFrame, asked);
    const response = decodeResponse(responseFrame);
    if (response.status !== Status.OK) {
      if (offset > 0 && (response.status === Status.CHANGED || response.status === Status.BAD_OFFSET)) {
        throw new ChangedError('resume', 'the file changed on the server since the partial download');
      }
      throwRefusal(response, asked);
    }
    handshake = false;
    if (response.offset !== offset) throw new NetkitError('PROTOCOL', `${c.target} answered for offset ${response.offset}, not ${offset}`);
    const size = response.size;
    await checkRoom(path.dirname(entry.finalPath), size - offset);
    if (offset === 0) {
      if (part.fd === undefined) part.fd = await entry.create();
      else await truncate(part.fd, entry.partPath);
      part.info = { netkit: 2, target: entry.target, name: opts.name, server: c.target, size, validator: response.validator.toString('hex') };
      await entry.writeInfo(part.info);
      part.hash = createHash('sha256');
    } else if (part.hash === undefined) {
      const begun = part.info && part.info.server !== c.target ? ` (begun from ${sanitize(part.info.server)})` : '';
      opts.onNotice?.(`resuming ${c.localName} at ${formatBytes(offset)} of ${formatBytes(size)}${begun}`);
      // The server hashes its copy of [0, offset) now (unless cached): hash ours at the same time, with
      // our silence timeout off (the socket pauses once 64 KiB of early body bytes are buffered)...
      socket.setTimeout(0);
      part.hash = await hashPrefix(part.fd!, entry.partPath, offset, opts.signal);
    }
    // ...then, until the first body byte, allow for a server that hashes more slowly than we did.
    if (offset > 0) socket.setTimeout(c.timeoutMs + prefixAllowanceMs(offset));
    const hash = part.hash;
    writer = new PartWriter(part.fd!, entry.partPath, offset, hash, opts.fsync !== false);
    let got = 0;
    let reported = 0;
    opts.onProgress?.(offset, size);
    guard = size > offset ? undefined : guardStall(conn, c.target, c.timeoutMs);
    await receiver.receiveBody(size - offset, writer, (n) => {
      if (got === 0) {
        socket.setTimeout(c.timeoutMs);
        guard ??= guardStall(conn, c.target, c.timeoutMs);
      }
      got += n;
      tally.received += n;
      if (got - reported >= BATCH || got === size - offset) {
        reported = got;
        opts.onProgress?.(offset + got, size);
      }
    });
    const trailerFrame = await receiver.until(() => reader.next());
    if (trailerFrame.type === FrameType.RESPONSE) {
      // In place of the TRAILER: the file changed while it was sent (or another refusal).
      if (key) requireProof('server', key, nonces, trailerFrame, asked);
      const late = decodeResponse(trailerFrame);
      if (late.status === Status.CHANGED) throw new ChangedError('stream', 'the file changed on the server while it was sent');
      throwRefusal(late, asked);
    }
    if (key) {
      try {
        requireProof('trailer', key, nonces, trailerFrame, asked);
      } catch (err) {
        poisoned = true; // bytes from a peer that could not vouch for them: not kept for a resume either
        throw err;
      }
    }
    const trailer = decodeTrailer(trailerFrame);
    socket.destroy();
    await writer.settle();
    part.have = writer.written;
    const digest = hash.digest();
    part.hash = undefined;
    if (!digest.equals(trailer.sha256)) {
      throw new NetkitError(
        'INTEGRITY',
        `${c.localName} did not verify: SHA-256 ${digest.toString('hex')} here, ${trailer.sha256.toString('hex')} on the server; the partial file was removed`,
        'run the fetch again; if it fails again, the file is changing on the server or the network corrupts data',
      );
    }
    return { size, sha256: digest.toString('hex') };
  } catch (err) {
    socket.destroy();
    guard?.stop();
    if (writer) {
      await writer.settle().catch(() => undefined);
      // What reached the disk stays for a later run (after a full disk, too); its hash is recomputed then.
      part.have = poisoned ? 0 : writer.written;
      if (writer.failed) part.hash = undefined;
    }
    // A failed write (disk full, permission) is the root cause even when it surfaced as the connection
    // closing: the failure destroys the socket, and whatever was waiting on it sees that first.
    if (writer?.failed) throw writer.failed;
    if (opts.signal?.aborted) throw interruption(opts.signal);
    if (handshake && !reachedBefore && isNetkitError(err) && (err.code === 'PEER_CLOSED' || err.code === 'PROTOCOL' || err.code === 'TOO_LARGE')) {
      // Something answers on that port, but not a netkit v1 server: say what it probably is.
      throw new NetkitError('PROTOCOL', `${c.target} does not speak netkit file protocol v1 (${err.message})`, 'is that a netkit file server? a seed (classic) server needs --classic', { cause: err });
    }
    if (handshake && isNetkitError(err) && err.code === 'TIMEOUT' && !reachedBefore) {
      throw new NetkitError('TIMEOUT', `${err.message} in answer to the handshake`, 'is that a netkit file server (and not, e.g., a TLS one: then use --tls)? or raise --timeout', { cause: err });
    }
    throw err;
  } finally {
    guard?.stop();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** "16M of 64M", or "16M" while the size is unknown. */
export function progressText(have: number, size: number | undefined): string {
  return size === undefined ? formatBytes(have) : `${formatBytes(have)} of ${formatBytes(size)}`;
}
