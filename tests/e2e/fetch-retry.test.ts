// Automatic retries as a user sees them: a proxy that cuts the connection three times, a server that only drips, a server that goes away for good.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameReader, FrameType, Status, encodeHello, encodeResponse } from '../../src/protocol/file-v1.js';
import { spawnSync } from 'node:child_process';
import { runNetkit, spawnNetkit, startServer, type Server } from '../helpers/netkit.js';
import { partialReaches } from '../helpers/staging.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';

let base: string;
let served: string;
const SIZE = 48 * 1024 * 1024;
let sha = '';
let server: Server;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-retry-'));
  served = join(base, 'served');
  mkdirSync(served);
  const fd = openSync(join(served, 'big.bin'), 'w');
  const hash = createHash('sha256');
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < SIZE / block.length; i++) {
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  sha = hash.digest('hex');
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet']);
}, 60_000);
afterAll(async () => {
  await server.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

const proxies: TcpRecordingProxy[] = [];
const fakes: net.Server[] = [];
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
  for (const f of fakes.splice(0)) await new Promise((r) => f.close(r));
});

const outDir = (): string => mkdtempSync(join(base, 'out-'));

describe('file fetch --retries', () => {
  test('a connection cut three times: three retry lines, one verified file, less than 1.1x the file on the wire', async () => {
    // Connections 0, 1 and 2 are reset after 8 MiB each; the fourth runs to the end.
    const proxy = await tcpRecordingProxy(server.port, '127.0.0.1', { cut: (i, bytes) => i < 3 && bytes >= 8 * 1024 * 1024 });
    proxies.push(proxy);
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${proxy.port}`, '-o', out, '--json'], { timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    lines.forEach((line, i) => expect(line).toMatch(new RegExp(`^netkit: connection lost after [\\d.]+[BKM] of 48M; retrying in 1s \\(${i + 1}/5\\)$`)));
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, verified: true, sha256: sha, retries: 3, resumedFrom: 0, received: SIZE });
    expect(readdirSync(out)).toEqual(['big.bin']);
    const wire = Buffer.concat(proxy.toClient).length;
    expect(wire).toBeGreaterThanOrEqual(SIZE);
    expect(wire).toBeLessThan(1.1 * SIZE);
  });

  test('--retries 0 keeps the old behaviour: the first cut ends the fetch, and the partial file is kept', async () => {
    const proxy = await tcpRecordingProxy(server.port, '127.0.0.1', { cut: (i, bytes) => bytes >= 8 * 1024 * 1024 });
    proxies.push(proxy);
    const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${proxy.port}`, '-o', outDir(), '--retries', '0']);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/(reset by the peer|before the transfer was complete); .*\.netkit\/big\.bin\.[0-9a-f]{16}\.part is kept \([\d.]+[BKM] of 48M\)/);
    expect(r.stderr).not.toMatch(/retrying/);
  });

  test('a server that stays away: the retries run out and the message says how many there were', async () => {
    // Every connection after the first is refused: the server "went down" mid-transfer.
    let first = true;
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      const upstream = net.connect(server.port, '127.0.0.1');
      upstream.on('error', () => undefined);
      s.pipe(upstream);
      let relayed = 0;
      upstream.on('data', (d: Buffer) => {
        s.write(d);
        relayed += d.length;
        if (relayed >= 4 * 1024 * 1024) {
          s.resetAndDestroy();
          upstream.destroy();
          if (first) srv.close();
          first = false;
        }
      });
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as net.AddressInfo).port;
    const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${port}`, '-o', outDir(), '--retries', '2'], { timeoutMs: 30_000 });
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/^netkit: connection lost after [\d.]+[BKM] of 48M; retrying in 1s \(1\/2\)$/m);
    expect(r.stderr).toMatch(/^netkit: connection refused after [\d.]+[BKM] of 48M; retrying in 2s \(2\/2\)$/m);
    // The last error says how many retries were spent and what is kept for a resume.
    expect(r.stderr).toMatch(/^netkit: cannot connect to 127\.0\.0\.1:\d+: connection refused \(after 2 retries\); .*\.netkit\/big\.bin\.[0-9a-f]{16}\.part is kept \([\d.]+[BKM] of 48M\)$/m);
    expect(r.stderr).toMatch(/^hint: run the same fetch again to resume$/m);
  });

  test('a server that only drips (under 1 KiB/s) fails within about twice --timeout', async () => {
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      const reader = new FrameReader();
      let timer: NodeJS.Timeout | undefined;
      let preamble = true;
      s.on('close', () => clearInterval(timer));
      s.on('data', (c: Buffer) => {
        reader.push(c);
        if (preamble && reader.take(5)) preamble = false;
        for (let f = preamble ? undefined : reader.next(); f; f = reader.next()) {
          if (f.type === FrameType.HELLO) s.write(encodeHello({ nonce: randomBytes(32), flags: 0 }));
          if (f.type === FrameType.REQUEST) {
            s.write(encodeResponse({ status: Status.OK, size: 1024 * 1024, offset: 0, validator: Buffer.from('v'), message: '' }));
            timer = setInterval(() => s.write(Buffer.alloc(50, 0x61)), 100); // 500 B/s: never silent, never enough
          }
        }
      });
    });
    fakes.push(srv);
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as net.AddressInfo).port;
    const started = Date.now();
    const r = await runNetkit(['file', 'fetch', 'x.bin', '-H', `127.0.0.1:${port}`, '-o', outDir(), '--timeout', '1s', '--retries', '0']);
    const took = Date.now() - started;
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/sent only \d+ bytes in 1s \(less than 1 KiB\/s\): the transfer stalled/);
    expect(took).toBeLessThan(2500);
  });

  test('a disk that fills up mid-transfer: the message says the partial file is kept, and how much of it', async () => {
    const out = outDir();
    if (process.getuid?.() !== 0 || spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=56m', 'tmpfs', out]).status !== 0) {
      console.warn('skipped: needs root to mount a small tmpfs');
      return;
    }
    try {
      const f = spawnNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', out], { timeoutMs: 30_000 });
      await partialReaches(out, 'big.bin', 8 * 1024 * 1024);
      f.child.kill('SIGSTOP');
      spawnSync('sh', ['-c', `head -c 52m /dev/zero > ${out}/filler`]); // fills the rest of the tmpfs
      f.child.kill('SIGCONT');
      const r = await f.done;
      expect(r.code).toBe(9);
      expect(r.stderr).toMatch(/no space left on the device; .*\.netkit\/big\.bin\.[0-9a-f]{16}\.part is kept \([\d.]+M of 48M\)$/m);
      expect(r.stderr).toMatch(/^hint: free some space, or choose another --out; then run the same fetch again to resume$/m);
    } finally {
      spawnSync('umount', [out]);
    }
  });
});
