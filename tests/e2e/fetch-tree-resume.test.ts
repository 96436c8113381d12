// Trees that are cut off and fetched again (only what is missing crosses the wire), round trips before the first byte, an older server, and a hostile one, against the built binary.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameReader, FrameType } from '../../src/protocol/file-v1.js';
import { EntryKind } from '../../src/protocol/file-list.js';
import { STAGING_DIR } from '../../src/services/file/fetch/staging.js';
import { BIN, runNetkit, spawnNetkit, startServer, type Server } from '../helpers/netkit.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';
import { partialReaches } from '../helpers/staging.js';
import { fakeFileServer, type FakeFile } from '../helpers/fake-file-server.js';

let base: string;
let served: string;
const MiB = 1024 * 1024;
const files = new Map<string, Buffer>();

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-tree-resume-'));
  chmodSync(base, 0o755);
  served = join(base, 'served');
  for (let i = 0; i < 40; i++) files.set(`t/small/s${String(i).padStart(2, '0')}.bin`, randomBytes(10_000 + i));
  for (let i = 0; i < 3; i++) files.set(`t/big${i}.bin`, randomBytes(12 * MiB + i));
  for (const [name, data] of files) {
    mkdirSync(join(served, name, '..'), { recursive: true });
    writeFileSync(join(served, name), data);
  }
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const total = (): number => [...files.values()].reduce((a, b) => a + b.length, 0);

/** Bytes of the tree not yet under their final names in `out`, less what partial downloads hold. */
function missing(out: string): number {
  let n = 0;
  for (const [name, data] of files) if (!existsSync(join(out, name))) n += data.length;
  const staging = join(out, STAGING_DIR);
  if (existsSync(staging)) for (const f of readdirSync(staging)) if (f.endsWith('.part')) n -= statSync(join(staging, f)).size;
  return n;
}

function complete(out: string): void {
  for (const [name, data] of files) expect({ name, same: readFileSync(join(out, name)).equals(data) }).toEqual({ name, same: true });
  expect(existsSync(join(out, STAGING_DIR))).toBe(false);
}

const wire = (p: TcpRecordingProxy): number => Buffer.concat(p.toClient).length;

describe('a tree fetch cut off twice', () => {
  let server: Server;
  afterAll(async () => server?.stop('SIGKILL'));

  test('by a proxy that resets it, then by kill -9 of the server: each rerun brings only what is missing, measured on the wire', async () => {
    server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
    const out = mkdtempSync(join(base, 'out-'));
    // 1. A relay that resets the connection after 15 MiB.
    const cutter = await tcpRecordingProxy(server.port, '127.0.0.1', { cut: (_i, bytes) => bytes >= 15 * MiB });
    const first = await runNetkit(['file', 'fetch', 't', '-H', `127.0.0.1:${cutter.port}`, '-o', out, '--retries', '0'], { timeoutMs: 30_000 });
    await cutter.close();
    expect(first.code).toBe(8);
    const afterCut = missing(out);
    expect(afterCut).toBeGreaterThan(0);
    expect(afterCut).toBeLessThan(total());

    // 2. A clean relay this time, but the server is killed while the rerun writes the next big file.
    const relay = await tcpRecordingProxy(server.port);
    const rerun = spawnNetkit(['file', 'fetch', 't', '-H', `127.0.0.1:${relay.port}`, '-o', out, '--retries', '0'], { timeoutMs: 30_000 });
    const next = [...files.keys()].find((n) => n.includes('big') && !existsSync(join(out, n)) && n !== 't/big0.bin') ?? 't/big2.bin';
    await partialReaches(out, next, 2 * MiB);
    await server.stop('SIGKILL');
    const second = await rerun.done;
    await relay.close();
    expect(second.code).toBe(8);
    // What crossed the wire is what was missing, plus frames (listing, headers): nothing fetched twice.
    const brought = afterCut - missing(out);
    expect(wire(relay)).toBeGreaterThanOrEqual(brought);
    expect(wire(relay)).toBeLessThan(brought + 1 * MiB);
    const afterKill = missing(out);
    expect(afterKill).toBeGreaterThan(0);

    // 3. A new server on the same files: the rest arrives, and only the rest.
    server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
    const last = await tcpRecordingProxy(server.port);
    const third = await runNetkit(['file', 'fetch', 't', '-H', `127.0.0.1:${last.port}`, '-o', out, '--json'], { timeoutMs: 30_000 });
    await last.close();
    expect(third.code).toBe(0);
    const j = JSON.parse(third.stdout);
    expect(j.resumed).toBeGreaterThanOrEqual(1);
    expect(wire(last)).toBeGreaterThanOrEqual(afterKill);
    expect(wire(last)).toBeLessThan(afterKill + 64 * 1024);
    complete(out);
  }, 90_000);
});

describe('riding out an outage, stopping, running out of room', () => {
  let server: Server;
  beforeAll(async () => {
    server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
  });
  afterAll(async () => server.stop('SIGKILL'));

  test('--retries: two cuts during a tree, two retry lines, every file there, nothing fetched twice but what was in flight', async () => {
    const proxy = await tcpRecordingProxy(server.port, '127.0.0.1', { cut: (i, bytes) => i < 2 && bytes >= 9 * MiB });
    try {
      const out = mkdtempSync(join(base, 'retry-'));
      const r = await runNetkit(['file', 'fetch', 't', '-H', `127.0.0.1:${proxy.port}`, '-o', out, '--json'], { timeoutMs: 30_000 });
      expect(r.code).toBe(0);
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines).toHaveLength(2);
      lines.forEach((l, i) => expect(l).toMatch(new RegExp(`^netkit: connection lost after \\d+/43 files \\([\\d.]+M of [\\d.]+M\\); retrying in 1s \\(${i + 1}/5\\)$`)));
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, fetched: 43, retries: 2 });
      expect(wire(proxy)).toBeLessThan(total() + 2 * MiB);
      complete(out);
    } finally {
      await proxy.close();
    }
  });

  test('Ctrl-C: what arrived is kept and said; the same command fetches the rest', async () => {
    const out = mkdtempSync(join(base, 'int-'));
    const f = spawnNetkit(['file', 'fetch', 't', '-H', `127.0.0.1:${server.port}`, '-o', out], { timeoutMs: 30_000 });
    await partialReaches(out, 't/big0.bin', 1 * MiB);
    f.child.kill('SIGINT');
    const r = await f.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/^netkit: interrupted: \d+ of 43 files are there \(partial downloads kept in .*\.netkit\); run the same command to fetch the rest$/m);
    expect(missing(out)).toBeLessThan(total());
    const again = await runNetkit(['file', 'fetch', 't', '-H', `127.0.0.1:${server.port}`, '-o', out, '--json'], { timeoutMs: 30_000 });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).resumed).toBe(1);
    complete(out);
  });

  const tmpfs = (dir: string): string | undefined => {
    if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs';
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]);
    return r.status === 0 ? undefined : `cannot mount a tmpfs: ${r.stderr.toString().trim()}`;
  };

  test('not enough room for the tree: refused before any byte is written, saying how much is needed (or skipped where no tmpfs can be mounted)', async () => {
    const out = mkdtempSync(join(base, 'full-'));
    const why = tmpfs(out);
    if (why) {
      console.warn(`skipped: ${why}`);
      return;
    }
    try {
      const r = await runNetkit(['file', 'fetch', 't', '-H', `127.0.0.1:${server.port}`, '-o', out], { timeoutMs: 30_000 });
      expect(r.code).toBe(9);
      expect(r.stderr).toMatch(/^netkit: not enough room in .*: the files need 36M more, [\d.]+M free$/m);
      const found = spawnSync('find', [out, '-type', 'f'], { encoding: 'utf8' }).stdout.trim();
      expect(found).toBe('');
    } finally {
      spawnSync('umount', [out]);
    }
  });

  test('one bar for the set on a terminal: files done/total, bytes, speed, ETA and the current file', async () => {
    const out = mkdtempSync(join(base, 'bar-'));
    const cmd = [process.execPath, BIN, 'file', 'fetch', 't', '-H', `127.0.0.1:${server.port}`, '-o', out].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...process.env, NO_COLOR: '1', COLUMNS: '160' } });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    const [code] = (await once(child, 'close')) as [number];
    expect(code).toBe(0);
    expect(text).toMatch(/t\/(small\/s\d\d|big\d)\.bin +\[[= ]*\] +\d+% \| +\d+\/43 files \| +[\d.]+[BKM]\/36M \| /);
    expect(text).toMatch(/ETA /);
    expect(text).toMatch(/^43 files in 1 directory: 43 fetched/m);
  });
});

/** The frame types the client sent before the server's first byte on its first connection. */
function sentBeforeFirstAnswer(p: TcpRecordingProxy): number[] {
  const before: Buffer[] = [];
  for (const e of p.events) {
    if (e.connection !== 0) continue;
    if (e.to === 'client') break;
    before.push(e.bytes);
  }
  const reader = new FrameReader();
  reader.push(Buffer.concat(before).subarray(5));
  const types: number[] = [];
  for (let f = reader.next(); f; f = reader.next()) types.push(f.type);
  return types;
}

describe('round trips', () => {
  test('one file: the REQUEST travels with the HELLO, so its first byte comes after 2 round trips (TCP and that one)', async () => {
    const server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
    const proxy = await tcpRecordingProxy(server.port);
    try {
      const out = mkdtempSync(join(base, 'rt-'));
      const r = await runNetkit(['file', 'fetch', 't/small/s00.bin', '-H', `127.0.0.1:${proxy.port}`, '-o', out]);
      expect(r.code).toBe(0);
      expect(sentBeforeFirstAnswer(proxy)).toEqual([FrameType.HELLO, FrameType.REQUEST]);
      expect(new Set(proxy.events.map((e) => e.connection))).toEqual(new Set([0]));
      // A directory NAME written with a slash: its LIST goes with the HELLO; every file follows on that connection.
      const tree = await runNetkit(['file', 'fetch', 't/small/', '-H', `127.0.0.1:${proxy.port}`, '-o', out]);
      expect(tree.code).toBe(0);
      expect(new Set(proxy.events.map((e) => e.connection))).toEqual(new Set([0, 1]));
    } finally {
      await proxy.close();
      await server.stop('SIGKILL');
    }
  });
});

describe('servers that are not what they should be', () => {
  test('an older server (one request per connection): named files arrive, one connection each; a directory fails with the reason', async () => {
    const tree: FakeFile[] = [
      { name: 'a.txt', data: Buffer.from('a') },
      { name: 'b.txt', data: Buffer.from('b') },
      { name: 'd/c.txt', data: Buffer.from('c') },
    ];
    const fake = await fakeFileServer(tree, { session: false });
    try {
      const out = mkdtempSync(join(base, 'old-'));
      const r = await runNetkit(['file', 'fetch', 'a.txt', 'b.txt', 'd', '-H', `127.0.0.1:${fake.port}`, '-o', out]);
      expect(r.code).toBe(16);
      expect(readdirSync(out).sort()).toEqual(['a.txt', 'b.txt']);
      expect(fake.connections()).toBe(3);
      expect(r.stderr).toMatch(/ {2}d: .*refused 'd': is a directory/);
    } finally {
      await fake.close();
    }
  });

  test('a hostile server listing ../x, absolute paths, a/../../x and a path through a local link writes nothing outside --out', async () => {
    const names = ['d/../../x', '/tmp/netkit-evil', 'd/a/../../x', 'd/link/planted', 'd/fine'];
    const fake = await fakeFileServer(
      names.map((name) => ({ name, data: Buffer.from('evil') })),
      { listing: (dir) => (dir === 'd' ? names.map((name) => ({ name, kind: EntryKind.FILE, size: 4, mtimeMs: 0, mode: 0o644 })) : undefined) },
    );
    try {
      const root = mkdtempSync(join(base, 'evil-'));
      const out = join(root, 'out');
      const elsewhere = join(root, 'elsewhere');
      mkdirSync(join(out, 'd'), { recursive: true });
      mkdirSync(elsewhere);
      symlinkSync(elsewhere, join(out, 'd', 'link'));
      const r = await runNetkit(['file', 'fetch', 'd/', '-H', `127.0.0.1:${fake.port}`, '-o', out, '--json']);
      expect(r.code).toBe(16);
      expect(JSON.parse(r.stdout)).toMatchObject({ fetched: 1, failed: 4 });
      expect(readdirSync(root).sort()).toEqual(['elsewhere', 'out']);
      expect(readdirSync(elsewhere)).toEqual([]);
      expect(readdirSync(join(out, 'd')).sort()).toEqual(['fine', 'link']);
      expect(lstatSync(join(out, 'd', 'link')).isSymbolicLink()).toBe(true);
      expect(existsSync('/tmp/netkit-evil')).toBe(false);
      expect(existsSync(join(base, 'x'))).toBe(false);
    } finally {
      await fake.close();
    }
  });
});
