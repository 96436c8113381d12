// Reading the answer to a LIST: the RESPONSE, the ENTRY frames, and the END whose count, hash and proof must all agree before any entry is believed.
import { createHash } from 'node:crypto';
import { NetkitError } from '../../../errors.js';
import { FrameType, Status, decodeResponse, type Frame } from '../../../protocol/file-v1.js';
import { decodeEnd, decodeEntry, encodeList, type Entry } from '../../../protocol/file-list.js';
import { throwRefusal, type Asked } from './answers.js';
import type { FrameBuilder, SessionConn } from './session-conn.js';

/** The most entries one listing may bring (the server's own cap). */
export const MAX_LIST_ENTRIES = 1_000_000;

export interface ListAnswer {
  entries: Entry[];
  /** Entries the server left out (links leaving the served directory, FIFOs, devices, unreadable...). */
  skipped: number;
  /** The listed directory's own time and permission bits, from the RESPONSE (a server may not send them). */
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
 * only once END's count and SHA-256 match what arrived and, with a secret, END's proof verifies.
 */
export async function readListing(sc: SessionConn, seq: number, asked: Asked, first?: Frame): Promise<ListAnswer> {
  const head = first ?? sc.ready() ?? (await sc.next());
  sc.prove('server', head, seq, asked);
  const r = decodeResponse(head);
  if (r.status !== Status.OK) throwRefusal(r, asked);
  const hash = createHash('sha256');
  const entries: Entry[] = [];
  for (;;) {
    const f = sc.ready() ?? (await sc.next());
    if (f.type === FrameType.ENTRY) {
      if (entries.length >= MAX_LIST_ENTRIES) throw new NetkitError('TOO_LARGE', `the listing of '${asked.name}' has more than ${MAX_LIST_ENTRIES} entries`);
      hash.update(frameHead(f));
      hash.update(f.payload);
      entries.push(decodeEntry(f));
      continue;
    }
    if (f.type === FrameType.RESPONSE) {
      // The server gave up part-way (a listing too large, an error reading a directory).
      sc.prove('server', f, seq, asked);
      throwRefusal(decodeResponse(f), asked);
    }
    sc.prove('trailer', f, seq, asked);
    const end = decodeEnd(f);
    if (end.count !== entries.length) {
      // END was read: the connection is still in step, only this listing is refused.
      throw new NetkitError('INTEGRITY', `the listing of '${asked.name}' did not verify: ${sc.target} said it held ${end.count} entries, but sent ${entries.length}`, 'run the command again; if it fails again, the server or the network is broken');
    }
    if (!hash.digest().equals(end.sha256)) {
      throw new NetkitError('INTEGRITY', `the listing of '${asked.name}' did not verify: its SHA-256 does not match the server's`, 'run the command again; if it fails again, the network corrupts data');
    }
    return { entries, skipped: end.skipped, ...(r.mtimeMs !== undefined && r.mode !== undefined ? { dir: { mtimeMs: r.mtimeMs, mode: r.mode } } : {}) };
  }
}
