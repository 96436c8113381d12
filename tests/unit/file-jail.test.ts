// The jail against a traversal corpus on a real directory tree: symlink escapes, FIFOs, directories, odd names.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetkitError } from '../../src/errors.js';
import { normaliseName, openInJail } from '../../src/services/file/serve/jail.js';

let base: string;
let root: string;

beforeAll(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'netkit-jail-')));
  root = join(base, 'root');
  mkdirSync(join(root, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(root, 'a.txt'), 'A');
  writeFileSync(join(root, 'sub', 'b.txt'), 'BB');
  writeFileSync(join(root, 'sub', 'deeper', 'c.txt'), 'CCC');
  writeFileSync(join(root, '%2e%2e'), 'literal');
  writeFileSync(join(root, '．．'), 'fullwidth dots are just a name');
  writeFileSync(join(base, 'secret.txt'), 'outside');
  mkdirSync(join(base, 'rootsibling'));
  writeFileSync(join(base, 'rootsibling', 'x.txt'), 'prefix trick');
  symlinkSync(join(base, 'secret.txt'), join(root, 'escape'));
  symlinkSync('../secret.txt', join(root, 'escape-relative'));
  symlinkSync(base, join(root, 'escape-dir'));
  symlinkSync('sub/b.txt', join(root, 'inside-link'));
  symlinkSync('sub', join(root, 'inside-dir'));
  symlinkSync('nowhere', join(root, 'dangling'));
  symlinkSync('/etc/passwd', join(root, 'etc'));
  symlinkSync('/dev/zero', join(root, 'zero'));
  symlinkSync('../rootsibling/x.txt', join(root, 'sibling'));
  symlinkSync('loop2', join(root, 'loop1'));
  symlinkSync('loop1', join(root, 'loop2'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

async function outcome(name: string): Promise<string> {
  try {
    const f = await openInJail(root, name);
    const size = Number(f.stat.size);
    await f.handle.close();
    return `ok:${size}`;
  } catch (err) {
    if (err instanceof NetkitError) return err.code;
    throw err;
  }
}

describe('the jail', () => {
  test.each([
    ['a.txt', 'ok:1'],
    ['sub/b.txt', 'ok:2'],
    ['./sub//deeper/./c.txt', 'ok:3'],
    ['inside-link', 'ok:2'],
    ['inside-dir/b.txt', 'ok:2'],
    ['%2e%2e', 'ok:7'],
    ['．．', 'ok:30'],
  ])('serves %j', async (name, expected) => {
    expect(await outcome(name)).toBe(expected);
  });

  test.each([
    // traversal and absolute forms
    ['../secret.txt', 'FORBIDDEN'],
    ['..', 'FORBIDDEN'],
    ['sub/../../secret.txt', 'FORBIDDEN'],
    ['sub/../a.txt', 'FORBIDDEN'],
    ['....//secret.txt', 'NOT_FOUND'],
    ['/etc/passwd', 'FORBIDDEN'],
    ['//etc/passwd', 'FORBIDDEN'],
    ['..\\secret.txt', 'FORBIDDEN'],
    ['sub\\b.txt', 'FORBIDDEN'],
    ['C:/Windows/win.ini', 'FORBIDDEN'],
    ['c:secret.txt', 'FORBIDDEN'],
    ['%2e%2e/secret.txt', 'NOT_FOUND'],
    ['..%2fsecret.txt', 'NOT_FOUND'],
    // symlinks out of the root
    ['escape', 'FORBIDDEN'],
    ['escape-relative', 'FORBIDDEN'],
    ['escape-dir/secret.txt', 'FORBIDDEN'],
    ['etc', 'FORBIDDEN'],
    ['zero', 'FORBIDDEN'],
    ['sibling', 'FORBIDDEN'],
    ['loop1', 'FORBIDDEN'],
    ['dangling', 'NOT_FOUND'],
    // not regular files
    ['.', 'FORBIDDEN'],
    ['sub', 'FORBIDDEN'],
    ['sub/', 'FORBIDDEN'],
    ['inside-dir', 'FORBIDDEN'],
    ['fifo', 'FORBIDDEN'],
    // bad characters
    ['a.txt\u0000.jpg', 'BAD_REQUEST'],
    ['a\u001b[31m.txt', 'BAD_REQUEST'],
    ['a\n.txt', 'BAD_REQUEST'],
    ['a\u0085.txt', 'BAD_REQUEST'],
    ['evil\u202etxt.exe', 'BAD_REQUEST'],
    ['', 'BAD_REQUEST'],
    // missing
    ['nope.txt', 'NOT_FOUND'],
    ['a.txt/more', 'NOT_FOUND'],
    ['x'.repeat(300), 'BAD_REQUEST'],
  ])('refuses %j with %s', async (name, code) => {
    expect(await outcome(name)).toBe(code);
  });

  test('normalisation drops "." and empty segments and nothing else', () => {
    expect(normaliseName('./a//b/./c')).toEqual(['a', 'b', 'c']);
    expect(normaliseName('a b/ç')).toEqual(['a b', 'ç']);
  });

  test('a FIFO is refused without blocking the open', async () => {
    const started = Date.now();
    expect(await outcome('fifo')).toBe('FORBIDDEN');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
