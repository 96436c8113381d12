// Sets of files end to end (the built binary, a real server): a served directory holding netkit's own staging directory, what the exit code says when nothing arrived, repeated NAMEs, and what the summary says.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { request } from '../helpers/http-client.js';

let base: string;
let served: string;
let server: Server;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-set-e2e-'));
  served = join(base, 'served');
  // Someone fetched into the served directory and was interrupted: its staging directory is there.
  mkdirSync(join(served, '.netkit'), { recursive: true });
  writeFileSync(join(served, '.netkit', 'big.bin.0123456789abcdef.part'), 'partial');
  writeFileSync(join(served, '.netkit', 'big.bin.0123456789abcdef.json'), '{}');
  mkdirSync(join(served, 'd', '.netkit'), { recursive: true });
  writeFileSync(join(served, 'd', '.netkit', 'planted'), 'planted');
  writeFileSync(join(served, 'd', 'x.txt'), 'x');
  writeFileSync(join(served, 'run.sh'), '#!/bin/sh\n');
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
}, 60_000);

afterAll(async () => {
  await server.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

const outDir = (): string => mkdtempSync(join(base, 'out-'));
const at = (): string[] => ['-H', `127.0.0.1:${server.port}`];
const fetch = (args: string[]) => runNetkit(['file', 'fetch', ...args, ...at()], { timeoutMs: 30_000 });

describe("a served directory that holds netkit's staging directory (.netkit)", () => {
  test('a whole-tree fetch leaves every .netkit out, says nothing of it, and exits 0', async () => {
    const out = outDir();
    const r = await fetch(['.', '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^2 files in 1 directory: 2 fetched/m);
    expect(readdirSync(out).sort()).toEqual(['d', 'run.sh']);
    expect(readdirSync(join(out, 'd'))).toEqual(['x.txt']);
  });

  test('a .netkit at any depth is refused by name (exit 4), and left out of file list and of the HTTP listing', async () => {
    const out = outDir();
    for (const name of ['.netkit/big.bin.0123456789abcdef.part', 'd/.netkit/planted']) {
      const r = await fetch([name, '-o', out]);
      expect({ name, code: r.code }).toEqual({ name, code: 4 });
      expect(r.stderr).toMatch(/\.netkit holds netkit's partial downloads and is not served/);
    }
    expect(readdirSync(out)).toEqual([]);
    const listed = await runNetkit(['file', 'list', '.', '-r', '--json', ...at()]);
    expect(listed.code).toBe(0);
    expect(listed.stderr).toBe('');
    expect((JSON.parse(listed.stdout) as Array<{ path: string }>).map((e) => e.path).sort()).toEqual(['d', 'd/x.txt', 'run.sh']);
    const page = await request(server.port, '/d/?format=json');
    expect(page.status).toBe(200);
    expect(page.body.toString()).not.toMatch(/netkit/);
    expect((await request(server.port, '/d/.netkit/planted')).status).toBe(403);
    expect((await request(server.port, '/.netkit/')).status).toBe(403);
    expect(readFileSync(join(served, 'd', '.netkit', 'planted'), 'utf8')).toBe('planted');
    expect(existsSync(join(out, '.netkit'))).toBe(false);
  });
});

describe('a symbolic link into a .netkit directory', () => {
  test('is served neither by a REQUEST (v1 or HTTP) through it nor as a listed file: the staging directory stays unserved however it is reached', async () => {
    const dir = join(base, 'linked');
    mkdirSync(join(dir, '.netkit'), { recursive: true });
    writeFileSync(join(dir, '.netkit', 'big.bin.0123456789abcdef.part'), 'partial');
    symlinkSync('.netkit', join(dir, 'alias'));
    symlinkSync('.netkit/big.bin.0123456789abcdef.part', join(dir, 'part'));
    writeFileSync(join(dir, 'ok.txt'), 'ok');
    const s = await startServer(['file', 'serve', dir, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
    try {
      const on = ['-H', `127.0.0.1:${s.port}`];
      const out = outDir();
      for (const name of ['alias/big.bin.0123456789abcdef.part', 'part']) {
        const r = await runNetkit(['file', 'fetch', name, '-o', out, ...on], { timeoutMs: 30_000 });
        expect({ name, code: r.code }).toEqual({ name, code: 4 });
      }
      expect(readdirSync(out)).toEqual([]);
      const listed = await runNetkit(['file', 'list', '.', '-r', '--json', ...on]);
      expect((JSON.parse(listed.stdout) as Array<{ path: string }>).map((e) => e.path)).toEqual(['ok.txt']);
      expect((await request(s.port, '/part')).status).toBe(403);
      expect((await request(s.port, '/alias/big.bin.0123456789abcdef.part')).status).toBe(403);
    } finally {
      await s.stop('SIGKILL');
    }
  });
});

describe('the exit status when nothing arrived', () => {
  test('missing names, a glob matching nothing, a missing directory: their own code (3), not 16; mixed reasons: 1; something there: 16', async () => {
    const out = outDir();
    for (const names of [['nope1', 'nope2'], ['*.nothing'], ['nope/'], ['d/*.nothing', 'nope']]) {
      const r = await fetch([...names, '-o', out]);
      expect({ names, code: r.code }).toEqual({ names, code: 3 });
      expect(r.stderr).toMatch(new RegExp(`^netkit: nothing arrived \\(${names.length} failed, listed above\\)$`, 'm'));
    }
    const mixed = await fetch(['nope', '.netkit/x', '-o', out, '--json']);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/nothing arrived \(2 failed for different reasons, listed above\)/);
    expect(JSON.parse(mixed.stdout)).toMatchObject({ ok: false, fetched: 0, failed: 2 });
    expect(readdirSync(out)).toEqual([]);
    const some = await fetch(['nope', 'run.sh', '-o', out]);
    expect(some.code).toBe(16);
    const already = await fetch(['nope', 'run.sh', '-o', out]);
    expect(already.code).toBe(16);
  });
});

describe('a NAME given more than once', () => {
  test('run.sh run.sh ./run.sh is fetched once and said once (no lock against itself); two names for one local name fail the second', async () => {
    const out = outDir();
    const r = await fetch(['run.sh', 'run.sh', './run.sh', 'd', 'd/', '-o', out, '--json']);
    expect(r.stderr).not.toMatch(/another netkit/);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/fetched once/g)).toHaveLength(2);
    expect(r.stderr).toMatch(/^netkit: 'run\.sh' is given more than once: fetched once$/m);
    expect(r.stderr).toMatch(/^netkit: 'd\/' names the same as 'd' on the server: fetched once$/m);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, fetched: 2, failed: 0 });
    expect(readFileSync(join(out, 'run.sh'), 'utf8')).toBe('#!/bin/sh\n');
    const again = await fetch(['run.sh', './run.sh', '-o', out]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/1 skipped/);
    writeFileSync(join(served, 'x.txt'), 'top x');
    try {
      const clash = await fetch(['x.txt', 'd/x.txt', '-o', out]);
      expect(clash.code).toBe(16);
      expect(clash.stderr).toMatch(/d\/x\.txt: 'd\/x\.txt' would be saved as \S+x\.txt, like 'x\.txt'/);
      expect(readFileSync(join(out, 'x.txt'), 'utf8')).toBe('top x');
    } finally {
      rmSync(join(served, 'x.txt'));
    }
  });
});

describe('--checksum --json on what is already there', () => {
  test('an identical file skipped by its SHA-256 reports that hash (one file and a set); skipped by size and time, no empty hash', async () => {
    const out = outDir();
    expect((await fetch(['run.sh', 'd', '-o', out])).code).toBe(0);
    const hash = (s: string): string => createHash('sha256').update(s).digest('hex');
    const one = await fetch(['run.sh', '-o', out, '--checksum', '--json']);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ ok: true, skipped: 'same SHA-256', sha256: hash('#!/bin/sh\n') });
    const set = await fetch(['run.sh', 'd', '-o', out, '--checksum', '--json']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout).files).toEqual([
      expect.objectContaining({ name: 'run.sh', status: 'skipped', reason: 'same SHA-256', sha256: hash('#!/bin/sh\n') }),
      expect.objectContaining({ name: 'd/x.txt', status: 'skipped', reason: 'same SHA-256', sha256: hash('x') }),
    ]);
    const quick = await fetch(['run.sh', '-o', out, '--json']);
    expect(quick.code).toBe(0);
    const j = JSON.parse(quick.stdout);
    expect(j).toMatchObject({ ok: true, skipped: 'same size and time' });
    expect(j).not.toHaveProperty('sha256');
  });
});

describe('the summary', () => {
  test('nothing fetched is said so (no "0 fetched (0B, every one verified)"); a NAME that brought nothing is not counted as a file', async () => {
    const out = outDir();
    expect((await fetch(['d', '-o', out])).code).toBe(0);
    const again = await fetch(['d', '-o', out]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^1 file: nothing fetched, 1 skipped \(already there\); took [\d.]+m?s\n$/);
    const missing = await fetch(['nope/', 'd', '-o', out]);
    expect(missing.code).toBe(16);
    expect(missing.stdout).toMatch(/^1 file: nothing fetched, 1 skipped \(already there\), 1 NAME brought nothing; /);
    expect(missing.stderr).toMatch(/^netkit: 1 NAME failed:\n {2}nope\/: 127\.0\.0\.1:\d+ has no directory 'nope': no such directory$/m);
  });

  test('a fetch refused for want of the secret prints no summary before its error', async () => {
    const token = 'a-shared-secret-that-is-long-enough-0123456789';
    const guarded = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce'], { env: { NETKIT_TOKEN: token } });
    try {
      const out = outDir();
      for (const names of [['d'], ['run.sh', 'd/x.txt']]) {
        const r = await runNetkit(['file', 'fetch', ...names, '-o', out, '-H', `127.0.0.1:${guarded.port}`], { env: { NETKIT_TOKEN: undefined }, timeoutMs: 30_000 });
        expect({ names, code: r.code, stdout: r.stdout }).toEqual({ names, code: 4, stdout: '' });
        expect(r.stderr).toMatch(/requires a shared secret/);
      }
    } finally {
      await guarded.stop('SIGKILL');
    }
  });
});
