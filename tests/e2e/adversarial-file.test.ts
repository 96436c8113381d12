// Abuse against a running `netkit file serve`: malformed streams, slowloris, per-source caps, descriptor leaks, and a client whose disk fills up.
import { afterEach, beforeAll, afterAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FrameType, MAX_FRAME_PAYLOAD, Status, encodeFrame, encodeHello, encodePreamble } from '../../src/protocol/file-v1.js';
import { BIN, runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { holdTransfer, rawFetch, requestFrame, v1Conversation } from '../helpers/raw-file-client.js';

let dir: string;
let big: Buffer;
const servers: Server[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'netkit-adv-file-'));
  writeFileSync(path.join(dir, 'ok.txt'), 'inside\n');
  big = randomBytes(3 * 1024 * 1024);
  writeFileSync(path.join(dir, 'big.bin'), big);
  // Sparse, and larger than loopback socket buffers: a client that stops reading keeps it transferring.
  writeFileSync(path.join(dir, 'hold.bin'), '');
  truncateSync(path.join(dir, 'hold.bin'), 256 * 1024 * 1024);
});

afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.stop();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function serve(...extra: string[]): Promise<Server> {
  const s = await startServer(['file', 'serve', dir, '--port', '0', '--host', '127.0.0.1', '--quiet', ...extra]);
  servers.push(s);
  return s;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A correct fetch of big.bin, through the raw client (optionally from another loopback source). */
async function expectGoodFetch(port: number, localAddress?: string): Promise<void> {
  const a = await rawFetch(port, 'big.bin', { localAddress, timeoutMs: 10_000 });
  expect(a.status).toBe(Status.OK);
  expect(a.body.length).toBe(big.length);
  expect(sha(a.body)).toBe(sha(big));
  expect(a.sha256?.toString('hex')).toBe(sha(big));
}

/** Open a socket and resolve once connected. */
async function connect(port: number, localAddress?: string): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress, allowHalfOpen: true });
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Resolve when the server has closed its side (end, reset or close), or reject after ms (a hang fails instead of stalling the suite). */
function closed(s: net.Socket, ms: number): Promise<void> {
  if (s.closed || s.readableEnded) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    const done = (): void => {
      clearTimeout(t);
      resolve();
    };
    s.once('end', done);
    s.once('close', done);
    s.on('data', () => undefined);
    s.resume();
  });
}

/** A fresh output directory, removed with `dir`. */
function emptyDir(): string {
  return mkdtempSync(path.join(dir, 'out-'));
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

// ---------------------------------------------------------------------------------------------

type Attack = (port: number) => Promise<void>;

const preamble = encodePreamble();
const hello = encodeHello({ nonce: randomBytes(32), flags: 0 });

/** Send `bytes`, then finish with FIN (or RST), and wait for the server to close; bounded. */
function sendThen(bytes: Buffer, how: 'end' | 'reset' | 'end-after-echo'): Attack {
  return async (port) => {
    const s = await connect(port);
    s.on('data', () => undefined);
    s.write(bytes);
    if (how === 'reset') {
      s.resetAndDestroy();
      return;
    }
    s.end();
    await closed(s, 8_000);
  };
}

function malformedStreams(): Array<[string, (i: number) => Attack]> {
  const rnd = (n: number): Buffer => randomBytes(n);
  return [
    ['random bytes', (i) => sendThen(rnd(1 + (i % 300)), 'end')],
    ['random bytes after the magic', (i) => sendThen(Buffer.concat([Buffer.from([0x89]), rnd(1 + (i % 200))]), 'end')],
    ['truncated preamble', (i) => sendThen(preamble.subarray(0, 1 + (i % 4)), 'end')],
    ['wrong version', (i) => sendThen(Buffer.concat([preamble.subarray(0, 4), Buffer.from([2 + (i % 250)]), hello]), 'end')],
    ['truncated HELLO', (i) => sendThen(Buffer.concat([preamble, hello.subarray(0, 1 + (i % (hello.length - 1)))]), 'end')],
    ['oversize frame length', () => sendThen(Buffer.concat([preamble, Buffer.from([FrameType.HELLO, 0xff, 0xff]), rnd(64)]), 'end')],
    ['frame just over the cap', () => sendThen(Buffer.concat([preamble, Buffer.from([FrameType.HELLO, (MAX_FRAME_PAYLOAD + 1) >> 8, (MAX_FRAME_PAYLOAD + 1) & 255])]), 'end')],
    ['valid HELLO then garbage', (i) => sendThen(Buffer.concat([preamble, hello, rnd(1 + (i % 100))]), 'end')],
    ['valid HELLO then a REQUEST frame with garbage fields', (i) => sendThen(Buffer.concat([preamble, hello, encodeFrame(FrameType.REQUEST, [[i % 256, rnd(i % 40)]])]), 'end')],
    ['valid HELLO then a TRAILER instead of a REQUEST', () => sendThen(Buffer.concat([preamble, hello, encodeFrame(FrameType.TRAILER, [])]), 'end')],
    ['HELLO twice', () => sendThen(Buffer.concat([preamble, hello, hello]), 'end')],
    ['truncated REQUEST', (i) => {
      const req = requestFrame(Buffer.from('big.bin'));
      return sendThen(Buffer.concat([preamble, hello, req.subarray(0, 1 + (i % (req.length - 1)))]), 'end');
    }],
    ['half-closed after the preamble', () => sendThen(preamble, 'end')],
    ['half-closed before a byte', () => sendThen(Buffer.alloc(0), 'end')],
    ['RST mid-HELLO', (i) => sendThen(Buffer.concat([preamble, hello.subarray(0, 1 + (i % 20))]), 'reset')],
    ['RST right after the REQUEST', () => sendThen(v1Conversation(Buffer.from('big.bin')), 'reset')],
    ['classic garbage', (i) => sendThen(rnd(1 + (i % 2000)), 'end')],
    ['classic name with a NUL', () => sendThen(Buffer.from('ok.txt\u0000\n'), 'end')],
    ['classic 5,000-byte name', () => sendThen(Buffer.alloc(5000, 0x61), 'end')],
    ['TLS ClientHello on the plain port', () => sendThen(Buffer.from('1603010200010001fc0303', 'hex'), 'end')],
  ];
}

describe('malformed traffic', () => {
  test('a few thousand malformed TCP streams; afterwards the server still serves correct fetches', async () => {
    const s = await serve('--max-connections', '1000', '--max-per-source', '1000', '--header-timeout', '5s');
    const kinds = malformedStreams();
    const deadline = Date.now() + 40_000;
    const TOTAL = 2_000;
    const CONCURRENCY = 40;
    let sent = 0;
    const failures: string[] = [];
    const worker = async (): Promise<void> => {
      while (sent < TOTAL && Date.now() < deadline) {
        const i = sent++;
        const [label, make] = kinds[i % kinds.length]!;
        try {
          await make(i)(s.port);
        } catch (err) {
          failures.push(`${label}: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(failures.slice(0, 5)).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(1_000); // enough of them ran within the time bound
    expect(s.child.exitCode).toBeNull();
    await expectGoodFetch(s.port);
    const out = emptyDir();
    const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', '127.0.0.1', '-p', String(s.port), '-o', out, '--json']);
    expect(r.code).toBe(0);
    expect(sha(readFileSync(path.join(out, 'big.bin')))).toBe(sha(big));
  }, 90_000);
});

describe('slowloris', () => {
  test('200 idle connections (silent, or one byte) do not delay a real fetch, and the header timeout cuts them', async () => {
    const s = await serve('--max-connections', '400', '--max-per-source', '400', '--header-timeout', '2s');
    const idle: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const c = await connect(s.port);
      if (i % 2 === 1) c.write(Buffer.from([0x89])); // the first byte of a v1 preamble, then nothing
      idle.push(c);
    }
    const started = Date.now();
    const out = mkdtempSync(path.join(tmpdir(), 'netkit-adv-slow-'));
    try {
      const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', '127.0.0.1', '-p', String(s.port), '-o', out]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(sha(readFileSync(path.join(out, 'big.bin')))).toBe(sha(big));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    // Every idle connection is dropped by the 2 s header deadline (bounded wait per socket).
    await Promise.all(idle.map((c) => closed(c, 10_000)));
  }, 60_000);

  test('--max-per-source: a few idle connections over the cap make that address BUSY (typed), never a hang', async () => {
    const s = await serve('--max-per-source', '8', '--max-connections', '64');
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 20; i++) idle.push(await connect(s.port));
      const busy = await rawFetch(s.port, 'big.bin', { timeoutMs: 5_000 });
      expect(busy.status).toBe(Status.BUSY);
      expect(busy.message).toMatch(/8 connections already open from your address/);
      const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', '127.0.0.1', '-p', String(s.port), '-o', emptyDir()], { timeoutMs: 10_000 });
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/busy/);
      await expectGoodFetch(s.port, '127.0.0.2');
    } finally {
      for (const c of idle) c.destroy();
    }
  }, 60_000);

  test('one flooding address cannot take every busy answer: another address over the total limit still gets a typed BUSY', async () => {
    // Two slots, both transferring (never evicted): one held by the flooder (its per-source limit is 1),
    // one by a third address.
    const s = await serve('--max-connections', '2', '--max-per-source', '1', '--header-timeout', '20s');
    const held: net.Socket[] = [];
    try {
      held.push(await holdTransfer(s.port, 'hold.bin', { localAddress: '127.0.0.1' }));
      held.push(await holdTransfer(s.port, 'hold.bin', { localAddress: '127.0.0.3' }));
      // 30 more from the flooder, all silent: at most a quarter of the busy answers may wait on one address.
      for (let i = 0; i < 30; i++) held.push(await connect(s.port, '127.0.0.1'));
      const other = await rawFetch(s.port, 'big.bin', { localAddress: '127.0.0.2', timeoutMs: 5_000 });
      expect(other.status).toBe(Status.BUSY);
      expect(other.message).toMatch(/server busy: 2 connections already open/);
    } finally {
      for (const c of held) c.destroy();
    }
  }, 60_000);

  test('with --max-per-source 200 idle connections are capped: the flooding address is refused at once, another address still fetches promptly', async () => {
    const s = await serve('--max-per-source', '8', '--max-connections', '64');
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const c = await connect(s.port);
        if (i % 2 === 1) c.write(Buffer.from([0x89]));
        idle.push(c);
      }
      // Past the busy-answer capacity (max(16, --max-connections) pending) the flooder is closed at once:
      // a v1 fetch from it ends promptly with BUSY or a reset, never a hang.
      const flooder = Date.now();
      const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', '127.0.0.1', '-p', String(s.port), '-o', emptyDir()], { timeoutMs: 10_000 });
      expect([5, 6, 8]).toContain(r.code);
      expect(Date.now() - flooder).toBeLessThan(5_000);
      // 127.0.0.2 is another source on Linux loopback: it is not affected.
      const started = Date.now();
      await expectGoodFetch(s.port, '127.0.0.2');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      for (const c of idle) c.destroy();
    }
  }, 60_000);
});

describe('descriptor leaks', () => {
  test('after 1,000 aborted connections the server is back to its baseline descriptor count', async () => {
    const s = await serve('--max-connections', '1000', '--max-per-source', '1000');
    const pid = s.child.pid!;
    await expectGoodFetch(s.port);
    const baseline = fdCount(pid);
    const partialHello = Buffer.concat([preamble, hello.subarray(0, 10)]);
    const abort = async (i: number): Promise<void> => {
      const kind = i % 5;
      const c = await connect(s.port);
      if (kind === 0 || kind === 1) {
        c.resetAndDestroy(); // connect + RST
        return;
      }
      if (kind === 2 || kind === 3) {
        c.write(partialHello); // connect + partial HELLO + close
        c.end();
        c.on('data', () => undefined);
        await closed(c, 8_000);
        return;
      }
      // vanish mid-transfer: take a few bytes of the body, then reset
      c.write(v1Conversation(Buffer.from('big.bin')));
      let got = 0;
      await new Promise<void>((resolve) => {
        c.on('data', (d: Buffer) => {
          got += d.length;
          if (got > 64 * 1024) {
            c.resetAndDestroy();
            resolve();
          }
        });
        c.on('close', () => resolve());
      });
    };
    const deadline = Date.now() + 60_000;
    let done = 0;
    for (let batch = 0; batch < 20 && Date.now() < deadline; batch++) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => abort(batch * 50 + j)));
      done += 50;
      await expectGoodFetch(s.port); // the server is still serving, and its handlers have run
    }
    expect(done).toBe(1_000);
    // Bounded polling on events we control: each check follows a complete fetch.
    let now = fdCount(pid);
    for (let i = 0; i < 20 && now > baseline; i++) {
      await expectGoodFetch(s.port);
      now = fdCount(pid);
    }
    expect(now).toBeLessThanOrEqual(baseline);
  }, 120_000);
});

describe('disk full on the client', () => {
  function fetchWithFileSizeLimit(port: number, out: string, blocks: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const cmd = `trap '' XFSZ; ulimit -f ${blocks}; exec "$0" "$1" file fetch big.bin -H 127.0.0.1 -p ${port} -o "$2"`;
    const child = spawn('bash', ['-c', cmd, process.execPath, BIN, out], { env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    return once(child, 'close').then(([code]) => {
      clearTimeout(timer);
      return { code: code as number | null, stdout, stderr };
    });
  }

  test('RLIMIT_FSIZE: the fetch fails with a clear no-space error and no final file; a second fetch with room finishes and verifies', async () => {
    const s = await serve();
    const out = mkdtempSync(path.join(tmpdir(), 'netkit-adv-full-'));
    try {
      const first = await fetchWithFileSizeLimit(s.port, out, 1024); // 1 MiB of a 3 MiB file
      expect(first.code).toBe(9);
      expect(first.stderr).toMatch(/^netkit: .*no space/m);
      expect(first.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(first.stdout).toBe('');
      expect(existsSync(path.join(out, 'big.bin'))).toBe(false);
      const second = await runNetkit(['file', 'fetch', 'big.bin', '-H', '127.0.0.1', '-p', String(s.port), '-o', out, '--json']);
      expect(second.code).toBe(0);
      // What reached the disk before it was full was kept, and resumed from.
      expect(JSON.parse(second.stdout)).toMatchObject({ verified: true, resumedFrom: 1024 * 1024 });
      expect(sha(readFileSync(path.join(out, 'big.bin')))).toBe(sha(big));
      expect(readdirSync(out)).toEqual(['big.bin']); // the partial file, its record and the staging directory are gone
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);
});
