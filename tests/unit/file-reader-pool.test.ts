// The reader threads on real files: each ask of a mixed batch gets its own answer (contents, hashes, facts and refusals as the jail and fstat give them), listings with their entries, and several roots at once.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validatorOf } from '../../src/services/file/serve/hash-cache.js';
import { ReaderPool, type ReadOutcome } from '../../src/services/file/serve/reader-pool.js';

let base: string;
let root: string;
let pool: ReaderPool;
const SMALL = 4096;

beforeAll(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'netkit-readers-')));
  root = join(base, 'root');
  mkdirSync(join(root, 'd'), { recursive: true });
  writeFileSync(join(base, 'secret.txt'), 'secret');
  for (let i = 0; i < 100; i++) writeFileSync(join(root, 'd', `f${i}`), `file number ${i} `.repeat(i));
  writeFileSync(join(root, 'big.bin'), Buffer.alloc(SMALL + 1, 7));
  writeFileSync(join(root, 'empty'), '');
  symlinkSync(join(base, 'secret.txt'), join(root, 'link-out'));
  symlinkSync('d/f3', join(root, 'link-in'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
  writeFileSync(join(root, 'linked'), 'two names');
  linkSync(join(root, 'linked'), join(root, 'd', 'second-name'));
  execFileSync('touch', ['-m', '-d', '2024-05-01 12:00:00.123999999 UTC', join(root, 'd', 'f5')]);
  pool = new ReaderPool({ small: SMALL }).start();
});

afterAll(() => {
  pool.close();
  rmSync(base, { recursive: true, force: true });
});

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function small(r: ReadOutcome): Extract<ReadOutcome, { k: 'small' }> {
  if (r.k !== 'small') throw new Error(`expected a small file, got ${JSON.stringify(r)}`);
  return r;
}

describe('ReaderPool.read', () => {
  test('a hundred files asked at once each get their own bytes, SHA-256 and facts', async () => {
    const got = await Promise.all(Array.from({ length: 100 }, (_, i) => pool.read(root, `d/f${i}`, false)));
    got.forEach((r, i) => {
      const s = small(r);
      const want = `file number ${i} `.repeat(i);
      expect(s.data.toString()).toBe(want);
      expect(s.digest.toString('hex')).toBe(sha(want));
      const st = statSync(join(root, 'd', `f${i}`), { bigint: true });
      expect(s.facts.size).toBe(Number(st.size));
      expect(s.facts.mode).toBe(Number(st.mode & 0o7777n));
      expect(s.facts.validator.equals(validatorOf(st))).toBe(true);
    });
    // Whole milliseconds, rounded down, as RESPONSE carries them.
    expect(small(got[5]!).facts.mtimeMs).toBe(Date.UTC(2024, 4, 1, 12, 0, 0, 123));
  });

  test('refusals, large files and good files mixed in one batch stay in order', async () => {
    const [out, inLink, fifo, dir, missing, big, empty, hard, hardOk, dotdot] = await Promise.all([
      pool.read(root, 'link-out', false),
      pool.read(root, 'link-in', false),
      pool.read(root, 'fifo', false),
      pool.read(root, 'd', false),
      pool.read(root, 'd/nothing', false),
      pool.read(root, 'big.bin', false),
      pool.read(root, 'empty', false),
      pool.read(root, 'linked', true),
      pool.read(root, 'linked', false),
      pool.read(root, 'no/such/dir/f', false),
    ]);
    expect(out).toMatchObject({ k: 'refused', error: { code: 'FORBIDDEN', message: 'the name resolves outside the served directory' } });
    expect(small(inLink!).data.toString()).toBe('file number 3 '.repeat(3));
    expect(fifo).toMatchObject({ k: 'refused', error: { code: 'FORBIDDEN', message: 'not a regular file' } });
    expect(dir).toMatchObject({ k: 'refused', error: { code: 'FORBIDDEN', message: 'is a directory' } });
    expect(missing).toMatchObject({ k: 'refused', error: { code: 'NOT_FOUND' } });
    expect(big).toMatchObject({ k: 'large', facts: { size: SMALL + 1 } });
    expect(big!.k === 'large' && big.facts.validator.length).toBe(16);
    expect(small(empty!).digest.toString('hex')).toBe(sha(''));
    expect(hard).toMatchObject({ k: 'refused', error: { code: 'FORBIDDEN', message: 'the file has 2 hard links, and this server refuses hard-linked files' } });
    expect(small(hardOk!).data.toString()).toBe('two names');
    expect(dotdot).toMatchObject({ k: 'refused', error: { code: 'NOT_FOUND' } });
  });

  test('a name with a NUL byte is an error, never a file', async () => {
    await expect(pool.read(root, 'd/f1\u0000x', false)).resolves.toMatchObject({ k: 'error' });
  });
});

describe('ReaderPool.list', () => {
  test('entries sorted by name bytes with their stat; a link leading out is named as a link (numbers 0), a FIFO as other', async () => {
    const r = await pool.list(root, root, 1000);
    if (r.k !== 'entries') throw new Error(JSON.stringify(r));
    expect(r.entries.map((e) => e.name.toString())).toEqual(['big.bin', 'd', 'empty', 'fifo', 'link-in', 'link-out', 'linked']);
    expect(r.entries.map((e) => e.t)).toEqual(['file', 'dir', 'file', 'other', 'file', 'link', 'file']);
    expect(r.entries.find((e) => e.name.toString() === 'linked')).toMatchObject({ size: 9, nlink: 2 });
    expect(r.entries.find((e) => e.name.toString() === 'link-in')).toMatchObject({ size: 'file number 3 '.repeat(3).length });
    expect(r.entries.find((e) => e.name.toString() === 'link-out')).toMatchObject({ size: 0, mtimeMs: 0, mode: 0, nlink: 0 });
    expect(r.skipped).toBe(0);
  });

  test('lists and reads asked together, a cap, a vanished directory', async () => {
    const [sub, file, capped, gone] = await Promise.all([pool.list(root, join(root, 'd'), 1000), pool.read(root, 'd/f9', false), pool.list(root, join(root, 'd'), 10), pool.list(root, join(root, 'gone'), 10)]);
    expect(sub.k === 'entries' && sub.entries.length).toBe(101);
    expect(small(file).data.toString()).toBe('file number 9 '.repeat(9));
    expect(capped).toEqual({ k: 'too-many' });
    expect(gone).toEqual({ k: 'gone' });
  });

  test('two roots in the same turn are answered under their own root', async () => {
    const other = join(base, 'other');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'f1'), 'other root');
    const [a, b, c] = await Promise.all([pool.read(root, 'd/f1', false), pool.read(other, 'f1', false), pool.read(root, 'd/f2', false)]);
    expect(small(a).data.toString()).toBe('file number 1 ');
    expect(small(b).data.toString()).toBe('other root');
    expect(small(c).data.toString()).toBe('file number 2 '.repeat(2));
  });
});
