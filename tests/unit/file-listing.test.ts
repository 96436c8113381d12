// The listing service on real trees: order, kinds, sizes, modes and times; links in and out, loops, FIFOs, sockets, odd names; refusals, the entry cap, aborts, and no descriptor left behind.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, linkSync, lstatSync, readlinkSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetkitError } from '../../src/errors.js';
import { LeftOutReason } from '../../src/protocol/file-list.js';
import { openInJail } from '../../src/services/file/serve/jail.js';
import { NOT_A_DIRECTORY, listDirectory, listEntryJson, readableBy, type ListEntry, type ListOptions } from '../../src/services/file/serve/listing.js';

let base: string;
let root: string;
let outside: string;
let unix: net.Server;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-listing-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), 'secret');
  mkdirSync(join(root, 'a dir', 'empty'), { recursive: true });
  mkdirSync(join(root, 'photos', '2024'), { recursive: true });
  writeFileSync(join(root, 'a dir', 'ficheiro é.bin'), 'x'.repeat(10));
  writeFileSync(join(root, 'photos', '2024', 'a.jpg'), 'jpeg');
  writeFileSync(join(root, 'photos', 'zero'), '');
  writeFileSync(join(root, 'run.sh'), '#!/bin/sh\n');
  chmodSync(join(root, 'run.sh'), 0o755);
  writeFileSync(join(root, 'B upper'), 'B');
  writeFileSync(join(root, 'ünïcödé ✓'), 'u');
  // Nanoseconds that a Date (a float of seconds) could not set exactly; ENTRY carries whole milliseconds, rounded down.
  execFileSync('touch', ['-m', '-d', '2024-05-01 12:00:00.123999999 UTC', join(root, 'run.sh')]);
  symlinkSync('run.sh', join(root, 'link-in'));
  symlinkSync('2024/a.jpg', join(root, 'photos', 'deep-link'));
  symlinkSync(join(outside, 'secret.txt'), join(root, 'link-out'));
  symlinkSync('photos', join(root, 'link-dir'));
  symlinkSync('.', join(root, 'photos', 'loop'));
  symlinkSync('nowhere', join(root, 'dangling'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
  symlinkSync('fifo', join(root, 'link-fifo'));
  writeFileSync(join(root, 'ctl\u0001name'), 'c');
  writeFileSync(join(root, 'back\\slash'), 'b');
  writeFileSync(join(root, 'C:drive'), 'd');
  writeFileSync(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x6e, 0xff, 0x6e])]), 'not utf-8');
  unix = net.createServer().listen(join(root, 'sock'));
  await new Promise((r) => unix.once('listening', r));
});

afterAll(async () => {
  await new Promise((r) => unix.close(r));
  rmSync(base, { recursive: true, force: true });
});

async function all(dir: string, opts: ListOptions): Promise<{ entries: ListEntry[]; skipped: number }> {
  const l = await listDirectory(realpathSync(root), dir, opts);
  const entries: ListEntry[] = [];
  for await (const e of l.entries) entries.push(e);
  return { entries, skipped: l.skipped() };
}

/** Descriptors open on anything in the test tree (threads and sockets come and go; these must not stay). */
const fds = (): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(base);
    } catch {
      return false;
    }
  }).length;

describe('listDirectory', () => {
  test('recursive: depth-first, a directory before its contents, sorted by name bytes; links in listed as files; the rest skipped and counted', async () => {
    const { entries, skipped } = await all('', { recursive: true });
    expect(entries.map((e) => `${e.type} ${e.path}`)).toEqual([
      'file B upper',
      'dir a dir',
      'dir a dir/empty',
      'file a dir/ficheiro é.bin',
      'file link-in',
      'dir photos',
      'dir photos/2024',
      'file photos/2024/a.jpg',
      'file photos/deep-link',
      'file photos/zero',
      'file run.sh',
      'file ünïcödé ✓',
    ]);
    // link-out, link-dir, photos/loop, dangling, fifo, link-fifo, ctl\1name, back\slash, C:drive, n\xffn, sock.
    expect(skipped).toBe(11);
  });

  test('onLeftOut names, in listing order, each entry left out that a NAME can carry, with its reason; each counts against the cap', async () => {
    const named: Array<[string, number]> = [];
    const { entries, skipped } = await all('', { recursive: true, onLeftOut: (p, r) => named.push([p, r]) });
    expect(entries).toHaveLength(12);
    expect(skipped).toBe(11);
    // Names a REQUEST would refuse (control characters, a backslash, a drive letter) and the one that is not UTF-8 are only counted.
    expect(named).toEqual([
      ['dangling', LeftOutReason.LINK],
      ['fifo', LeftOutReason.SPECIAL],
      ['link-dir', LeftOutReason.LINK],
      ['link-fifo', LeftOutReason.LINK],
      ['link-out', LeftOutReason.LINK],
      ['photos/loop', LeftOutReason.LINK],
      ['sock', LeftOutReason.SPECIAL],
    ]);
    // Three directories with a FIFO each: 3 entries, 3 left out; a cap of 5 holds the entries, not the names too.
    const fifos = join(base, 'fifos');
    for (const d of ['d1', 'd2', 'd3']) {
      mkdirSync(join(fifos, d), { recursive: true });
      execFileSync('mkfifo', [join(fifos, d, 'f')]);
    }
    const list = async (o: ListOptions): Promise<number> => {
      let n = 0;
      for await (const _ of (await listDirectory(realpathSync(fifos), '', o)).entries) n += 1;
      return n;
    };
    await expect(list({ recursive: true, maxEntries: 5 })).resolves.toBe(3);
    await expect(list({ recursive: true, maxEntries: 5, onLeftOut: () => undefined })).rejects.toMatchObject({ code: 'TOO_LARGE' });
    await expect(list({ recursive: true, maxEntries: 6, onLeftOut: () => undefined })).resolves.toBe(3);
  });

  test('sizes, modes and modification times are those of the file (of the target for a link in)', async () => {
    const { entries } = await all('', { recursive: false });
    const by = new Map(entries.map((e) => [e.path, e]));
    const run = lstatSync(join(root, 'run.sh'), { bigint: true });
    expect(by.get('run.sh')).toEqual({ path: 'run.sh', type: 'file', size: 10, mtimeMs: 1714564800123, mode: 0o755 });
    expect(run.mtimeNs).toBe(1714564800123999999n);
    expect(by.get('link-in')).toEqual({ ...by.get('run.sh'), path: 'link-in' });
    expect(by.get('a dir')).toMatchObject({ type: 'dir', size: 0, mode: statSync(join(root, 'a dir')).mode & 0o7777 });
    expect(listEntryJson(by.get('run.sh')!)).toEqual({ path: 'run.sh', type: 'file', size: 10, mtime: '2024-05-01T12:00:00.123Z', mode: '0755' });
  });

  test('not recursive: only the directory itself; a subdirectory, by a trailing slash or through a link inside, names its entries from the root', async () => {
    expect((await all('', { recursive: false })).entries.map((e) => e.path)).toEqual(['B upper', 'a dir', 'link-in', 'photos', 'run.sh', 'ünïcödé ✓']);
    expect((await all('photos/', { recursive: false })).entries.map((e) => e.path)).toEqual(['photos/2024', 'photos/deep-link', 'photos/zero']);
    expect((await all('./photos/2024', { recursive: true })).entries.map((e) => e.path)).toEqual(['photos/2024/a.jpg']);
    expect((await all('link-dir', { recursive: true })).entries.map((e) => e.path)).toEqual(['link-dir/2024', 'link-dir/2024/a.jpg', 'link-dir/deep-link', 'link-dir/zero']);
    expect(await all('a dir/empty', { recursive: true })).toEqual({ entries: [], skipped: 0 });
  });

  test('every listed name opens in the jail', async () => {
    const { entries } = await all('', { recursive: true });
    for (const e of entries.filter((x) => x.type === 'file')) {
      const f = await openInJail(realpathSync(root), e.path);
      expect(Number(f.stat.size)).toBe(e.size);
      await f.handle.close();
    }
  });

  test.each<[string, string, string]>([
    ['missing', 'nope', 'NOT_FOUND'],
    ['a file', 'run.sh', 'FORBIDDEN'],
    ['a FIFO', 'fifo', 'FORBIDDEN'],
    ['outside by ..', '../outside', 'FORBIDDEN'],
    ['absolute', '/etc', 'FORBIDDEN'],
    ['a link out', 'link-out', 'FORBIDDEN'],
    ['control characters', 'a\u0007', 'BAD_REQUEST'],
  ])('refused before anything is listed: %s', async (_what, dir, code) => {
    const err = await listDirectory(realpathSync(root), dir, { recursive: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NetkitError);
    expect((err as NetkitError).code).toBe(code);
    if (dir === 'run.sh') expect((err as NetkitError).message).toBe(NOT_A_DIRECTORY);
  });

  test('a name longer than a REQUEST may carry (1,024 bytes) is skipped', async () => {
    const deep = join(root, 'photos', 'deep');
    let at = deep;
    const segment = 'd'.repeat(200);
    for (let i = 0; i < 5; i++) at = join(at, segment);
    mkdirSync(at, { recursive: true });
    writeFileSync(join(at, 'leaf.txt'), 'leaf');
    try {
      const { entries, skipped } = await all('photos/deep', { recursive: true });
      expect(entries.every((e) => Buffer.byteLength(e.path) <= 1024)).toBe(true);
      expect(entries).toHaveLength(5); // five directories fit in 1,016 bytes; the file inside the last would take 1,025
      expect(skipped).toBe(1);
    } finally {
      rmSync(deep, { recursive: true, force: true });
    }
  });

  test('hard-linked files are left out for a server that refuses them, and listed otherwise', async () => {
    linkSync(join(root, 'photos', 'zero'), join(root, 'a dir', 'hard'));
    try {
      expect((await all('a dir', { recursive: false })).entries.map((e) => e.path)).toContain('a dir/hard');
      const refused = await all('a dir', { recursive: false, refuseHardLinks: true });
      expect(refused.entries.map((e) => e.path)).toEqual(['a dir/empty', 'a dir/ficheiro é.bin']);
      expect(refused.skipped).toBe(1);
    } finally {
      rmSync(join(root, 'a dir', 'hard'));
    }
  });

  test('the entry cap ends the iteration with TOO_LARGE; an abort stops it; nothing stays open either way', async () => {
    const before = fds();
    const capped = await listDirectory(realpathSync(root), '', { recursive: true, maxEntries: 5 });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const e of capped.entries) seen.push(e.path);
      })(),
    ).rejects.toMatchObject({ code: 'TOO_LARGE' });
    expect(seen.length).toBeLessThanOrEqual(5);
    const ac = new AbortController();
    const l = await listDirectory(realpathSync(root), '', { recursive: true, signal: ac.signal });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of l.entries) if (++n === 3) ac.abort(new Error('stop'));
      })(),
    ).rejects.toThrow('stop');
    // A consumer that breaks off early, and one that never iterates, hold nothing either.
    for await (const _ of (await listDirectory(realpathSync(root), '', { recursive: true })).entries) break;
    await listDirectory(realpathSync(root), 'photos', { recursive: true });
    expect(before).toBe(0);
    // Subdirectories the stopped walks asked to read ahead may still be in the reader thread's hands (each
    // opened and closed within its batch): one more listing, answered after them, lets them finish.
    await all('photos', { recursive: false });
    expect(fds()).toBe(0);
  });

  test('permission bits: owner, group or others decide what the server can read; root reads everything', () => {
    const st = (mode: number, uid: number, gid: number) => ({ mode, uid, gid });
    const me = { uid: 1000, groups: new Set([100]) };
    expect(readableBy(me, st(0o400, 1000, 0), 4)).toBe(true);
    expect(readableBy(me, st(0o044, 1000, 100), 4)).toBe(false); // the owner's bits apply to the owner
    expect(readableBy(me, st(0o040, 0, 100), 4)).toBe(true);
    expect(readableBy(me, st(0o004, 0, 0), 4)).toBe(true);
    expect(readableBy(me, st(0o700, 0, 0), 4)).toBe(false);
    expect(readableBy(me, st(0o750, 0, 100), 5)).toBe(true);
    expect(readableBy(me, st(0o740, 0, 100), 5)).toBe(false); // a directory needs r and x
    expect(readableBy({ uid: 0, groups: new Set() }, st(0o000, 1000, 1000), 5)).toBe(true);
  });
});
