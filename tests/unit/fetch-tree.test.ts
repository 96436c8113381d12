// The client of a tree fetch against scripted servers on loopback: layout, modes and times, the early request, an older server, and a hostile server that cannot write outside --out.
import { afterEach, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryKind } from '../../src/protocol/file-list.js';
import { runSet } from '../../src/services/file/fetch/tree.js';
import { LocalTree } from '../../src/services/file/fetch/local-tree.js';
import { SmallFiles, type SmallOutcome } from '../../src/services/file/fetch/small-files.js';
import { Staging } from '../../src/services/file/fetch/staging.js';
import type { SetOptions } from '../../src/services/file/fetch/set-types.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { setSummary } from '../../src/commands/file/fetch-render.js';
import { fakeFileServer, listTree, type FakeFile, type FakeServer } from '../helpers/fake-file-server.js';

const servers: FakeServer[] = [];
const temps: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T0 = 1_700_000_123_456;
const tree: FakeFile[] = [
  { name: 'photos/2024/a.jpg', data: randomBytes(5000), mtimeMs: T0, mode: 0o644 },
  { name: 'photos/2024/b.jpg', data: randomBytes(0), mtimeMs: T0 + 1, mode: 0o600 },
  { name: 'photos/run.sh', data: Buffer.from('#!/bin/sh\n'), mtimeMs: T0 + 2, mode: 0o4755 },
  { name: 'photos/big.bin', data: randomBytes(3 * 1024 * 1024 + 17), mtimeMs: T0 + 3, mode: 0o644 },
  { name: 'docs/x.txt', data: Buffer.from('x'), mtimeMs: T0 + 4 },
  { name: 'docs/y.md', data: Buffer.from('y'), mtimeMs: T0 + 5 },
  { name: 'top.txt', data: Buffer.from('top'), mtimeMs: T0 + 6 },
];

async function serve(files = tree, opts: Parameters<typeof fakeFileServer>[1] = {}): Promise<FakeServer> {
  const s = await fakeFileServer(files, opts);
  servers.push(s);
  return s;
}

function fetchFrom(s: FakeServer, names: string[], out: string, extra: Partial<SetOptions> = {}) {
  return runSet({ names, transport: tcpTransport, host: '127.0.0.1', port: s.port, outDir: out, timeoutMs: 3000, retries: 0, ...extra });
}

/** A temporary directory, removed after the test. */
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
const outDir = (): string => tempDir('netkit-tree-');

describe('a tree over one session', () => {
  test('a directory lands as OUT/NAME/..., with modes (no setuid) and times, in one connection', async () => {
    const s = await serve();
    const out = outDir();
    const run = await fetchFrom(s, ['photos'], out);
    expect(run.fatal).toBeUndefined();
    expect(run.result()).toMatchObject({ fetched: 4, failed: 0, skipped: 0, session: true });
    for (const f of tree.filter((x) => x.name.startsWith('photos/'))) {
      const p = join(out, f.name);
      expect(readFileSync(p).equals(f.data)).toBe(true);
      const st = statSync(p, { bigint: true });
      expect(Number(st.mtimeNs / 1_000_000n)).toBe(f.mtimeMs);
      expect(Number(st.mode & 0o7777n)).toBe((f.mode ?? 0o644) & 0o777 & ~process.umask());
    }
    expect(s.connections()).toBe(1);
    expect(existsSync(join(out, '.netkit'))).toBe(false);
  });

  test('the first request travels with the HELLO (no secret), and the rest follow on the same connection', async () => {
    const s = await serve();
    const out = outDir();
    await fetchFrom(s, ['top.txt', 'docs/x.txt'], out);
    expect(s.requests.map((r) => [r.type, r.name, r.early])).toEqual([
      ['get', 'top.txt', true],
      ['get', 'docs/x.txt', false],
    ]);
    expect(readdirSync(out).sort()).toEqual(['top.txt', 'x.txt']);
  });

  test('a glob keeps the path below the parent of its fixed part; several NAMEs at once', async () => {
    const s = await serve();
    const out = outDir();
    const run = await fetchFrom(s, ['photos/**/*.jpg', 'docs/*.md'], out);
    expect(run.result()).toMatchObject({ fetched: 3, failed: 0 });
    expect(existsSync(join(out, 'photos/2024/a.jpg'))).toBe(true);
    expect(existsSync(join(out, 'photos/2024/b.jpg'))).toBe(true);
    expect(existsSync(join(out, 'docs/y.md'))).toBe(true);
    expect(existsSync(join(out, 'docs/x.txt'))).toBe(false);
  });

  test('a NAME with a .. segment never takes its target from a valid NAME saved under the same name, in either order', async () => {
    for (const names of [['docs/sub/../x.txt', 'docs/x.txt'], ['docs/x.txt', 'docs/sub/../x.txt']]) {
      const s = await serve();
      const out = outDir();
      const run = await fetchFrom(s, names, out);
      expect(run.result()).toMatchObject({ fetched: 1, failed: 1 });
      expect(readFileSync(join(out, 'x.txt'), 'utf8')).toBe('x');
      expect(run.outcomes.find((o) => o.status === 'failed')?.name).toBe('docs/sub/../x.txt');
    }
  });

  test('a rerun skips what is there; a changed local copy is reported and the rest still arrive', async () => {
    const s = await serve();
    const out = outDir();
    await fetchFrom(s, ['photos'], out);
    writeFileSync(join(out, 'photos/run.sh'), 'changed locally');
    const again = await fetchFrom(s, ['photos'], out);
    expect(again.result()).toMatchObject({ fetched: 0, skipped: 3, failed: 1 });
    expect(again.outcomes.find((o) => o.status === 'failed')?.error?.code).toBe('EXISTS');
    expect(s.requests.filter((r) => r.type === 'get' && r.connection === 1)).toEqual([]);
    const forced = await fetchFrom(s, ['photos'], out, { force: true });
    expect(forced.result()).toMatchObject({ fetched: 1, skipped: 3, failed: 0 });
    expect(readFileSync(join(out, 'photos/run.sh'), 'utf8')).toBe('#!/bin/sh\n');
  });
});

describe('a disk that fills up in the middle of a set', () => {
  test('the fetch stops, says how far it got, and the summary counts the whole set (or skipped where no tmpfs can be mounted)', async () => {
    // The listing understates every size (the check of room before the set passes); the bodies fill a 2 MiB tmpfs.
    const files: FakeFile[] = Array.from({ length: 61 }, (_, i) => ({ name: `set/f${String(i).padStart(2, '0')}`, data: Buffer.alloc(100 * 1024, i) }));
    const s = await serve(files, { listing: (dir) => (dir === 'set' ? files.map((f) => ({ name: f.name, kind: EntryKind.FILE, size: 1, mtimeMs: T0, mode: 0o644 })) : undefined) });
    const out = outDir();
    const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', out]).status === 0;
    if (!mounted) {
      console.warn('skipped: cannot mount a small tmpfs (needs root)');
      return;
    }
    try {
      const run = await fetchFrom(s, ['set/'], out);
      expect(run.fatal?.code).toBe('DISK_FULL');
      const r = run.result();
      expect(r.fetched).toBeGreaterThan(0);
      expect(r.unfinished).toBeGreaterThan(0);
      expect(r.fetched + r.skipped + r.failed + r.unfinished).toBe(61);
      expect(run.fatal?.message).toMatch(new RegExp(`no space left on the device; ${r.fetched} of 61 files are there$`));
      expect(run.fatal?.hint).toMatch(/free some space, or choose another --out; then run the same command again: what is there is skipped/);
      expect(setSummary(r)).toMatch(new RegExp(`^61 files: ${r.fetched} fetched \\(.*\\), ${r.failed} failed, ${r.unfinished} not fetched \\(the fetch stopped\\); `));
      expect(readdirSync(join(out, 'set')).filter((n) => n.endsWith('.new'))).toEqual([]);
    } finally {
      spawnSync('umount', [out]);
    }
  });
});

describe('an older server (no SESSION flag)', () => {
  test('several files arrive over one connection each; a directory or a glob fails with a clear reason', async () => {
    const s = await serve(tree, { session: false });
    const out = outDir();
    const run = await fetchFrom(s, ['top.txt', 'docs/x.txt', 'photos/*'], out);
    expect(run.result()).toMatchObject({ fetched: 2, failed: 1 });
    expect(run.outcomes.find((o) => o.status === 'failed')?.error?.message).toMatch(/older netkit server that cannot list/);
    expect(new Set(s.requests.map((r) => r.connection)).size).toBe(2);
  });
});

describe('a hostile server', () => {
  const evil = [
    { name: 'd/../x', kind: EntryKind.FILE },
    { name: '/etc/evil', kind: EntryKind.FILE },
    { name: 'd/a/../../../x', kind: EntryKind.FILE },
    { name: 'C:x', kind: EntryKind.FILE },
    { name: 'd/back\\slash', kind: EntryKind.FILE },
    { name: 'd/ctl\u0007', kind: EntryKind.FILE },
    { name: 'other/x', kind: EntryKind.FILE },
    { name: 'd/link/y', kind: EntryKind.FILE },
    { name: 'd/.netkit/x.part', kind: EntryKind.FILE },
    { name: 'd/sub/.netkit/evil', kind: EntryKind.FILE },
    { name: 'd/ok', kind: EntryKind.FILE },
  ];

  test('paths with .., absolute, drive letters, control characters, outside the listed directory, through a local link, into a .netkit at any depth: refused one by one, nothing outside OUT', async () => {
    const files: FakeFile[] = evil.map((e) => ({ name: e.name, data: Buffer.from('pwned') }));
    const s = await serve(files, { listing: (dir) => (dir === 'd' ? evil.map((e) => ({ ...e, size: 5, mtimeMs: T0, mode: 0o644 })) : undefined) });
    const base = tempDir('netkit-evil-');
    const out = join(base, 'out');
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(join(out, 'd'), { recursive: true });
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(out, 'd', 'link'));
    const run = await fetchFrom(s, ['d/'], out);
    expect(run.fatal).toBeUndefined();
    expect(run.result()).toMatchObject({ fetched: 1, failed: 10 });
    expect(run.outcomes.find((o) => o.name === 'd/sub/.netkit/evil')?.error?.message).toMatch(/would be saved in a \.netkit directory, where netkit keeps partial downloads; refused/);
    expect(readFileSync(join(out, 'd/ok'), 'utf8')).toBe('pwned');
    expect(readdirSync(base).sort()).toEqual(['elsewhere', 'out']);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(readdirSync(join(out, 'd')).sort()).toEqual(['link', 'ok']);
    expect(lstatSync(join(out, 'd', 'link')).isSymbolicLink()).toBe(true);
    expect(existsSync('/etc/evil')).toBe(false);
  });

  test('a path listed both as a directory and as a file (either order, or a file below a file): the later entry fails with a plain reason, no temporary file is left', async () => {
    const listing = [
      { name: 'd/w', kind: EntryKind.DIRECTORY, size: 0 },
      { name: 'd/w', kind: EntryKind.FILE, size: 5 },
      { name: 'd/y', kind: EntryKind.FILE, size: 5 },
      { name: 'd/y', kind: EntryKind.DIRECTORY, size: 0 },
      { name: 'd/y/z', kind: EntryKind.FILE, size: 5 },
      { name: 'd/ok', kind: EntryKind.FILE, size: 5 },
    ].map((e) => ({ ...e, mtimeMs: T0, mode: e.kind === EntryKind.DIRECTORY ? 0o755 : 0o644 }));
    const s = await serve(['d/w', 'd/y', 'd/y/z', 'd/ok'].map((name) => ({ name, data: Buffer.from('pwned') })), { listing: (dir) => (dir === 'd' ? listing : undefined) });
    const out = outDir();
    const run = await fetchFrom(s, ['d/'], out);
    expect(run.fatal).toBeUndefined();
    const failed = run.outcomes.filter((o) => o.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.map((f) => [f.name, f.error?.message])).toEqual([
      ['d/w', `the server listed ${join(out, 'd/w')} both as a directory and as a file; refused, nothing written for 'd/w'`],
      ['d/y', `the server listed ${join(out, 'd/y')} both as a directory and as a file; refused, nothing written for 'd/y'`],
      ['d/y/z', `the server listed ${join(out, 'd/y')} both as a directory and as a file; refused, nothing written for 'd/y/z'`],
    ]);
    expect(run.result()).toMatchObject({ fetched: 2, failed: 3 });
    expect(readFileSync(join(out, 'd/y'), 'utf8')).toBe('pwned');
    expect(readFileSync(join(out, 'd/ok'), 'utf8')).toBe('pwned');
    const left = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((n) => /\.new$/.test(n));
    expect(left(out)).toEqual([]);
  });

  test('a small file whose name a directory took meanwhile fails with a plain reason (rename and link paths), and its temporary file goes', async () => {
    const out = outDir();
    const staging = await Staging.open(out);
    const tree = new LocalTree(out);
    await tree.ensureDir('d'); // made by this fetch: files go in by rename(2)
    mkdirSync(join(out, 'd', 'w'));
    mkdirSync(join(out, 'top'));
    const ended: Array<[string, SmallOutcome]> = [];
    const small = new SmallFiles(staging, tree, false, (f, o) => ended.push([f.target, o]));
    const data = Buffer.from('bytes');
    for (const target of ['d/w', 'top']) {
      const sink = small.take(data.length)!;
      sink.push(data);
      small.add({ target, sink, size: data.length, mtimeMs: undefined, mode: 0o644, replace: false, sha256: createHash('sha256').update(data).digest() });
    }
    await small.drain();
    await small.close();
    await staging.tidy();
    expect(ended.map(([t, o]) => [t, o.kind === 'failed' ? o.error.message : o.kind])).toEqual([
      ['d/w', `cannot save ${join(out, 'd/w')}: a directory has that name`],
      ['top', `cannot save ${join(out, 'top')}: a directory has that name`],
    ]);
    expect(readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((n) => n.endsWith('.new'))).toEqual([]);
  });

  test('a body that does not match the TRAILER fails that file only', async () => {
    const s = await serve(tree, { body: (n) => (n === 'docs/x.txt' ? Buffer.from('z') : undefined) });
    const out = outDir();
    const run = await fetchFrom(s, ['docs'], out);
    expect(run.result()).toMatchObject({ fetched: 1, failed: 1 });
    expect(run.outcomes.find((o) => o.status === 'failed')?.error?.code).toBe('INTEGRITY');
    expect(readdirSync(join(out, 'docs'))).toEqual(['y.md']);
  });

  test('a listing whose END does not match what arrived (an entry missing) is refused whole: nothing of it is written', async () => {
    const s = await serve(tree, { dropEntry: 1 });
    const out = outDir();
    const run = await fetchFrom(s, ['docs/'], out);
    expect(run.result()).toMatchObject({ fetched: 0, failed: 1 });
    expect(run.outcomes[0]?.error?.message).toMatch(/the listing of 'docs' did not verify: .* said it held 2 entries, but sent 1/);
    expect(readdirSync(out)).toEqual([]);
  });

  test('entries named as left out (KIND 3) beyond END\'s SKIPPED, or outside the listed directory, are refused: no negative count, no foreign name in the note', async () => {
    const leftOut = (name: string, reason: number) => ({ name, kind: EntryKind.LEFT_OUT, size: 0, mtimeMs: 0, mode: 0, reason });
    const ok = { name: 'docs/x.txt', kind: EntryKind.FILE, size: 1, mtimeMs: T0 + 4, mode: 0o644 };
    // Three named, one counted: the listing contradicts itself and is refused whole.
    const s = await serve(tree, { listing: (dir) => (dir === 'docs' ? [ok, leftOut('docs/u', 1), leftOut('docs/u', 2), leftOut('docs/v', 1)] : undefined), skipped: () => 1 });
    const out = outDir();
    const run = await fetchFrom(s, ['docs'], out);
    expect(run.result()).toMatchObject({ fetched: 0, failed: 1, skippedByServer: 0 });
    expect(run.outcomes[0]?.error?.message).toMatch(/the listing of 'docs' did not verify: .* named 3 entries it left out, but counted 1/);
    expect(readdirSync(out)).toEqual([]);
    // A left-out name outside the listed directory fails like any such path; the one inside is named.
    const s2 = await serve(tree, { listing: (dir) => (dir === 'docs' ? [ok, leftOut('../etc/passwd', 4), leftOut('docs/fifo', 3)] : undefined), skipped: () => 2 });
    const out2 = outDir();
    const run2 = await fetchFrom(s2, ['docs'], out2);
    const r2 = run2.result();
    expect(r2).toMatchObject({ fetched: 1, failed: 1, skippedByServer: 1 });
    expect(r2.leftOut).toEqual([{ name: 'docs/fifo', reason: expect.any(String) }]);
    expect(run2.outcomes.find((o) => o.status === 'failed')?.error?.code).toBe('PROTOCOL');
  });

  test('the listing helper lists as the protocol says (depth-first, sorted)', () => {
    expect(listTree(tree, 'photos', true).map((e) => e.name)).toEqual(['photos/2024', 'photos/2024/a.jpg', 'photos/2024/b.jpg', 'photos/big.bin', 'photos/run.sh']);
  });
});
