// Servers that keep a fetch alive with a trickle of bytes (the handshake, the answer, the body, an HTTP head): each fetch fails within about twice --timeout, retries included.
import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameReader, FrameType, Status, decodeRequest, encodeHello, encodeResponse } from '../../src/protocol/file-v1.js';
import { runNetkit, type RunResult } from '../helpers/netkit.js';

const T = 2; // --timeout, seconds
const servers: net.Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Write `bytes` one small piece every 100 ms until the client goes away. */
function drip(s: net.Socket, bytes: Buffer, piece = 1): void {
  let at = 0;
  const timer = setInterval(() => {
    if (s.destroyed || at >= bytes.length) return clearInterval(timer);
    s.write(bytes.subarray(at, at + piece));
    at += piece;
  }, 100);
  s.on('close', () => clearInterval(timer));
}

/** A v1 server whose HELLO, RESPONSE or body trickles in (`what`); what comes before it is sent at once. */
async function dripping(what: 'hello' | 'response' | 'body'): Promise<number> {
  // Half-open: a client that half-closes after its request still gets (the trickle of) the answer.
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    const reader = new FrameReader();
    let preamble = true;
    s.on('data', (c: Buffer) => {
      reader.push(c);
      if (preamble && reader.take(5)) preamble = false;
      for (let f = preamble ? undefined : reader.next(); f; f = reader.next()) {
        if (f.type === FrameType.HELLO) {
          // A HELLO padded with an unknown field to 4 KiB: valid, and about 7 minutes long at this pace.
          const hello = encodeHello({ nonce: randomBytes(32), flags: 0 }, what === 'hello' ? [[0x7e, Buffer.alloc(4000, 0x20)]] : []);
          if (what === 'hello') drip(s, hello);
          else s.write(hello);
        }
        if (f.type === FrameType.REQUEST && what !== 'hello') {
          const r = decodeRequest(f);
          const response = encodeResponse({ status: Status.OK, size: 1024 * 1024, offset: r.offset, validator: Buffer.from('v'), message: what === 'response' ? 'x'.repeat(4000) : '' });
          if (what === 'response') drip(s, response);
          else {
            s.write(response);
            drip(s, Buffer.alloc(1024 * 1024 - r.offset, 0x61), 50); // 500 B/s: never silent, never enough
          }
        }
      }
    });
  });
  servers.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return (srv.address() as net.AddressInfo).port;
}

/** An HTTP server that trickles its response head. */
async function drippingHttp(): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => drip(s, Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Pad: ${'a'.repeat(4000)}\r\n\r\n0123456789`)));
  });
  servers.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return (srv.address() as net.AddressInfo).port;
}

async function timed(args: string[]): Promise<{ r: RunResult; seconds: number }> {
  const out = mkdtempSync(join(tmpdir(), 'netkit-drip-'));
  dirs.push(out);
  const started = Date.now();
  const r = await runNetkit([...args, '-o', out, '--timeout', `${T}s`], { timeoutMs: 40_000 });
  return { r, seconds: (Date.now() - started) / 1000 };
}

describe('a server that drips cannot hold a fetch', () => {
  test('a HELLO one byte at a time: the handshake has --timeout in all, not per byte', async () => {
    const port = await dripping('hello');
    const { r, seconds } = await timed(['file', 'fetch', 'x.bin', '-H', `127.0.0.1:${port}`]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/sent only \d+ bytes in 2s and not yet a complete answer: the handshake stalled/);
    expect(seconds).toBeLessThan(2 * T);
  });

  test('a RESPONSE one byte at a time after a prompt HELLO: retried once, then given up (about twice --timeout)', async () => {
    const port = await dripping('response');
    const { r, seconds } = await timed(['file', 'fetch', 'x.bin', '-H', `127.0.0.1:${port}`]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/^netkit: the server answered too slowly; retrying in 1s \(1\/5\)$/m);
    expect(r.stderr).toMatch(/the handshake stalled \(after 1 retry; it was too slow twice in a row\)/);
    expect(seconds).toBeLessThan(2 * T + 2);
  });

  test('a body at 500 B/s with the default retries: the dripped attempts count as failures, the fetch ends within about twice --timeout', async () => {
    const port = await dripping('body');
    const { r, seconds } = await timed(['file', 'fetch', 'x.bin', '-H', `127.0.0.1:${port}`]);
    expect(r.code).toBe(7);
    const retries = r.stderr.split('\n').filter((l) => /retrying/.test(l));
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatch(/^netkit: the transfer stalled after [\d.]+[BK] of 1\.0M; retrying in 1s \(1\/5\)$/);
    expect(r.stderr).toMatch(/the transfer stalled \(after 1 retry; it was too slow twice in a row\); .*\.part is kept \([\d.]+[BK] of 1\.0M\)/);
    expect(seconds).toBeLessThan(2 * T + 2);
  });

  test('the same to stdout (-o -): the stall guard watches that body too', async () => {
    const port = await dripping('body');
    const started = Date.now();
    const r = await runNetkit(['file', 'fetch', 'x.bin', '-H', `127.0.0.1:${port}`, '-o', '-', '--timeout', `${T}s`, '--retries', '0'], { timeoutMs: 40_000 });
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/less than 1 KiB\/s\): the transfer stalled/);
    expect((Date.now() - started) / 1000).toBeLessThan(2 * T);
  });

  test('an HTTP response head one byte at a time: --timeout in all', async () => {
    const port = await drippingHttp();
    const { r, seconds } = await timed(['file', 'fetch', `http://127.0.0.1:${port}/x.bin`]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/sent only \d+ bytes and not yet a complete response head in 2s: the answer stalled/);
    expect(seconds).toBeLessThan(2 * T);
  });
});
