// Attacks on `netkit file serve`'s connection limits, against the built server: idle floods from several addresses, 3,000 stalled TLS handshakes, a client that stops reading.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Status } from '../../src/protocol/file-v1.js';
import { startFlood, type Flood } from '../helpers/flood.js';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { rawFetch, v1Conversation } from '../helpers/raw-file-client.js';

let dir: string;
let big: Buffer;
let env: NodeJS.ProcessEnv;
const servers: Server[] = [];
const floods: Flood[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'netkit-adv-limits-'));
  mkdirSync(path.join(dir, 'srv'));
  big = randomBytes(3 * 1024 * 1024);
  writeFileSync(path.join(dir, 'srv', 'big.bin'), big);
  writeFileSync(path.join(dir, 'srv', 'hold.bin'), '');
  truncateSync(path.join(dir, 'srv', 'hold.bin'), 256 * 1024 * 1024); // sparse; more than socket buffers take
  env = { XDG_CONFIG_HOME: path.join(dir, 'config') };
});

afterEach(async () => {
  for (const f of floods.splice(0)) await f.stop();
  while (servers.length > 0) await servers.pop()!.stop();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function serve(...extra: string[]): Promise<Server> {
  const s = await startServer(['file', 'serve', path.join(dir, 'srv'), '--port', '0', '--host', '127.0.0.1', ...extra], { env });
  servers.push(s);
  return s;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
/** A figure from /proc/<pid>/status, in MiB (VmRSS now, VmHWM the peak). */
const memMiB = (pid: number, field: 'VmRSS' | 'VmHWM'): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

const FLOODERS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

describe('fair connection limits', () => {
  test('four addresses holding and reopening as many idle connections as they can: a fetch from a fifth succeeds within 2 s, every time', async () => {
    const s = await serve('--quiet'); // the defaults: 64 connections, 32 per address
    const flood = startFlood({ port: s.port, sources: FLOODERS, perSource: 40, mode: 'idle', reopen: true, maxMs: 60_000 });
    floods.push(flood);
    await flood.ready;
    const times: number[] = [];
    for (let round = 0; round < 8; round++) {
      const started = performance.now();
      const a = await rawFetch(s.port, 'big.bin', { localAddress: '127.0.0.6', timeoutMs: 5_000 });
      times.push(performance.now() - started);
      expect(a.status).toBe(Status.OK);
      expect(sha(a.body)).toBe(sha(big));
      expect(a.sha256?.toString('hex')).toBe(sha(big));
    }
    const stats = await flood.stop();
    // The attack was real: the flooders kept the server full and it kept closing their idle connections.
    expect(stats.connected).toBeGreaterThan(160);
    expect(stats.closedByServer).toBeGreaterThan(8);
    expect(Math.max(...times)).toBeLessThan(2_000);
  }, 90_000);
});

describe('TLS handshakes count from accept', () => {
  test('3,000 stalled handshakes under a 1,024-descriptor limit: descriptors stay within the limits, RSS < 150 MB, and a TLS fetch succeeds meanwhile', async () => {
    const s = await serve('--tls', '--quiet');
    const re = /^tls fingerprint (sha256:[0-9a-f]{64})/m;
    while (!re.test(s.stdout())) await once(s.child.stdout, 'data');
    const fingerprint = re.exec(s.stdout())![1]!;
    const pid = s.child.pid!;
    execFileSync('prlimit', ['--pid', String(pid), '--nofile=1024:1024']);
    const baseline = fdCount(pid);
    const flood = startFlood({ port: s.port, sources: FLOODERS, perSource: 750, mode: 'tls-stall', reopen: false, maxMs: 60_000 });
    floods.push(flood);
    let maxFds = baseline;
    const sampler = setInterval(() => (maxFds = Math.max(maxFds, fdCount(pid))), 20);
    try {
      await flood.ready;
      const out = mkdtempSync(path.join(dir, 'out-'));
      const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', '127.0.0.1', '-p', String(s.port), '-o', out, '--tls-fingerprint', fingerprint], { env, timeoutMs: 20_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(sha(readFileSync(path.join(out, 'big.bin')))).toBe(sha(big));
      maxFds = Math.max(maxFds, fdCount(pid));
    } finally {
      clearInterval(sampler);
    }
    const stats = await flood.stop();
    expect(stats.connected).toBeGreaterThanOrEqual(3_000);
    // Every connection counts from accept: 64 slots, plus at most max(16, 64) waiting for a BUSY answer.
    expect(maxFds - baseline).toBeLessThanOrEqual(64 + 64 + 8);
    expect(memMiB(pid, 'VmHWM')).toBeLessThan(150);
  }, 120_000);
});

describe('the idle timeout', () => {
  test('--idle-timeout 2s cuts a client that stops reading after 2 s (not 4), and the log says 2s', async () => {
    const s = await serve('--idle-timeout', '2s');
    const c = net.connect({ host: '127.0.0.1', port: s.port });
    c.on('error', () => undefined);
    await once(c, 'connect');
    c.pause(); // never reads: the server's writes stall once the socket buffers are full
    c.write(v1Conversation(Buffer.from('hold.bin')));
    const started = performance.now();
    while (!/ timeout: /.test(s.stderr())) await once(s.child.stderr, 'data');
    const elapsed = performance.now() - started;
    c.destroy();
    expect(s.stderr()).toMatch(/"hold\.bin" .* timeout: the client read nothing for 2s/);
    expect(elapsed).toBeGreaterThanOrEqual(1_900);
    // The timeout plus one sampling period (a tenth of it), plus scheduling on a busy machine.
    expect(elapsed).toBeLessThan(2_700);
  }, 30_000);
});
