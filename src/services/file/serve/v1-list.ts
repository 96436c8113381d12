// Answering a LIST (docs/protocol.md 2.10): the RESPONSE, then ENTRY frames as the listing walks the tree, then END with the count, the skipped count and the hash of every ENTRY.
import { createHash } from 'node:crypto';
import { isNetkitError } from '../../../errors.js';
import { EntryKind, encodeEnd, encodeEntry, encodeLeftOut, type ListRequest } from '../../../protocol/file-list.js';
import { Status, encodeResponse } from '../../../protocol/file-v1.js';
import { drain } from '../../file-stream.js';
import type { Answered } from './answer.js';
import { NOT_A_DIRECTORY, listDirectory, type Listing } from './listing.js';
import { REFUSAL_STATUS, type Prepared } from './prepare.js';
import { ENDS, refusalOutcome, type ServeContext } from './session.js';
import { ConnectionEnd } from './types.js';
import type { V1 } from './v1.js';

/** ENTRY frames are written in batches of about this many bytes. */
const LIST_BATCH = 64 * 1024;

export type PreparedList = Extract<Prepared, { kind: 'refused' }> | { kind: 'listing'; listing: Listing };

/** Where a listing asked with the LEFT_OUT flag sends the entries it leaves out (set when it is streamed). */
interface LeftOutSink {
  to?: (path: string, reason: number) => void;
}
const leftOutSinks = new WeakMap<Listing, LeftOutSink>();

/** Check the directory before its turn (the walk itself happens at its turn). Never throws. */
export async function prepareList(ctx: ServeContext, req: ListRequest): Promise<PreparedList> {
  try {
    const sink: LeftOutSink = {};
    const onLeftOut = req.leftOut ? (path: string, reason: number): void => sink.to?.(path, reason) : undefined;
    const listing = await listDirectory(ctx.root, req.name, { recursive: req.recursive, refuseHardLinks: ctx.refuseHardLinks, readers: ctx.readers, ...(onLeftOut ? { onLeftOut } : {}) });
    if (onLeftOut) leftOutSinks.set(listing, sink);
    return { kind: 'listing', listing };
  } catch (err) {
    if (!isNetkitError(err)) return { kind: 'refused', status: Status.INTERNAL, outcome: 'error', detail: `cannot list: ${(err as { code?: string }).code ?? String(err)}` };
    if (err.code === 'FORBIDDEN' && err.message === NOT_A_DIRECTORY) return { kind: 'refused', status: Status.NOT_DIRECTORY, outcome: 'forbidden', detail: err.message };
    const outcome = refusalOutcome(err);
    return { kind: 'refused', status: REFUSAL_STATUS[outcome], outcome, detail: err.message };
  }
}

/**
 * Send the listing: RESPONSE OK, every ENTRY (written in batches, waiting for the client to drain when
 * it must; with the LEFT_OUT flag, an ENTRY of KIND LEFT_OUT where the walk leaves one out), END sealed
 * for request `seq`. If the walk fails midway (more entries than the cap, an
 * I/O error), a RESPONSE INTERNAL takes END's place and the client keeps none of the listing.
 */
export async function streamListing(v1: V1, listing: Listing, seq: number | undefined): Promise<Answered> {
  const { socket } = v1.s;
  socket.write(v1.seal('server', encodeResponse({ status: Status.OK, size: 0, offset: 0, validator: Buffer.alloc(0), message: '', mtimeMs: listing.dir.mtimeMs, mode: listing.dir.mode }, v1.proof), seq));
  const hash = createHash('sha256');
  let count = 0;
  let batch: Buffer[] = [];
  let batched = 0;
  const add = (frame: Buffer): void => {
    batch.push(frame);
    batched += frame.length;
    count += 1;
  };
  const sink = leftOutSinks.get(listing);
  let named = 0;
  if (sink) {
    sink.to = (path, reason) => {
      add(encodeLeftOut(path, reason));
      named += 1;
    };
  }
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const bytes = Buffer.concat(batch, batched);
    hash.update(bytes);
    batch = [];
    batched = 0;
    if (!socket.write(bytes)) await drain(socket, ENDS);
  };
  try {
    for await (const e of listing.entries) {
      add(encodeEntry({ name: e.path, kind: e.type === 'dir' ? EntryKind.DIRECTORY : EntryKind.FILE, size: e.size, mtimeMs: e.mtimeMs, mode: e.mode }));
      if (batched >= LIST_BATCH) await flush();
    }
  } catch (err) {
    if (err instanceof ConnectionEnd || socket.destroyed) throw err;
    await flush();
    const detail = isNetkitError(err) ? err.message : `the listing failed: ${(err as { code?: string }).code ?? String(err)}`;
    socket.write(v1.seal('server', encodeResponse({ status: Status.INTERNAL, size: 0, offset: 0, validator: Buffer.alloc(0), message: detail }, v1.proof), seq));
    return { outcome: 'error', detail, bytes: 0 };
  }
  await flush();
  socket.write(v1.seal('trailer', encodeEnd({ count, skipped: listing.skipped(), sha256: hash.digest() }, v1.proof), seq));
  return { outcome: 'ok', bytes: 0, detail: `${count - named} entries, ${listing.skipped()} skipped${named > 0 ? ` (${named} named)` : ''}` };
}
