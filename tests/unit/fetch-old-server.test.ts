// A fetch from an older netkit server (no sessions, so no listings): a directory NAME fails with the reason, and a rerun skips the files already there by the RESPONSE's SIZE and MTIME (or their SHA-256) instead of failing them.
import { afterAll, afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSet } from '../../src/services/file/fetch/tree.js';
import type { SetOptions } from '../../src/services/file/fetch/set-types.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { fakeFileServer, type FakeFile, type FakeServer } from '../helpers/fake-file-server.js';

const servers: FakeServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
const base = mkdtempSync(join(tmpdir(), 'netkit-old-server-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const T0 = 1_700_000_123_456;
const tree: FakeFile[] = [
  { name: 'a.txt', data: Buffer.from('alpha'), mtimeMs: T0 },
  { name: 'big.bin', data: randomBytes(3 * 1024 * 1024 + 5), mtimeMs: T0 + 1 },
  { name: 'd/c.txt', data: Buffer.from('c'), mtimeMs: T0 + 2 },
];

async function serve(opts: Parameters<typeof fakeFileServer>[1]): Promise<FakeServer> {
  const s = await fakeFileServer(tree, opts);
  servers.push(s);
  return s;
}

function fetchFrom(s: FakeServer, names: string[], out: string, extra: Partial<SetOptions> = {}) {
  return runSet({ names, transport: tcpTransport, host: '127.0.0.1', port: s.port, outDir: out, timeoutMs: 3000, retries: 0, ...extra });
}

describe('an older server (no SESSION flag, no MTIME in its RESPONSE)', () => {
  test('a directory NAME fails with "older netkit server that cannot list directories", the files still arrive', async () => {
    const s = await serve({ session: false });
    const out = mkdtempSync(join(base, 'out-'));
    const run = await fetchFrom(s, ['a.txt', 'd'], out);
    expect(run.result()).toMatchObject({ fetched: 1, failed: 1 });
    const failed = run.outcomes.find((o) => o.status === 'failed');
    expect(failed?.error).toMatchObject({ code: 'PROTOCOL' });
    expect(failed?.error?.message).toMatch(/older netkit server that cannot list directories, so 'd' \(a directory there\)/);
    expect(readdirSync(out)).toEqual(['a.txt']);
  });

  test('one directory NAME alone: the same reason', async () => {
    const s = await serve({ session: false });
    const run = await runSet({ names: ['d'], transport: tcpTransport, host: '127.0.0.1', port: s.port, outDir: mkdtempSync(join(base, 'out-')), timeoutMs: 3000, retries: 0 }, { single: true });
    expect(String((run.singleError as Error).message)).toMatch(/older netkit server that cannot list directories/);
  });

  test('a rerun skips identical copies by SHA-256; a copy that differs (same size, or not) is reported and left alone', async () => {
    const s = await serve({ session: false });
    const out = mkdtempSync(join(base, 'out-'));
    const first = await fetchFrom(s, ['a.txt', 'big.bin'], out);
    expect(first.result()).toMatchObject({ fetched: 2, failed: 0 });
    const again = await fetchFrom(s, ['a.txt', 'big.bin'], out);
    expect(again.result()).toMatchObject({ fetched: 0, skipped: 2, failed: 0 });
    expect(again.outcomes.map((o) => o.reason)).toEqual(['same SHA-256', 'same SHA-256']);

    writeFileSync(join(out, 'a.txt'), 'ALPHA'); // same size, other bytes
    writeFileSync(join(out, 'big.bin'), 'short'); // another size: refused before any byte is taken
    const differs = await fetchFrom(s, ['a.txt', 'big.bin'], out);
    expect(differs.result()).toMatchObject({ fetched: 0, skipped: 0, failed: 2 });
    expect(differs.outcomes.map((o) => o.error?.code)).toEqual(['EXISTS', 'EXISTS']);
    expect(differs.outcomes[1]!.error!.message).toMatch(/differs from the server's copy \(5 bytes here, 3145733 there\)/);
    expect(differs.received).toBe(5); // a.txt's body only, to compare
    expect(readFileSync(join(out, 'a.txt'), 'utf8')).toBe('ALPHA');
    expect(readFileSync(join(out, 'big.bin'), 'utf8')).toBe('short');

    const forced = await fetchFrom(s, ['a.txt', 'big.bin'], out, { force: true });
    expect(forced.result()).toMatchObject({ fetched: 2, failed: 0 });
    expect(readFileSync(join(out, 'big.bin')).equals(tree[1]!.data)).toBe(true);
    expect(readdirSync(out).sort()).toEqual(['a.txt', 'big.bin']);
  });
});

describe('a server without sessions that sends MTIME in its RESPONSE', () => {
  test('a rerun skips by size and time before any byte of the body is taken', async () => {
    const s = await serve({ session: false, responseMeta: true });
    const out = mkdtempSync(join(base, 'out-'));
    await fetchFrom(s, ['a.txt', 'big.bin'], out);
    const again = await fetchFrom(s, ['a.txt', 'big.bin'], out);
    expect(again.result()).toMatchObject({ fetched: 0, skipped: 2, failed: 0 });
    expect(again.outcomes.map((o) => o.reason)).toEqual(['same size and time', 'same size and time']);
    expect(again.received).toBe(0);
    // Another time, same bytes: compared by SHA-256, skipped, and given the server's time.
    utimesSync(join(out, 'a.txt'), new Date(T0 - 60_000), new Date(T0 - 60_000));
    const touched = await fetchFrom(s, ['a.txt'], out);
    expect(touched.result()).toMatchObject({ skipped: 1, failed: 0 });
  });
});
