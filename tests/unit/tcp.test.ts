// The TCP adapter on real loopback sockets: errno translation, listen defaults, and read sinks (zero-copy and copying).
import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { feedSink, formatHostPort, sinkAttached, socketError, tcpTransport, type ReadSink, type StreamListener } from '../../src/transport/tcp.js';
import { rejection } from '../helpers/errors.js';

const listeners: StreamListener[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const l of listeners.splice(0)) await l.close();
});

/** A sink that reads into small fixed pieces and records every byte, pausing every few reads. */
function recordingSink(pieceSize: number): ReadSink & { bytes(): Buffer } {
  const parts: Buffer[] = [];
  let current = Buffer.alloc(pieceSize);
  return {
    buffer: () => current,
    received: (n, buf) => {
      expect(buf).toBe(current);
      parts.push(Buffer.from(buf.subarray(0, n)));
      current = Buffer.alloc(pieceSize);
      return true;
    },
    bytes: () => Buffer.concat(parts),
  };
}

describe('tcp transport', () => {
  test('listen on port 0 reports the bound port; connect reaches it', async () => {
    const accepted: net.Socket[] = [];
    const l = await tcpTransport.listen({ host: '127.0.0.1', port: 0 }, (s) => accepted.push(s));
    listeners.push(l);
    expect(l.port).toBeGreaterThan(0);
    expect(l.host).toBe('127.0.0.1');
    const s = await tcpTransport.connect({ host: '127.0.0.1', port: l.port, timeoutMs: 2000 });
    sockets.push(s);
    expect(s.remotePort).toBe(l.port);
    for (const a of accepted) a.destroy();
  });

  test('every interface by default (dual-stack when IPv6 exists)', async () => {
    const l = await tcpTransport.listen({ port: 0 }, (s) => s.destroy());
    listeners.push(l);
    expect(['::', '0.0.0.0']).toContain(l.host);
    const s = await tcpTransport.connect({ host: '127.0.0.1', port: l.port, timeoutMs: 2000 });
    sockets.push(s);
  });

  test('a taken port is ADDRESS_IN_USE with a hint', async () => {
    const l = await tcpTransport.listen({ host: '127.0.0.1', port: 0 }, (s) => s.destroy());
    listeners.push(l);
    const err = await rejection(tcpTransport.listen({ host: '127.0.0.1', port: l.port }, () => undefined));
    expect(err.code).toBe('ADDRESS_IN_USE');
    expect(err.hint).toMatch(/--port/);
  });

  test('nobody listening is CONNECT_REFUSED with "cannot connect to host:port"', async () => {
    const l = await tcpTransport.listen({ host: '127.0.0.1', port: 0 }, () => undefined);
    const port = l.port;
    await l.close();
    const err = await rejection(tcpTransport.connect({ host: '127.0.0.1', port, timeoutMs: 2000 }));
    expect(err.code).toBe('CONNECT_REFUSED');
    expect(err.message).toBe(`cannot connect to 127.0.0.1:${port}: connection refused`);
  });

  test.each([
    ['ENOTFOUND', 'connect', 'HOST_NOT_FOUND'],
    ['EAI_AGAIN', 'connect', 'HOST_NOT_FOUND'],
    ['ETIMEDOUT', 'connect', 'TIMEOUT'],
    ['EHOSTUNREACH', 'connect', 'UNREACHABLE'],
    ['ECONNRESET', 'transfer', 'PEER_CLOSED'],
    ['EPIPE', 'transfer', 'PEER_CLOSED'],
    ['EACCES', 'listen', 'PERMISSION'],
    ['EADDRNOTAVAIL', 'listen', 'ADDRESS_IN_USE'],
  ] as const)('%s while %s -> %s', (errno, phase, code) => {
    const err = Object.assign(new Error(errno), { code: errno });
    expect(socketError(err, { host: '::1', port: 8881, phase }).code).toBe(code);
  });

  test('IPv6 literals are bracketed in messages', () => {
    expect(formatHostPort('::1', 8881)).toBe('[::1]:8881');
    expect(formatHostPort('10.0.0.1', 80)).toBe('10.0.0.1:80');
  });

  test('a connect-time sink receives every byte straight into its buffers (onread), in order', async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 11);
    const l = await tcpTransport.listen({ host: '127.0.0.1', port: 0 }, (s) => s.end(payload));
    listeners.push(l);
    const sink = recordingSink(4096);
    const s = await tcpTransport.connect({ host: '127.0.0.1', port: l.port, timeoutMs: 2000, sink });
    sockets.push(s);
    expect(sinkAttached(s)).toBe(true);
    await once(s, 'end');
    expect(sink.bytes().equals(payload)).toBe(true);
  });

  test('feedSink gives the same bytes from a plain socket (the path other adapters use)', async () => {
    const payload = randomBytes(500_001);
    const l = await tcpTransport.listen({ host: '127.0.0.1', port: 0 }, (s) => s.end(payload));
    listeners.push(l);
    const s = await tcpTransport.connect({ host: '127.0.0.1', port: l.port, timeoutMs: 2000 });
    sockets.push(s);
    expect(sinkAttached(s)).toBe(false);
    const sink = recordingSink(1000);
    feedSink(s, sink);
    await once(s, 'end');
    expect(sink.bytes().equals(payload)).toBe(true);
  });
});
