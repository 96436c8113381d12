// The protocol extension for sessions and listings: LIST, ENTRY and END, MTIME and MODE in RESPONSE, the new flags and statuses, and sequence-numbered MACs: round trips, every split point, garbage.
import { describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../../src/protocol/auth-frames.js';
import { deriveKey } from '../../src/protocol/auth.js';
import { EntryKind, LeftOutReason, ListFlag, decodeEnd, decodeEntry, decodeList, encodeEnd, encodeEntry, encodeLeftOut, encodeList, leftOutText } from '../../src/protocol/file-list.js';
import {
  FrameReader,
  FrameType,
  HelloFlag,
  Status,
  Tag,
  decodeHello,
  decodeRequest,
  decodeResponse,
  encodeFrame,
  encodeHello,
  encodeRequest,
  encodeResponse,
  encodeTrailer,
  statusErrorCode,
  statusName,
  type Frame,
} from '../../src/protocol/file-v1.js';
import { codeOf } from '../helpers/errors.js';

function frame(bytes: Buffer): Frame {
  const reader = new FrameReader();
  reader.push(bytes);
  const f = reader.next();
  if (!f) throw new Error('incomplete frame');
  expect(reader.buffered).toBe(0);
  return f;
}

const entries = [
  { name: 'a dir', kind: EntryKind.DIRECTORY, size: 0, mtimeMs: 1_700_000_000_123, mode: 0o755 },
  { name: 'a dir/ficheiro é.bin', kind: EntryKind.FILE, size: 2 ** 40, mtimeMs: 0, mode: 0o4755 },
  { name: 'z', kind: EntryKind.FILE, size: 0, mtimeMs: Number.MAX_SAFE_INTEGER, mode: 0 },
];

describe('LIST, ENTRY, END', () => {
  test('round trips; an absent or empty NAME is the root; unknown FLAGS bits are ignored', () => {
    expect(decodeList(frame(encodeList({ name: 'photos/2024', recursive: true })))).toEqual({ name: 'photos/2024', recursive: true });
    expect(decodeList(frame(encodeList({ name: '', recursive: false, leftOut: true })))).toEqual({ name: '', recursive: false, leftOut: true });
    expect(decodeList(frame(encodeFrame(FrameType.LIST, [])))).toEqual({ name: '', recursive: false });
    expect(decodeList(frame(encodeFrame(FrameType.LIST, [[Tag.FLAGS, Buffer.from([0xff, 0, 0, 0x04])]])))).toEqual({ name: '', recursive: false });
    expect(decodeList(frame(encodeFrame(FrameType.LIST, [[Tag.FLAGS, Buffer.from([0, 0, 0, ListFlag.RECURSIVE | 0x80])]]))).recursive).toBe(true);
    for (const e of entries) expect(decodeEntry(frame(encodeEntry(e)))).toEqual(e);
    const end = { count: 3, skipped: 2, sha256: randomBytes(32) };
    expect(decodeEnd(frame(encodeEnd(end)))).toEqual(end);
  });

  test('a listing fed in every split, then 1-byte chunks, yields the same frames', () => {
    const stream = Buffer.concat([
      encodeResponse({ status: Status.OK, size: 0, offset: 0, validator: Buffer.alloc(0), message: '' }),
      ...entries.map(encodeEntry),
      encodeEnd({ count: 3, skipped: 0, sha256: Buffer.alloc(32, 1) }),
    ]);
    const whole = framesOf(stream, () => stream.length);
    expect(whole.map((f) => f.type)).toEqual([FrameType.RESPONSE, FrameType.ENTRY, FrameType.ENTRY, FrameType.ENTRY, FrameType.END]);
    for (let cut = 1; cut < stream.length; cut++) expect(framesOf(stream, (i) => (i === 0 ? cut : stream.length))).toEqual(whole);
    expect(framesOf(stream, () => 1)).toEqual(whole);
    expect(whole.slice(1, 4).map(decodeEntry)).toEqual(entries);
  });

  test.each<[string, () => unknown]>([
    ['LIST name too long', () => decodeList(frame(encodeFrame(FrameType.LIST, [[Tag.NAME, Buffer.alloc(1025, 0x61)]])))],
    ['LIST name not UTF-8', () => decodeList(frame(encodeFrame(FrameType.LIST, [[Tag.NAME, Buffer.from([0xff])]])))],
    ['LIST flags of 2 bytes', () => decodeList(frame(encodeFrame(FrameType.LIST, [[Tag.FLAGS, Buffer.alloc(2)]])))],
    ['LIST decoded from a REQUEST', () => decodeList(frame(encodeRequest({ name: 'x', offset: 0, validator: Buffer.alloc(0) })))],
    ['ENTRY without a name', () => decodeEntry(frame(encodeFrame(FrameType.ENTRY, [[Tag.KIND, Buffer.from([1])]])))],
    ['ENTRY with an empty name', () => decodeEntry(frame(encodeFrame(FrameType.ENTRY, [[Tag.NAME, Buffer.alloc(0)], [Tag.KIND, Buffer.from([1])], [Tag.SIZE, Buffer.alloc(8)], [Tag.MTIME, Buffer.alloc(8)], [Tag.MODE, Buffer.alloc(4)]])))],
    ['ENTRY without a kind', () => decodeEntry(frame(encodeFrame(FrameType.ENTRY, [[Tag.NAME, Buffer.from('x')], [Tag.SIZE, Buffer.alloc(8)], [Tag.MTIME, Buffer.alloc(8)], [Tag.MODE, Buffer.alloc(4)]])))],
    ['ENTRY without a size', () => decodeEntry(frame(encodeFrame(FrameType.ENTRY, [[Tag.NAME, Buffer.from('x')], [Tag.KIND, Buffer.from([1])], [Tag.MTIME, Buffer.alloc(8)], [Tag.MODE, Buffer.alloc(4)]])))],
    ['ENTRY kind of 2 bytes', () => decodeEntry(frame(encodeFrame(FrameType.ENTRY, [[Tag.NAME, Buffer.from('x')], [Tag.KIND, Buffer.alloc(2)], [Tag.SIZE, Buffer.alloc(8)], [Tag.MTIME, Buffer.alloc(8)], [Tag.MODE, Buffer.alloc(4)]])))],
    ['ENTRY mode with file-type bits', () => decodeEntry(frame(encodeFrame(FrameType.ENTRY, [[Tag.NAME, Buffer.from('x')], [Tag.KIND, Buffer.from([1])], [Tag.SIZE, Buffer.alloc(8)], [Tag.MTIME, Buffer.alloc(8)], [Tag.MODE, Buffer.from([0, 0, 0x81, 0xa4])]])))],
    ['ENTRY size beyond 2^53', () => decodeEntry(frame(encodeFrame(FrameType.ENTRY, [[Tag.NAME, Buffer.from('x')], [Tag.KIND, Buffer.from([1])], [Tag.SIZE, Buffer.alloc(8, 0xff)], [Tag.MTIME, Buffer.alloc(8)], [Tag.MODE, Buffer.alloc(4)]])))],
    ['END without a hash', () => decodeEnd(frame(encodeFrame(FrameType.END, [[Tag.COUNT, Buffer.alloc(8)], [Tag.SKIPPED, Buffer.alloc(8)]])))],
    ['END hash of 31 bytes', () => decodeEnd(frame(encodeFrame(FrameType.END, [[Tag.COUNT, Buffer.alloc(8)], [Tag.SKIPPED, Buffer.alloc(8)], [Tag.SHA256, Buffer.alloc(31)]])))],
    ['END without a count', () => decodeEnd(frame(encodeFrame(FrameType.END, [[Tag.SKIPPED, Buffer.alloc(8)], [Tag.SHA256, Buffer.alloc(32)]])))],
    ['RESPONSE with a 2-byte MODE', () => decodeResponse(frame(encodeFrame(FrameType.RESPONSE, [[Tag.STATUS, Buffer.from([1])], [Tag.MODE, Buffer.alloc(2)]])))],
    ['RESPONSE with a 4-byte MTIME', () => decodeResponse(frame(encodeFrame(FrameType.RESPONSE, [[Tag.STATUS, Buffer.from([1])], [Tag.MTIME, Buffer.alloc(4)]])))],
  ])('malformed: %s -> PROTOCOL', (_what, fn) => {
    expect(codeOf(fn)).toBe('PROTOCOL');
  });

  test('encoders refuse what a reader would refuse', () => {
    expect(codeOf(() => encodeList({ name: 'x'.repeat(1025), recursive: false }))).toBe('USAGE');
    expect(codeOf(() => encodeEntry({ ...entries[0]!, name: '' }))).toBe('INTERNAL');
    expect(codeOf(() => encodeEntry({ ...entries[0]!, mode: 0o100644 }))).toBe('INTERNAL');
    expect(codeOf(() => encodeEnd({ count: 0, skipped: 0, sha256: Buffer.alloc(31) }))).toBe('INTERNAL');
  });

  test('other frames skip the new tags (an old reader of RESPONSE, a REQUEST carrying KIND)', () => {
    const r = encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.from('x')], [Tag.KIND, Buffer.alloc(3)], [Tag.COUNT, Buffer.alloc(1)]]);
    expect(decodeRequest(frame(r)).name).toBe('x');
    expect(decodeHello(frame(encodeFrame(FrameType.HELLO, [[Tag.NONCE, Buffer.alloc(32)], [Tag.MODE, Buffer.alloc(1)]]))).flags).toBe(0);
  });
});

describe('LEFT_OUT entries (the LIST flag LEFT_OUT)', () => {
  test('the flag is LIST bit 1; KIND 3 with a REASON round-trips; the documented bytes', () => {
    expect([ListFlag.LEFT_OUT, EntryKind.LEFT_OUT, Tag.REASON]).toEqual([2, 3, 0x20]);
    expect(encodeList({ name: 'pub', recursive: true, leftOut: true }).toString('hex')).toBe('05000d' + '030003707562' + '02000400000003');
    const bytes = encodeLeftOut('pub/locked.bin', LeftOutReason.UNREADABLE_FILE);
    expect(bytes.toString('hex')).toBe(
      '060036' + '03000e' + Buffer.from('pub/locked.bin').toString('hex') + '0b000103' + '0700080000000000000000' + '0c00080000000000000000' + '0d000400000000' + '20000101',
    );
    expect(decodeEntry(frame(bytes))).toEqual({ name: 'pub/locked.bin', kind: 3, size: 0, mtimeMs: 0, mode: 0, reason: 1 });
    expect(Object.values(LeftOutReason)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(leftOutText(LeftOutReason.SPECIAL)).toBe('not a regular file or a directory');
    expect(leftOutText(200)).toBe('left out (reason 200)');
  });

  test('an entry without REASON has none; a REASON of 2 bytes is malformed; other frames skip the tag', () => {
    expect('reason' in decodeEntry(frame(encodeEntry(entries[0]!)))).toBe(false);
    const bad = encodeFrame(FrameType.ENTRY, [[Tag.NAME, Buffer.from('x')], [Tag.KIND, Buffer.from([3])], [Tag.SIZE, Buffer.alloc(8)], [Tag.MTIME, Buffer.alloc(8)], [Tag.MODE, Buffer.alloc(4)], [Tag.REASON, Buffer.alloc(2)]]);
    expect(codeOf(() => decodeEntry(frame(bad)))).toBe('PROTOCOL');
    expect(decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.from('x')], [Tag.REASON, Buffer.alloc(5)]]))).name).toBe('x');
  });
});

describe('RESPONSE with MTIME and MODE, flags and statuses', () => {
  test('MTIME and MODE round-trip and are absent unless sent', () => {
    const ok = { status: Status.OK, size: 9, offset: 0, validator: Buffer.from('v'), message: '', mtimeMs: 1_700_000_000_999, mode: 0o755 };
    expect(decodeResponse(frame(encodeResponse(ok)))).toEqual(ok);
    const plain = decodeResponse(frame(encodeResponse({ status: Status.OK, size: 9, offset: 0, validator: Buffer.alloc(0), message: '' })));
    expect('mtimeMs' in plain || 'mode' in plain).toBe(false);
  });

  test('SESSION is HELLO bit 1, beside AUTH_REQUIRED', () => {
    expect(HelloFlag.SESSION).toBe(2);
    expect(decodeHello(frame(encodeHello({ nonce: Buffer.alloc(32), flags: HelloFlag.SESSION | HelloFlag.AUTH_REQUIRED }))).flags).toBe(3);
  });

  test('IS_DIRECTORY and NOT_DIRECTORY are 10 and 11, named, and fail like FORBIDDEN', () => {
    expect([Status.IS_DIRECTORY, Status.NOT_DIRECTORY]).toEqual([10, 11]);
    expect([statusName(10), statusName(11), statusName(12)]).toEqual(['IS_DIRECTORY', 'NOT_DIRECTORY', 'status 12']);
    expect([statusErrorCode(10), statusErrorCode(11)]).toEqual(['FORBIDDEN', 'FORBIDDEN']);
  });
});

describe('sequence numbers in session MACs', () => {
  const key = deriveKey('session-seq-secret-0123456789', 'file');
  const nonces = { client: randomBytes(32), server: randomBytes(32) };
  const kinds = [
    ['client', () => encodeRequest({ name: 'a', offset: 0, validator: Buffer.alloc(0) }, [MAC_PLACEHOLDER])],
    ['client', () => encodeList({ name: 'd', recursive: true }, [MAC_PLACEHOLDER])],
    ['server', () => encodeResponse({ status: Status.OK, size: 1, offset: 0, validator: Buffer.alloc(0), message: '' }, [MAC_PLACEHOLDER])],
    ['trailer', () => encodeTrailer({ sha256: Buffer.alloc(32) }, [MAC_PLACEHOLDER])],
    ['trailer', () => encodeEnd({ count: 0, skipped: 0, sha256: Buffer.alloc(32) }, [MAC_PLACEHOLDER])],
  ] as const;

  test('a frame sealed for request i verifies only as request i, and never outside a session', () => {
    for (const [kind, build] of kinds) {
      for (const seq of [0, 1, 7, 0xffffffff]) {
        const payload = sealFrame(kind, key, nonces, build(), seq).subarray(3);
        expect(checkFrame(kind, key, nonces, payload, seq)).toBe('ok');
        expect(checkFrame(kind, key, nonces, payload)).toBe('bad-mac');
        expect(checkFrame(kind, key, nonces, payload, seq === 0 ? 1 : seq - 1)).toBe('bad-mac');
      }
      // Without a session the MAC is that of a single exchange (unchanged since before sessions existed).
      const single = sealFrame(kind, key, nonces, build()).subarray(3);
      expect(checkFrame(kind, key, nonces, single)).toBe('ok');
      expect(checkFrame(kind, key, nonces, single, 0)).toBe('bad-mac');
    }
  });

  test('a sequence number that is not a u32 is malformed to check and a bug to seal', () => {
    const payload = sealFrame('client', key, nonces, kinds[0][1](), 3).subarray(3);
    expect(checkFrame('client', key, nonces, payload, -1)).toBe('malformed');
    expect(checkFrame('client', key, nonces, payload, 2 ** 32)).toBe('malformed');
    expect(codeOf(() => sealFrame('client', key, nonces, kinds[0][1](), 2 ** 32))).toBe('INTERNAL');
  });
});

function framesOf(bytes: Buffer, chunkSizes: (i: number) => number): Frame[] {
  const reader = new FrameReader();
  const frames: Frame[] = [];
  for (let at = 0, i = 0; at < bytes.length; ) {
    const n = Math.max(1, chunkSizes(i++));
    reader.push(bytes.subarray(at, at + n));
    at += n;
    for (let f = reader.next(); f; f = reader.next()) frames.push(f);
  }
  expect(reader.buffered).toBe(0);
  return frames;
}
