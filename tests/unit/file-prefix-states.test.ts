// Resuming large files through connections that keep getting cut: the server continues from the SHA-256 state where a transfer got to (no full rehash, no budget spent), and a client told "busy, try again in N s" waits and goes on.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetkitError } from '../../src/errors.js';
import { fetchFile, type RetryNotice } from '../../src/services/file/fetch/session.js';
import { startFileServer, type FileServer, type ServeOptions, type TransferLog } from '../../src/services/file/serve/index.js';
import { PrefixStates, STATE_COST_BYTES } from '../../src/services/file/serve/prefix-states.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
let base: string;
let served: string;
let sha = '';

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-states-'));
  served = join(base, 'served');
  mkdirSync(served);
  const fd = openSync(join(served, 'big.bin'), 'w');
  const hash = createHash('sha256');
  const block = randomBytes(MiB);
  for (let i = 0; i < SIZE / MiB; i++) {
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  sha = hash.digest('hex');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const servers: FileServer[] = [];
const proxies: TcpRecordingProxy[] = [];
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
  for (const s of servers.splice(0)) await s.close(0);
});

/**
 * The 1.2 GB scenario scaled down: a 24 MiB file through a relay that cuts each of the first three
 * connections after 6 MiB (so the server never sends the whole file, and has no digest of it), and a server whose prefix budget allows 2 MiB at once, earned back at 512 KiB/s
 * (the first resume alone, rehashed from byte 0, puts the address in debt for about 8 s).
 */
async function cutThreeTimes(opts: Partial<ServeOptions>): Promise<{ retries: RetryNotice[]; logs: TransferLog[]; result: Awaited<ReturnType<typeof fetchFile>> }> {
  const logs: TransferLog[] = [];
  const server = await startFileServer({ dir: served, transport: tcpTransport, host: '127.0.0.1', port: 0, prefixBudget: { burstBytes: 2 * MiB, bytesPerSec: 512 * 1024 }, onLog: (l) => logs.push(l), ...opts });
  servers.push(server);
  const proxy = await tcpRecordingProxy(server.port, '127.0.0.1', { cut: (i, bytes) => i < 3 && bytes >= 6 * MiB, backpressure: true });
  proxies.push(proxy);
  const retries: RetryNotice[] = [];
  const out = mkdtempSync(join(base, 'out-'));
  const result = await fetchFile({ name: 'big.bin', host: '127.0.0.1', port: proxy.port, outDir: out, transport: tcpTransport, timeoutMs: 10_000, retries: 10, onRetry: (r) => retries.push(r) });
  expect(createHash('sha256').update(readFileSync(join(out, 'big.bin'))).digest('hex')).toBe(sha);
  return { retries, logs, result };
}

describe('resuming where a transfer stopped', () => {
  test('three cuts: each resume continues from a kept SHA-256 state, nothing is refused as busy, the file verifies', async () => {
    const { retries, logs, result } = await cutThreeTimes({ prefixStates: { step: MiB } });
    expect(result).toMatchObject({ verified: true, sha256: sha, retries: 3 });
    expect(retries.map((r) => r.reason)).toEqual(['connection lost', 'connection lost', 'connection lost']);
    expect(logs.filter((l) => l.outcome === 'busy')).toEqual([]);
    // Cut each time: the server never finished a transfer before the last one, so no digest could help.
    expect(logs.filter((l) => l.outcome === 'ok')).toHaveLength(1);
  }, 60_000);

  test('without kept states the budget runs out, and the client waits as long as the server asks, then goes on', async () => {
    const { retries, result } = await cutThreeTimes({ prefixStates: { maxStates: 0 }, prefixBudget: { burstBytes: 2 * MiB, bytesPerSec: 2 * MiB } });
    expect(result).toMatchObject({ verified: true, sha256: sha });
    const busy = retries.filter((r) => r.reason.startsWith('the server is busy ('));
    expect(busy.length).toBeGreaterThan(0);
    for (const r of busy) {
      expect(r.reason).toMatch(/^the server is busy \(your address has used its budget for hashing resumed prefixes\)$/);
      expect(r.delayMs).toBeGreaterThanOrEqual(1000);
      expect(r.have).toBeGreaterThan(0); // what it has is kept for the resume, not thrown away
    }
  }, 60_000);
});

describe('a busy server after the retries ran out', () => {
  test('the message says busy, how many retries were spent, and that the partial file is kept', async () => {
    // No credit at all and no kept states (and only 1 MiB hashed for free): every resume is told "busy, try again in 1s".
    const server = await startFileServer({ dir: served, transport: tcpTransport, host: '127.0.0.1', port: 0, prefixBudget: { burstBytes: 0, bytesPerSec: 1 }, prefixStates: { maxStates: 0, step: MiB } });
    servers.push(server);
    const proxy = await tcpRecordingProxy(server.port, '127.0.0.1', { cut: (i, bytes) => i === 0 && bytes >= 6 * MiB, backpressure: true });
    proxies.push(proxy);
    const out = mkdtempSync(join(base, 'out-'));
    const err = await fetchFile({ name: 'big.bin', host: '127.0.0.1', port: proxy.port, outDir: out, transport: tcpTransport, timeoutMs: 10_000, retries: 1 }).then(
      () => undefined,
      (e: unknown) => e as NetkitError,
    );
    expect(err?.code).toBe('BUSY');
    expect(err?.message).toMatch(/is busy: your address has used its budget for hashing resumed prefixes; try again in 1s \(after 1 retry\); .*\.netkit\/big\.bin\.[0-9a-f]{16}\.part is kept \([\d.]+M of 24M\)$/);
    expect(err?.hint).toBe('try again in 1s; then run the same fetch again to resume');
  }, 60_000);
});

describe('PrefixStates', () => {
  const data = randomBytes(10 * MiB + 5);
  const st = { dev: 1n, ino: 2n, size: BigInt(data.length), mtimeNs: 3n, ctimeNs: 4n };
  const shaOf = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  /** A transfer from `from` that sends `n` bytes in 1 MiB pieces and stops. */
  const send = (states: PrefixStates, from: number, n: number): void => {
    const start = states.start(st, from);
    expect(start.from).toBe(from === 0 ? 0 : start.from);
    start.hash.update(data.subarray(start.from, from));
    const r = states.recorder(st, from, start.hash);
    for (let at = from; at < from + n; at += MiB) r.update(data.subarray(at, Math.min(from + n, at + MiB)));
    r.stop();
  };

  test('a kept state continues to the same digest as hashing from byte 0; the nearest one at or below the offset is used', () => {
    const states = new PrefixStates({ step: 2 * MiB });
    send(states, 0, 7 * MiB + 123); // checkpoints at 2, 4, 6 MiB, and the stop at 7 MiB + 123
    expect(states.size).toBe(4);
    for (const [offset, from] of [[5 * MiB, 4 * MiB], [7 * MiB + 123, 7 * MiB + 123], [7 * MiB + 200, 7 * MiB + 123], [MiB, 0]] as const) {
      const start = states.start(st, offset);
      expect(start.from).toBe(from);
      start.hash.update(data.subarray(from));
      expect(start.hash.digest('hex')).toBe(shaOf(data));
    }
    // Another identity (the file was modified) finds nothing.
    expect(states.start({ ...st, mtimeNs: 5n }, 5 * MiB).from).toBe(0);
  });

  test('bounded: per file thinned out evenly (its highest states kept), in all least recently used first, none at the end of the file', () => {
    const states = new PrefixStates({ step: MiB, perFile: 5, maxStates: 8 });
    send(states, 0, data.length); // a complete transfer: checkpoints at 1..10 MiB, the end is not kept
    expect(states.size).toBe(5);
    const offsets = [...Array(11).keys()].map((m) => states.start(st, m * MiB).from / MiB);
    expect(offsets.slice(8)).toEqual([8, 9, 10]); // the three highest stay
    expect(new Set(offsets).size).toBe(6); // 0 and the five kept
    const other = { ...st, ino: 9n };
    const r = states.recorder(other, 0, createHash('sha256'));
    for (let i = 0; i < 4; i++) r.update(data.subarray(i * MiB, (i + 1) * MiB));
    expect(states.size).toBe(8); // the first file, least recently used, gave one up
    expect(states.bytes).toBe(8 * STATE_COST_BYTES);
    states.delete(other);
    expect(states.size).toBe(4);
    expect(new PrefixStates({ maxStates: 0 }).recorder(st, 0, createHash('sha256')).update(data).stop()).toBeUndefined();
  });
});
