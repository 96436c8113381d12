// Trees end to end (the built binary, a real server): layout, modes and times, links and FIFOs, globs, several names, -o NEWNAME, -o -, skips on rerun, --checksum, --force, a partial failure, and file list.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { tcpRecordingProxy } from '../helpers/recording-proxy.js';
import { NOBODY, otherUserUnavailable } from '../helpers/other-user.js';

let base: string;
let served: string;
let server: Server;
const T = 1_650_000_000_000;
const big = randomBytes(6 * 1024 * 1024 + 3);

/** Files of the tree (relative to served/tree), their content, mode and time. */
const files: Array<{ path: string; data: Buffer; mode: number }> = [
  { path: 'a.txt', data: Buffer.from('hello\n'), mode: 0o644 },
  { path: 'empty.bin', data: Buffer.alloc(0), mode: 0o644 },
  { path: 'run.sh', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
  { path: 'with space.txt', data: Buffer.from('spaced out\n'), mode: 0o600 },
  { path: 'ünïcödé/日本.txt', data: Buffer.from('unicode\n'), mode: 0o644 },
  { path: 'nested/deep/er/file.bin', data: randomBytes(64 * 1024), mode: 0o644 },
  { path: 'big.bin', data: big, mode: 0o644 },
];
/** A time in seconds that reads back as exactly `ms` milliseconds (the middle of that millisecond). */
const seconds = (ms: number): number => (ms + 0.5) / 1000;
const dirs = ['emptydir', 'ünïcödé', 'nested', 'nested/deep', 'nested/deep/er'];

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-tree-e2e-'));
  chmodSync(base, 0o755);
  served = join(base, 'served');
  const tree = join(served, 'tree');
  for (const d of dirs) mkdirSync(join(tree, d), { recursive: true });
  files.forEach((f, i) => {
    writeFileSync(join(tree, f.path), f.data);
    chmodSync(join(tree, f.path), f.mode);
    utimesSync(join(tree, f.path), seconds(T + i * 1001), seconds(T + i * 1001));
  });
  symlinkSync('a.txt', join(tree, 'link-in'));
  symlinkSync('/etc/hostname', join(tree, 'link-out'));
  spawnSync('mkfifo', [join(tree, 'fifo')]);
  dirs.forEach((d, i) => utimesSync(join(tree, d), seconds(T + 500_000 + i), seconds(T + 500_000 + i)));
  chmodSync(tree, 0o750);
  utimesSync(tree, seconds(T + 600_000), seconds(T + 600_000));
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
}, 60_000);

afterAll(async () => {
  await server.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

const outDir = (): string => mkdtempSync(join(base, 'out-'));
const at = (port = server.port): string[] => ['-H', `127.0.0.1:${port}`];
const fetch = (args: string[], port?: number) => runNetkit(['file', 'fetch', ...args, ...at(port)], { timeoutMs: 60_000 });
const mtimeMs = (p: string): number => Number(statSync(p, { bigint: true }).mtimeNs / 1_000_000n);

describe('a whole directory', () => {
  test('arrives as OUT/NAME with nested and empty directories, 0-byte files, spaces, Unicode, modes and times; links in as files; a link out and a FIFO left out and said', async () => {
    const out = outDir();
    const r = await fetch(['tree', '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^8 files in 5 directories: 8 fetched \([\d.]+M, every one verified\); /m);
    expect(r.stderr).toMatch(/the server left out 2 entries .*\n {2}tree\/fifo: not a regular file or a directory\n {2}tree\/link-out: a symbolic link leading outside the served directory, to a directory, or nowhere\n/);
    const diff = spawnSync('diff', ['-r', '-x', 'link-out', '-x', 'fifo', join(served, 'tree'), join(out, 'tree')], { encoding: 'utf8' });
    expect(diff.stdout + diff.stderr).toBe('');
    expect(diff.status).toBe(0);
    files.forEach((f, i) => {
      const p = join(out, 'tree', f.path);
      expect({ p, mode: statSync(p).mode & 0o777, mtime: mtimeMs(p) }).toEqual({ p, mode: f.mode & ~process.umask(), mtime: T + i * 1001 });
    });
    dirs.forEach((d, i) => expect({ d, mtime: mtimeMs(join(out, 'tree', d)) }).toEqual({ d, mtime: T + 500_000 + i }));
    // The directory the NAME names, too (from the RESPONSE to its LIST).
    expect({ mode: statSync(join(out, 'tree')).mode & 0o777, mtime: mtimeMs(join(out, 'tree')) }).toEqual({ mode: (0o750 & ~process.umask()) | 0o300, mtime: T + 600_000 });
    expect(lstatSync(join(out, 'tree', 'link-in')).isFile()).toBe(true);
    expect(existsSync(join(out, 'tree', 'link-out'))).toBe(false);
    expect(existsSync(join(out, 'tree', 'fifo'))).toBe(false);
    expect(readdirSync(out)).toEqual(['tree']);
  });

  test('a rerun fetches nothing (the listing only); a changed copy is reported with exit 16, the rest skipped; --force replaces it', async () => {
    const out = outDir();
    expect((await fetch(['tree', '-o', out])).code).toBe(0);
    const proxy = await tcpRecordingProxy(server.port);
    try {
      const again = await fetch(['tree', '-o', out, '--json'], proxy.port);
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, fetched: 0, skipped: 8, failed: 0 });
      expect(Buffer.concat(proxy.toClient).length).toBeLessThan(16 * 1024);
      writeFileSync(join(out, 'tree', 'run.sh'), 'mine');
      const changed = await fetch(['tree', '-o', out, '--json'], proxy.port);
      expect(changed.code).toBe(16);
      const j = JSON.parse(changed.stdout);
      expect(j).toMatchObject({ ok: false, fetched: 0, skipped: 7, failed: 1 });
      expect(j.failures).toEqual([expect.objectContaining({ name: 'tree/run.sh', code: 'EXISTS', exitCode: 9 })]);
      expect(changed.stderr).toMatch(/^netkit: 1 of 8 files failed:\n {2}tree\/run\.sh: .*already exists and differs/m);
      expect(readFileSync(join(out, 'tree', 'run.sh'), 'utf8')).toBe('mine');
      const forced = await fetch(['tree', '-o', out, '--force'], proxy.port);
      expect(forced.code).toBe(0);
      expect(readFileSync(join(out, 'tree', 'run.sh')).equals(files[2]!.data)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  test('--checksum compares by SHA-256: the same bytes with another time are skipped, other bytes of the same size are reported', async () => {
    const out = outDir();
    expect((await fetch(['tree', '-o', out])).code).toBe(0);
    utimesSync(join(out, 'tree', 'a.txt'), 1000, 1000);
    writeFileSync(join(out, 'tree', 'with space.txt'), 'SPACED OUT\n');
    const r = await fetch(['tree', '-o', out, '--checksum', '--json']);
    expect(r.code).toBe(16);
    const j = JSON.parse(r.stdout);
    expect(j.failures.map((f: { name: string }) => f.name)).toEqual(['tree/with space.txt']);
    expect(j.files.find((f: { name: string }) => f.name === 'tree/a.txt')).toMatchObject({ status: 'skipped', reason: 'same SHA-256' });
    expect(mtimeMs(join(out, 'tree', 'a.txt'))).toBe(T);
    expect(readFileSync(join(out, 'tree', 'with space.txt'), 'utf8')).toBe('SPACED OUT\n');
  });
});

describe('names, globs and where they land', () => {
  test("several NAMEs and a glob: a file lands under its last segment, a glob's matches below the parent of its fixed part", async () => {
    const out = outDir();
    const r = await fetch(['tree/*.txt', 'tree/run.sh', 'tree/nested/deep', '-o', out]);
    expect(r.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['deep', 'run.sh', 'tree']);
    expect(readdirSync(join(out, 'tree')).sort()).toEqual(['a.txt', 'with space.txt']);
    expect(readFileSync(join(out, 'deep', 'er', 'file.bin')).equals(files[5]!.data)).toBe(true);
    expect(statSync(join(out, 'run.sh')).mode & 0o777).toBe(0o755 & ~process.umask());
  });

  test('-o NEWNAME names the one file; -o - writes it to stdout (through sha256sum), the summary to stderr', async () => {
    const out = outDir();
    const r = await fetch(['tree/a.txt', '-o', join(out, 'renamed.txt')]);
    expect(r.code).toBe(0);
    expect(readdirSync(out)).toEqual(['renamed.txt']);
    const child = spawn('sh', ['-c', `"$0" "$1" file fetch tree/big.bin -H 127.0.0.1:${server.port} -o - | sha256sum`, process.execPath, BIN], { env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [code] = await once(child, 'close');
    expect(code).toBe(0);
    expect(stdout.split(' ')[0]).toBe(createHash('sha256').update(big).digest('hex'));
    expect(stderr).toMatch(/^netkit: wrote stdout \(6\.0M, sha256 [0-9a-f]{64} verified/m);
  });

  test('a glob that matches nothing and a missing name fail alone (exit 16); the rest arrive', async () => {
    const out = outDir();
    const r = await fetch(['tree/*.nothing', 'tree/missing.txt', 'tree/a.txt', '-o', out]);
    expect(r.code).toBe(16);
    expect(r.stderr).toMatch(/1 of 2 files and 1 NAME failed:\n {2}tree\/\*\.nothing: .*has nothing matching/);
    expect(r.stderr).toMatch(/ {2}tree\/missing\.txt: .*has no file 'tree\/missing\.txt'/);
    expect(readdirSync(out)).toEqual(['a.txt']);
  });
});

/** The first line of the server's log (stderr) that matches `re`, once it is there. */
async function logLine(srv: Server, re: RegExp): Promise<string> {
  for (;;) {
    const m = re.exec(srv.stderr());
    if (m) return m[0];
    await once(srv.child.stderr, 'data');
  }
}

describe('what the server cannot read (it runs as uid 65534)', () => {
  const why = otherUserUnavailable();
  const skip = why ? ` (skipped: ${why})` : '';
  let dir: string;
  let nobody: Server | undefined;
  beforeAll(async () => {
    if (why) return;
    dir = join(base, 'locked');
    mkdirSync(join(dir, 'pub', 'a', 'b'), { recursive: true });
    writeFileSync(join(dir, 'pub', 'ok.txt'), 'ok');
    writeFileSync(join(dir, 'pub', 'locked.bin'), 'secret');
    writeFileSync(join(dir, 'pub', 'a', 'b', 'inside.txt'), 'hidden');
    spawnSync('mkfifo', [join(dir, 'pub', 'fifo')]);
    chmodSync(join(dir, 'pub', 'locked.bin'), 0o000);
    chmodSync(join(dir, 'pub', 'a', 'b'), 0o000);
    chmodSync(dir, 0o755);
    nobody = await startServer(['file', 'serve', dir, '--host', '127.0.0.1', '--port', '0', '--no-announce'], { prefix: ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups'] });
  });
  afterAll(async () => {
    await nobody?.stop('SIGKILL');
  });

  (why ? test.skip : test)(`a tree fetch names the unreadable file and directory as failures (exit 16), and the FIFO it left out${skip}`, async () => {
    const out = outDir();
    const r = await fetch(['pub', '-o', out], nobody!.port);
    expect(r.code).toBe(16);
    expect(r.stderr).toMatch(/ {2}pub\/locked\.bin: 127\.0\.0\.1:\d+ may not read 'pub\/locked\.bin': the server left it out/);
    expect(r.stderr).toMatch(/ {2}pub\/a\/b: 127\.0\.0\.1:\d+ may not read the directory 'pub\/a\/b' \(nothing in it was fetched\)/);
    expect(r.stderr).toMatch(/the server left out 1 entry .*\n {2}pub\/fifo: not a regular file or a directory\n/);
    expect(readFileSync(join(out, 'pub', 'ok.txt'), 'utf8')).toBe('ok');
    expect(existsSync(join(out, 'pub', 'locked.bin'))).toBe(false);
    // The server's log: the directory asked for as a file is no refusal.
    const line = await logLine(nobody!, /^.* session of \d+ requests from "pub" .*$/m);
    expect(line).toMatch(/ ok: \d+ requests: \d+ ok, 1 is-directory$/);
    expect(line).not.toMatch(/forbidden|refused/);
  });

  (why ? test.skip : test)(`--json: the failures and the named left-out entries; a file named on the command line fails alone${skip}`, async () => {
    const out = outDir();
    const r = await fetch(['pub', 'pub/locked.bin', '-o', out, '--json'], nobody!.port);
    expect(r.code).toBe(16);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ ok: false, fetched: 1, failed: 3, skippedByServer: 1, leftOut: [{ name: 'pub/fifo', reason: 'not a regular file or a directory' }] });
    expect(j.failures).toHaveLength(3);
    expect(j.failures).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'pub/a/b', path: join(out, 'pub', 'a', 'b'), code: 'FORBIDDEN', exitCode: 4 }),
        expect.objectContaining({ name: 'pub/locked.bin', path: join(out, 'pub', 'locked.bin'), code: 'FORBIDDEN', exitCode: 4 }),
        expect.objectContaining({ name: 'pub/locked.bin', path: join(out, 'locked.bin'), code: 'FORBIDDEN', exitCode: 4 }),
      ]),
    );
    expect(r.stderr).toMatch(/ {2}pub\/locked\.bin: .*refused 'pub\/locked\.bin'/);
    expect(readFileSync(join(out, 'pub', 'ok.txt'), 'utf8')).toBe('ok');
  });

  (why ? test.skip : test)(`a glob fails only the unreadable entries it selects${skip}`, async () => {
    const out = outDir();
    const r = await fetch(['pub/*.txt', '-o', out, '--json'], nobody!.port);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ fetched: 1, failed: 0 });
  });
});

describe('file list', () => {
  test('a table like ls -l: modes, human sizes, times, directories marked; -r lists the tree; --json one array', async () => {
    const r = await runNetkit(['file', 'list', 'tree', ...at()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^-rw-r--r-- {2}6\.0M {2}\d{4}-\d\d-\d\d \d\d:\d\d {2}big\.bin$/m);
    expect(r.stdout).toMatch(/^drwxr-xr-x {2}\s*- {2}\S+ \S+ {2}emptydir\/$/m);
    expect(r.stdout).toMatch(/^-rwxr-xr-x .* run\.sh$/m);
    expect(r.stdout).not.toMatch(/file\.bin/);
    expect(r.stderr).toMatch(/left out 2 entries/);
    const deep = await runNetkit(['file', 'list', 'tree', '-r', '--json', ...at()]);
    expect(deep.code).toBe(0);
    const entries = JSON.parse(deep.stdout) as Array<{ path: string; type: string; size: number; mtime: string; mode: string }>;
    expect(entries.find((e) => e.path === 'tree/nested/deep/er/file.bin')).toEqual({ path: 'tree/nested/deep/er/file.bin', type: 'file', size: 65536, mtime: new Date(T + 5 * 1001).toISOString(), mode: '0644' });
    expect(entries.find((e) => e.path === 'tree/emptydir')).toMatchObject({ type: 'dir', size: 0 });
  });

  test('a missing PATH exits 3, a file exits 4, each with a clear message', async () => {
    const missing = await runNetkit(['file', 'list', 'nope', ...at()]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/has no directory 'nope'/);
    const file = await runNetkit(['file', 'list', 'tree/a.txt', ...at()]);
    expect(file.code).toBe(4);
    expect(file.stderr).toMatch(/'tree\/a\.txt' is a file, not a directory\n/);
  });
});
