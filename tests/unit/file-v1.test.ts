// File protocol v1 codec: round trips, every TCP split point, and malformed or oversize input with stable codes.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { NetkitError } from '../../src/errors.js';
import {
  FrameReader,
  FrameType,
  MAGIC,
  MAX_FRAME_PAYLOAD,
  PREAMBLE_LENGTH,
  Status,
  Tag,
  decodeFields,
  decodeHello,
  decodePreamble,
  decodeRequest,
  decodeResponse,
  decodeTrailer,
  encodeFrame,
  encodeHello,
  encodePreamble,
  encodeRequest,
  encodeResponse,
  encodeTrailer,
  statusErrorCode,
  type Frame,
} from '../../src/protocol/file-v1.js';
import { codeOf } from '../helpers/errors.js';

function framesOf(bytes: Buffer, chunkSizes: (i: number) => number): { preamble?: Buffer; frames: Frame[] } {
  const reader = new FrameReader();
  const frames: Frame[] = [];
  let preamble: Buffer | undefined;
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = Math.max(1, chunkSizes(i++));
    reader.push(bytes.subarray(at, at + n));
    at += n;
    if (!preamble) preamble = reader.take(PREAMBLE_LENGTH);
    if (preamble) for (let f = reader.next(); f; f = reader.next()) frames.push(f);
  }
  expect(reader.buffered).toBe(0);
  return { preamble, frames };
}

const nonce = Buffer.alloc(32, 7);
const conversation = Buffer.concat([
  encodePreamble(),
  encodeHello({ nonce, flags: 0 }),
  encodeRequest({ name: 'dir/ficheiro é.bin', offset: 123456789012, validator: Buffer.from('0123456789abcdef') }),
]);

describe('file v1 frames', () => {
  test('the preamble is the magic and the version; 0x89 cannot start a UTF-8 name', () => {
    expect([...encodePreamble()]).toEqual([0x89, 0x4e, 0x4b, 0x46, 1]);
    expect(decodePreamble(encodePreamble(7))).toBe(7);
    expect(codeOf(() => decodePreamble(Buffer.from('GET /')))).toBe('PROTOCOL');
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(MAGIC)).toThrow();
  });

  test('HELLO, REQUEST, RESPONSE and TRAILER round-trip', () => {
    const hello = decodeHello(frame(encodeHello({ nonce, flags: 1 })));
    expect(hello.nonce.equals(nonce)).toBe(true);
    expect(hello.flags).toBe(1);

    const req = decodeRequest(frame(encodeRequest({ name: 'a/b.txt', offset: 2 ** 40, validator: Buffer.from([1, 2, 3]) })));
    expect(req).toEqual({ name: 'a/b.txt', offset: 2 ** 40, validator: Buffer.from([1, 2, 3]) });

    const res = decodeResponse(frame(encodeResponse({ status: Status.OK, size: 5_000_000_000, offset: 10, validator: Buffer.from('v'), message: 'fine' })));
    expect(res).toEqual({ status: Status.OK, size: 5_000_000_000, offset: 10, validator: Buffer.from('v'), message: 'fine' });

    const refused = decodeResponse(frame(encodeResponse({ status: Status.UNSUPPORTED_VERSION, size: 0, offset: 0, validator: Buffer.alloc(0), message: '', version: 1 })));
    expect(refused.version).toBe(1);

    const sha = Buffer.alloc(32, 0xab);
    expect(decodeTrailer(frame(encodeTrailer({ sha256: sha }))).sha256.equals(sha)).toBe(true);
  });

  test('every split point of a conversation yields the same frames (two pieces, then 1-byte chunks)', () => {
    const whole = framesOf(conversation, () => conversation.length);
    expect(whole.frames).toHaveLength(2);
    for (let cut = 1; cut < conversation.length; cut++) {
      const split = framesOf(conversation, (i) => (i === 0 ? cut : conversation.length));
      expect(split.frames).toEqual(whole.frames);
      expect(split.preamble?.equals(whole.preamble!)).toBe(true);
    }
    const bytewise = framesOf(conversation, () => 1);
    expect(bytewise.frames).toEqual(whole.frames);
    expect(decodeRequest(bytewise.frames[1]!).name).toBe('dir/ficheiro é.bin');
  });

  test('random chunkings of random requests decode identically (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 200 }).filter((s) => Buffer.byteLength(s) <= 1024),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 50 }),
        (name, offset, validator, sizes) => {
          const bytes = encodeRequest({ name, offset, validator: Buffer.from(validator) });
          const { frames } = framesOf(Buffer.concat([encodePreamble(), bytes]), (i) => sizes[i % sizes.length]!);
          const back = decodeRequest(frames[0]!);
          expect(back.name).toBe(name);
          expect(back.offset).toBe(offset);
          expect(back.validator.equals(Buffer.from(validator))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('unknown tags are skipped; reserved auth tags do not disturb a reader that ignores them', () => {
    const f = frame(encodeFrame(FrameType.REQUEST, [[0x7f, Buffer.from('future')], [Tag.NAME, Buffer.from('x')], [Tag.AUTH_MAC, Buffer.alloc(32)]]));
    expect(decodeRequest(f)).toEqual({ name: 'x', offset: 0, validator: Buffer.alloc(0) });
  });

  test('docs/protocol.md 2.2: tags of another frame type are skipped unchecked; any repeated tag is malformed; required fields', () => {
    const odd = Buffer.from([1, 2, 3]); // a length no field of these types has
    expect(decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.SIZE, odd], [Tag.SHA256, odd], [Tag.NAME, Buffer.from('x')]]))).name).toBe('x');
    expect(decodeHello(frame(encodeFrame(FrameType.HELLO, [[Tag.NONCE, Buffer.alloc(32)], [Tag.STATUS, odd]]))).flags).toBe(0);
    expect(decodeTrailer(frame(encodeFrame(FrameType.TRAILER, [[Tag.NONCE, odd], [Tag.SHA256, Buffer.alloc(32)]]))).sha256).toEqual(Buffer.alloc(32));
    expect(codeOf(() => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[0x7f, odd], [Tag.NAME, Buffer.from('x')], [0x7f, odd]]))))).toBe('PROTOCOL');
    // Required: NONCE in HELLO, NAME in REQUEST, STATUS in RESPONSE (and SIZE, OFFSET with OK), SHA256 in TRAILER.
    expect(codeOf(() => decodeHello(frame(encodeFrame(FrameType.HELLO, [[Tag.FLAGS, Buffer.alloc(4)]]))))).toBe('PROTOCOL');
    expect(codeOf(() => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.OFFSET, Buffer.alloc(8)]]))))).toBe('PROTOCOL');
    expect(codeOf(() => decodeResponse(frame(encodeFrame(FrameType.RESPONSE, [[Tag.SIZE, Buffer.alloc(8)]]))))).toBe('PROTOCOL');
    expect(codeOf(() => decodeResponse(frame(encodeFrame(FrameType.RESPONSE, [[Tag.STATUS, Buffer.from([Status.OK])], [Tag.SIZE, Buffer.alloc(8)]]))))).toBe('PROTOCOL');
    expect(codeOf(() => decodeTrailer(frame(encodeFrame(FrameType.TRAILER, []))))).toBe('PROTOCOL');
    // A refusal needs only its STATUS: SIZE and OFFSET default to 0, VALIDATOR to empty.
    expect(decodeResponse(frame(encodeFrame(FrameType.RESPONSE, [[Tag.STATUS, Buffer.from([Status.BUSY])]])))).toEqual({ status: Status.BUSY, size: 0, offset: 0, validator: Buffer.alloc(0), message: '' });
  });

  test('a frame longer than the hard limit is refused before it is buffered', () => {
    const reader = new FrameReader();
    const header = Buffer.from([FrameType.REQUEST, 0, 0]);
    header.writeUInt16BE(MAX_FRAME_PAYLOAD + 1, 1);
    reader.push(header);
    expect(codeOf(() => reader.next())).toBe('TOO_LARGE');
  });

  test.each<[string, () => unknown]>([
    ['truncated field header', () => decodeFields(Buffer.from([Tag.NAME, 0]))],
    ['field past the end', () => decodeFields(Buffer.from([Tag.NAME, 0, 9, 0x41]))],
    ['duplicate tag', () => decodeFields(Buffer.from([Tag.NAME, 0, 1, 0x41, Tag.NAME, 0, 1, 0x42]))],
    ['wrong frame type', () => decodeRequest(frame(encodeHello({ nonce, flags: 0 })))],
    ['short nonce', () => decodeHello(frame(encodeFrame(FrameType.HELLO, [[Tag.NONCE, Buffer.alloc(31)]])))],
    ['missing name', () => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.OFFSET, Buffer.alloc(8)]])))],
    ['empty name', () => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.alloc(0)]])))],
    ['name too long', () => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.alloc(1025, 0x61)]])))],
    ['invalid UTF-8 name', () => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.from([0xc3, 0x28])]])))],
    ['offset of 4 bytes', () => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.from('a')], [Tag.OFFSET, Buffer.alloc(4)]])))],
    ['offset beyond 2^53', () => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.from('a')], [Tag.OFFSET, Buffer.alloc(8, 0xff)]])))],
    ['validator too long', () => decodeRequest(frame(encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.from('a')], [Tag.VALIDATOR, Buffer.alloc(65)]])))],
    ['OK without size', () => decodeResponse(frame(encodeFrame(FrameType.RESPONSE, [[Tag.STATUS, Buffer.from([0])]])))],
    ['offset past size', () => decodeResponse(frame(encodeResponse({ status: Status.OK, size: 1, offset: 2, validator: Buffer.alloc(0), message: '' })))],
    ['short trailer hash', () => decodeTrailer(frame(encodeFrame(FrameType.TRAILER, [[Tag.SHA256, Buffer.alloc(20)]])))],
  ])('malformed: %s -> PROTOCOL', (_what, fn) => {
    expect(codeOf(fn)).toBe('PROTOCOL');
  });

  test('garbage streams never crash the reader: they decode, need more, or fail with a code (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const reader = new FrameReader();
        reader.push(Buffer.from(bytes));
        try {
          for (let f = reader.next(); f; f = reader.next()) {
            for (const decode of [decodeHello, decodeRequest, decodeResponse, decodeTrailer]) {
              try {
                decode(f);
              } catch (err) {
                expect(err).toBeInstanceOf(NetkitError);
              }
            }
          }
        } catch (err) {
          expect((err as NetkitError).code).toBe('TOO_LARGE');
        }
      }),
      { numRuns: 500 },
    );
  });

  test('statuses map to the error codes (and exit codes) of docs/cli.md', () => {
    expect(statusErrorCode(Status.NOT_FOUND)).toBe('NOT_FOUND');
    expect(statusErrorCode(Status.FORBIDDEN)).toBe('FORBIDDEN');
    expect(statusErrorCode(Status.BAD_REQUEST)).toBe('BAD_REQUEST');
    expect(statusErrorCode(Status.BUSY)).toBe('BUSY');
    expect(statusErrorCode(Status.CHANGED)).toBe('CHANGED');
    expect(statusErrorCode(Status.UNAUTHORIZED)).toBe('UNAUTHORIZED');
    expect(statusErrorCode(Status.INTERNAL)).toBe('FAILED');
  });
});

function frame(bytes: Buffer): Frame {
  const reader = new FrameReader();
  reader.push(bytes);
  const f = reader.next();
  if (!f) throw new Error('incomplete frame');
  expect(reader.buffered).toBe(0);
  return f;
}
