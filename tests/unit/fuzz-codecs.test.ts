// Property-based fuzzing of every codec: on garbage each throws only a NetkitError with its stable code (or returns a verdict), and every round trip holds.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { NetkitError } from '../../src/errors.js';
import * as disk from '../../src/protocol/disk-v1.js';
import { encodeClassicAnswer, isClassicRequest, parseClassicAnswer } from '../../src/protocol/disk-classic.js';
import * as file from '../../src/protocol/file-v1.js';
import * as list from '../../src/protocol/file-list.js';
import { classicNameComplete, decodeClassicName, encodeClassicSize, parseClassicHead } from '../../src/protocol/file-classic.js';
import { encodeAuthQuery, locateAuthFields, sealReply, verifyReply } from '../../src/protocol/disk-auth.js';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../../src/protocol/auth-frames.js';
import { decodeTimestamp, deriveKey, encodeTimestamp } from '../../src/protocol/auth.js';

/** Every loop bounded in count and in time. */
const RUNS = { numRuns: 300, interruptAfterTimeLimit: 4_000 };
const bytes = (max = 300): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

/** Run fn; it may return anything, or throw a NetkitError whose code is in `codes`. Anything else fails. */
function onlyThrows(codes: readonly string[], fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof NetkitError)) throw new Error(`threw a non-NetkitError: ${String(err)}`);
    if (!codes.includes(err.code)) throw new Error(`threw code ${err.code}, expected one of ${codes.join(', ')}`);
  }
}

/** Split a buffer at the given cut points (fast-check chooses them). */
function chunk(buf: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < buf.length; i++) {
    const n = Math.max(1, sizes.length > 0 ? sizes[i % sizes.length]! : buf.length);
    out.push(buf.subarray(at, at + n));
    at += n;
  }
  return out;
}

const arbFs: fc.Arbitrary<disk.FsFigures> = fc.record({
  mount: fc.string({ maxLength: 40 }),
  fstype: fc.string({ maxLength: 10 }),
  device: fc.string({ maxLength: 40 }),
  total: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  used: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  available: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  free: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  served: fc.boolean(),
});

describe('disk protocol v1', () => {
  test('garbage: classify never throws, decodeQueryScope throws only BAD_REQUEST, decodeReply only PROTOCOL', () => {
    fc.assert(
      fc.property(bytes(), fc.constantFrom(0, 1, 2, 3, 255), fc.boolean(), (raw, type, header) => {
        const buf = header && raw.length >= 8 ? Buffer.concat([Buffer.from([0x4e, 0x4b, 1, type]), raw.subarray(4)]) : raw;
        expect(() => disk.classify(buf)).not.toThrow();
        if (disk.classify(buf) === disk.Classify.QUERY) onlyThrows(['BAD_REQUEST'], () => disk.decodeQueryScope(buf));
        onlyThrows(['PROTOCOL'], () => disk.decodeReply(buf));
      }),
      RUNS,
    );
  });

  test('answers round-trip exactly (u64 figures, strings capped at 255 bytes, served flag)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.nat(), fc.array(arbFs, { maxLength: 6 }), fc.nat({ max: 0xffffffff }), (host, time, filesystems, id) => {
        const reply = disk.decodeReply(disk.encodeAnswer(id, { host, time, filesystems }));
        expect(reply.type).toBe(disk.MsgType.ANSWER);
        if (reply.type !== disk.MsgType.ANSWER) return;
        expect(reply.id).toBe(id);
        expect(reply.answer.host).toBe(host);
        expect(reply.answer.time).toBe(time);
        expect(reply.answer.filesystems).toEqual(filesystems);
      }),
      RUNS,
    );
  });

  test('errors round-trip and never exceed their limit; every truncation of a reply is PROTOCOL or a valid prefix', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.string({ maxLength: 300 }), fc.integer({ min: 8, max: 2000 }), fc.nat({ max: 0xffffffff }), (code, message, limit, id) => {
        const e = disk.encodeError(id, { code: code as disk.WireError, message, need: 1200 }, limit);
        if (!e) return;
        expect(e.length).toBeLessThanOrEqual(limit);
        const r = disk.decodeReply(e);
        expect(r.type).toBe(disk.MsgType.ERROR);
        if (r.type === disk.MsgType.ERROR) expect(r.error.code).toBe(code);
        for (let cut = 0; cut < e.length; cut++) onlyThrows(['PROTOCOL'], () => disk.decodeReply(e.subarray(0, cut)));
      }),
      RUNS,
    );
  });

  test('queries round-trip at any size, and flipping any byte never throws anything but BAD_REQUEST', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.boolean(), fc.integer({ min: 12, max: 1500 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (id, all, size, where, x) => {
        const q = disk.encodeQuery(id, all ? disk.Scope.ALL : disk.Scope.PATH, size);
        expect(disk.readId(q)).toBe(id);
        expect(disk.decodeQueryScope(q)).toBe(all ? disk.Scope.ALL : disk.Scope.PATH);
        const bad = Buffer.from(q);
        bad[where % bad.length] ^= x;
        expect(() => disk.classify(bad)).not.toThrow();
        if (disk.classify(bad) === disk.Classify.QUERY) onlyThrows(['BAD_REQUEST'], () => disk.decodeQueryScope(bad));
      }),
      RUNS,
    );
  });
});

describe('disk classic', () => {
  test('parseClassicAnswer never throws on any text; isClassicRequest is only ever exactly "y"', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), bytes(20), (text, raw) => {
        expect(() => parseClassicAnswer(text)).not.toThrow();
        expect(() => parseClassicAnswer(raw.toString('latin1'))).not.toThrow();
        expect(isClassicRequest(raw)).toBe(raw.length === 1 && raw[0] === 0x79);
      }),
      RUNS,
    );
  });

  test('answers round-trip to GiB with two decimals', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9.-]{1,40}$/), fc.bigInt({ min: 0n, max: 2n ** 60n }), fc.bigInt({ min: 0n, max: 2n ** 60n }), (name, total, avail) => {
        const a = parseClassicAnswer(encodeClassicAnswer(name, total, avail).toString('utf8'));
        expect(a).toBeDefined();
        expect(a!.serverName).toBe(name);
        expect(Math.abs(a!.totalGiB - Number(total) / 2 ** 30)).toBeLessThanOrEqual(0.005 + Number(total) / 2 ** 30 * 1e-12);
        expect(Math.abs(a!.availableGiB - Number(avail) / 2 ** 30)).toBeLessThanOrEqual(0.005 + Number(avail) / 2 ** 30 * 1e-12);
      }),
      RUNS,
    );
  });
});

const DECODERS = [file.decodeHello, file.decodeRequest, file.decodeResponse, file.decodeTrailer, list.decodeList, list.decodeEntry, list.decodeEnd];

/** Every frame of `bytes` pushed in the given chunking; nothing may be left over. */
function readAllFrames(bytes: Buffer, sizes: number[]): file.Frame[] {
  const reader = new file.FrameReader();
  const frames: file.Frame[] = [];
  for (const piece of chunk(bytes, sizes)) {
    reader.push(piece);
    for (let f = reader.next(); f; f = reader.next()) frames.push(f);
  }
  expect(reader.buffered).toBe(0);
  return frames;
}

describe('file protocol v1', () => {
  const arbRequest = fc.record({
    name: fc.string({ minLength: 1, maxLength: 200 }).filter((s) => Buffer.byteLength(s) <= file.MAX_NAME_BYTES),
    offset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    validator: fc.uint8Array({ maxLength: file.MAX_VALIDATOR_BYTES }).map((a) => Buffer.from(a)),
  });
  const arbResponse = fc.record({
    status: fc.constantFrom(...Object.values(file.Status)),
    size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    validator: fc.uint8Array({ maxLength: file.MAX_VALIDATOR_BYTES }).map((a) => Buffer.from(a)),
    message: fc.string({ maxLength: 100 }),
  });

  test('a whole conversation fed in random chunkings yields the same frames, and every frame round-trips', () => {
    fc.assert(
      fc.property(arbRequest, arbResponse, fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 30 }), (req, res, sizes) => {
        const nonce = randomBytes(32);
        const response = { ...res, offset: Math.floor(res.size / 2) };
        const sha = randomBytes(32);
        const stream = Buffer.concat([
          file.encodePreamble(),
          file.encodeHello({ nonce, flags: 5 }),
          file.encodeRequest(req),
          file.encodeResponse(response),
          file.encodeTrailer({ sha256: sha }),
        ]);
        const reader = new file.FrameReader();
        const frames: file.Frame[] = [];
        let preamble: Buffer | undefined;
        for (const piece of chunk(stream, sizes)) {
          reader.push(piece);
          preamble ??= reader.take(file.PREAMBLE_LENGTH);
          if (!preamble) continue;
          for (let f = reader.next(); f; f = reader.next()) frames.push(f);
        }
        expect(file.decodePreamble(preamble!)).toBe(file.VERSION);
        expect(frames.map((f) => f.type)).toEqual([file.FrameType.HELLO, file.FrameType.REQUEST, file.FrameType.RESPONSE, file.FrameType.TRAILER]);
        expect(file.decodeHello(frames[0]!)).toEqual({ nonce, flags: 5 });
        expect(file.decodeRequest(frames[1]!)).toEqual(req);
        const r = file.decodeResponse(frames[2]!);
        expect([r.status, r.size, r.offset, r.message]).toEqual([response.status, response.size, response.offset, response.message]);
        expect(r.validator.equals(response.validator)).toBe(true);
        expect(file.decodeTrailer(frames[3]!).sha256.equals(sha)).toBe(true);
        expect(reader.buffered).toBe(0);
      }),
      RUNS,
    );
  });

  test('garbage streams in random chunkings: the reader needs more, yields frames, or throws TOO_LARGE; decoders throw only PROTOCOL', () => {
    fc.assert(
      fc.property(bytes(600), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }), (raw, sizes) => {
        onlyThrows(['PROTOCOL'], () => file.decodePreamble(raw.subarray(0, file.PREAMBLE_LENGTH)));
        const reader = new file.FrameReader();
        try {
          for (const piece of chunk(raw, sizes)) {
            reader.push(piece);
            for (let f = reader.next(); f; f = reader.next()) {
              expect(f.payload.length).toBeLessThanOrEqual(file.MAX_FRAME_PAYLOAD);
              for (const decode of DECODERS) onlyThrows(['PROTOCOL'], () => decode(f));
              onlyThrows(['PROTOCOL'], () => file.decodeFields(f.payload));
            }
          }
        } catch (err) {
          expect(err).toBeInstanceOf(NetkitError);
          expect((err as NetkitError).code).toBe('TOO_LARGE');
        }
        // Never more buffered than one maximal frame plus the last piece pushed.
        expect(reader.buffered).toBeLessThanOrEqual(raw.length);
      }),
      RUNS,
    );
  });

  test('well-typed frames with random fields: decoders throw only PROTOCOL', () => {
    const arbField = fc.tuple(fc.integer({ min: 0, max: 20 }), fc.uint8Array({ maxLength: 80 }));
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(file.FrameType)), fc.array(arbField, { maxLength: 8 }), (type, fields) => {
        const frame = file.encodeFrame(type, fields);
        const reader = new file.FrameReader();
        reader.push(frame);
        const f = reader.next()!;
        for (const decode of DECODERS) onlyThrows(['PROTOCOL'], () => decode(f));
      }),
      RUNS,
    );
  });

  const arbEntry = fc.record({
    name: fc.string({ minLength: 1, maxLength: 120 }).filter((s) => Buffer.byteLength(s) <= file.MAX_NAME_BYTES),
    kind: fc.integer({ min: 0, max: 255 }),
    size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    mtimeMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    mode: fc.integer({ min: 0, max: file.MAX_MODE }),
  });

  test('a pipelined session (REQUESTs and LISTs up, RESPONSEs, ENTRYs and ENDs down) in random chunkings: the same frames, each round-trips', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(arbRequest.map((r) => ({ r })), fc.record({ l: fc.record({ name: fc.string({ maxLength: 60 }), recursive: fc.boolean() }) })), { minLength: 1, maxLength: 6 }),
        fc.array(arbEntry, { maxLength: 6 }),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 0, max: file.MAX_MODE }),
        fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 30 }),
        (requests, entries, mtimeMs, mode, sizes) => {
          const up = Buffer.concat(requests.map((q) => ('r' in q ? file.encodeRequest(q.r) : list.encodeList(q.l))));
          const end = { count: entries.length, skipped: mtimeMs % 7, sha256: randomBytes(32) };
          const ok = { status: file.Status.OK, size: 10, offset: 0, validator: Buffer.alloc(0), message: '', mtimeMs, mode };
          const down = Buffer.concat([file.encodeResponse(ok), ...entries.map(list.encodeEntry), list.encodeEnd(end)]);
          const upFrames = readAllFrames(up, sizes);
          expect(upFrames.map((f) => (f.type === file.FrameType.REQUEST ? { r: file.decodeRequest(f) } : { l: list.decodeList(f) }))).toEqual(requests);
          const downFrames = readAllFrames(down, sizes);
          expect(file.decodeResponse(downFrames[0]!)).toEqual(ok);
          expect(downFrames.slice(1, -1).map(list.decodeEntry)).toEqual(entries);
          expect(list.decodeEnd(downFrames[downFrames.length - 1]!)).toEqual(end);
        },
      ),
      RUNS,
    );
  });

  test('listing frames with random fields: LIST, ENTRY and END decoders throw only PROTOCOL', () => {
    const arbField = fc.tuple(fc.constantFrom(0x03, 0x02, 0x07, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x7f), fc.uint8Array({ maxLength: 40 }));
    fc.assert(
      fc.property(fc.constantFrom(list.decodeList, list.decodeEntry, list.decodeEnd), fc.constantFrom(0x05, 0x06, 0x07), fc.array(arbField, { maxLength: 7 }), (decode, type, fields) => {
        const unique = [...new Map(fields.map(([t, v]) => [t, v])).entries()];
        const f = readAllFrames(file.encodeFrame(type, unique), [])[0]!;
        onlyThrows(['PROTOCOL'], () => decode(f));
      }),
      RUNS,
    );
  });

  test('a length past the cap is refused from its 3-byte header alone, before the payload is buffered', () => {
    fc.assert(
      fc.property(fc.integer({ min: file.MAX_FRAME_PAYLOAD + 1, max: 0xffff }), fc.integer({ min: 0, max: 255 }), (len, type) => {
        const reader = new file.FrameReader();
        reader.push(Buffer.from([type, len >> 8, len & 255]));
        expect(() => reader.next()).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }) as unknown as Error);
      }),
      { numRuns: 100, interruptAfterTimeLimit: 2_000 },
    );
  });
});

describe('file classic', () => {
  test('names: garbage throws only PROTOCOL; valid names round-trip with or without a newline', () => {
    fc.assert(
      fc.property(bytes(1100), fc.string({ minLength: 1, maxLength: 200 }).filter((s) => !s.includes('\n') && Buffer.byteLength(s) <= 1024), (raw, name) => {
        onlyThrows(['PROTOCOL'], () => decodeClassicName(raw));
        expect(() => classicNameComplete(raw)).not.toThrow();
        const plain = Buffer.from(name);
        if (!name.endsWith('\r')) expect(decodeClassicName(Buffer.concat([plain, Buffer.from('\r\n')]))).toBe(name);
        expect(decodeClassicName(Buffer.concat([plain, Buffer.from('\n')]))).toBe(name);
      }),
      RUNS,
    );
  });

  test('size field: 8 bytes; parseClassicHead never returns a wrong size for a whole stream, and garbage throws only PROTOCOL/PEER_CLOSED', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), bytes(40), fc.boolean(), (size, raw, ended) => {
        const field = encodeClassicSize(size);
        expect(field.length).toBe(8);
        // The classic answer has no terminator after the size: the parser either finds the right size or refuses.
        onlyThrows(['PROTOCOL'], () => {
          const head = parseClassicHead(Buffer.concat([field, Buffer.alloc(size, 0x78)]), true);
          if (head?.kind === 'size') expect(head.size).toBe(size);
        });
        onlyThrows(['PROTOCOL', 'PEER_CLOSED'], () => parseClassicHead(raw, ended));
      }),
      RUNS,
    );
  });
});

describe('authentication fields', () => {
  const diskKey = deriveKey('fuzz-secret-0123456789abcdef', 'disk');
  const fileKey = deriveKey('fuzz-secret-0123456789abcdef', 'file');

  test('disk: locateAuthFields and verifyReply never throw on garbage; sealed queries and replies round-trip', () => {
    fc.assert(
      fc.property(bytes(400), fc.nat({ max: 0xffffffff }), fc.integer({ min: 200, max: 1500 }), fc.nat(), (raw, id, size, ts) => {
        const header = Buffer.concat([Buffer.from([0x4e, 0x4b, 1, 1]), raw]);
        for (const b of [raw, header]) {
          expect(() => locateAuthFields(b, true)).not.toThrow();
          expect(() => locateAuthFields(b, false)).not.toThrow();
          expect(() => verifyReply(diskKey, [randomBytes(16)], b)).not.toThrow();
        }
        const nonce = randomBytes(16);
        const q = encodeAuthQuery(diskKey, id, disk.Scope.PATH, nonce, ts, size);
        const at = locateAuthFields(q, true);
        expect(typeof at).toBe('object');
        if (typeof at === 'object') {
          expect(at.nonce!.equals(nonce)).toBe(true);
          expect(at.timestampMs).toBe(BigInt(ts));
        }
        const reply = sealReply(diskKey, nonce, [disk.encodeError(id, { code: disk.WireError.INTERNAL, message: 'x' })!]);
        expect(verifyReply(diskKey, [randomBytes(16), nonce], reply)).toBe('ok');
        expect(verifyReply(diskKey, [randomBytes(16)], reply)).toBe('bad-mac');
      }),
      { numRuns: 150, interruptAfterTimeLimit: 4_000 },
    );
  });

  test('file: checkFrame never throws on garbage payloads; sealed frames verify only for their kind', () => {
    fc.assert(
      fc.property(bytes(300), fc.string({ minLength: 1, maxLength: 100 }), fc.option(fc.integer({ min: -2, max: 2 ** 32 + 1 })), (raw, name, seq) => {
        const nonces = { client: randomBytes(32), server: randomBytes(32) };
        for (const kind of ['client', 'server', 'trailer'] as const) {
          expect(['missing', 'malformed', 'bad-mac']).toContain(checkFrame(kind, fileKey, nonces, raw));
          expect(['missing', 'malformed', 'bad-mac']).toContain(checkFrame(kind, fileKey, nonces, raw, seq ?? undefined));
        }
        const frame = sealFrame('client', fileKey, nonces, file.encodeRequest({ name, offset: 0, validator: Buffer.alloc(0) }, [MAC_PLACEHOLDER]));
        const payload = frame.subarray(file.FRAME_HEADER_LENGTH);
        expect(checkFrame('client', fileKey, nonces, payload)).toBe('ok');
        expect(checkFrame('server', fileKey, nonces, payload)).toBe('bad-mac');
      }),
      { numRuns: 150, interruptAfterTimeLimit: 4_000 },
    );
  });

  test('timestamps round-trip; any 8 bytes decode', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ minLength: 8, maxLength: 8 }), (ms, raw) => {
        expect(decodeTimestamp(encodeTimestamp(ms))).toBe(BigInt(ms));
        expect(() => decodeTimestamp(raw)).not.toThrow();
      }),
      RUNS,
    );
  });
});
