// The built `netkit file fetch http://…` against a hostile HTTP server written here (raw loopback sockets): odd answers end the fetch with a documented code and a clear message, no stack trace, no hang, nothing left behind.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit } from '../helpers/netkit.js';

let dir: string;
let server: net.Server | undefined;
const sockets = new Set<net.Socket>();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netkit-http-hostile-'));
});
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** A server that answers every request head with `answer` and then keeps the connection open (the client must end it). */
async function hostile(answer: string): Promise<number> {
  server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    let head = '';
    s.on('data', (d: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) s.write(answer);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

async function fetchFrom(port: number) {
  const r = await runNetkit(['file', 'fetch', `http://127.0.0.1:${port}/x.bin`, '--timeout', '3s', '--retries', '0'], { cwd: dir, timeoutMs: 15_000 });
  expect(r.signal).toBeNull();
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  return r;
}

describe('file fetch http:// against a hostile server', () => {
  test('a redirect whose Location is not a URL: exit 8, the Location named, nothing saved', async () => {
    const port = await hostile('HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n');
    const r = await fetchFrom(port);
    expect(r.stderr).toMatch(/^netkit: http:\/\/127\.0\.0\.1:\d+\/x\.bin: the server answered 302 with a Location that is not a URL \(http:\/\/\[::1\)$/m);
    expect(r.code).toBe(8);
    expect(readdirSync(dir)).toEqual([]);
  }, 30_000);

  test('a 101 Switching Protocols to the GET: exit 8 with a clear message, no lock or partial file left', async () => {
    const port = await hostile('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nabc');
    const r = await fetchFrom(port);
    expect(r.stderr).toMatch(/^netkit: 127\.0\.0\.1:\d+ answered 101 \(switching protocols\) to a GET: no file follows$/m);
    expect(r.code).toBe(8);
    expect(readdirSync(dir)).toEqual([]);
  }, 30_000);

  test('a chunked body that is not chunked: exit 8, "sent a malformed HTTP body", not a reset', async () => {
    const port = await hostile('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\nhello\r\n');
    const r = await fetchFrom(port);
    expect(r.stderr).toMatch(/^netkit: 127\.0\.0\.1:\d+ sent a malformed HTTP body \(HPE_INVALID_CHUNK_SIZE\)$/m);
    expect(r.code).toBe(8);
    expect(readdirSync(dir)).toEqual([]);
  }, 30_000);

  test('a body shorter than its Content-Length, then a clean close: exit 8, "closed the connection before the body was complete", not a reset', async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const r = await fetchFrom((server.address() as net.AddressInfo).port);
    expect(r.stderr).toMatch(/^netkit: 127\.0\.0\.1:\d+ closed the connection before the body was complete$/m);
    expect(r.stderr).not.toMatch(/reset/);
    expect(r.code).toBe(8);
    expect(readdirSync(dir)).toEqual([]);
  }, 30_000);
});
