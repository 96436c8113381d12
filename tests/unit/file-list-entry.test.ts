// ENTRY decoding: the direct reading of a well-formed entry gives exactly what the field-by-field decoder gives, and every malformed or unusual entry gets the field-by-field decoder's value or error.
import { describe, expect, test } from '@jest/globals';
import { FrameType, Tag, encodeFrame, u32, u64, type Field, type Frame } from '../../src/protocol/file-frames.js';
import { EntryKind, checkedEntry, decodeEntry, encodeEntry } from '../../src/protocol/file-list.js';

function outcome(fn: (f: Frame) => unknown, frame: Frame): unknown {
  try {
    return { ok: fn(frame) };
  } catch (err) {
    return { err: (err as Error).message, code: (err as { code?: string }).code };
  }
}

const frameOf = (buf: Buffer): Frame => ({ type: buf[0]!, payload: buf.subarray(3) });
const same = (frame: Frame): void => expect(outcome(decodeEntry, frame)).toEqual(outcome(checkedEntry, frame));

describe('decodeEntry', () => {
  test('well-formed entries read the same both ways', () => {
    const entries = [
      { name: 'a', kind: EntryKind.FILE, size: 0, mtimeMs: 0, mode: 0 },
      { name: 'd000/f000', kind: EntryKind.FILE, size: 4096, mtimeMs: 1_764_000_000_123, mode: 0o644 },
      { name: 'ü b/ç', kind: EntryKind.DIRECTORY, size: 0, mtimeMs: 1, mode: 0o7777 },
      { name: 'x'.repeat(300), kind: 7, size: Number.MAX_SAFE_INTEGER, mtimeMs: Number.MAX_SAFE_INTEGER, mode: 0o755 },
      { name: 'big', kind: EntryKind.FILE, size: 2 ** 32 + 5, mtimeMs: 2 ** 40, mode: 0o600 },
    ];
    for (const e of entries) {
      const frame = frameOf(encodeEntry(e));
      expect(decodeEntry(frame)).toEqual(e);
      same(frame);
    }
  });

  test('unusual and malformed entries: the same value or the same error', () => {
    const name: Field = [Tag.NAME, Buffer.from('f')];
    const kind: Field = [Tag.KIND, Buffer.from([0])];
    const size: Field = [Tag.SIZE, u64(5)];
    const mtime: Field = [Tag.MTIME, u64(7)];
    const mode: Field = [Tag.MODE, u32(0o644)];
    const cases: Field[][] = [
      [name, kind, size, mtime, mode, [0x7e, Buffer.from('unknown tag')]],
      [mode, mtime, size, kind, name],
      [name, kind, size, mtime],
      [kind, size, mtime, mode],
      [[Tag.NAME, Buffer.alloc(0)], kind, size, mtime, mode],
      [[Tag.NAME, Buffer.from([0xff, 0xfe])], kind, size, mtime, mode],
      [name, name, kind, size, mtime, mode],
      [name, [Tag.KIND, Buffer.from([0, 0])], size, mtime, mode],
      [name, kind, [Tag.SIZE, u32(5)], mtime, mode],
      [name, kind, [Tag.SIZE, Buffer.from('0020000000000000', 'hex')], mtime, mode],
      [name, kind, size, [Tag.MTIME, Buffer.from('ffffffffffffffff', 'hex')], mode],
      [name, kind, size, mtime, [Tag.MODE, u32(0o10000)]],
      [name, kind, size, mtime, [Tag.MODE, Buffer.from([1])]],
    ];
    for (const fields of cases) same(frameOf(encodeFrame(FrameType.ENTRY, fields)));
    same({ type: FrameType.END, payload: encodeEntry({ name: 'f', kind: 0, size: 1, mtimeMs: 1, mode: 0 }).subarray(3) });
  });

  test('random corruptions of an entry (a bounded, seeded loop): the same value or the same error', () => {
    const good = encodeEntry({ name: 'dir/file.txt', kind: EntryKind.FILE, size: 123456, mtimeMs: 1_700_000_000_000, mode: 0o644 }).subarray(3);
    let x = 99;
    const rnd = (n: number): number => (x = (x * 1103515245 + 12345) % 2147483648) % n;
    for (let i = 0; i < 3000; i++) {
      const p = Buffer.from(good);
      for (let k = 1 + rnd(3); k > 0; k--) p[rnd(p.length)] = rnd(256);
      const cut = rnd(4) === 0 ? p.subarray(0, rnd(p.length)) : p;
      same({ type: FrameType.ENTRY, payload: cut });
    }
  });
});
