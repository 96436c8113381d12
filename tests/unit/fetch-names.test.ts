// What a NAME asks for and where its files land, the check every path from a server must pass, and how file list and the bar show things.
import { describe, expect, test } from '@jest/globals';
import { checkListed, parseName, rootTargetOf, targetOf, unsafePath } from '../../src/services/file/fetch/names.js';
import { modeString, renderTable } from '../../src/commands/file/list-run.js';
import { layoutBar } from '../../src/cli/progress.js';
import { retryLine, setSummary } from '../../src/commands/file/fetch-render.js';
import { EntryKind } from '../../src/protocol/file-list.js';

describe('parseName', () => {
  test.each([
    ['big.iso', 'plain', 'big.iso'],
    ['movies//./big.iso', 'plain', 'movies/big.iso'],
    ['photos/', 'dir', 'photos'],
    ['.', 'dir', ''],
    ['./', 'dir', ''],
    ['*.iso', 'glob', ''],
    ['photos/**/*.jpg', 'glob', 'photos'],
    ['a/b/c?.txt', 'glob', 'a/b'],
    ['a/[xy]/z', 'glob', 'a'],
    ['../etc/passwd', 'plain', '../etc/passwd'],
  ])('%j is a %s NAME asking for %j', (arg, kind, remote) => {
    expect(parseName(arg)).toMatchObject({ kind, remote });
  });

  test("a directory or glob with '..', or control characters, is refused before anything is sent", () => {
    expect(() => parseName('../x/')).toThrow(/'\.\.' segment/);
    expect(() => parseName('a/../*.txt')).toThrow(/'\.\.' segment/);
    expect(() => parseName('a\u0007b')).toThrow(/control characters/);
  });

  test('globs: ** crosses directories, * does not, dotfiles only by an explicit dot; one segment without ** lists without recursion', () => {
    const g = parseName('photos/**/*.jpg');
    expect([g.matcher!('photos/2024/a.jpg'), g.matcher!('photos/a.jpg'), g.matcher!('photos/.x/a.jpg'), g.matcher!('photos/2024/a.png')]).toEqual([true, true, false, false]);
    const one = parseName('docs/*.md');
    expect(one.recursive).toBe(false);
    expect([one.matcher!('docs/a.md'), one.matcher!('docs/x/a.md'), one.matcher!('docs/.a.md')]).toEqual([true, false, false]);
    expect(parseName('docs/*/a.md').recursive).toBe(true);
    expect(parseName('!x*').matcher!('!xy')).toBe(true); // no negation
  });
});

describe('where a listed path lands', () => {
  test.each([
    ['photos', undefined, 'photos/2024/a.jpg', 'photos/2024/a.jpg'],
    ['a/b', undefined, 'a/b/c/d.txt', 'b/c/d.txt'],
    ['a/b/', undefined, 'a/b/x', 'b/x'],
    ['a/b', 'mine', 'a/b/c/d.txt', 'mine/c/d.txt'],
    ['.', undefined, 'x/y', 'x/y'],
    ['.', 'all', 'x/y', 'all/x/y'],
    ['photos/**/*.jpg', undefined, 'photos/2024/a.jpg', 'photos/2024/a.jpg'],
    ['a/b/*.txt', undefined, 'a/b/x.txt', 'b/x.txt'],
    ['*.iso', undefined, 'x.iso', 'x.iso'],
  ])('NAME %j (-o %j): %j lands as %j', (name, rename, listed, target) => {
    expect(targetOf(parseName(name, rename), listed)).toBe(target);
  });

  test('a directory NAME itself', () => {
    expect([rootTargetOf(parseName('a/b')), rootTargetOf(parseName('a/b', 'x')), rootTargetOf(parseName('.')), rootTargetOf(parseName('*.x'))]).toEqual(['b', 'x', undefined, undefined]);
  });
});

describe('paths from the server (zip-slip)', () => {
  test.each([
    ['', 'an empty name'],
    ['/etc/passwd', 'an absolute path'],
    ['C:x', 'a drive letter'],
    ['c:/windows', 'a drive letter'],
    ['a\\b', 'a backslash'],
    ['a/\u0000b', 'a control character'],
    ['a/\u009bb', 'a control character'],
    ['a/\u202eb', 'a control character'],
    ['a//b', 'an empty or "." segment'],
    ['a/./b', 'an empty or "." segment'],
    ['a/b/', 'an empty or "." segment'],
    ['..', 'a ".." segment'],
    ['a/../../x', 'a ".." segment'],
    [`a/${'x'.repeat(256)}`, 'a segment longer than 255 bytes'],
  ])('%j is refused: %s', (p, why) => {
    expect(unsafePath(p)).toBe(why);
  });

  test.each(['a', 'a b/ü/日本.txt', 'x.netkit', 'a/.netkit', '...', '.hidden/x'])('%j is a plain relative path', (p) => {
    expect(unsafePath(p)).toBeUndefined();
  });

  test('a listed path must lie below the listed directory, and never land in .netkit', () => {
    expect(() => checkListed('other/x', 'dir', 'other/x')).toThrow(/outside the listed directory/);
    expect(() => checkListed('dir/x', 'dir', 'dir/x')).not.toThrow();
    expect(() => checkListed('.netkit/x', '', '.netkit/x')).toThrow(/where netkit keeps partial downloads/);
    expect(() => checkListed('d/../x', 'd', 'd/../x')).toThrow(/'d\/\.\.\/x' \(a "\.\." segment\)/);
  });
});

describe('file list rendering', () => {
  test.each([
    [false, 0o644, '-rw-r--r--'],
    [true, 0o755, 'drwxr-xr-x'],
    [false, 0o4755, '-rwsr-xr-x'],
    [false, 0o2644, '-rw-r-Sr--'],
    [true, 0o1777, 'drwxrwxrwt'],
    [false, 0o000, '----------'],
  ])('dir %s mode %o is %s', (dir, mode, text) => {
    expect(modeString(dir, mode)).toBe(text);
  });

  test('paths below the listed directory, sizes right-aligned, directories marked, names made safe to print', () => {
    const t = renderTable('a', [
      { name: 'a/x', kind: EntryKind.DIRECTORY, size: 0, mtimeMs: 0, mode: 0o755 },
      { name: 'a/x/big', kind: EntryKind.FILE, size: 1536, mtimeMs: 0, mode: 0o644 },
      { name: 'a/\u001b[31mred', kind: EntryKind.FILE, size: 3, mtimeMs: 0, mode: 0o600 },
    ]);
    const lines = t.split('\n');
    expect(lines[0]).toMatch(/^drwxr-xr-x {5}- {2}\S+ \S+ {2}x\/$/);
    expect(lines[1]).toMatch(/^-rw-r--r-- {2}1\.5K {2}\S+ \S+ {2}x\/big$/);
    expect(lines[2]).toMatch(/\\x1b\[31mred$/);
  });
});

describe('the bar and the lines of a set', () => {
  test('the files count shows beside the byte counts, and goes with them when the line is narrow', () => {
    const f = { name: 'photos/2024/a-long-name.jpg', progress: 0.5, done: '10M', size: '20M', speed: '5.0M/s', eta: '2.0s', files: '12/100 files' };
    expect(layoutBar(100, f)).toMatch(/ 50% \| 12\/100 files \| 10M\/20M \| 5\.0M\/s \| ETA 2\.0s$/);
    expect(layoutBar(100, f)).toMatch(/^photos\/2024\/a-long-name\.jpg +\[/);
    expect(layoutBar(40, f).length).toBeLessThanOrEqual(39);
    expect(layoutBar(40, f)).not.toMatch(/files/);
  });

  test('the retry line of a set counts files and bytes; the summary counts fetched, skipped, failed, resumed', () => {
    expect(retryLine({ reason: 'connection lost', have: 3 * 1024 * 1024, size: 40 * 1024 * 1024, discarded: 0, delayMs: 1000, attempt: 1, of: 5, files: { done: 120, total: 10000 } })).toBe('connection lost after 120/10000 files (3.0M of 40M); retrying in 1s (1/5)');
    const r = { files: [], fetched: 9986, skipped: 12, failed: 2, resumed: 1, dirs: 100, skippedByServer: 0, bytes: 40e6, received: 40e6, retries: 1, durationMs: 3400, host: 'h', port: 1, session: true };
    expect(setSummary(r)).toBe('10000 files in 100 directories: 9986 fetched (38M, every one verified), 12 skipped (already there), 2 failed, 1 resumed; 11M/s in 3.4s, 1 retry\n');
  });
});
