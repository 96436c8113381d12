// Shared UDP sessions: replies matched by key from any address, ICMP refusals per peer, and duplicate peers.
import { afterEach, describe, expect, test } from '@jest/globals';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { UdpSession } from '../../src/transport/udp-session.js';

const open: Array<() => unknown> = [];
afterEach(async () => {
  while (open.length) await open.pop()!();
});

const keyOf = (m: Buffer): number | undefined => (m.length >= 4 ? m.readUInt32BE(0) : undefined);

/** An echo server bound to every IPv4 address: it answers from the address the kernel picks (127.0.0.1 on loopback). */
async function anyAddressEcho(): Promise<{ port: number; seen: string[] }> {
  const s = dgram.createSocket('udp4');
  const seen: string[] = [];
  s.on('message', (m, r) => {
    seen.push(r.address);
    s.send(m, r.port, r.address);
  });
  s.bind(0, '0.0.0.0');
  await once(s, 'listening');
  s.setRecvBufferSize(1 << 20); // a burst of requests, as netkit's own server asks for
  open.push(() => new Promise<void>((r) => s.close(() => r())));
  return { port: s.address().port, seen };
}

function session(): UdpSession {
  const s = new UdpSession({ keyOf, recvBufferSize: 1 << 20 });
  open.push(() => s.close());
  return s;
}

function request(key: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(key, 0);
  return b;
}

describe('UdpSession', () => {
  test('300 peers on distinct loopback addresses, all answered from 127.0.0.1: every reply reaches its exchange on the first attempt', async () => {
    const srv = await anyAddressEcho();
    const s = session();
    const hosts = Array.from({ length: 300 }, (_, i) => `127.0.${(i + 257) >> 8}.${(i + 257) & 255}`);
    const results = await Promise.all(
      hosts.map((host) => {
        const key = s.newKey();
        // One attempt, a long wait: a reply delivered to the wrong socket would show as a timeout.
        return s.exchange(key, { host, port: srv.port, payload: request(key), timeoutMs: 5000, retries: 0, onReply: (m) => ({ accept: m.readUInt32BE(0) === key }) });
      }),
    );
    expect(results.every((r) => r.value && r.attempts === 1 && r.address === '127.0.0.1')).toBe(true);
    expect(new Set(srv.seen)).toEqual(new Set(['127.0.0.1']));
  });

  test('the same peer twice at once: each exchange gets its own reply', async () => {
    const srv = await anyAddressEcho();
    const s = session();
    const ask = (): Promise<unknown> => {
      const key = s.newKey();
      return s.exchange(key, { host: '127.0.0.1', port: srv.port, payload: request(key), timeoutMs: 2000, retries: 0, onReply: (m) => (m.readUInt32BE(0) === key ? { accept: key } : undefined) }).then((r) => r.value === key);
    };
    expect(await Promise.all([ask(), ask(), ask()])).toEqual([true, true, true]);
  });

  test('a refused port is CONNECT_REFUSED at once (ICMP on the peer socket), and the other peers still answer', async () => {
    const srv = await anyAddressEcho();
    const gone = dgram.createSocket('udp4');
    gone.bind(0, '127.0.0.1');
    await once(gone, 'listening');
    const deadPort = gone.address().port;
    await new Promise<void>((r) => gone.close(() => r()));
    const s = session();
    const k1 = s.newKey();
    const k2 = s.newKey();
    const started = Date.now();
    const [dead, live] = await Promise.allSettled([
      s.exchange(k1, { host: '127.0.0.1', port: deadPort, payload: request(k1), timeoutMs: 3000, retries: 0, onReply: () => ({ accept: 1 }) }),
      s.exchange(k2, { host: '127.0.0.9', port: srv.port, payload: request(k2), timeoutMs: 3000, retries: 0, onReply: () => ({ accept: 2 }) }),
    ]);
    expect(dead).toMatchObject({ status: 'rejected', reason: { code: 'CONNECT_REFUSED' } });
    expect(live).toMatchObject({ status: 'fulfilled', value: { value: 2 } });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('keys in flight are never handed out twice', async () => {
    const s = session();
    const keys = new Set(Array.from({ length: 2000 }, () => s.newKey()));
    expect(keys.size).toBe(2000);
  });
});
