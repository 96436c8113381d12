// The disk query service against real loopback sockets: targets, answers, the TOO_LARGE retry, errors and ignored replies.
import { afterEach, describe, expect, test } from '@jest/globals';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { parseTarget, queryDisk, queryDisks, type HostResult } from '../../src/services/disk/query.js';
import { startDiskServer } from '../../src/services/disk/serve.js';
import type { DiskFactsSource } from '../../src/services/disk/facts.js';
import { HEADER_SIZE, WireError, encodeAnswer, encodeError, type FsFigures } from '../../src/protocol/disk-v1.js';

const FS: FsFigures = { mount: '/', fstype: 'xfs', device: '/dev/vdb', total: 2n ** 60n + 1n, used: 5n, available: 7n, free: 9n, served: true };

function facts(extra: number): DiskFactsSource {
  const many = Array.from({ length: extra }, (_, i) => ({ ...FS, mount: `/m/${'z'.repeat(150)}/${i}`, served: false }));
  return { host: 'srv', async read(scope) { return { host: 'srv', time: Date.now(), filesystems: scope === 'path' ? [FS] : [FS, ...many] }; }, close() {} };
}

const open: Array<() => unknown> = [];
afterEach(async () => {
  while (open.length) await open.pop()!();
});

/** A UDP socket on loopback whose replies the test writes: `respond(request) -> datagrams`. */
async function fakeServer(respond: (req: Buffer) => Buffer[]): Promise<{ port: number; requests: Buffer[] }> {
  const s = dgram.createSocket('udp4');
  const requests: Buffer[] = [];
  s.on('message', (m, r) => {
    requests.push(m);
    for (const out of respond(m)) s.send(out, r.port, r.address);
  });
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  open.push(() => new Promise<void>((r) => s.close(() => r())));
  return { port: s.address().port, requests };
}

function ok(r: HostResult): Extract<HostResult, { ok: true; protocol: 'v1' }> {
  if (!r.ok || r.protocol !== 'v1') throw new Error(`expected an answer, got ${JSON.stringify(r)}`);
  return r;
}

describe('parseTarget', () => {
  test.each([
    ['nas', { host: 'nas', port: 9991 }],
    ['nas:1234', { host: 'nas', port: 1234 }],
    ['10.0.0.1:9', { host: '10.0.0.1', port: 9 }],
    ['[::1]:5000', { host: '::1', port: 5000 }],
    ['[fe80::1]', { host: 'fe80::1', port: 9991 }],
    ['::1', { host: '::1', port: 9991 }],
  ])('%p', (text, expected) => {
    expect(parseTarget(text)).toMatchObject(expected);
  });

  test.each(['host:0', 'host:65536', 'host:abc', 'host:', ':80', '', '[::1]:x', 'a b'])('%p is a usage error', (text) => {
    expect(() => parseTarget(text)).toThrow(expect.objectContaining({ code: 'USAGE' }) as unknown as Error);
  });
});

describe('queryDisk', () => {
  test('reads a netkit server, exact figures included', async () => {
    const s = await startDiskServer({ host: '127.0.0.1', port: 0, facts: facts(0) });
    open.push(() => s.close());
    const r = ok(await queryDisk({ label: 'x', host: '127.0.0.1', port: s.address.port }));
    expect(r.answer.filesystems).toEqual([FS]);
    expect(r.attempts).toBe(1);
  });

  test('--all with many filesystems: one TOO_LARGE, one bigger request, every filesystem', async () => {
    const s = await startDiskServer({ host: '127.0.0.1', port: 0, facts: facts(40) });
    open.push(() => s.close());
    const r = ok(await queryDisk({ label: 'x', host: '127.0.0.1', port: s.address.port }, { all: true }));
    expect(r.answer.filesystems).toHaveLength(41);
  });

  test('ignores replies with another id or malformed ones, and takes the real answer', async () => {
    const fake = await fakeServer((req) => {
      const id = req.readUInt32BE(4);
      return [
        encodeAnswer((id + 1) >>> 0, { host: 'wrong id', time: 1, filesystems: [] }),
        Buffer.from('garbage'),
        Buffer.concat([encodeAnswer(id, { host: 'x', time: 1, filesystems: [] }).subarray(0, HEADER_SIZE), Buffer.from([2, 0, 9])]),
        encodeAnswer(id, { host: 'right', time: 2, filesystems: [FS] }),
      ];
    });
    const r = ok(await queryDisk({ label: 'f', host: '127.0.0.1', port: fake.port }, { timeoutMs: 2000 }));
    expect(r.answer.host).toBe('right');
  });

  test('only malformed replies: PROTOCOL after the attempts', async () => {
    const fake = await fakeServer((req) => [Buffer.concat([req.subarray(0, 3), Buffer.from([2]), req.subarray(4, 8), Buffer.from([2, 0, 9])])]);
    const r = await queryDisk({ label: 'f', host: '127.0.0.1', port: fake.port }, { timeoutMs: 50, retries: 1 });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe('PROTOCOL');
    expect(fake.requests).toHaveLength(2);
  });

  test.each([
    [WireError.RATE_LIMITED, 'BUSY'],
    [WireError.BAD_REQUEST, 'BAD_REQUEST'],
    [WireError.UNSUPPORTED_VERSION, 'PROTOCOL'],
    [WireError.INTERNAL, 'FAILED'],
    [77, 'PROTOCOL'],
  ])('a typed error %p becomes %p, with the peer text in the message', async (wire, code) => {
    const fake = await fakeServer((req) => [encodeError(req.readUInt32BE(4), { code: wire as WireError, message: 'peer says \u001b[31mno' })!]);
    const r = await queryDisk({ label: 'f', host: '127.0.0.1', port: fake.port });
    if (r.ok) throw new Error('expected a failure');
    expect(r.error.code).toBe(code);
    expect(r.error.message).toContain('peer says');
  });

  test('silent port: TIMEOUT after 1 + retries attempts, with backoff', async () => {
    const fake = await fakeServer(() => []);
    const started = Date.now();
    const r = await queryDisk({ label: 'f', host: '127.0.0.1', port: fake.port }, { timeoutMs: 40, retries: 2 });
    expect(!r.ok && r.error.code).toBe('TIMEOUT');
    expect(!r.ok && r.error.message).toMatch(/after 3 attempts \(waited \d+\.\ds\)/);
    expect(fake.requests).toHaveLength(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40 + 80 + 160 - 5);
    // Retries carry the same id, so a late answer to any attempt counts.
    expect(new Set(fake.requests.map((q) => q.readUInt32BE(4))).size).toBe(1);
  });

  test('classic: the first datagram from the server is the answer', async () => {
    const fake = await fakeServer((req) => [Buffer.from(req.toString() === 'y' ? '\nNome do Servidor: old \nEspaço total: 10.5GB \nDisponivel: 2.25GB' : 'Erro: Digite "y".')]);
    const r = await queryDisk({ label: 'c', host: '127.0.0.1', port: fake.port }, { classic: true });
    expect(r.ok && r.protocol === 'classic' && r.parsed).toEqual({ serverName: 'old', totalGiB: 10.5, availableGiB: 2.25 });
  });

  test('queryDisks keeps the order and reports each host on its own', async () => {
    const s = await startDiskServer({ host: '127.0.0.1', port: 0, facts: facts(0) });
    open.push(() => s.close());
    const silent = await fakeServer(() => []);
    const rs = await queryDisks(
      [parseTarget(`127.0.0.1:${silent.port}`), parseTarget(`127.0.0.1:${s.address.port}`), parseTarget('nope.invalid')],
      { timeoutMs: 30, retries: 0 },
    );
    expect(rs.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(['TIMEOUT', 'ok', 'HOST_NOT_FOUND']);
  });
});
