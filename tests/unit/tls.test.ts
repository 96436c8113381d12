// The TLS adapter on real loopback sockets: pins, TOFU, CA, plain/TLS mismatches both ways, and a recording proxy.
import { describe, test, expect, beforeAll, afterAll, afterEach } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { NetkitError } from '../../src/errors.js';
import { generateSelfSigned, type SelfSigned } from '../../src/transport/cert.js';
import type { StreamListener, StreamSocket } from '../../src/transport/tcp.js';
import { classifyFirstBytes, closeGently, looksLikeTlsClientHello, refuseTlsClient } from '../../src/transport/tls-sniff.js';
import { tlsTransport, type TlsTransportOptions } from '../../src/transport/tls.js';
import { fingerprintOf, type TrustPolicy } from '../../src/transport/trust.js';
import { rejection } from '../helpers/errors.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let idA: SelfSigned;
let idB: SelfSigned;
beforeAll(() => {
  idA = generateSelfSigned();
  idB = generateSelfSigned();
});

/** Read a socket to its end. */
async function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  await once(socket, 'end');
  return Buffer.concat(chunks);
}

interface Served {
  listener: StreamListener;
  port: number;
  /** Every application byte the server received, per connection, in order. */
  received: Buffer[];
  clientErrors: NetkitError[];
  /** Resolves after the next connection is finished with, one way or another. */
  nextDone: () => Promise<void>;
  close: () => Promise<void>;
}

/**
 * A TLS server that answers each request (read to end) with `reply(request)`, recording what it got.
 */
async function serveTls(
  identity: SelfSigned,
  reply: (request: Buffer, socket: tls.TLSSocket) => Buffer | void,
  extra: Partial<TlsTransportOptions> = {},
  port = 0,
): Promise<Served> {
  const received: Buffer[] = [];
  const clientErrors: NetkitError[] = [];
  const sockets = new Set<StreamSocket>();
  let waiters: (() => void)[] = [];
  const done = (): void => {
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  };
  const transport = tlsTransport({
    identity,
    ...extra,
    onClientError: (err, remote) => {
      clientErrors.push(err);
      extra.onClientError?.(err, remote);
      done();
    },
  });
  const listener = await transport.listen({ host: '127.0.0.1', port }, (socket) => {
    sockets.add(socket);
    const mine: Buffer[] = [];
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => mine.push(d));
    socket.once('end', () => {
      const answer = reply(Buffer.concat(mine), socket as tls.TLSSocket);
      if (answer) socket.end(answer);
    });
    socket.once('close', () => {
      sockets.delete(socket);
      received.push(Buffer.concat(mine));
      done();
    });
  });
  const served: Served = {
    listener,
    port: listener.port,
    received,
    clientErrors,
    nextDone: () => new Promise<void>((r) => waiters.push(r)),
    close: async () => {
      for (const s of sockets) s.destroy();
      await listener.close();
    },
  };
  cleanups.push(served.close);
  return served;
}

function client(trust: TrustPolicy, extra: Partial<TlsTransportOptions> = {}) {
  return tlsTransport({ trust, ...extra });
}

async function connect(trust: TrustPolicy, port: number, host = '127.0.0.1', timeoutMs = 5000) {
  const infos: unknown[] = [];
  const socket = await client(trust, { onSecure: (i) => infos.push(i) }).connect({ host, port, timeoutMs });
  socket.on('error', () => undefined);
  cleanups.push(() => socket.destroy());
  return { socket, info: infos[0] as { trust: { how: string; fingerprint: string }; protocol: string; cipher: string } };
}

/** Plain TCP server for the mismatch tests; `onConnection` decides what a non-TLS-aware server does. */
async function servePlain(onConnection: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  // Half-open allowed, as in the real adapters: the proxy must relay the answer after the client's FIN.
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    onConnection(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

const pin = (id: SelfSigned): TrustPolicy => ({ kind: 'pin', fingerprint: fingerprintOf(id.der) });

describe('first-byte classification', () => {
  test.each([
    ['', 'incomplete'],
    ['16', 'incomplete'],
    ['1603', 'tls'],
    ['160301', 'tls'],
    ['1603030200', 'tls'],
    ['1604', 'other'],
    ['89', 'netkit-v1'],
    ['894e4b46', 'netkit-v1'],
    [Buffer.from('file.txt').toString('hex'), 'other'],
    ['474554202f', 'other'],
  ])('%s -> %s', (hex, kind) => {
    expect(classifyFirstBytes(Buffer.from(hex, 'hex'))).toBe(kind);
    expect(looksLikeTlsClientHello(Buffer.from(hex, 'hex'))).toBe(kind === 'tls');
  });
});

describe('TLS transport over loopback', () => {
  test('a pinned fingerprint is accepted; TLS 1.3 with an AEAD suite; half-close works like plain TCP', async () => {
    const srv = await serveTls(idA, (req) => Buffer.concat([Buffer.from('pong:'), req]));
    const { socket, info } = await connect(pin(idA), srv.port);
    expect(info.protocol).toBe('TLSv1.3');
    expect(info.cipher).toMatch(/^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/);
    expect(info.trust).toEqual({ how: 'pin', fingerprint: fingerprintOf(idA.der) });
    socket.end('ping');
    expect((await collect(socket)).toString()).toBe('pong:ping');
  });

  test('8 MiB in each direction arrive byte-identical, with backpressure', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const srv = await serveTls(idA, (req) => {
      expect(createHash('sha256').update(req).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
      return payload;
    });
    const { socket } = await connect(pin(idA), srv.port);
    for (let off = 0; off < payload.length; off += 65536) {
      if (!socket.write(payload.subarray(off, off + 65536))) await once(socket, 'drain');
    }
    socket.end();
    const got = await collect(socket);
    expect(got.length).toBe(payload.length);
    expect(got.equals(payload)).toBe(true);
  });

  test('a wrong pin is refused before any application data reaches the server', async () => {
    const srv = await serveTls(idA, () => Buffer.from('should never be sent'));
    const done = srv.nextDone();
    const err = await rejection(connect(pin(idB), srv.port));
    expect(err.code).toBe('TLS_TRUST');
    expect(err.message).toContain('does not match the pinned fingerprint');
    expect(err.message).toContain(fingerprintOf(idA.der));
    await done;
    expect(srv.received.every((b) => b.length === 0)).toBe(true);
  });

  describe('trust on first use', () => {
    let xdg: string;
    let saved: string | undefined;
    beforeAll(() => {
      saved = process.env.XDG_CONFIG_HOME;
      xdg = mkdtempSync(join(tmpdir(), 'netkit-xdg-'));
      process.env.XDG_CONFIG_HOME = xdg;
    });
    afterAll(() => {
      if (saved === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = saved;
      rmSync(xdg, { recursive: true, force: true });
    });

    test('records on first use, accepts the same certificate, then catches a changed one', async () => {
      const told: { host: string; fingerprint: string; file: string }[] = [];
      const tofu: TrustPolicy = { kind: 'tofu', onFirstUse: (i) => told.push(i) };
      const file = join(xdg, 'netkit', 'known_hosts');

      const a = await serveTls(idA, () => Buffer.from('a'));
      const c1 = await connect(tofu, a.port);
      expect(c1.info.trust.how).toBe('first-use');
      expect(told).toEqual([{ host: `127.0.0.1:${a.port}`, fingerprint: fingerprintOf(idA.der), file }]);
      expect(readFileSync(file, 'utf8')).toBe(`127.0.0.1:${a.port} ${fingerprintOf(idA.der)}\n`);
      c1.socket.end();
      expect((await collect(c1.socket)).toString()).toBe('a');

      const c2 = await connect(tofu, a.port);
      expect(c2.info.trust.how).toBe('known');
      expect(told).toHaveLength(1);
      c2.socket.destroy();

      // Same host and port, different certificate: a hard error naming the file and line.
      const port = a.port;
      await a.close();
      const b = await serveTls(idB, () => Buffer.from('b'), {}, port);
      const done = b.nextDone();
      const err = await rejection(connect(tofu, port));
      expect(err.code).toBe('TLS_TRUST');
      expect(err.message).toContain(`${file} line 1`);
      expect(err.hint).toContain(`delete line 1 of ${file}`);
      expect(told).toHaveLength(1);
      expect(readFileSync(file, 'utf8')).toBe(`127.0.0.1:${port} ${fingerprintOf(idA.der)}\n`);
      await done;
      expect(b.received.every((x) => x.length === 0)).toBe(true);
    });
  });

  test('--tls-ca: normal verification, host names and IP SANs included; another CA is refused', async () => {
    const srv = await serveTls(idA, () => Buffer.from('ok'));
    for (const host of ['localhost', '127.0.0.1']) {
      const { socket, info } = await connect({ kind: 'ca', ca: idA.certPem }, srv.port, host);
      expect(info.trust.how).toBe('ca');
      socket.end();
      expect((await collect(socket)).toString()).toBe('ok');
    }
    const err = await rejection(connect({ kind: 'ca', ca: idB.certPem }, srv.port));
    expect(err.code).toBe('TLS_TRUST');
    expect(err.message).toContain('not trusted');
  });

  test('--tls-ca refuses a certificate whose names do not cover the host', async () => {
    const narrow = generateSelfSigned({ hosts: ['only.example'] });
    const srv = await serveTls(narrow, () => Buffer.from('x'));
    const err = await rejection(connect({ kind: 'ca', ca: narrow.certPem }, srv.port, '127.0.0.1'));
    expect(err.code).toBe('TLS_TRUST');
  });

  test('connection refused is the plain adapter error', async () => {
    const port = await servePlain(() => undefined);
    await cleanups.pop()!(); // close it: nothing listens on that port now
    const err = await rejection(connect(pin(idA), port));
    expect(err.code).toBe('CONNECT_REFUSED');
  });
});

describe('plain and TLS mismatched', () => {
  test('TLS client -> plain server that recognises the ClientHello: a clear error at once, not a timeout', async () => {
    const firsts: Buffer[] = [];
    const port = await servePlain((s) =>
      s.once('data', (d: Buffer) => {
        firsts.push(d);
        if (looksLikeTlsClientHello(d)) refuseTlsClient(s);
      }),
    );
    const t0 = Date.now();
    const err = await rejection(connect(pin(idA), port, '127.0.0.1', 20_000));
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err.code).toBe('PROTOCOL');
    expect(err.message).toContain('does not seem to speak TLS');
    expect(err.hint).toContain('--tls');
    expect(firsts[0]![0]).toBe(0x16);
  });

  test('TLS client -> plain server that answers in its own protocol: "not TLS"', async () => {
    // A classic server answers any request with an 8-byte size field; a plain v1 server with its magic.
    for (const answer of [Buffer.from('-1      '), Buffer.from([0x89, 0x4e, 0x4b, 0x46, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6])]) {
      const port = await servePlain((s) => s.once('data', () => s.end(answer)));
      const err = await rejection(connect(pin(idA), port));
      expect(err.code).toBe('PROTOCOL');
      expect(err.message).toMatch(/not TLS|does not seem to speak TLS/);
    }
  });

  test('TLS client -> plain server that never answers: TIMEOUT within the bound, with a --tls hint', async () => {
    const port = await servePlain(() => undefined);
    const err = await rejection(connect(pin(idA), port, '127.0.0.1', 300));
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('no TLS handshake');
    expect(err.hint).toContain('--tls');
  });

  test('plain v1 client -> TLS server: the server hands the plain request to onPlainClient, which answers it', async () => {
    const plainFirsts: Buffer[] = [];
    const srv = await serveTls(idA, () => Buffer.from('tls only'), {
      onPlainClient: (socket, first) => {
        plainFirsts.push(first);
        socket.write('ERR this server requires TLS: use --tls\n');
        closeGently(socket);
      },
    });
    const done = srv.nextDone();
    const sock = net.connect(srv.port, '127.0.0.1');
    cleanups.push(() => sock.destroy());
    sock.write(Buffer.from([0x89, 0x4e, 0x4b, 0x46, 0x01, 0x00]));
    expect((await collect(sock)).toString()).toBe('ERR this server requires TLS: use --tls\n');
    await done;
    expect(plainFirsts[0]!.subarray(0, 4)).toEqual(Buffer.from([0x89, 0x4e, 0x4b, 0x46]));
    expect(srv.clientErrors.map((e) => e.code)).toEqual(['PROTOCOL']);
    expect(srv.clientErrors[0]!.message).toContain('plain (non-TLS) netkit client');
  });

  test('plain classic client -> TLS server without a handler: closed, never a hang', async () => {
    const srv = await serveTls(idA, () => Buffer.from('tls only'));
    const done = srv.nextDone();
    const sock = net.connect(srv.port, '127.0.0.1');
    cleanups.push(() => sock.destroy());
    sock.write('file.txt');
    expect((await collect(sock)).length).toBe(0);
    await done;
    expect(srv.clientErrors[0]!.code).toBe('PROTOCOL');
  });

  test('a one-byte classic request is answered at once, not after the handshake bound', async () => {
    const srv = await serveTls(idA, () => Buffer.from('x'), {
      handshakeTimeoutMs: 20_000,
      onPlainClient: (socket, first) => {
        socket.write(`plain:${first.toString()}`);
        closeGently(socket);
      },
    });
    const sock = net.connect(srv.port, '127.0.0.1');
    cleanups.push(() => sock.destroy());
    sock.write('a');
    const t0 = Date.now();
    expect((await collect(sock)).toString()).toBe('plain:a');
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  test('a client that connects and says nothing is dropped after the handshake bound', async () => {
    const srv = await serveTls(idA, () => Buffer.from('x'), { handshakeTimeoutMs: 200 });
    const done = srv.nextDone();
    const sock = net.connect(srv.port, '127.0.0.1');
    sock.on('error', () => undefined);
    cleanups.push(() => sock.destroy());
    await once(sock, 'close');
    await done;
    expect(srv.clientErrors[0]!.code).toBe('TIMEOUT');
  });
});

describe('a recording proxy in the middle', () => {
  test('sees only TLS records, never the request or the file', async () => {
    const marker = 'PLAINTEXT-MARKER-the-secret-file-contents';
    const payload = Buffer.concat([Buffer.from(marker.repeat(1000)), randomBytes(2 * 1024 * 1024), Buffer.from(marker)]);
    const request = 'GET /secret/name-of-the-file.txt';
    const srv = await serveTls(idA, (req) => (req.toString() === request ? payload : Buffer.from('bad request')));

    const upstream: Buffer[] = [];
    const downstream: Buffer[] = [];
    const proxyPort = await servePlain((inbound) => {
      const outbound = net.connect({ port: srv.port, host: '127.0.0.1', allowHalfOpen: true });
      outbound.on('error', () => inbound.destroy());
      cleanups.push(() => outbound.destroy());
      inbound.on('data', (d: Buffer) => {
        upstream.push(d);
        outbound.write(d);
      });
      outbound.on('data', (d: Buffer) => {
        downstream.push(d);
        inbound.write(d);
      });
      inbound.on('end', () => outbound.end());
      outbound.on('end', () => inbound.end());
    });

    const { socket } = await connect(pin(idA), proxyPort);
    socket.end(request);
    const got = await collect(socket);
    expect(got.equals(payload)).toBe(true);

    const up = Buffer.concat(upstream);
    const down = Buffer.concat(downstream);
    expect(up.subarray(0, 2)).toEqual(Buffer.from([0x16, 0x03]));
    expect(down.subarray(0, 2)).toEqual(Buffer.from([0x16, 0x03]));
    expect(down.length).toBeGreaterThan(payload.length);
    for (const haystack of [up, down]) {
      expect(haystack.includes(request)).toBe(false);
      expect(haystack.includes('secret')).toBe(false);
      expect(haystack.includes(marker.slice(0, 16))).toBe(false);
      for (const off of [0, 100_000, 1_000_000, payload.length - 64]) {
        expect(haystack.includes(payload.subarray(off, off + 32))).toBe(false);
      }
    }
  });
});
