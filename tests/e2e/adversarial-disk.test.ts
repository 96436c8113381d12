// Malformed datagrams against a running `netkit disk serve`: thousands of them, no reply ever larger than its request, and correct answers afterwards.
import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { MsgType, Scope, encodeQuery, readId } from '../../src/protocol/disk-v1.js';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

const servers: Server[] = [];
afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.stop();
});

/** A malformed datagram of exactly `len` bytes (len >= 1), of one of several kinds. */
function malformed(kind: number, len: number, i: number): Buffer {
  const header = (version: number, type: number): Buffer => {
    const h = Buffer.alloc(8);
    h[0] = 0x4e;
    h[1] = 0x4b;
    h[2] = version;
    h[3] = type;
    h.writeUInt32BE(i >>> 0, 4);
    return h;
  };
  const fit = (b: Buffer): Buffer => (b.length >= len ? b.subarray(0, len) : Buffer.concat([b, randomBytes(len - b.length)]));
  switch (kind % 8) {
    case 0:
      return randomBytes(len); // noise
    case 1:
      return fit(header(1, MsgType.QUERY)); // a v1 QUERY header, then garbage TLVs
    case 2:
      return encodeQuery(i, Scope.ALL, Math.max(len, 8)).subarray(0, len); // a truncated valid query
    case 3:
      return fit(header(2 + (i % 200), MsgType.QUERY)); // another version
    case 4:
      return fit(header(1, MsgType.ANSWER)); // a reply sent to the server (must not ping-pong)
    case 5:
      return fit(Buffer.concat([header(1, MsgType.QUERY), Buffer.from([0x01, 0xff, 0xff])])); // a TLV longer than the datagram
    case 6:
      return fit(Buffer.concat([header(1, MsgType.QUERY), Buffer.from([0x10, 0x00, 0x20])])); // a lone AUTH_MAC tag
    default:
      return fit(Buffer.from('y'.repeat(1 + (i % 3)) + 'Y\n')); // near-classic text
  }
}

describe('malformed datagrams against a running disk server', () => {
  test('3,000+ malformed datagrams: every reply is no larger than its request, none crash it, and it still answers correctly', async () => {
    const s = await startServer(['disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--quiet']);
    servers.push(s);
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const lengths = [1, 2, 7, 8, 9, 11, 12, 40, 100, 255, 600, 1199, 1200, 4000, 65_507];
    const deadline = Date.now() + 40_000;
    let sent = 0;
    const oversize: string[] = [];
    try {
      for (let batch = 0; batch < 45 && Date.now() < deadline; batch++) {
        const len = lengths[batch % lengths.length]!;
        const kind = Math.floor(batch / lengths.length) + batch;
        const sentinelId = 0x5e000000 + batch;
        const sentinel = encodeQuery(sentinelId, Scope.PATH, 1200);
        // Replies arrive in order on loopback: everything before the sentinel's answer answers this batch.
        const replies: Buffer[] = [];
        const got = new Promise<void>((resolve) => {
          const onMsg = (m: Buffer): void => {
            if (m.length >= 8 && m[3] === MsgType.ANSWER && readId(m) === sentinelId) {
              sock.off('message', onMsg);
              resolve();
            } else replies.push(m);
          };
          sock.on('message', onMsg);
        });
        const n = len > 4000 ? 20 : 80;
        for (let i = 0; i < n; i++) {
          sock.send(malformed(kind + i, len, sent), s.port, '127.0.0.1');
          sent += 1;
        }
        sock.send(sentinel, s.port, '127.0.0.1');
        await Promise.race([got, new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer to the sentinel of batch ${batch}`)), 10_000).unref())]);
        for (const r of replies) if (r.length > len) oversize.push(`batch ${batch}: ${r.length}-byte reply to ${len}-byte requests`);
      }
    } finally {
      sock.close();
    }
    expect(oversize).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(3_000);
    expect(s.child.exitCode).toBeNull();
    const q = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--json']);
    expect(q.code).toBe(0);
    const [host] = JSON.parse(q.stdout) as Array<{ ok: boolean; filesystems: unknown[] }>;
    expect(host!.ok).toBe(true);
    expect(host!.filesystems.length).toBeGreaterThan(0);
  }, 90_000);

  test('--classic: garbage between classic queries; every y is still answered and no non-y gets more than its size', async () => {
    const s = await startServer(['disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--quiet', '--classic']);
    servers.push(s);
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    try {
      for (let round = 0; round < 10; round++) {
        const lens: number[] = [];
        const replies: Buffer[] = [];
        const answered = new Promise<Buffer>((resolve) => {
          const onMsg = (m: Buffer): void => {
            // The classic answer starts with the host name text; v1 replies start with 'NK'.
            if (m.length > 2 && !(m[0] === 0x4e && m[1] === 0x4b) && !m.toString().startsWith('Erro')) {
              sock.off('message', onMsg);
              resolve(m);
            } else replies.push(m);
          };
          sock.on('message', onMsg);
        });
        for (let i = 0; i < 100; i++) {
          let g = malformed(round * 100 + i, 1 + ((round * 37 + i * 13) % 300), i);
          if (g.length === 1 && g[0] === 0x79) g = Buffer.from('z');
          lens.push(g.length);
          sock.send(g, s.port, '127.0.0.1');
        }
        sock.send(Buffer.from('y'), s.port, '127.0.0.1');
        const answer = await Promise.race([answered, new Promise<Buffer>((_, reject) => setTimeout(() => reject(new Error('no classic answer')), 10_000).unref())]);
        expect(answer.toString('utf8')).toMatch(/GB/);
        const maxLen = Math.max(...lens);
        for (const r of replies) expect(r.length).toBeLessThanOrEqual(maxLen);
      }
    } finally {
      sock.close();
    }
    const q = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--json']);
    expect(q.code).toBe(0);
  }, 60_000);
});
