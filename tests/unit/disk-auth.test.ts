// Disk authentication wired end to end in-process: the auth-field codec, a server with a secret over loopback UDP (silent refusals, sealed replies), and the client's verdicts (forged, impostor, wrong or missing secret, retries).
import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fc from 'fast-check';
import { deriveKey, MAC_LENGTH } from '../../src/protocol/auth.js';
import { AuthTag, REQUEST_AUTH_OVERHEAD, encodeAuthQuery, locateAuthFields, sealReply, verifyReply } from '../../src/protocol/disk-auth.js';
import { DEFAULT_REQUEST_SIZE, MsgType, Scope, decodeQueryScope, decodeReply, encodeAnswer, encodeQuery, type FsFigures } from '../../src/protocol/disk-v1.js';
import { CLASSIC_REQUEST } from '../../src/protocol/disk-classic.js';
import { ReplayCache, admitDiskRequest } from '../../src/services/replay-cache.js';
import { startDiskServer, type DiskServer, type DiskServeOptions, type QueryEvent } from '../../src/services/disk/serve.js';
import { NO_SECRET_HINT, queryDisk } from '../../src/services/disk/query.js';
import type { DiskFactsSource } from '../../src/services/disk/facts.js';
import { udpRecordingProxy } from '../helpers/recording-proxy.js';

const TOKEN = 'Zk3pQ9vX2mL7wR4tY8uI1oP6aS5dF0gH3jK9lZ2xC7v';
const KEY = deriveKey(TOKEN, 'disk');
const OTHER = deriveKey('a-different-secret-Qw8Er4Ty6Ui2Op0As9Df', 'disk');
const ROOT: FsFigures = { mount: '/', fstype: 'ext4', device: '/dev/sda1', total: 1000n << 30n, used: 400n << 30n, available: 550n << 30n, free: 600n << 30n, served: true };

function facts(extra = 0): DiskFactsSource {
  const others = Array.from({ length: extra }, (_, i) => ({ ...ROOT, mount: `/data/${'v'.repeat(100)}/${i}`, served: false }));
  return {
    host: 'auth-host',
    async read(scope) {
      return { host: 'auth-host', time: Date.now(), filesystems: scope === 'path' ? [ROOT] : [ROOT, ...others] };
    },
    close() {},
  };
}

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function server(opts: DiskServeOptions = {}): Promise<DiskServer & { events: QueryEvent[] }> {
  const events: QueryEvent[] = [];
  const s = await startDiskServer({ host: '127.0.0.1', port: 0, facts: facts(), secret: KEY, onQuery: (e) => events.push(e), ...opts });
  open.push(s);
  return Object.assign(s, { events });
}

/** A connected socket; replies are queued so a test can read them in order. */
async function client(port: number): Promise<{ send(b: Buffer): void; next(): Promise<Buffer> }> {
  const sock = dgram.createSocket('udp4');
  open.push({ close: () => new Promise<void>((r) => sock.close(() => r())) });
  const queue: Buffer[] = [];
  const waiting: Array<(b: Buffer) => void> = [];
  sock.on('message', (m) => (waiting.length > 0 ? waiting.shift()!(m) : queue.push(m)));
  sock.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  return { send: (b) => sock.send(b), next: () => new Promise((r) => (queue.length > 0 ? r(queue.shift()!) : waiting.push(r))) };
}

function sealed(id: number, opts: { key?: typeof KEY; ts?: number; nonce?: Buffer; scope?: Scope; size?: number } = {}): Buffer {
  return encodeAuthQuery(opts.key ?? KEY, id, opts.scope ?? Scope.PATH, opts.nonce ?? randomBytes(16), opts.ts ?? Date.now(), opts.size ?? DEFAULT_REQUEST_SIZE);
}

function nonceOf(req: Buffer): Buffer {
  const at = locateAuthFields(req, true);
  if (typeof at === 'string') throw new Error(at);
  return at.nonce!;
}

describe('disk auth fields (codec)', () => {
  test('a sealed query: SCOPE, NONCE, TIME, MAC last, zero padding; still a valid v1 query', () => {
    const nonce = randomBytes(16);
    const q = encodeAuthQuery(KEY, 42, Scope.ALL, nonce, 1_700_000_000_000, 1200);
    expect(q.length).toBe(1200);
    expect(decodeQueryScope(q)).toBe(Scope.ALL);
    const at = locateAuthFields(q, true);
    expect(at).toEqual({ nonce, timestampMs: 1_700_000_000_000n, macOffset: 8 + 4 + REQUEST_AUTH_OVERHEAD - MAC_LENGTH });
    expect(q[8 + 4 + 19 + 11]).toBe(AuthTag.MAC);
    const cache = new ReplayCache();
    expect(admitDiskRequest({ key: KEY, datagram: q, macOffset: (at as { macOffset: number }).macOffset, nonce, timestampMs: 1_700_000_000_000n, cache, nowMs: 1_700_000_000_500 })).toBe('ok');
    // The minimum size holds every field even when asked for less.
    expect(encodeAuthQuery(KEY, 1, Scope.PATH, nonce, 1, 0).length).toBe(8 + 4 + REQUEST_AUTH_OVERHEAD);
  });

  test('problems are named: no auth fields, MAC not last, duplicate or wrong-length fields', () => {
    expect(locateAuthFields(encodeQuery(1, Scope.PATH), true)).toBe('unauthenticated');
    const q = sealed(1);
    const trailing = Buffer.from(q);
    trailing[trailing.length - 1] = 1;
    expect(locateAuthFields(trailing, true)).toBe('mac-not-last');
    // A request with only the MAC (no nonce/time) is unauthenticated, a reply needs only the MAC.
    const macOnly = sealReply(KEY, randomBytes(16), [encodeQuery(1, Scope.PATH, 12)]);
    expect(locateAuthFields(macOnly, true)).toBe('unauthenticated');
    expect(locateAuthFields(macOnly, false)).toEqual({ macOffset: 12 + 3 });
    const dup = Buffer.concat([q.subarray(0, 12), q.subarray(12, 31), q.subarray(12)]);
    expect(locateAuthFields(dup, true)).toBe('malformed');
    const short = Buffer.from(q);
    short.writeUInt16BE(15, 13); // NONCE length 15
    expect(locateAuthFields(short, true)).toBe('malformed');
    expect(locateAuthFields(q.subarray(0, 5), true)).toBe('malformed');
  });

  test('fuzz: any change to the covered bytes of a sealed query is refused by admitDiskRequest (bounded)', () => {
    const now = Date.now();
    const base = sealed(7, { ts: now, size: 200 });
    const macEnd = (locateAuthFields(base, true) as { macOffset: number }).macOffset + MAC_LENGTH;
    const started = Date.now();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: macEnd - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        if (Date.now() - started > 5000) return; // bounded in time as well as in count
        const q = Buffer.from(base);
        q[pos]! ^= x;
        const at = locateAuthFields(q, true);
        if (typeof at === 'string') return;
        expect(admitDiskRequest({ key: KEY, datagram: q, macOffset: at.macOffset, nonce: at.nonce!, timestampMs: at.timestampMs!, cache: new ReplayCache(), nowMs: now })).not.toBe('ok');
      }),
      { numRuns: 1000 },
    );
  });

  test('replies verify against any nonce we sent, and not against others or another key', () => {
    const nonces = [randomBytes(16), randomBytes(16)];
    const reply = sealReply(KEY, nonces[1]!, [encodeAnswer(9, { host: 'h', time: 1, filesystems: [ROOT] })]);
    expect(verifyReply(KEY, nonces, reply)).toBe('ok');
    expect(verifyReply(KEY, [nonces[0]!], reply)).toBe('bad-mac');
    expect(verifyReply(OTHER, nonces, reply)).toBe('bad-mac');
    expect(verifyReply(KEY, nonces, encodeAnswer(9, { host: 'h', time: 1, filesystems: [ROOT] }))).toBe('unauthenticated');
    // The MAC field is skipped by the ordinary decoder.
    expect(decodeReply(reply)).toMatchObject({ type: MsgType.ANSWER, id: 9, answer: { host: 'h' } });
  });
});

describe('disk server with a secret', () => {
  test('answers an authenticated query with a sealed answer no larger than the request', async () => {
    const s = await server();
    const c = await client(s.address.port);
    for (const size of [DEFAULT_REQUEST_SIZE, 8 + 4 + REQUEST_AUTH_OVERHEAD + 1081 - 8]) {
      const req = sealed(5, { size });
      c.send(req);
      const reply = await c.next();
      expect(reply.length).toBeLessThanOrEqual(req.length);
      expect(verifyReply(KEY, [nonceOf(req)], reply)).toBe('ok');
      expect(decodeReply(reply)).toMatchObject({ type: MsgType.ANSWER, id: 5, answer: { host: 'auth-host', filesystems: [ROOT] } });
    }
  });

  test('refuses silently: unauthenticated, wrong key, stale, future, replayed, MAC not last, classic, wrong version', async () => {
    const s = await server();
    const c = await client(s.address.port);
    const replayed = sealed(100);
    c.send(replayed);
    expect(readIdOf(await c.next())).toBe(100);
    // An unknown (skippable) field after the MAC: a valid v1 query, but nothing may follow the MAC.
    const trailing = sealed(107);
    trailing[8 + 4 + REQUEST_AUTH_OVERHEAD] = 0x09;
    const wrongVersion = sealed(108);
    wrongVersion[2] = 2;
    const bad: Array<[Buffer, string]> = [
      [encodeQuery(101, Scope.PATH), 'unauthenticated'],
      [sealed(102, { key: OTHER }), 'bad-mac'],
      [sealed(103, { ts: Date.now() - 31_000 }), 'stale'],
      [sealed(104, { ts: Date.now() + 31_000 }), 'future'],
      [replayed, 'replay'],
      [trailing, 'mac-not-last'],
      [CLASSIC_REQUEST, 'classic'],
      [wrongVersion, 'wrong-version'],
    ];
    for (const [b] of bad) c.send(b);
    // Datagrams on one loopback path are handled in order: the next reply must be the one to this fresh query.
    c.send(sealed(200));
    expect(readIdOf(await c.next())).toBe(200);
    expect(s.events.filter((e) => e.outcome === 'refused').map((e) => e.reason)).toEqual(bad.map(([, r]) => r));
    expect(s.stats.refused).toBe(bad.length);
  });

  test('a datagram replayed to the server gets nothing, a fresh one from the same client an answer (via a recording proxy)', async () => {
    const s = await server();
    const proxy = await udpRecordingProxy(s.address.port);
    open.push(proxy);
    const r = await queryDisk({ label: 'p', host: '127.0.0.1', port: proxy.port }, { secret: KEY, timeoutMs: 2000, retries: 0 });
    expect(r.ok).toBe(true);
    expect(proxy.requests).toHaveLength(1);
    const c = await client(s.address.port);
    c.send(proxy.requests[0]!);
    c.send(sealed(321));
    expect(readIdOf(await c.next())).toBe(321);
    expect(s.events.at(-2)).toMatchObject({ outcome: 'refused', reason: 'replay' });
  });

  test('TOO_LARGE is sealed and fits the request; the client grows its request and gets the answer', async () => {
    const s = await server({ facts: facts(40) });
    const c = await client(s.address.port);
    const req = sealed(6, { scope: Scope.ALL });
    c.send(req);
    const reply = await c.next();
    expect(reply.length).toBeLessThanOrEqual(req.length);
    expect(verifyReply(KEY, [nonceOf(req)], reply)).toBe('ok');
    const err = decodeReply(reply);
    expect(err.type).toBe(MsgType.ERROR);
    const r = await queryDisk({ label: 'x', host: '127.0.0.1', port: s.address.port }, { secret: KEY, all: true, timeoutMs: 2000, retries: 0 });
    expect(r.ok && r.protocol === 'v1' && r.answer.filesystems.length).toBe(41);
  });

  test('--classic together with a secret is refused at start', async () => {
    await expect(startDiskServer({ host: '127.0.0.1', port: 0, facts: facts(), secret: KEY, classic: true })).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('disk client with and without a secret', () => {
  const target = (port: number) => ({ label: `127.0.0.1:${port}`, host: '127.0.0.1', port });

  test('same secret: answered', async () => {
    const s = await server();
    const r = await queryDisk(target(s.address.port), { secret: KEY, timeoutMs: 2000, retries: 0 });
    expect(r).toMatchObject({ ok: true, protocol: 'v1', answer: { host: 'auth-host' } });
  });

  test('no secret against a server that requires one: a timeout whose hint asks about the secret', async () => {
    const s = await server();
    const r = await queryDisk(target(s.address.port), { timeoutMs: 100, retries: 0 });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatchObject({ code: 'TIMEOUT', hint: expect.stringContaining(NO_SECRET_HINT) });
    expect(NO_SECRET_HINT).toBe('if the server requires a secret, set NETKIT_TOKEN or --token-file (it stays silent without one)');
  });

  test('a wrong secret: the server stays silent, the client times out and says so', async () => {
    const s = await server();
    const r = await queryDisk(target(s.address.port), { secret: OTHER, timeoutMs: 100, retries: 1 });
    expect(!r.ok && r.error).toMatchObject({ code: 'TIMEOUT', hint: expect.stringContaining('same secret') });
    expect(s.events.map((e) => e.reason)).toEqual(['bad-mac', 'bad-mac']);
  });

  test('an impostor without a secret answers, but its answer is rejected (UNAUTHORIZED)', async () => {
    const s = await server({ secret: undefined });
    const r = await queryDisk(target(s.address.port), { secret: KEY, timeoutMs: 100, retries: 0 });
    expect(!r.ok && r.error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('without a MAC') });
    expect(s.stats.answered).toBe(1);
  });

  test('a forged answer with a bad MAC is rejected; one racing the real server is ignored and the real one accepted', async () => {
    // A forger alone: well-formed answer, right id, a MAC made with the wrong key.
    const forger = dgram.createSocket('udp4');
    open.push({ close: () => new Promise<void>((r) => forger.close(() => r())) });
    forger.on('message', (msg, rinfo) => {
      const fake = sealReply(OTHER, nonceOf(msg), [encodeAnswer(msg.readUInt32BE(4), { host: 'evil', time: Date.now(), filesystems: [{ ...ROOT, available: 0n }] })]);
      forger.send(fake, rinfo.port, rinfo.address);
    });
    forger.bind(0, '127.0.0.1');
    await once(forger, 'listening');
    const alone = await queryDisk(target(forger.address().port), { secret: KEY, timeoutMs: 100, retries: 1 });
    expect(!alone.ok && alone.error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('2 answers with a MAC that does not verify') });

    // A forger racing the real server through a proxy: its answers arrive first and are ignored.
    const s = await server();
    const proxy = await udpRecordingProxy(s.address.port, {
      inject: (req) => [
        encodeAnswer(req.readUInt32BE(4), { host: 'evil', time: 0, filesystems: [] }),
        sealReply(OTHER, nonceOf(req), [encodeAnswer(req.readUInt32BE(4), { host: 'evil', time: 0, filesystems: [] })]),
      ],
    });
    open.push(proxy);
    const r = await queryDisk(target(proxy.port), { secret: KEY, timeoutMs: 2000, retries: 0 });
    expect(r).toMatchObject({ ok: true, answer: { host: 'auth-host' } });
  });

  test('a retry carries a fresh nonce, so it is answered when the first answer was lost (not taken for a replay)', async () => {
    const s = await server();
    const proxy = await udpRecordingProxy(s.address.port, { passReply: (_r, i) => i > 0 });
    open.push(proxy);
    const r = await queryDisk(target(proxy.port), { secret: KEY, timeoutMs: 150, retries: 2 });
    expect(r).toMatchObject({ ok: true, attempts: 2 });
    expect(proxy.requests).toHaveLength(2);
    expect(nonceOf(proxy.requests[0]!).equals(nonceOf(proxy.requests[1]!))).toBe(false);
    expect(proxy.requests[0]!.readUInt32BE(4)).toBe(proxy.requests[1]!.readUInt32BE(4));
    expect(s.stats.refused).toBe(0);
  });

  test('the secret, its encodings and the derived key never cross the wire', async () => {
    const s = await server();
    const proxy = await udpRecordingProxy(s.address.port);
    open.push(proxy);
    const r = await queryDisk(target(proxy.port), { secret: KEY, all: true, timeoutMs: 2000, retries: 0 });
    expect(r.ok).toBe(true);
    const wire = Buffer.concat([...proxy.requests, ...proxy.replies]);
    for (const needle of [Buffer.from(TOKEN), Buffer.from(TOKEN, 'base64url'), Buffer.from(Buffer.from(TOKEN, 'base64url').toString('hex')), KEY.export(), deriveKey(TOKEN, 'file').export()]) {
      expect(wire.includes(needle)).toBe(false);
    }
  });
});

function readIdOf(b: Buffer): number {
  return b.readUInt32BE(4);
}
