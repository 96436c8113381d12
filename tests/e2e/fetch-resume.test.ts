// Two fetches of one file, a resume under another spelling of the server, Ctrl-C and SIGTERM mid-fetch: the built binary against a real server.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, spawnNetkit, startServer, type Server, type Spawned } from '../helpers/netkit.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';
import { partialReaches, staged } from '../helpers/staging.js';

let base: string;
let served: string;
const BIG = 64 * 1024 * 1024;
let bigSha = '';
let server: Server;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-resume-'));
  served = join(base, 'served');
  mkdirSync(join(served, 'other'), { recursive: true });
  const fd = openSync(join(served, 'big.bin'), 'w');
  const hash = createHash('sha256');
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < BIG / block.length; i++) {
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  bigSha = hash.digest('hex');
  writeFileSync(join(served, 'other', 'big.bin'), randomBytes(1000));
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet']);
}, 60_000);
afterAll(async () => {
  await server.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

const running: Spawned[] = [];
const proxies: TcpRecordingProxy[] = [];
afterEach(async () => {
  for (const f of running.splice(0)) if (f.child.exitCode === null && f.child.signalCode === null) f.child.kill('SIGKILL');
  for (const p of proxies.splice(0)) await p.close();
});

const outDir = (): string => mkdtempSync(join(base, 'out-'));

function start(args: string[]): Spawned {
  const f = spawnNetkit(['file', 'fetch', ...args], { timeoutMs: 30_000 });
  running.push(f);
  return f;
}

/** A fetch of big.bin stopped (SIGSTOP) once its partial file holds 4 MiB. */
async function paused(out: string, host = `127.0.0.1:${server.port}`): Promise<Spawned> {
  const f = start(['big.bin', '-H', host, '-o', out, '--json']);
  await partialReaches(out, 'big.bin', 4 * 1024 * 1024);
  f.child.kill('SIGSTOP');
  return f;
}

describe('one file, two fetches', () => {
  test('the second fetch says which netkit holds the file and exits 14; the first still verifies', async () => {
    const out = outDir();
    const first = await paused(out);
    const second = await runNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', out]);
    expect(second.code).toBe(14);
    expect(second.stderr).toContain(`netkit: another netkit (pid ${first.child.pid}) is fetching big.bin into ${out}`);
    expect(second.stderr).toMatch(/^hint: /m);
    first.child.kill('SIGCONT');
    const r = await first.done;
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, sha256: bigSha });
    expect(readdirSync(out)).toEqual(['big.bin']);
  });

  test('the lock of a fetch that was killed is taken over, and its partial download resumed', async () => {
    const out = outDir();
    const first = await paused(out);
    first.child.kill('SIGKILL');
    await first.done;
    expect(existsSync(staged(out, 'big.bin').lock)).toBe(true);
    const kept = statSync(staged(out, 'big.bin').part).size;
    const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, sha256: bigSha, resumedFrom: kept });
    expect(readdirSync(out)).toEqual(['big.bin']);
  });
});

describe('resume', () => {
  test('under another spelling of the same server (127.0.0.1, then localhost), and it says so', async () => {
    const out = outDir();
    const first = await paused(out, `127.0.0.1:${server.port}`);
    first.child.kill('SIGKILL');
    await first.done;
    const kept = statSync(staged(out, 'big.bin').part).size;
    const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', 'localhost', '-p', String(server.port), '-o', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, sha256: bigSha, resumedFrom: kept, received: BIG - kept });
    expect(r.stderr).toMatch(new RegExp(`^netkit: resuming big\\.bin at [\\d.]+M of 64M \\(begun from 127\\.0\\.0\\.1:${server.port}\\)$`, 'm'));
  });

  test('a partial download of another file with the same local name: starting over says why and how much is discarded', async () => {
    const out = outDir();
    const first = await paused(out);
    first.child.kill('SIGKILL');
    await first.done;
    const r = await runNetkit(['file', 'fetch', 'other/big.bin', '-H', `127.0.0.1:${server.port}`, '-o', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, resumedFrom: 0, size: 1000 });
    expect(r.stderr).toMatch(/^netkit: starting over: discarding the partial download of big\.bin \([\d.]+M in .*\.part\): it is of 'big\.bin' from 127\.0\.0\.1:\d+, not of 'other\/big\.bin'$/m);
  });
});

describe('interrupted', () => {
  test.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s mid-fetch: says what is kept, exits %i, and the same command fetches only the rest', async (signal, code) => {
    const out = outDir();
    const proxy = await tcpRecordingProxy(server.port);
    proxies.push(proxy);
    const args = ['big.bin', '-H', `127.0.0.1:${proxy.port}`, '-o', out];
    const f = start(args);
    await partialReaches(out, 'big.bin', 4 * 1024 * 1024);
    f.child.kill(signal);
    const r = await f.done;
    expect(r.code).toBe(code);
    const m = /^netkit: interrupted: (.*\.part) kept \(([\d.]+M) of 64M\); run the same command to resume$/m.exec(r.stderr);
    expect(m).not.toBeNull();
    expect(m![1]).toBe(staged(out, 'big.bin').part);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const kept = statSync(staged(out, 'big.bin').part).size;
    expect(kept).toBeGreaterThan(0);
    expect(existsSync(join(out, 'big.bin'))).toBe(false);

    const before = Buffer.concat(proxy.toClient).length;
    const again = await runNetkit(['file', 'fetch', ...args, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ verified: true, sha256: bigSha, resumedFrom: kept });
    const sent = Buffer.concat(proxy.toClient).length - before;
    expect(sent).toBeGreaterThanOrEqual(BIG - kept);
    expect(sent).toBeLessThan(BIG - kept + 64 * 1024);
    expect(createHash('sha256').update(readFileSync(join(out, 'big.bin'))).digest('hex')).toBe(bigSha);
  });
});
