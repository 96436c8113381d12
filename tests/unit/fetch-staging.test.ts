// The staging directory and its locks on a real file system: what is refused, what is published, what a lock says, which targets are valid.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs, { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetkitError } from '../../src/errors.js';
import { acquireLock } from '../../src/services/file/fetch/lock.js';
import { Staging, stagingKey, targetSegments } from '../../src/services/file/fetch/staging.js';
import { codeOf, rejection } from '../helpers/errors.js';

let base: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-staging-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));
const outDir = (): string => mkdtempSync(join(base, 'out-'));
const isRoot = process.getuid?.() === 0;

describe('targets', () => {
  test.each(['a.bin', 'photos/2024/a.jpg', 'x/.hidden', 'é/ü.txt'])('%p is a target', (t) => {
    expect(targetSegments(t)).toEqual(t.split('/'));
    expect(stagingKey(t)).toMatch(/^[A-Za-z0-9._-]{1,48}\.[0-9a-f]{16}$/);
  });

  test.each(['', '.netkit', '.netkit/x', '/abs', 'a//b', '../x', 'a/../b', './a', 'a/.', 'a\\b', 'a\u0000b', 'a\nb', 'x'.repeat(256)])('%j is refused', (t) => {
    expect(codeOf(() => targetSegments(t))).toBe('USAGE');
  });

  test('two targets with the same last segment get different entries', () => {
    expect(stagingKey('a/x.bin')).not.toBe(stagingKey('b/x.bin'));
    expect(stagingKey('a/x.bin').startsWith('x.bin.')).toBe(true);
  });
});

describe('the staging directory', () => {
  test('created private (0700); a looser mode on our own directory is tightened', async () => {
    const out = outDir();
    const s = await Staging.open(out);
    expect(statSync(s.dir).mode & 0o777).toBe(0o700);
    chmodSync(s.dir, 0o755);
    await Staging.open(out);
    expect(statSync(s.dir).mode & 0o777).toBe(0o700);
  });

  test('a symbolic link, a file or another user\u2019s directory at .netkit is refused', async () => {
    const out = outDir();
    mkdirSync(join(out, 'elsewhere'));
    symlinkSync(join(out, 'elsewhere'), join(out, '.netkit'));
    expect((await rejection(Staging.open(out))).message).toMatch(/symbolic link/);
    rmSync(join(out, '.netkit'));
    writeFileSync(join(out, '.netkit'), '');
    expect((await rejection(Staging.open(out))).message).toMatch(/not a directory/);
    if (isRoot) {
      rmSync(join(out, '.netkit'));
      mkdirSync(join(out, '.netkit'), { mode: 0o700 });
      chownSync(join(out, '.netkit'), 65534, 65534);
      const err = await rejection(Staging.open(out));
      expect(err.code).toBe('PERMISSION');
      expect(err.message).toMatch(/belongs to another user \(uid 65534\)/);
    }
  });

  test('--out that is missing or not a directory', async () => {
    expect((await rejection(Staging.open(join(base, 'nope')))).message).toMatch(/no such directory/);
    const f = join(base, 'afile');
    writeFileSync(f, '');
    expect((await rejection(Staging.open(f))).message).toMatch(/not a directory/);
  });
});

describe('a staged file', () => {
  async function verifiedPart(out: string, target: string, text: string): Promise<{ fd: number; file: ReturnType<Staging['file']> }> {
    const staging = await Staging.open(out);
    const file = staging.file(target);
    const fd = await file.create();
    fs.writeSync(fd, text);
    return { fd, file };
  }

  test('publishes by link without --force: never replaces a file that appeared, and keeps the data', async () => {
    const out = outDir();
    const { fd, file } = await verifiedPart(out, 'a.bin', 'verified');
    writeFileSync(join(out, 'a.bin'), 'mine');
    const err = await rejection(file.publish(fd, false));
    expect(err.code).toBe('EXISTS');
    expect(err.message).toContain(`the verified data is kept in ${file.partPath}`);
    expect(readFileSync(join(out, 'a.bin'), 'utf8')).toBe('mine');
    expect(readFileSync(file.partPath, 'utf8')).toBe('verified');
    fs.closeSync(fd);
  });

  test('with --force replaces a symbolic link at the final name without following it', async () => {
    const out = outDir();
    writeFileSync(join(base, 'victim.txt'), 'precious');
    symlinkSync(join(base, 'victim.txt'), join(out, 'a.bin'));
    const { fd, file } = await verifiedPart(out, 'a.bin', 'verified');
    await file.publish(fd, true);
    fs.closeSync(fd);
    expect(lstatSync(join(out, 'a.bin')).isFile()).toBe(true);
    expect(readFileSync(join(out, 'a.bin'), 'utf8')).toBe('verified');
    expect(readFileSync(join(base, 'victim.txt'), 'utf8')).toBe('precious');
    expect(readdirSync(join(out, '.netkit'))).toEqual([]);
  });

  test('a partial file swapped before the publish is not published: the final name is removed again', async () => {
    const out = outDir();
    const { fd, file } = await verifiedPart(out, 'a.bin', 'verified');
    renameSync(file.partPath, `${file.partPath}.old`);
    writeFileSync(file.partPath, 'forged');
    const err = await rejection(file.publish(fd, false));
    expect(err.message).toMatch(/was replaced before it was published/);
    expect(readdirSync(out)).toEqual(['.netkit']);
    fs.closeSync(fd);
  });

  test('a nested target gets its directories; a symbolic link among them is refused', async () => {
    const out = outDir();
    const { fd, file } = await verifiedPart(out, 'photos/2024/a.jpg', 'jpeg');
    await file.publish(fd, false);
    fs.closeSync(fd);
    expect(readFileSync(join(out, 'photos', '2024', 'a.jpg'), 'utf8')).toBe('jpeg');
    mkdirSync(join(base, 'away'), { recursive: true });
    symlinkSync(join(base, 'away'), join(out, 'linked'));
    const second = await verifiedPart(out, 'linked/b.jpg', 'jpeg');
    expect((await rejection(second.file.publish(second.fd, false))).message).toMatch(/not a directory/);
    fs.closeSync(second.fd);
    expect(readdirSync(join(base, 'away'))).toEqual([]);
  });

  test('a leftover that is not our single-named regular file is removed, and says why', async () => {
    const out = outDir();
    const staging = await Staging.open(out);
    const file = staging.file('a.bin');
    writeFileSync(join(base, 'elsewhere.bin'), 'x');
    fs.linkSync(join(base, 'elsewhere.bin'), file.partPath); // a second name: writing would change the other file
    const { found, dropped } = await file.leftover();
    expect(found).toBeUndefined();
    expect(dropped).toMatch(/not a private regular file/);
    expect(readdirSync(staging.dir)).toEqual([]);
    expect(readFileSync(join(base, 'elsewhere.bin'), 'utf8')).toBe('x');
  });
});

describe('locks', () => {
  test('a second holder is told the first one\u2019s pid; released, it can be taken', async () => {
    const dir = outDir();
    const path = join(dir, 'x.lock');
    const held = await acquireLock(path, 'fetching x into here');
    const err = await rejection(acquireLock(path, 'fetching x into here'));
    expect(err).toBeInstanceOf(NetkitError);
    expect(err.code).toBe('LOCKED');
    expect(err.exitCode).toBe(14);
    expect(err.message).toBe(`another netkit (pid ${process.pid}) is fetching x into here`);
    await held.release();
    const again = await acquireLock(path, 'fetching x into here');
    await again.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  test('the lock of a process that has exited is taken over', async () => {
    const dir = outDir();
    const path = join(dir, 'x.lock');
    const child = spawn(process.execPath, ['-e', '0']);
    await once(child, 'exit');
    writeFileSync(path, JSON.stringify({ pid: child.pid, host: (await import('node:os')).hostname(), token: 'dead' }));
    const held = await acquireLock(path, 'fetching x');
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid });
    await held.release();
  });

  test('release leaves a lock that is no longer ours alone', async () => {
    const dir = outDir();
    const path = join(dir, 'x.lock');
    const held = await acquireLock(path, 'fetching x');
    writeFileSync(path, JSON.stringify({ pid: process.pid, host: 'h', token: 'someone-else' }));
    await held.release();
    expect(readdirSync(dir)).toEqual(['x.lock']);
  });
});
