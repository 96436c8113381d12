// The auth primitives over real UDP sockets on loopback: a minimal responder wired the way the disk server will be; replays, forgeries and floods get no reply.
import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { KeyObject } from 'node:crypto';
import { MAC_LENGTH, decodeTimestamp, deriveKey, encodeTimestamp, sealDiskAnswer, sealDiskRequest, verifyDiskAnswer } from '../../src/protocol/auth.js';
import { ReplayCache, admitDiskRequest, type DiskAdmission } from '../../src/services/replay-cache.js';
import { RateLimiter, sourceKey } from '../../src/services/limits.js';

const TOKEN = 'q3Xl0cJ1V8Q4pA9sR2tY7uW6eZ5mN0bK1hG3fD8jL2c';
const sockets: dgram.Socket[] = [];

afterEach(async () => {
  await Promise.all(sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

// Layout from docs/security.md: header(8) AUTH_NONCE(0x11) AUTH_TIME(0x12) AUTH_MAC(0x10) zero padding.
const NONCE_AT = 8 + 3;
const TS_AT = NONCE_AT + 16 + 3;
const MAC_AT = TS_AT + 8 + 3;

function request(key: KeyObject, id: number, nonce = randomBytes(16), ts = Date.now()): Buffer {
  const b = Buffer.alloc(200);
  b.set([0x4e, 0x4b, 1, 1]);
  b.writeUInt32BE(id, 4);
  b.set([0x11, 0, 16], 8);
  nonce.copy(b, NONCE_AT);
  b.set([0x12, 0, 8], NONCE_AT + 16);
  encodeTimestamp(ts).copy(b, TS_AT);
  b.set([0x10, 0, 32], TS_AT + 8);
  return sealDiskRequest(key, b, MAC_AT);
}

/** Answer = header(8) + MAC TLV; the answer's MAC binds it to the request nonce. */
function answer(key: KeyObject, req: Buffer): Buffer {
  const a = Buffer.alloc(8 + 3 + MAC_LENGTH);
  a.set([0x4e, 0x4b, 1, 2]);
  req.copy(a, 4, 4, 8);
  a.set([0x10, 0, 32], 8);
  return sealDiskAnswer(key, req.subarray(NONCE_AT, NONCE_AT + 16), a, 11);
}

async function responder(key: KeyObject, limiter: RateLimiter): Promise<{ port: number; refused: DiskAdmission[] }> {
  const server = dgram.createSocket('udp4');
  sockets.push(server);
  const refused: DiskAdmission[] = [];
  const cache = new ReplayCache();
  server.on('message', (msg, rinfo) => {
    if (!limiter.take(sourceKey(rinfo.address))) return;
    if (msg.length < MAC_AT + MAC_LENGTH) return void refused.push('malformed');
    const verdict = admitDiskRequest({
      key,
      datagram: msg,
      macOffset: MAC_AT,
      nonce: msg.subarray(NONCE_AT, NONCE_AT + 16),
      timestampMs: decodeTimestamp(msg.subarray(TS_AT, TS_AT + 8)),
      cache,
      nowMs: Date.now(),
    });
    if (verdict !== 'ok') return void refused.push(verdict); // silent: no reply at all
    server.send(answer(key, msg), rinfo.port, rinfo.address);
  });
  server.bind(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: server.address().port, refused };
}

async function client(): Promise<{ sock: dgram.Socket; next: () => Promise<Buffer> }> {
  const sock = dgram.createSocket('udp4');
  sockets.push(sock);
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  const queue: Buffer[] = [];
  const waiting: ((b: Buffer) => void)[] = [];
  sock.on('message', (m) => (waiting.length > 0 ? waiting.shift()!(m) : queue.push(m)));
  return { sock, next: () => new Promise((r) => (queue.length > 0 ? r(queue.shift()!) : waiting.push(r))) };
}

describe('authenticated disk exchange over loopback UDP', () => {
  const key = deriveKey(TOKEN, 'disk');

  test('a sealed request gets a verifiable answer; replay, forgery and wrong key get none', async () => {
    const { port, refused } = await responder(key, new RateLimiter({ ratePerSec: 1_000, burst: 1_000 }));
    const { sock, next } = await client();
    const req = request(key, 1);
    sock.send(req, port, '127.0.0.1');
    const ans = await next();
    expect(verifyDiskAnswer(key, req.subarray(NONCE_AT, NONCE_AT + 16), ans, 11)).toBe('ok');
    // A forged answer (one flipped bit) and an answer checked against another request's nonce are refused.
    const forged = Buffer.from(ans);
    forged[5] ^= 1;
    expect(verifyDiskAnswer(key, req.subarray(NONCE_AT, NONCE_AT + 16), forged, 11)).toBe('bad-mac');
    expect(verifyDiskAnswer(key, randomBytes(16), ans, 11)).toBe('bad-mac');

    const tampered = Buffer.from(request(key, 3));
    tampered[4] ^= 0xff;
    sock.send(req, port, '127.0.0.1'); // replay
    sock.send(request(deriveKey('some-other-secret-of-decent-length', 'disk'), 2), port, '127.0.0.1');
    sock.send(tampered, port, '127.0.0.1');
    sock.send(request(key, 4, randomBytes(16), Date.now() - 120_000), port, '127.0.0.1'); // stale
    sock.send(Buffer.from('y'), port, '127.0.0.1'); // a classic client
    // Datagrams on loopback arrive in order: once this answer comes back, all the above were handled.
    const last = request(key, 5);
    sock.send(last, port, '127.0.0.1');
    const ans2 = await next();
    expect(ans2.readUInt32BE(4)).toBe(5);
    expect(refused).toEqual(['replay', 'bad-mac', 'bad-mac', 'stale', 'malformed']);
  });

  test('a flood past the rate limit is dropped without replies, bounded in count', async () => {
    const { port } = await responder(key, new RateLimiter({ ratePerSec: 1, burst: 20 }));
    const { sock, next } = await client();
    for (let i = 0; i < 200; i++) sock.send(request(key, i), port, '127.0.0.1');
    const got: number[] = [];
    for (let i = 0; i < 20; i++) got.push((await next()).readUInt32BE(4));
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });
});
