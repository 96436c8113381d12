// A classic (seed protocol) fetch: the size head, exactly that many bytes, and nothing to verify or resume.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { NetkitError, isNetkitError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import { explainShortClassic, parseClassicHead } from '../../../protocol/file-classic.js';
import { writeAll } from '../../file-stream.js';
import type { Ctx, PartState, Tally } from './context.js';
import { connect, guardStall, interruption, WRITE_ENDS } from './receiver.js';
import { BATCH, PartWriter, checkRoom } from './writer.js';

/** How long a classic stream must stay silent after its announced size before the transfer counts as complete. */
const CLASSIC_SETTLE_MS = 500;

/**
 * Fetch the whole file once into a new partial file (`part.fd`); the caller publishes it on success and
 * discards it on failure (a classic partial file can be neither verified nor resumed).
 */
export async function attemptClassic(c: Ctx, part: PartState, tally: Tally): Promise<{ size: number; sha256: string }> {
  const { opts, entry } = c;
  const nameBytes = Buffer.from(opts.name, 'utf8');
  if (nameBytes.length > 1024) throw new NetkitError('USAGE', 'a classic name must be at most 1024 bytes');
  const conn = await connect({ transport: opts.transport, host: c.host, port: c.port, target: c.target, timeoutMs: c.timeoutMs, signal: opts.signal });
  const { socket, receiver } = conn;
  const { reader } = receiver;
  const onAbort = (): void => void socket.destroy(interruption(opts.signal));
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) onAbort();
  let writer: PartWriter | undefined;
  let guard: { stop(): void } | undefined;
  const hash = createHash('sha256');
  try {
    // The seed server reads the name with a single recv(1024): send it in one write, nothing else.
    await writeAll(socket, nameBytes, WRITE_ENDS);
    const head = await receiver.until(
      () => parseClassicHead(reader.peekAll(), false),
      () => parseClassicHead(reader.peekAll(), true),
    );
    receiver.answered();
    if (head.kind === 'missing') {
      throw new NetkitError('NOT_FOUND', `${c.target} (classic) has no file '${sanitize(opts.name, 200)}'`, 'a classic server answers -1 for every refusal: missing, forbidden, busy or too large');
    }
    const size = head.size;
    const digits = /^\d*/.exec(reader.peekAll().subarray(0, 20).toString('latin1'))![0];
    reader.take(head.headerLength);
    try {
      await checkRoom(path.dirname(entry.finalPath), size);
    } catch (err) {
      if (!isNetkitError(err)) throw err;
      throw new NetkitError(err.code, `${err.message} (the classic server announced ${size} bytes; if the file starts with digits that size is misread: the classic protocol cannot tell)`, err.hint);
    }
    part.fd ??= await entry.create();
    writer = new PartWriter(part.fd, entry.partPath, 0, hash, opts.fsync !== false);
    let got = 0;
    let reported = 0;
    opts.onProgress?.(0, size);
    guard = guardStall(conn, c.target, c.timeoutMs);
    try {
      await receiver.receiveBody(size, writer, (n) => {
        got += n;
        tally.received += n;
        if (got - reported >= BATCH || got === size) {
          reported = got;
          opts.onProgress?.(got, size);
        }
      });
    } catch (err) {
      if (!receiver.ended) throw err;
      throw new NetkitError(
        'PEER_CLOSED',
        `${explainShortClassic(digits, got, size, head.headerLength + got)}; nothing was kept`,
        'the classic protocol can neither verify nor resume; fetch from a netkit server without --classic',
      );
    }
    // No trailer in classic: bytes beyond the announced size mean the size was misread. The seed
    // server sends everything at once and then closes, but a seed server that keeps serving holds the
    // connection open (the seed client stops at the size and never waits for the end), so a short
    // silence counts as the end too.
    const endSeen = receiver.until(
      () => {
        if (reader.buffered > 0) {
          throw new NetkitError('PROTOCOL', `the classic server sent more than the ${size} bytes it announced; nothing was saved as final`, 'the classic protocol cannot verify; fetch from a netkit server without --classic');
        }
        return receiver.ended ? true : undefined;
      },
      () => true,
    );
    endSeen.catch(() => undefined); // settled below, or moot once the silence has won
    let settle: NodeJS.Timeout | undefined;
    await Promise.race([endSeen, new Promise((resolve) => (settle = setTimeout(resolve, Math.min(CLASSIC_SETTLE_MS, c.timeoutMs))))]);
    clearTimeout(settle);
    socket.destroy();
    await writer.settle();
    part.have = writer.written;
    return { size, sha256: hash.digest('hex') };
  } catch (err) {
    socket.destroy();
    if (writer) await writer.settle().catch(() => undefined);
    if (writer?.failed) throw writer.failed;
    if (opts.signal?.aborted) throw interruption(opts.signal);
    throw err;
  } finally {
    guard?.stop();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
