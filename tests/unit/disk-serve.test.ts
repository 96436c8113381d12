// The disk server in-process with injected figures: answers, ids, size rule, errors, freshness, classic, rate limit.
import { afterEach, describe, expect, test } from '@jest/globals';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { startDiskServer, type DiskServer, type DiskServeOptions, type QueryEvent } from '../../src/services/disk/serve.js';
import type { DiskFactsSource, FactsScope } from '../../src/services/disk/facts.js';
import { DEFAULT_REQUEST_SIZE, MsgType, Scope, WireError, decodeReply, encodeQuery, type FsFigures } from '../../src/protocol/disk-v1.js';

const ROOT: FsFigures = { mount: '/', fstype: 'ext4', device: '/dev/sda1', total: 1000n * 2n ** 30n, used: 400n * 2n ** 30n, available: 550n * 2n ** 30n, free: 600n * 2n ** 30n, served: true };

/** Fixed figures, counting reads; `extra` filesystems appear only in "all". */
function fixedFacts(extra = 0): DiskFactsSource & { reads: Record<FactsScope, number> } {
  const reads = { path: 0, all: 0 };
  const others = Array.from({ length: extra }, (_, i) => ({ ...ROOT, mount: `/data/${'v'.repeat(100)}/${i}`, served: false }));
  return {
    host: 'test-host',
    reads,
    async read(scope) {
      reads[scope] += 1;
      return { host: 'test-host', time: Date.now(), filesystems: scope === 'path' ? [ROOT] : [ROOT, ...others] };
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
  const s = await startDiskServer({ host: '127.0.0.1', port: 0, facts: fixedFacts(), onQuery: (e) => events.push(e), ...opts });
  open.push(s);
  return Object.assign(s, { events });
}

/** A client socket connected to the server; ask() sends one datagram and resolves with the next reply. */
async function client(port: number): Promise<{ ask(b: Buffer): Promise<Buffer>; send(b: Buffer): void; sock: dgram.Socket }> {
  const sock = dgram.createSocket('udp4');
  open.push({ close: () => new Promise<void>((r) => sock.close(() => r())) });
  sock.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  return {
    sock,
    send: (b) => sock.send(b),
    ask: async (b) => {
      const reply = once(sock, 'message');
      sock.send(b);
      return ((await reply) as [Buffer])[0];
    },
  };
}

describe('disk server', () => {
  test('answers a query with the figures, echoing the id, never larger than the request', async () => {
    const s = await server();
    const c = await client(s.address.port);
    for (const id of [0, 1, 0xffffffff]) {
      const req = encodeQuery(id, Scope.PATH);
      const raw = await c.ask(req);
      expect(raw.length).toBeLessThanOrEqual(req.length);
      expect(decodeReply(raw)).toEqual({ type: MsgType.ANSWER, id, answer: { host: 'test-host', time: expect.any(Number), filesystems: [ROOT], omitted: 0 } });
    }
    expect(s.events.at(-1)).toMatchObject({ kind: 'path', outcome: 'answered', requestBytes: DEFAULT_REQUEST_SIZE });
  });

  test('an answer bigger than the request becomes TOO_LARGE with NEED; a request of NEED bytes gets it', async () => {
    const s = await server({ facts: fixedFacts(30) });
    const c = await client(s.address.port);
    const first = decodeReply(await c.ask(encodeQuery(5, Scope.ALL)));
    if (first.type !== MsgType.ERROR) throw new Error('expected an error');
    expect(first.error.code).toBe(WireError.TOO_LARGE);
    const need = first.error.need!;
    expect(need).toBeGreaterThan(DEFAULT_REQUEST_SIZE);
    const raw = await c.ask(encodeQuery(6, Scope.ALL, need));
    expect(raw.length).toBe(need);
    const second = decodeReply(raw);
    expect(second.type === MsgType.ANSWER && second.answer.filesystems.length).toBe(31);
    // One byte less than NEED is still too small.
    expect(decodeReply(await c.ask(encodeQuery(7, Scope.ALL, need - 1))).type).toBe(MsgType.ERROR);
  });

  test('typed errors for a bad request and a wrong version; silence when the error would not fit', async () => {
    const s = await server();
    const c = await client(s.address.port);
    const bad = encodeQuery(9, Scope.PATH);
    bad[11] = 7; // unknown scope
    const e1 = decodeReply(await c.ask(bad));
    expect(e1).toMatchObject({ type: MsgType.ERROR, id: 9, error: { code: WireError.BAD_REQUEST } });
    const v2 = encodeQuery(10, Scope.PATH);
    v2[2] = 2;
    const e2 = decodeReply(await c.ask(v2));
    expect(e2).toMatchObject({ type: MsgType.ERROR, id: 10, error: { code: WireError.UNSUPPORTED_VERSION } });
    // 12-byte bad query: the smallest error (12 bytes) fits; an 11-byte one would not.
    const tiny = Buffer.from([0x4e, 0x4b, 1, 1, 0, 0, 0, 11, 1, 0, 5]);
    c.send(tiny);
    // A runt, an ANSWER sent to the server, and foreign bytes are ignored too; the probe proves they were handled first.
    c.send(Buffer.from('NK'));
    c.send(decodeSafeAnswer());
    c.send(Buffer.from('hello'));
    const probe = decodeReply(await c.ask(encodeQuery(12, Scope.PATH)));
    expect(probe).toMatchObject({ type: MsgType.ANSWER, id: 12 });
    expect(s.events.slice(-5).map((e) => e.outcome)).toEqual(['silent', 'silent', 'silent', 'silent', 'answered']);
    expect(s.stats.received).toBe(7);
  });

  test('figures are cached under a second: a burst of queries costs one read', async () => {
    const facts = fixedFacts();
    const s = await server({ facts });
    const c = await client(s.address.port);
    const before = facts.reads.path;
    for (let i = 0; i < 50; i += 1) await c.ask(encodeQuery(i, Scope.PATH));
    expect(facts.reads.path - before).toBeLessThanOrEqual(1);
  });

  test('stale figures are re-read before answering (maxAge 0: every query waits for a fresh read)', async () => {
    const facts = fixedFacts();
    const s = await server({ facts, maxAgeMs: 0 });
    const c = await client(s.address.port);
    const before = facts.reads.path;
    const sent = Date.now();
    const r = decodeReply(await c.ask(encodeQuery(1, Scope.PATH)));
    if (r.type !== MsgType.ANSWER) throw new Error('expected an answer');
    expect(r.answer.time).toBeGreaterThanOrEqual(sent);
    expect(facts.reads.path).toBeGreaterThan(before);
  });

  test('figures that cannot be read give INTERNAL, and the server keeps serving', async () => {
    let fail = false;
    const facts: DiskFactsSource = {
      host: 'h',
      async read() {
        if (fail) throw new Error('disk vanished');
        return { host: 'h', time: Date.now(), filesystems: [ROOT] };
      },
      close() {},
    };
    const warnings: string[] = [];
    const s = await server({ facts, maxAgeMs: 0, onWarning: (e) => warnings.push(e.message) });
    const c = await client(s.address.port);
    fail = true;
    expect(decodeReply(await c.ask(encodeQuery(1, Scope.PATH)))).toMatchObject({ type: MsgType.ERROR, error: { code: WireError.INTERNAL } });
    expect(warnings.length).toBeGreaterThan(0);
    fail = false;
    expect(decodeReply(await c.ask(encodeQuery(2, Scope.PATH))).type).toBe(MsgType.ANSWER);
  });

  test('classic: "y" gets the seed answer, anything else the seed error, even 1 byte (the seed client waits for ever); off without --classic', async () => {
    const s = await server({ classic: true });
    const c = await client(s.address.port);
    expect((await c.ask(Buffer.from('y'))).toString('utf8')).toBe('\nNome do Servidor: test-host \nEspaço total: 1000.0GB \nDisponivel: 550.0GB');
    expect((await c.ask(Buffer.from('not the right letter'))).toString('utf8')).toBe('Erro: Digite "y".');
    expect((await c.ask(Buffer.from('n'))).toString('utf8')).toBe('Erro: Digite "y".');
    expect(s.events.at(-1)).toMatchObject({ kind: 'classic', outcome: 'classic-error', requestBytes: 1, replyBytes: 17 });

    const plain = await server();
    const p = await client(plain.address.port);
    p.send(Buffer.from('y'));
    expect(decodeReply(await p.ask(encodeQuery(4, Scope.PATH))).id).toBe(4);
    expect(plain.events[0]).toMatchObject({ kind: 'foreign', outcome: 'silent' });
  });

  test('rate limit: a source over its budget gets one RATE_LIMITED, then silence; others are still served', async () => {
    const s = await server({ rateLimit: 5, exemptLoopback: false });
    const c = await client(s.address.port);
    for (let i = 0; i < 5; i += 1) expect(decodeReply(await c.ask(encodeQuery(i, Scope.PATH))).type).toBe(MsgType.ANSWER);
    expect(decodeReply(await c.ask(encodeQuery(5, Scope.PATH)))).toMatchObject({ type: MsgType.ERROR, error: { code: WireError.RATE_LIMITED } });
    c.send(encodeQuery(6, Scope.PATH));
    // The same address from another port shares the budget: prove the drop happened via the event log.
    const other = await client(s.address.port);
    other.send(encodeQuery(7, Scope.PATH));
    const s2 = await server({ rateLimit: 5, exemptLoopback: true });
    const c2 = await client(s2.address.port);
    for (let i = 0; i < 20; i += 1) expect(decodeReply(await c2.ask(encodeQuery(i, Scope.PATH))).type).toBe(MsgType.ANSWER);
    expect(s.events.filter((e) => e.outcome === 'answered')).toHaveLength(5);
  });

  test('close() ends the server; binding a used port is ADDRESS_IN_USE', async () => {
    const s = await server();
    await expect(startDiskServer({ host: '127.0.0.1', port: s.address.port, facts: fixedFacts() })).rejects.toMatchObject({ code: 'ADDRESS_IN_USE' });
    await s.close();
    await s.close(); // idempotent
  });
});

function decodeSafeAnswer(): Buffer {
  const b = encodeQuery(1, Scope.PATH, 64);
  b[3] = MsgType.ANSWER;
  return b;
}
