// Reading the answer to a LIST: the RESPONSE, the ENTRY frames, and the END whose count, hash and proof must all agree before any entry is believed.
import { createHash } from 'node:crypto';
import { NetkitError } from '../../../errors.js';
import { FrameType, Status, decodeResponse, type Frame } from '../../../protocol/file-v1.js';
import { EntryKind, decodeEnd, decodeEntry, encodeList, type Entry } from '../../../protocol/file-list.js';
import { throwRefusal, type Asked } from './answers.js';
import type { FrameBuilder, SessionConn } from './session-conn.js';

/** The most entries one listing may bring (the server's own cap). */
export const MAX_LIST_ENTRIES = 1_000_000;

/**
 * The most bytes of ENTRY frames (headers included, as sent) one listing may bring. A listing is held
 * until its END verifies it, so this bounds what a listing costs the client: about 1,000,000 entries
 * whose paths average 90 bytes; a server that goes on and on is refused once it has sent this much.
 */
export const MAX_LIST_BYTES = 128 * 1024 * 1024;

/** Listing bytes are kept in blocks of this size. */
const BLOCK = 1024 * 1024;

/**
 * The entries of a listing, kept as their ENTRY payloads (each after a 2-byte length) in blocks of
 * 1 MiB: about the bytes that were sent, not one object per entry. Iterating decodes them one at a time
 * (and may be done again).
 */
export class ListedEntries implements Iterable<Entry> {
  private readonly blocks: Buffer[] = [];
  private block: Buffer | undefined;
  private used = 0;
  count = 0;
  /** Bytes held. */
  bytes = 0;

  add(payload: Buffer): void {
    const need = 2 + payload.length;
    if (!this.block || this.used + need > this.block.length) {
      if (this.block) this.blocks.push(this.block.subarray(0, this.used));
      this.block = Buffer.allocUnsafeSlow(Math.max(BLOCK, need));
      this.used = 0;
    }
    this.block.writeUInt16BE(payload.length, this.used);
    payload.copy(this.block, this.used + 2);
    this.used += need;
    this.bytes += need;
    this.count++;
  }

  *[Symbol.iterator](): Iterator<Entry> {
    const blocks = this.block ? [...this.blocks, this.block.subarray(0, this.used)] : this.blocks;
    for (const b of blocks) {
      for (let at = 0; at < b.length; ) {
        const length = b.readUInt16BE(at);
        yield decodeEntry({ type: FrameType.ENTRY, payload: b.subarray(at + 2, at + 2 + length) });
        at += 2 + length;
      }
    }
  }
}

export interface ListFramesAnswer {
  entries: ListedEntries;
  skipped: number;
  dir?: { mtimeMs: number; mode: number };
}

/** A LIST request for `dir` ('' is the served directory); `leftOut`: ask the server to name what it leaves out. */
export function listFrame(dir: string, recursive: boolean, leftOut = false): FrameBuilder {
  return (extra) => encodeList({ name: dir, recursive, leftOut }, extra);
}

/** A frame's 3-byte header, as it was on the wire (END's hash covers headers and payloads). */
function frameHead(f: Frame): Buffer {
  return Buffer.from([f.type, f.payload.length >> 8, f.payload.length & 0xff]);
}

/**
 * Read the answer to LIST number `seq` (its RESPONSE may already have been read: pass it as `first`).
 * A refusal throws as for a file (NOT_FOUND, FORBIDDEN, NOT_DIRECTORY...). The entries are returned
 * only once END's count and SHA-256 match what arrived and, with a secret, END's proof verifies; they
 * are kept compactly (ListedEntries), not as one object per entry. Each ENTRY is decoded as it arrives
 * (a malformed one fails at once), and the listing is refused with TOO_LARGE past MAX_LIST_ENTRIES
 * entries or MAX_LIST_BYTES bytes.
 */
export async function readListingFrames(sc: SessionConn, seq: number, asked: Asked, first?: Frame): Promise<ListFramesAnswer> {
  const head = first ?? sc.ready() ?? (await sc.next());
  sc.prove('server', head, seq, asked);
  const r = decodeResponse(head);
  if (r.status !== Status.OK) throwRefusal(r, asked);
  const hash = createHash('sha256');
  const entries = new ListedEntries();
  let sent = 0;
  let named = 0;
  for (;;) {
    const f = sc.ready() ?? (await sc.next());
    if (f.type === FrameType.ENTRY) {
      if (entries.count >= MAX_LIST_ENTRIES) throw new NetkitError('TOO_LARGE', `the listing of '${asked.name}' has more than ${MAX_LIST_ENTRIES} entries`, 'list or fetch a directory below it');
      sent += 3 + f.payload.length;
      if (sent > MAX_LIST_BYTES) {
        throw new NetkitError('TOO_LARGE', `the listing of '${asked.name}' is larger than ${MAX_LIST_BYTES / (1024 * 1024)} MiB (${entries.count} entries so far): netkit refuses a listing that large`, 'list or fetch a directory below it');
      }
      hash.update(frameHead(f));
      hash.update(f.payload);
      if (decodeEntry(f).kind === EntryKind.LEFT_OUT) named += 1;
      entries.add(f.payload);
      continue;
    }
    if (f.type === FrameType.RESPONSE) {
      // The server gave up part-way (a listing too large, an error reading a directory).
      sc.prove('server', f, seq, asked);
      throwRefusal(decodeResponse(f), asked);
    }
    sc.prove('trailer', f, seq, asked);
    const end = decodeEnd(f);
    if (end.count !== entries.count) {
      // END was read: the connection is still in step, only this listing is refused.
      throw new NetkitError('INTEGRITY', `the listing of '${asked.name}' did not verify: ${sc.target} said it held ${end.count} entries, but sent ${entries.count}`, 'run the command again; if it fails again, the server or the network is broken');
    }
    if (!hash.digest().equals(end.sha256)) {
      throw new NetkitError('INTEGRITY', `the listing of '${asked.name}' did not verify: its SHA-256 does not match the server's`, 'run the command again; if it fails again, the network corrupts data');
    }
    if (named > end.skipped) {
      // SKIPPED counts every entry left out, named or not.
      throw new NetkitError('INTEGRITY', `the listing of '${asked.name}' did not verify: ${sc.target} named ${named} entries it left out, but counted ${end.skipped}`, 'run the command again; if it fails again, the server is broken');
    }
    return { entries, skipped: end.skipped, ...(r.mtimeMs !== undefined && r.mode !== undefined ? { dir: { mtimeMs: r.mtimeMs, mode: r.mode } } : {}) };
  }
}
