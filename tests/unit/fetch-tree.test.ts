// The client of a tree fetch against scripted servers on loopback: layout, modes and times, the early request, an older server, and a hostile server that cannot write outside --out.
import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryKind } from '../../src/protocol/file-list.js';
import { runSet } from '../../src/services/file/fetch/tree.js';
import type { SetOptions } from '../../src/services/file/fetch/set-types.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { fakeFileServer, listTree, type FakeFile, type FakeServer } from '../helpers/fake-file-server.js';

const servers: FakeServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
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

const outDir = (): string => mkdtempSync(join(tmpdir(), 'netkit-tree-'));

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
    const base = mkdtempSync(join(tmpdir(), 'netkit-evil-'));
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

  test('the listing helper lists as the protocol says (depth-first, sorted)', () => {
    expect(listTree(tree, 'photos', true).map((e) => e.name)).toEqual(['photos/2024', 'photos/2024/a.jpg', 'photos/2024/b.jpg', 'photos/big.bin', 'photos/run.sh']);
  });
});
