// Classic file protocol codec: the padded 8-byte size, the name rules, and where a seed answer's size ends.
import { describe, expect, test } from '@jest/globals';
import {
  CLASSIC_MAX_SIZE,
  CLASSIC_MISSING,
  classicNameComplete,
  decodeClassicName,
  encodeClassicSize,
  explainShortClassic,
  parseClassicHead,
} from '../../src/protocol/file-classic.js';
import { codeOf } from '../helpers/errors.js';

describe('classic size field', () => {
  test('always 8 bytes, space padded, and what Python int() reads back', () => {
    expect(encodeClassicSize(0).toString()).toBe('0       ');
    expect(encodeClassicSize(1234).toString()).toBe('1234    ');
    expect(encodeClassicSize(CLASSIC_MAX_SIZE).toString()).toBe('99999999');
    expect(CLASSIC_MISSING.toString()).toBe('-1      ');
    expect(codeOf(() => encodeClassicSize(CLASSIC_MAX_SIZE + 1))).toBe('TOO_LARGE');
  });
});

describe('classic name', () => {
  test.each([
    ['arquivo.txt', 'arquivo.txt'],
    ['a.txt\n', 'a.txt'],
    ['a.txt\r\n', 'a.txt'],
    ['dir/ç.bin', 'dir/ç.bin'],
  ])('%j decodes to %j', (raw, name) => {
    expect(decodeClassicName(Buffer.from(raw))).toBe(name);
  });

  test('bytes after the newline or invalid UTF-8 are malformed', () => {
    expect(codeOf(() => decodeClassicName(Buffer.from('a\nb')))).toBe('PROTOCOL');
    expect(codeOf(() => decodeClassicName(Buffer.from([0x61, 0xff])))).toBe('PROTOCOL');
  });

  test('complete at a newline or at 1024 bytes', () => {
    expect(classicNameComplete(Buffer.from('abc'))).toBe(false);
    expect(classicNameComplete(Buffer.from('abc\n'))).toBe(true);
    expect(classicNameComplete(Buffer.alloc(1024, 0x61))).toBe(true);
  });
});

describe('where a classic answer\'s size ends', () => {
  test.each<[string, boolean, ReturnType<typeof parseClassicHead> | string]>([
    ['', false, undefined as never],
    ['-1', false, { kind: 'missing' }],
    ['-1      ', false, { kind: 'missing' }],
    ['12', false, undefined as never],
    ['12abc', false, { kind: 'size', size: 12, headerLength: 2 }],
    ['5\n', false, { kind: 'size', size: 5, headerLength: 1 }],
    ['0', true, { kind: 'size', size: 0, headerLength: 1 }],
    ['0', false, undefined as never],
    ['0       ', false, { kind: 'size', size: 0, headerLength: 8 }],
    ['0x', false, 'PROTOCOL'],
    ['01', false, 'PROTOCOL'],
    ['12  ', false, undefined as never],
    ['12      abc', false, 'PROTOCOL'],
    ['12 x', false, undefined as never],
    ['12 xxxxxx', false, 'PROTOCOL'],
    ['12  ', true, 'PROTOCOL'],
    ['12', true, 'PEER_CLOSED'],
    ['', true, 'PEER_CLOSED'],
    ['-5', false, 'PROTOCOL'],
    ['-', true, 'PROTOCOL'],
    ['abc', false, 'PROTOCOL'],
    ['1234567890123456x', false, 'PROTOCOL'],
  ])('%j (ended %p) -> %j', (text, ended, expected) => {
    const bytes = Buffer.from(text, 'latin1');
    if (typeof expected === 'string') {
      expect(codeOf(() => parseClassicHead(bytes, ended))).toBe(expected);
    } else {
      expect(parseClassicHead(bytes, ended)).toEqual(expected);
    }
  });

  test('the rule never accepts a wrong boundary: for every small file, a complete stream either parses right or is refused', () => {
    const samples = ['', 'a', 'abc', '1', '12x', '9 lives', ' padded', '\nnl', '0zero', 'x'.repeat(120), '7'.repeat(13)];
    for (const content of samples) {
      const stream = Buffer.from(`${content.length}${content}`, 'latin1');
      let head: ReturnType<typeof parseClassicHead>;
      try {
        head = parseClassicHead(stream, true);
      } catch {
        continue; // refused: fine
      }
      if (!head || head.kind !== 'size') continue;
      // Accepted only if the data that follows is exactly the file.
      if (head.headerLength + head.size === stream.length) {
        expect(stream.subarray(head.headerLength).toString('latin1')).toBe(content);
      }
    }
  });

  test('a stream that fits a shorter size explains that the file starts with digits', () => {
    // "6" + "123abc": digits "6123", but 7 bytes in all fit size 6.
    expect(explainShortClassic('6123', 3, 6123, 7)).toMatch(/starts with digits/);
    expect(explainShortClassic('500', 10, 500, 13)).toMatch(/after 10 of 500 bytes/);
  });
});
