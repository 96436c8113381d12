// `netkit file serve|fetch` as a user meets them: the built binary, real signals, exit codes, resume after a crash.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { holdTransfer } from '../helpers/raw-file-client.js';
import { partialReaches, staged } from '../helpers/staging.js';

let base: string;
let served: string;
const small = randomBytes(300_001);
let bigSha = '';
const BIG_MIB = 96;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-file-e2e-'));
  served = join(base, 'served');
  mkdirSync(served, { recursive: true });
  writeFileSync(join(served, 'small.bin'), small);
  writeFileSync(join(served, 'text.txt'), 'hello, classic world\n');
  writeFileSync(join(served, '42.txt'), '42 starts with digits');
  // A file big enough that a transfer is still running when the test acts on it.
  const fd = openSync(join(served, 'big.bin'), 'w');
  const hash = createHash('sha256');
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < BIG_MIB; i++) {
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  bigSha = hash.digest('hex');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const servers: Server[] = [];
const children: ChildProcess[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers.splice(0)) await s.stop('SIGKILL');
});

async function serve(args: string[] = [], port = 0): Promise<Server> {
  const s = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', String(port), ...args]);
  servers.push(s);
  return s;
}

function outDir(): string {
  return mkdtempSync(join(base, 'out-'));
}

const fileSha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

/** Spawn a fetch (not waiting for it), collecting its output. */
function spawnFetch(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [BIN, 'file', 'fetch', ...args], { env: { ...process.env, NO_COLOR: '1' } });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, done };
}

/** Wait for a line on the server's stderr matching `re` (event-driven). */
function serverLogs(s: Server, re: RegExp): Promise<string> {
  return new Promise((resolve) => {
    const check = (): boolean => {
      const m = s.stderr().split('\n').find((l) => re.test(l));
      if (m) {
        s.child.stderr.off('data', check);
        resolve(m);
        return true;
      }
      return false;
    };
    if (!check()) s.child.stderr.on('data', check);
  });
}

const fetchArgs = (s: Server, name: string, out: string, ...more: string[]): string[] => ['file', 'fetch', name, '--host', '127.0.0.1', '--port', String(s.port), '--out', out, ...more];

describe('netkit file serve / fetch', () => {
  test('serve prints where it listens and what it serves; SIGTERM exits 0', async () => {
    const s = await serve();
    expect(s.line).toMatch(/^listening tcp 127\.0\.0\.1:\d+$/);
    expect(s.stdout()).toContain(`serving ${served}`);
    expect(await s.stop('SIGTERM')).toBe(0);
  });

  test('a fetch is byte-identical; piped output is one summary line, no \\r and no escape codes', async () => {
    const s = await serve();
    const out = outDir();
    const r = await runNetkit(fetchArgs(s, 'small.bin', out));
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, 'small.bin')).equals(small)).toBe(true);
    expect(r.stdout).toMatch(/^saved .*small\.bin \(293K, sha256 [0-9a-f]{64} verified, .*\)\n$/);
    expect(r.stdout + r.stderr).not.toMatch(/[\r\u001b]/);
    expect(r.stderr).toBe('');
    // netkit's client speaks in sessions: one line for the connection, with its first name and tally.
    expect(await serverLogs(s, /small\.bin/)).toMatch(/127\.0\.0\.1:\d+ v1 session of 1 request from "small\.bin" 293K in \S+ ok/);
  });

  test('--json prints one result object', async () => {
    const s = await serve();
    const out = outDir();
    const r = await runNetkit(fetchArgs(s, 'small.bin', out, '--json'));
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ ok: true, size: small.length, verified: true, protocol: 'v1', resumedFrom: 0 });
    expect(j.sha256).toBe(createHash('sha256').update(small).digest('hex'));
  });

  test.each([
    ['nothing.bin', 3, /has no file 'nothing\.bin'/],
    ['../../etc/passwd', 4, /refused '\.\.\/\.\.\/etc\/passwd'/],
  ])('fetch %j exits %i with a message and a hint', async (name, code, message) => {
    const s = await serve();
    const out = outDir();
    const r = await runNetkit(fetchArgs(s, name, out));
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^hint: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(out)).toEqual([]);
  });

  test('refuses to overwrite (exit 9) and --force replaces', async () => {
    const s = await serve();
    const out = outDir();
    writeFileSync(join(out, 'small.bin'), 'precious');
    const r = await runNetkit(fetchArgs(s, 'small.bin', out));
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/already exists/);
    expect(readFileSync(join(out, 'small.bin'), 'utf8')).toBe('precious');
    expect((await runNetkit(fetchArgs(s, 'small.bin', out, '--force'))).code).toBe(0);
    expect(readFileSync(join(out, 'small.bin')).equals(small)).toBe(true);
  });

  test('connection refused exits 6 with the hint; a bad --port is a usage error', async () => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const r = await runNetkit(['file', 'fetch', 'x', '--host', '127.0.0.1', '--port', String(port), '--out', outDir()]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/cannot connect to 127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/hint: is `netkit file serve` running there\?/);
    expect((await runNetkit(['file', 'fetch', 'x', '--port', 'http'])).code).toBe(2);
  });

  test('busy past --max-connections exits 5', async () => {
    const s = await serve(['--max-connections', '1']);
    // A transfer that has stopped reading holds the only slot (an idle connection would be evicted).
    sockets.push(await holdTransfer(s.port, 'big.bin'));
    const r = await runNetkit(fetchArgs(s, 'small.bin', outDir()));
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/busy/);
  });

  test('server killed mid-transfer: no final file, the partial is kept, a new server resumes and verifies', async () => {
    const a = await serve();
    const out = outDir();
    const f = spawnFetch(['big.bin', '--host', '127.0.0.1', '--port', String(a.port), '--out', out, '--retries', '0']);
    await partialReaches(out, 'big.bin', 4 * 1024 * 1024);
    f.child.kill('SIGSTOP');
    a.child.kill('SIGKILL');
    await once(a.child, 'exit');
    f.child.kill('SIGCONT');
    const first = await f.done;
    expect(first.code).toBe(8);
    expect(first.stderr).toMatch(/is kept/);
    expect(first.stderr).toMatch(/hint: run the same fetch again to resume/);
    expect(existsSync(join(out, 'big.bin'))).toBe(false);
    const kept = statSync(staged(out, 'big.bin').part).size;
    expect(kept).toBeGreaterThan(0);

    const b = await serve([], a.port);
    const second = await runNetkit(fetchArgs(b, 'big.bin', out, '--json'));
    expect(second.code).toBe(0);
    const j = JSON.parse(second.stdout) as { resumedFrom: number; sha256: string };
    expect(j.resumedFrom).toBe(kept);
    expect(j.sha256).toBe(bigSha);
    expect(fileSha(join(out, 'big.bin'))).toBe(bigSha);
    expect(readdirSync(out)).toEqual(['big.bin']);
  });

  test('client killed mid-transfer: the server logs it, leaks no descriptor, and keeps serving', async () => {
    const s = await serve();
    const fds = (): number => readdirSync(`/proc/${s.child.pid}/fd`).length;
    expect((await runNetkit(fetchArgs(s, 'small.bin', outDir()))).code).toBe(0); // warm up lazily opened descriptors
    await serverLogs(s, /small\.bin.* ok/);
    const baseline = fds();
    const out = outDir();
    const f = spawnFetch(['big.bin', '--host', '127.0.0.1', '--port', String(s.port), '--out', out]);
    await partialReaches(out, 'big.bin', 4 * 1024 * 1024);
    f.child.kill('SIGKILL');
    await f.done;
    expect(await serverLogs(s, /"big\.bin"/)).toMatch(/aborted|timeout/);
    expect(fds()).toBe(baseline);
    const again = await runNetkit(fetchArgs(s, 'small.bin', outDir()));
    expect(again.code).toBe(0);
  });

  test('SIGTERM lets a running transfer finish, then the server exits 0', async () => {
    const s = await serve(['--grace', '20s']);
    const out = outDir();
    const f = spawnFetch(['big.bin', '--host', '127.0.0.1', '--port', String(s.port), '--out', out]);
    await partialReaches(out, 'big.bin', 1024 * 1024);
    const exit = s.stop('SIGTERM');
    const r = await f.done;
    expect(r.code).toBe(0);
    expect(await exit).toBe(0);
    expect(fileSha(join(out, 'big.bin'))).toBe(bigSha);
  });
});

describe('the progress bar', () => {
  test('drawn on a terminal (a pseudo-terminal via script(1)), with percentage, sizes, speed and ETA', async () => {
    const s = await serve();
    const out = outDir();
    const cmd = [process.execPath, BIN, ...fetchArgs(s, 'big.bin', out)].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...process.env, NO_COLOR: '1', COLUMNS: '120' } });
    children.push(child);
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    const [code] = (await once(child, 'close')) as [number];
    expect(code).toBe(0);
    expect(text).toMatch(/big\.bin \[[= ]*\] +\d+% \| +[\d.]+[BKMG]\/96M \| /);
    expect(text).toMatch(/ETA /);
    expect(text).toMatch(/100% \| +96M\/96M/);
    expect(text).toMatch(/saved .*big\.bin \(96M, sha256 [0-9a-f]{64} verified/);
  });

  test('absent when stderr is a pipe', async () => {
    const s = await serve();
    const r = await runNetkit(fetchArgs(s, 'big.bin', outDir()));
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });
});
