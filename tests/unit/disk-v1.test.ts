// Disk protocol v1 codec: round-trips, exact layout, and every kind of malformed input.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { NetkitError } from '../../src/errors.js';
import {
  Classify,
  DEFAULT_REQUEST_SIZE,
  HEADER_SIZE,
  MAX_DATAGRAM,
  MsgType,
  Scope,
  Tag,
  WireError,
  classify,
  decodeQueryScope,
  decodeReply,
  encodeAnswer,
  encodeAnswerBody,
  encodeError,
  encodeQuery,
  minimalErrorSize,
  readId,
  utf8Capped,
  writeReplyHeader,
  type FsFigures,
} from '../../src/protocol/disk-v1.js';

const big: FsFigures = {
  mount: '/srv/données',
  fstype: 'ext4',
  device: '/dev/nvme0n1p2',
  total: 0xffff_ffff_ffff_fff0n, // > 2^53: must survive exactly
  used: 2n ** 60n + 7n,
  available: 9_007_199_254_740_993n,
  free: 1n,
  served: true,
};

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof NetkitError) return err.code;
    throw err;
  }
  return undefined;
}

/** A query with hand-written fields after the header (and no padding unless given). */
function rawQuery(fields: number[], id = 7): Buffer {
  const b = Buffer.alloc(HEADER_SIZE + fields.length);
  b.write('NK', 0, 'latin1');
  b[2] = 1;
  b[3] = MsgType.QUERY;
  b.writeUInt32BE(id, 4);
  Buffer.from(fields).copy(b, HEADER_SIZE);
  return b;
}

describe('QUERY', () => {
  test('layout: magic, version, type, id, SCOPE, zero padding to 1200 bytes', () => {
    const q = encodeQuery(0x01020304, Scope.ALL);
    expect(q.length).toBe(DEFAULT_REQUEST_SIZE);
    expect([...q.subarray(0, 12)]).toEqual([0x4e, 0x4b, 1, 1, 1, 2, 3, 4, Tag.SCOPE, 0, 1, 1]);
    expect(q.subarray(12).every((b) => b === 0)).toBe(true);
  });

  test.each([0, 1, 0x7fffffff, 0xffffffff])('round-trips id %p (absurd ids included)', (id) => {
    const q = encodeQuery(id, Scope.PATH, 12);
    expect(classify(q)).toBe(Classify.QUERY);
    expect(readId(q)).toBe(id);
    expect(decodeQueryScope(q)).toBe(Scope.PATH);
  });

  test('both scopes round-trip at every padded size up to the maximum', () => {
    for (const size of [12, 13, 100, 1200, MAX_DATAGRAM]) {
      expect(decodeQueryScope(encodeQuery(1, Scope.ALL, size))).toBe(Scope.ALL);
      expect(decodeQueryScope(encodeQuery(1, Scope.PATH, size))).toBe(Scope.PATH);
    }
    expect(() => encodeQuery(1, Scope.PATH, MAX_DATAGRAM + 1)).toThrow(RangeError);
    expect(() => encodeQuery(2 ** 32, Scope.PATH)).toThrow(RangeError);
  });

  test('classify: foreign, runt, wrong version, not a query', () => {
    expect(classify(Buffer.alloc(0))).toBe(Classify.FOREIGN);
    expect(classify(Buffer.from('y'))).toBe(Classify.FOREIGN);
    expect(classify(Buffer.from('N'))).toBe(Classify.FOREIGN);
    expect(classify(Buffer.from('NKxx'))).toBe(Classify.RUNT);
    const q = encodeQuery(1, Scope.PATH);
    q[2] = 2;
    expect(classify(q)).toBe(Classify.WRONG_VERSION);
    q[2] = 0;
    expect(classify(q)).toBe(Classify.WRONG_VERSION);
    const a = encodeAnswer(1, { host: 'h', time: 0, filesystems: [] });
    expect(classify(a)).toBe(Classify.NOT_QUERY);
  });

  test('a query without SCOPE asks for the served path; unknown and reserved auth tags are skipped', () => {
    expect(decodeQueryScope(rawQuery([]))).toBe(Scope.PATH);
    expect(decodeQueryScope(rawQuery([0x7f, 0, 2, 9, 9, Tag.SCOPE, 0, 1, 1]))).toBe(Scope.ALL);
    expect(decodeQueryScope(rawQuery([0x10, 0, 4, 1, 2, 3, 4, 0x1f, 0, 0, Tag.SCOPE, 0, 1, 0, 0, 0, 0]))).toBe(Scope.PATH);
  });

  test.each([
    ['duplicate SCOPE', [Tag.SCOPE, 0, 1, 0, Tag.SCOPE, 0, 1, 1]],
    ['SCOPE of 2 bytes', [Tag.SCOPE, 0, 2, 0, 0]],
    ['SCOPE of 0 bytes', [Tag.SCOPE, 0, 0]],
    ['unknown scope value', [Tag.SCOPE, 0, 1, 9]],
    ['a field header cut short', [Tag.SCOPE, 0]],
    ['a length past the end', [Tag.SCOPE, 0, 5, 1]],
    ['an unknown field past the end', [0x44, 0xff, 0xff, 1]],
    ['non-zero bytes in the padding', [Tag.SCOPE, 0, 1, 0, 0, 0, 0, 1]],
  ])('%s is BAD_REQUEST', (_name, fields) => {
    expect(code(() => decodeQueryScope(rawQuery(fields)))).toBe('BAD_REQUEST');
  });

  test('every truncation of a valid query either decodes or is BAD_REQUEST, never anything else', () => {
    const q = encodeQuery(99, Scope.ALL, 40);
    for (let n = 0; n <= q.length; n += 1) {
      const part = q.subarray(0, n);
      if (classify(part) !== Classify.QUERY) continue;
      const c = code(() => decodeQueryScope(part));
      expect(c === undefined || c === 'BAD_REQUEST').toBe(true);
    }
  });

  test('random datagrams: classify never throws; decodeQueryScope only ever throws BAD_REQUEST', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, header) => {
        const b = Buffer.from(bytes);
        if (header && b.length >= 4) {
          b[0] = 0x4e;
          b[1] = 0x4b;
          b[2] = 1;
          b[3] = 1;
        }
        const c = classify(b);
        if (c === Classify.QUERY) {
          const r = code(() => decodeQueryScope(b));
          expect(r === undefined || r === 'BAD_REQUEST').toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('an oversize (65,507-byte) all-zero-padded query is fine; the same with one stray byte is not', () => {
    const q = encodeQuery(5, Scope.PATH, MAX_DATAGRAM);
    expect(decodeQueryScope(q)).toBe(Scope.PATH);
    q[MAX_DATAGRAM - 1] = 1;
    expect(code(() => decodeQueryScope(q))).toBe('BAD_REQUEST');
  });
});

describe('ANSWER', () => {
  test('round-trips exact u64 figures, strings and the served flag', () => {
    const other: FsFigures = { ...big, mount: '/', served: false, total: 10n, used: 4n, available: 5n, free: 6n };
    const a = encodeAnswer(0xdeadbeef, { host: 'nas.local', time: 1_700_000_000_123, filesystems: [big, other] });
    const r = decodeReply(a);
    expect(r).toEqual({ type: MsgType.ANSWER, id: 0xdeadbeef, answer: { host: 'nas.local', time: 1_700_000_000_123, filesystems: [big, other], omitted: 0 } });
  });

  test('a one-filesystem answer with every string at its cap still fits the default request size', () => {
    const long = 'é'.repeat(400); // 800 UTF-8 bytes, capped at 255 without splitting a character
    const body = encodeAnswerBody({ host: long, time: Date.now(), filesystems: [{ ...big, mount: long, fstype: long, device: long }] });
    expect(HEADER_SIZE + body.length).toBeLessThanOrEqual(DEFAULT_REQUEST_SIZE);
    const r = decodeReply(encodeAnswer(1, { host: long, time: 0, filesystems: [{ ...big, mount: long }] }));
    expect(r.type === MsgType.ANSWER && r.answer.host).toBe('é'.repeat(127));
  });

  test('utf8Capped never splits a character', () => {
    expect(utf8Capped('a€', 3).toString()).toBe('a');
    expect(utf8Capped('a€', 4).toString()).toBe('a€');
    expect(utf8Capped('😀😀', 7).toString()).toBe('😀');
  });

  test('filesystems that would pass 65,507 bytes are left out and counted in OMITTED', () => {
    const fs = Array.from({ length: 400 }, (_, i) => ({ ...big, mount: `/m/${'x'.repeat(200)}/${i}`, served: i === 0 }));
    const body = encodeAnswerBody({ host: 'h', time: 0, filesystems: fs });
    expect(HEADER_SIZE + body.length).toBeLessThanOrEqual(MAX_DATAGRAM);
    const buf = Buffer.concat([Buffer.alloc(HEADER_SIZE), body]);
    writeReplyHeader(buf, MsgType.ANSWER, encodeQuery(3, Scope.ALL));
    const r = decodeReply(buf);
    if (r.type !== MsgType.ANSWER) throw new Error('not an answer');
    expect(r.id).toBe(3);
    expect(r.answer.filesystems.length + r.answer.omitted).toBe(400);
    expect(r.answer.omitted).toBeGreaterThan(0);
  });

  test('unknown fields in a reply are skipped; trailing FS bytes are room for future fields', () => {
    const a = encodeAnswer(1, { host: 'h', time: 5, filesystems: [] });
    const withUnknown = Buffer.concat([a, Buffer.from([0x60, 0, 3, 1, 2, 3])]);
    expect(decodeReply(withUnknown).type).toBe(MsgType.ANSWER);
  });

  test.each([
    ['without HOST', () => Buffer.concat([header(2), Buffer.from([Tag.TIME, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1])])],
    ['without TIME', () => Buffer.concat([header(2), Buffer.from([Tag.HOST, 0, 1, 0x68])])],
    ['with a duplicate HOST', () => Buffer.concat([header(2), Buffer.from([Tag.HOST, 0, 1, 0x68, Tag.HOST, 0, 1, 0x68])])],
    ['with invalid UTF-8', () => Buffer.concat([header(2), Buffer.from([Tag.HOST, 0, 1, 0xff])])],
    ['with a short FS', () => Buffer.concat([header(2), Buffer.from([Tag.FS, 0, 2, 0, 0])])],
    ['of an unknown type', () => header(9)],
    ['of version 2', () => Buffer.from([0x4e, 0x4b, 2, 2, 0, 0, 0, 1])],
    ['shorter than a header', () => Buffer.from('NK')],
  ])('a reply %s is PROTOCOL', (_name, make) => {
    expect(code(() => decodeReply(make()))).toBe('PROTOCOL');
  });

  test('every truncation of a valid answer is PROTOCOL unless it ends on a field boundary', () => {
    const a = encodeAnswer(1, { host: 'host', time: 1, filesystems: [big] });
    // Cut exactly after TIME, the datagram is a well-formed answer that lists no filesystem.
    const boundary = HEADER_SIZE + (3 + 4) + (3 + 8);
    for (let n = 0; n < a.length; n += 1) {
      const c = code(() => decodeReply(a.subarray(0, n)));
      expect(c).toBe(n === boundary ? undefined : 'PROTOCOL');
    }
  });
});

function header(type: number): Buffer {
  return Buffer.from([0x4e, 0x4b, 1, type, 0, 0, 0, 1]);
}

describe('ERROR', () => {
  test('round-trips CODE, MESSAGE and NEED', () => {
    const e = encodeError(42, { code: WireError.TOO_LARGE, message: 'answer needs 3000 bytes', need: 3000 })!;
    expect(decodeReply(e)).toEqual({ type: MsgType.ERROR, id: 42, error: { code: WireError.TOO_LARGE, message: 'answer needs 3000 bytes', need: 3000 } });
  });

  test('never larger than the limit: the message shrinks, then goes, then nothing is sent', () => {
    for (let limit = 0; limit <= 80; limit += 1) {
      const e = encodeError(1, { code: WireError.BAD_REQUEST, message: 'x'.repeat(100) }, limit);
      if (limit < minimalErrorSize(WireError.BAD_REQUEST)) expect(e).toBeUndefined();
      else {
        expect(e!.length).toBeLessThanOrEqual(limit);
        expect(decodeReply(e!).type).toBe(MsgType.ERROR);
      }
    }
    expect(encodeError(1, { code: WireError.TOO_LARGE, need: 5000 }, 16)).toBeUndefined();
    expect(encodeError(1, { code: WireError.TOO_LARGE, need: 5000 }, 17)!.length).toBe(17);
  });
});
