// The file protocol's hex examples in docs/protocol.md (a LIST exchange, a pipelined session) are exactly what netkit's encoders produce, and decode back to what the text says.
import { describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { EntryKind, LeftOutReason, ListFlag, decodeEnd, decodeEntry, decodeList, encodeEnd, encodeEntry, encodeLeftOut, encodeList } from '../../src/protocol/file-list.js';
import {
  FrameReader,
  FrameType,
  HelloFlag,
  PREAMBLE_LENGTH,
  Status,
  decodeHello,
  decodePreamble,
  decodeRequest,
  decodeResponse,
  decodeTrailer,
  encodeHello,
  encodePreamble,
  encodeRequest,
  encodeResponse,
  encodeTrailer,
  type Frame,
} from '../../src/protocol/file-v1.js';
import { docHex } from '../helpers/doc-hex.js';

const seq = (from: number, n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => from + i));
const none = Buffer.alloc(0);
const request = (name: string): Buffer => encodeRequest({ name, offset: 0, validator: none });
const refusal = (status: number, message: string): Buffer => encodeResponse({ status, size: 0, offset: 0, validator: none, message });
const entries = [
  encodeEntry({ name: 'photos/2024', kind: EntryKind.DIRECTORY, size: 0, mtimeMs: Date.parse('2024-05-01T12:00:00.000Z'), mode: 0o755 }),
  encodeEntry({ name: 'photos/2024/a.jpg', kind: EntryKind.FILE, size: 5, mtimeMs: Date.parse('2024-05-01T12:00:00.123Z'), mode: 0o644 }),
];

/** Every frame of `bytes`, with `raw` bytes taken where a body of that length follows an OK RESPONSE. */
function frames(bytes: Buffer, bodies: number[] = []): Array<Frame | Buffer> {
  const r = new FrameReader();
  r.push(bytes);
  const out: Array<Frame | Buffer> = [];
  for (let f = r.next(); f; f = r.next()) {
    out.push(f);
    if (f.type === FrameType.RESPONSE && decodeResponse(f).status === Status.OK && bodies.length > 0) out.push(r.take(bodies.shift()!)!);
  }
  expect(r.buffered).toBe(0);
  return out;
}

describe('docs/protocol.md 2.10: a LIST exchange', () => {
  test('the request', () => {
    const doc = docHex('list-request');
    expect(doc.toString('hex')).toBe(encodeList({ name: 'photos', recursive: true }).toString('hex'));
    expect(decodeList(frames(doc)[0] as Frame)).toEqual({ name: 'photos', recursive: true });
    expect(ListFlag.RECURSIVE).toBe(1);
  });

  test('the answer: RESPONSE OK, two ENTRY frames, END with the hash of both', () => {
    const doc = docHex('list-answer');
    const ours = Buffer.concat([
      encodeResponse({ status: Status.OK, size: 0, offset: 0, validator: none, message: '' }),
      ...entries,
      encodeEnd({ count: 2, skipped: 1, sha256: createHash('sha256').update(Buffer.concat(entries)).digest() }),
    ]);
    expect(doc.toString('hex')).toBe(ours.toString('hex'));
    const [ok, e1, e2, end] = frames(doc) as Frame[];
    expect(decodeResponse(ok!).status).toBe(Status.OK);
    expect([decodeEntry(e1!), decodeEntry(e2!)]).toEqual([
      { name: 'photos/2024', kind: EntryKind.DIRECTORY, size: 0, mtimeMs: 1714564800000, mode: 0o755 },
      { name: 'photos/2024/a.jpg', kind: EntryKind.FILE, size: 5, mtimeMs: 1714564800123, mode: 0o644 },
    ]);
    expect(decodeEnd(end!)).toMatchObject({ count: 2, skipped: 1 });
  });
});

describe('docs/protocol.md 2.10: an entry left out (the LEFT_OUT flag)', () => {
  test('the ENTRY of KIND 3 with its REASON', () => {
    const doc = docHex('list-left-out');
    expect(doc.toString('hex')).toBe(encodeLeftOut('pub/locked.bin', LeftOutReason.UNREADABLE_FILE).toString('hex'));
    expect(decodeEntry(frames(doc)[0] as Frame)).toEqual({ name: 'pub/locked.bin', kind: EntryKind.LEFT_OUT, size: 0, mtimeMs: 0, mode: 0, reason: 1 });
    expect(decodeList(frames(encodeList({ name: 'pub', recursive: true, leftOut: true }))[0] as Frame)).toEqual({ name: 'pub', recursive: true, leftOut: true });
  });
});

describe('docs/protocol.md 2.11: a pipelined session', () => {
  test("the client's bytes: preamble, HELLO with SESSION and an early REQUEST, then two more", () => {
    const doc = docHex('session-client');
    const ours = Buffer.concat([encodePreamble(), encodeHello({ nonce: seq(0, 32), flags: HelloFlag.SESSION }), request('hi.txt'), request('nope.txt'), request('photos')]);
    expect(doc.toString('hex')).toBe(ours.toString('hex'));
    expect(decodePreamble(doc.subarray(0, PREAMBLE_LENGTH))).toBe(1);
    const [hello, ...requests] = frames(doc.subarray(PREAMBLE_LENGTH)) as Frame[];
    expect(decodeHello(hello!).flags).toBe(HelloFlag.SESSION);
    expect(requests.map((f) => decodeRequest(f).name)).toEqual(['hi.txt', 'nope.txt', 'photos']);
  });

  test("the server's bytes: HELLO with SESSION, then the three answers in order", () => {
    const doc = docHex('session-server');
    const ours = Buffer.concat([
      encodeHello({ nonce: seq(0x20, 32), flags: HelloFlag.SESSION }),
      encodeResponse({ status: Status.OK, size: 5, offset: 0, validator: seq(0xa0, 16), message: '', mtimeMs: Date.parse('2024-05-01T12:00:00Z'), mode: 0o644 }),
      Buffer.from('hello'),
      encodeTrailer({ sha256: createHash('sha256').update('hello').digest() }),
      refusal(Status.NOT_FOUND, 'no such file'),
      refusal(Status.IS_DIRECTORY, 'is a directory'),
    ]);
    expect(doc.toString('hex')).toBe(ours.toString('hex'));
    const [hello, ok, body, trailer, missing, dir] = frames(doc, [5]);
    expect(decodeHello(hello as Frame).flags).toBe(HelloFlag.SESSION);
    expect(decodeResponse(ok as Frame)).toMatchObject({ status: Status.OK, size: 5, mode: 0o644, mtimeMs: 1714564800000 });
    expect((body as Buffer).toString()).toBe('hello');
    expect(decodeTrailer(trailer as Frame).sha256).toEqual(createHash('sha256').update('hello').digest());
    expect([decodeResponse(missing as Frame).status, decodeResponse(dir as Frame).status]).toEqual([Status.NOT_FOUND, Status.IS_DIRECTORY]);
  });
});
