// Pure pieces of the command line: naming a server and a file, the bar's layout at any width, JSON that is safe to print, one spelling per address.
import { describe, expect, test } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { safeJson } from '../../src/cli/output.js';
import { createProgressBar, displayWidth, etaText, fitName, layoutBar } from '../../src/cli/progress.js';
import { parseFetchSource, parseTarget } from '../../src/services/target.js';
import { canonicalHost } from '../../src/transport/trust.js';
import { codeOf } from '../helpers/errors.js';

const D = { host: 'localhost', port: 8881 };

describe('parseTarget', () => {
  test.each([
    ['nas', { host: 'nas', port: 8881, portGiven: false }],
    ['nas:1234', { host: 'nas', port: 1234, portGiven: true }],
    ['127.0.0.1:8881', { host: '127.0.0.1', port: 8881, portGiven: true }],
    ['[::1]', { host: '::1', port: 8881, portGiven: false }],
    ['[::1]:9', { host: '::1', port: 9, portGiven: true }],
    ['fe80::1', { host: 'fe80::1', port: 8881, portGiven: false }],
  ])('%p', (text, want) => expect(parseTarget(text, 8881)).toMatchObject(want));

  test.each(['', ' ', 'h:0', 'h:65536', 'h:', ':1', '[::1]:x', 'a b', 'a/b'])('%j is a usage error', (text) => {
    expect(codeOf(() => parseTarget(text, 8881))).toBe('USAGE');
  });
});

describe('parseTarget with announced instance names (-H, disk query hosts)', () => {
  const I = { instanceNames: true };
  test.each([
    ['Office NAS', { host: 'Office NAS', port: 8881, portGiven: false, instance: true }],
    ['Office NAS:9000', { host: 'Office NAS', port: 9000, portGiven: true, instance: true }],
    ['NAS: media', { host: 'NAS: media', port: 8881, instance: true }],
    ['A/V room', { host: 'A/V room', instance: true }],
    ['nas (2)', { host: 'nas (2)', instance: true }],
    ['nas', { host: 'nas', port: 8881, portGiven: false }],
    ['[::1]:9', { host: '::1', port: 9 }],
  ])('%p', (text, want) => expect(parseTarget(text, 8881, I)).toMatchObject(want));

  test('a plain host name is not marked as an instance name', () => {
    expect(parseTarget('nas:1', 8881, I).instance).toBeUndefined();
  });

  // Still malformed: empty, a bad port, a broken bracket, control characters, more than one DNS label's 63 bytes.
  test.each(['', ' ', 'Office NAS:0', 'Office NAS:', 'Office NAS:65536', 'h:0', ':1', '[::1', '[::1]:x', 'a\u0007b c', `${'x'.repeat(61)} yz`])('%j is a usage error', (text) => {
    expect(codeOf(() => parseTarget(text, 8881, I))).toBe('USAGE');
  });
});

describe('parseFetchSource', () => {
  test.each([
    ['notes.txt', undefined, undefined, { host: 'localhost', port: 8881, name: 'notes.txt' }],
    ['notes.txt', '127.0.0.1:9000', undefined, { host: '127.0.0.1', port: 9000, name: 'notes.txt' }],
    ['notes.txt', '[::1]', 9000, { host: '::1', port: 9000, name: 'notes.txt' }],
    ['127.0.0.1:notes.txt', undefined, undefined, { host: '127.0.0.1', port: 8881, name: 'notes.txt' }],
    ['nas:dir/a:b.txt', undefined, 9000, { host: 'nas', port: 9000, name: 'dir/a:b.txt' }],
    ['[::1]:dir/x', undefined, undefined, { host: '::1', port: 8881, name: 'dir/x' }],
    ['a:b.txt', 'localhost', undefined, { host: 'localhost', port: 8881, name: 'a:b.txt' }],
    ['netkit://nas/movies/big.iso', undefined, undefined, { host: 'nas', port: 8881, name: 'movies/big.iso' }],
    ['netkit://[::1]:7/x', undefined, undefined, { host: '::1', port: 7, name: 'x' }],
  ] as const)('%p with -H %p --port %p', (name, host, port, want) => {
    expect(parseFetchSource(name, host, port, D)).toEqual(want);
  });

  test.each([
    ['netkit://nas/', undefined, undefined],
    ['netkit:nas/x', undefined, undefined],
    ['netkit://nas/x', 'other', undefined],
    ['netkit://nas:1/x', undefined, 2],
    ['x', 'h:1', 2],
    ['x', 'h:0', undefined],
  ] as const)('%p with -H %p --port %p is a usage error', (name, host, port) => {
    expect(codeOf(() => parseFetchSource(name, host, port, D))).toBe('USAGE');
  });

  test('-H takes an announced name with spaces', () => {
    expect(parseFetchSource('notes.txt', 'plain share', undefined, D)).toEqual({ host: 'plain share', port: 8881, name: 'notes.txt', instance: true });
    expect(codeOf(() => parseFetchSource('notes.txt', 'plain share:0', undefined, D))).toBe('USAGE');
  });

  test('with --discover, NAME is a file name, and naming a server as well is a usage error', () => {
    const discover = { discover: true };
    expect(parseFetchSource('ab:c.txt', undefined, undefined, D, discover)).toEqual({ host: 'localhost', port: 8881, name: 'ab:c.txt' });
    for (const [name, host, port] of [['x', '127.0.0.1:18881', undefined], ['netkit://nas/x', undefined, undefined], ['x', undefined, 9000]] as const) {
      expect(codeOf(() => parseFetchSource(name, host, port, D, discover))).toBe('USAGE');
    }
    try {
      parseFetchSource('x', 'nas', undefined, D, discover);
    } catch (err) {
      expect((err as Error).message).toBe('the server is given twice: with -H nas and with --discover');
    }
  });
});

describe('canonicalHost: every spelling of one address is one known_hosts key', () => {
  test.each([
    ['127.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['[::1]', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['FE80:0::1', 'fe80::1'],
    ['LocalHost', 'localhost'],
    ['nas.example', 'nas.example'],
  ])('%p -> %p', (spelling, canonical) => expect(canonicalHost(spelling)).toBe(canonical));
});

describe('safeJson', () => {
  test('C1 controls, DEL, bidi overrides and isolates are escaped; the value reads back the same', () => {
    const value = { name: 'a\u009b2Jb\u202ec\u2066d\u007fe\u2028f', n: 1 };
    const text = safeJson(value);
    expect(text).not.toMatch(/[\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028]/);
    expect(text).toContain('\\u009b');
    expect(text).toContain('\\u202e');
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('the progress bar layout', () => {
  const fields = (name: string) => ({ name, progress: 0.46, done: '470M', size: '1.0G', speed: '612M/s', eta: '59m59s' });
  const names = ['big.iso', 'a-rather-long-file-name-for-a-narrow-terminal.tar.gz', 'x'.repeat(300)];

  test.each([40, 41, 50, 60, 72, 80, 100, 132, 200])('at %i columns every line fits and keeps the percentage, speed and ETA', (columns) => {
    for (const name of names) {
      const line = layoutBar(columns, fields(name));
      expect(line.length).toBeLessThanOrEqual(columns - 1);
      expect(line).toContain(' 46%');
      expect(line).toContain('612M/s');
      expect(line).toContain('ETA 59m59s');
    }
  });

  test('the name is shortened (in the middle) before the bar or the byte counts go', () => {
    const line = layoutBar(80, fields(names[1]!));
    expect(line).toMatch(/^a-rather-.*….*\.tar\.gz \[=+ *\]  46% \| 470M\/1\.0G \| 612M\/s \| ETA 59m59s$/);
    expect(layoutBar(100, fields('big.iso'))).toMatch(/^big\.iso \[={14} {16}\]  46% \| 470M\/1\.0G/);
  });

  // Names a terminal shows wider or narrower than their .length: CJK (2 columns each), emoji and ZWJ
  // sequences (2 columns, up to 11 UTF-16 units), combining accents (0 columns), fullwidth forms.
  const wide = [
    '写真の整理-二〇二四年-夏休みの思い出-完全版.jpg',
    '🎉🎉👨‍👩‍👧‍👦 party 🎂🎂🏳️‍🌈 final cut.mov',
    `${'e\u0301'.repeat(60)}.txt`,
    'ＦＵＬＬＷＩＤＴＨ－ｎａｍｅ－한국어－파일.bin',
    '👨‍👩‍👧‍👦'.repeat(30),
  ];
  const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
  const clusters = (t: string): string[] => [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(t)].map((g) => g.segment);

  test.each([40, 41, 60, 61, 80, 100])('at %i columns, wide, combining and emoji names fit in display columns, cut only between whole graphemes', (columns) => {
    for (const name of wide) {
      for (const files of [undefined, '1204/3900 files']) {
        const line = layoutBar(columns, { ...fields(name), ...(files ? { files } : {}) });
        expect(displayWidth(line)).toBeLessThanOrEqual(columns - 1);
        expect(line).toContain(' 46%');
        expect(line).toMatch(/612M\/s \| ETA 59m59s$|612M\/s ETA 59m59s$/);
        expect(line).not.toMatch(lone);
        // Every grapheme of the shown name is one of the name's own (or the ellipsis).
        const shown = line.slice(0, line.indexOf(' 46%')).trimEnd().replace(/ \[[= ]*\]$/, '').trimEnd();
        const own = new Set(clusters(name));
        for (const g of clusters(shown)) expect(g === '…' || own.has(g)).toBe(true);
      }
    }
  });

  test('the ETA takes at most 6 columns, however long it is', () => {
    expect([850, 59_900, 3_599_000, 7_380_000, 359_940_000, 1e12].map(etaText)).toEqual(['850ms', '59.9s', '59m59s', '2h03m', '99h59m', '>99h']);
  });

  test('fitName counts columns, not UTF-16 units, and pads to exactly the width asked', () => {
    expect(displayWidth(fitName('写真写真写真写真', 9))).toBeLessThanOrEqual(9);
    expect(fitName('写真写真写真写真', 9)).toMatch(/^写真…写真$/);
    expect(displayWidth(fitName('写真写真写真写真', 9, true))).toBe(9);
    expect(fitName('e\u0301e\u0301e\u0301', 3)).toBe('e\u0301e\u0301e\u0301'); // three columns, six units
    expect(fitName('👨‍👩‍👧‍👦👨‍👩‍👧‍👦👨‍👩‍👧‍👦', 5)).toBe('👨‍👩‍👧‍👦…👨‍👩‍👧‍👦');
  });

  test('for a set the name has a fixed width: the bar stays where it is from one file to the next', () => {
    const at = (name: string, columns: number): number => {
      const line = layoutBar(columns, { ...fields(name), files: '12/100 files' });
      return displayWidth(line.slice(0, line.indexOf(' [')));
    };
    for (const columns of [60, 80, 120]) {
      const places = new Set(['a.jpg', 'photos/2024/a-much-longer-name-than-that.jpg', wide[0]!, wide[1]!].map((n) => at(n, columns)));
      expect(places.size).toBe(1);
    }
  });

  test('frames of one bar keep one width while speed, ETA and counts change length', async () => {
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 60 });
    let text = '';
    stream.setEncoding('utf8').on('data', (d: string) => (text += d));
    const bar = (await createProgressBar(stream, wide[0]!))!;
    bar.update(5, 2_000_000_000);
    for (const n of [9_000, 900_000, 90_000_000, 1_999_000_000]) {
      await new Promise((r) => setTimeout(r, 110)); // cli-progress draws at most 10 frames a second
      bar.update(n, 2_000_000_000);
    }
    bar.stop();
    const frames = text
      .replace(/\u001b\[1G/g, '\n')
      .replace(/\u001b(?:\[[0-9;?]*[A-Za-z]|[78])/g, '')
      .split(/[\r\n]/)
      .filter((f) => f.includes('%'));
    expect(frames.length).toBeGreaterThanOrEqual(3);
    expect(new Set(frames.map(displayWidth)).size).toBe(1);
    expect(new Set(frames.map((f) => displayWidth(f.slice(0, f.indexOf('%'))))).size).toBe(1);
    for (const f of frames) expect(displayWidth(f)).toBeLessThanOrEqual(59);
  });

  test('a resized terminal gets a bar of its new width at the next frame', async () => {
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 100 });
    let text = '';
    stream.setEncoding('utf8').on('data', (d: string) => (text += d));
    const bar = (await createProgressBar(stream, 'big.iso'))!;
    bar.update(10, 100);
    stream.columns = 40;
    bar.update(60, 100); // cli-progress draws at most 10 frames a second: stop() draws the last one
    bar.stop();
    const frames = text
      .replace(/\u001b\[1G/g, '\n') // cli-progress starts each frame at column 1
      .replace(/\u001b(?:\[[0-9;?]*[A-Za-z]|[78])/g, '')
      .split(/[\r\n]/)
      .filter((f) => f.includes('%'));
    expect(frames[0]!.length).toBeGreaterThan(60);
    expect(frames.at(-1)).toContain(' 60%');
    expect(frames.at(-1)!.length).toBeLessThanOrEqual(39);
  });
});
