// v1 sessions and listings against the file service in process, over real loopback sockets: LIST of a real tree, pipelined requests with refusals in the middle, the early request, old clients, sequence-numbered MACs, deadlines and eviction.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { deriveKey } from '../../src/protocol/auth.js';
import { EntryKind, LeftOutReason, encodeList } from '../../src/protocol/file-list.js';
import { FrameType, HelloFlag, Status, encodeFrame, encodeRequest, Tag } from '../../src/protocol/file-v1.js';
import { FailureThrottle } from '../../src/services/limits.js';
import { startFileServer, type FileServer, type ServeOptions, type TransferLog } from '../../src/services/file/serve/index.js';
import { listDirectory } from '../../src/services/file/serve/listing.js';
import { tlsServerTransport } from '../../src/services/file-tls.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { exchange, parseV1Answer, v1Conversation } from '../helpers/raw-file-client.js';
import { RawSession, type FileAnswer, type ListAnswer } from '../helpers/raw-session-client.js';

let base: string;
let root: string;
const big = randomBytes(300 * 1024 + 7);
const small = randomBytes(4096);

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-session-'));
  root = join(base, 'root');
  mkdirSync(join(root, 'photos', '2024'), { recursive: true });
  mkdirSync(join(root, 'empty'));
  writeFileSync(join(root, 'photos', '2024', 'a b.jpg'), small);
  writeFileSync(join(root, 'photos', 'zero'), '');
  writeFileSync(join(root, 'big.bin'), big);
  writeFileSync(join(root, 'ünï.txt'), 'unicode');
  writeFileSync(join(root, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'run.sh'), 0o755);
  symlinkSync('big.bin', join(root, 'link-in'));
  mkdirSync(join(base, 'outside'));
  writeFileSync(join(base, 'outside', 'secret'), 'secret');
  symlinkSync(join(base, 'outside', 'secret'), join(root, 'link-out'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
  for (let i = 0; i < 300; i++) writeFileSync(join(root, 'photos', `p${String(i).padStart(3, '0')}.txt`), `photo ${i}\n`);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const servers: FileServer[] = [];
const sessions: RawSession[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await s.close(0);
});

async function serve(opts: Partial<ServeOptions> = {}): Promise<{ server: FileServer; logs: TransferLog[]; logged: () => Promise<TransferLog> }> {
  const logs: TransferLog[] = [];
  const waiting: Array<(l: TransferLog) => void> = [];
  const server = await startFileServer({ dir: root, transport: tcpTransport, host: '127.0.0.1', port: 0, ...opts, onLog: (l) => (logs.push(l), waiting.shift()?.(l)) });
  servers.push(server);
  let read = 0;
  const logged = (): Promise<TransferLog> => (read < logs.length ? Promise.resolve(logs[read++]!) : new Promise((r) => waiting.push((l) => (read++, r(l)))));
  return { server, logs, logged };
}

async function open(port: number, opts: Parameters<typeof RawSession.open>[1] = {}): Promise<RawSession> {
  const s = await RawSession.open(port, opts);
  sessions.push(s);
  return s;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const file = (a: unknown): FileAnswer => a as FileAnswer;
const list = (a: unknown): ListAnswer => a as ListAnswer;

describe('LIST', () => {
  test('a recursive LIST of the root: the entries of listDirectory, in order, then END with the count, the skipped and the hash of every ENTRY frame', async () => {
    const { server } = await serve();
    const s = await open(server.port);
    s.send([{ list: '', recursive: true }]);
    s.end();
    const a = list(await s.next());
    expect(a.response).toMatchObject({ status: Status.OK, size: 0, offset: 0 });
    const expected = [];
    const l = await listDirectory(realpathSync(root), '', { recursive: true });
    for await (const e of l.entries) expected.push(e);
    expect(a.entries.map((e) => ({ path: e.name, type: e.kind === EntryKind.DIRECTORY ? 'dir' : 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode }))).toEqual(expected);
    expect(a.entries.slice(0, 6).map((e) => e.name)).toEqual(['big.bin', 'empty', 'link-in', 'photos', 'photos/2024', 'photos/2024/a b.jpg']);
    expect(a.end).toEqual({ count: a.entries.length, skipped: 2, sha256: createHash('sha256').update(Buffer.concat(a.entryFrames)).digest() }); // link-out, fifo
    const run = a.entries.find((e) => e.name === 'run.sh')!;
    const st = lstatSync(join(root, 'run.sh'), { bigint: true });
    expect(run).toMatchObject({ kind: EntryKind.FILE, mode: 0o755, size: 18, mtimeMs: Number(st.mtimeNs / 1_000_000n) });
    expect(a.entries.find((e) => e.name === 'link-in')).toMatchObject({ size: big.length });
    await s.closedByServer();
  });

  test('the LEFT_OUT flag: what is left out comes as KIND 3 entries with a REASON, in order, in COUNT and the hash; without it, none; the RESPONSE carries the directory\'s MTIME and MODE', async () => {
    const { server } = await serve();
    const s = await open(server.port);
    s.send([{ list: '' }, { raw: encodeList({ name: '', recursive: false, leftOut: true }), as: 'list' }]);
    s.end();
    const [plain, named] = [list(await s.next()), list(await s.next())];
    const st = lstatSync(root, { bigint: true });
    expect(named.response).toMatchObject({ status: Status.OK, mtimeMs: Number(st.mtimeNs / 1_000_000n), mode: Number(st.mode & 0o7777n) });
    expect(plain.entries.filter((e) => e.kind === EntryKind.LEFT_OUT)).toEqual([]);
    expect(named.entries.filter((e) => e.kind !== EntryKind.LEFT_OUT)).toEqual(plain.entries);
    expect(named.entries.map((e) => e.name)).toEqual(['big.bin', 'empty', 'fifo', 'link-in', 'link-out', 'photos', 'run.sh', 'ünï.txt']);
    expect(named.entries.filter((e) => e.kind === EntryKind.LEFT_OUT)).toEqual([
      { name: 'fifo', kind: EntryKind.LEFT_OUT, size: 0, mtimeMs: 0, mode: 0, reason: LeftOutReason.SPECIAL },
      { name: 'link-out', kind: EntryKind.LEFT_OUT, size: 0, mtimeMs: 0, mode: 0, reason: LeftOutReason.LINK },
    ]);
    expect(plain.end).toMatchObject({ count: plain.entries.length, skipped: 2 });
    expect(named.end).toEqual({ count: plain.entries.length + 2, skipped: 2, sha256: createHash('sha256').update(Buffer.concat(named.entryFrames)).digest() });
    await s.closedByServer();
  });

  test('a LIST of a file is NOT_DIRECTORY, of nothing NOT_FOUND, outside FORBIDDEN; not recursive lists one level', async () => {
    const { server } = await serve();
    const s = await open(server.port);
    s.send([{ list: 'run.sh' }, { list: 'nope' }, { list: '../outside' }, { list: 'photos/' }, { list: 'link-out' }]);
    s.end();
    const [f, missing, out, photos, linkOut] = (await s.answers(5)).map(list);
    expect(f!.response).toMatchObject({ status: Status.NOT_DIRECTORY, message: 'not a directory' });
    expect(missing!.response.status).toBe(Status.NOT_FOUND);
    expect(out!.response.status).toBe(Status.FORBIDDEN);
    expect(photos!.entries.map((e) => e.name).slice(0, 3)).toEqual(['photos/2024', 'photos/p000.txt', 'photos/p001.txt']);
    expect(photos!.end?.count).toBe(302);
    expect(linkOut!.response.status).toBe(Status.FORBIDDEN);
  });

  test('LIST without a session: one listing, then the server closes', async () => {
    const { server } = await serve();
    const s = await open(server.port, { flags: 0, early: [{ list: 'photos/2024' }] });
    expect(s.hello!.flags & HelloFlag.SESSION).toBe(0);
    const a = list(await s.next());
    expect(a.entries.map((e) => e.name)).toEqual(['photos/2024/a b.jpg']);
    expect(a.end?.count).toBe(1);
    await s.closedByServer();
  });
});

describe('pipelined session', () => {
  test('many requests with refusals in the middle: answered in order, bodies verified, MODE and MTIME on OK, one log line', async () => {
    const { server, logged } = await serve();
    const s = await open(server.port);
    expect(s.hello!.flags & HelloFlag.SESSION).toBe(HelloFlag.SESSION);
    const names = Array.from({ length: 300 }, (_, i) => `photos/p${String(i).padStart(3, '0')}.txt`);
    const middle = [
      { file: 'nope.txt' },
      { file: 'photos' },
      { file: 'bad\u0001name' },
      { file: 'fifo' },
      { file: 'link-out' },
      { file: 'big.bin' },
      { file: 'photos/zero' },
      { list: 'empty' },
      { file: 'link-in', offset: 1000, validator: Buffer.from('stale') },
      { file: 'run.sh' },
    ];
    s.send([...names.slice(0, 150).map((file) => ({ file })), ...middle, ...names.slice(150).map((file) => ({ file }))]);
    s.end();
    const answers = await s.answers(310);
    for (const [i, name] of names.entries()) {
      const a = file(answers[i < 150 ? i : i + 10]);
      expect(a.response.status).toBe(Status.OK);
      expect(a.body.toString()).toBe(`photo ${i}\n`);
      expect(a.sha256!.toString('hex')).toBe(sha(a.body));
      expect(a.response.mode).toBe(statSync(join(root, name)).mode & 0o7777);
    }
    const m = answers.slice(150, 160);
    expect(m.map((a) => a.response.status)).toEqual([Status.NOT_FOUND, Status.IS_DIRECTORY, Status.BAD_REQUEST, Status.FORBIDDEN, Status.FORBIDDEN, Status.OK, Status.OK, Status.OK, Status.CHANGED, Status.OK]);
    expect(sha(file(m[5]).body)).toBe(sha(big));
    expect(file(m[5]).sha256!.toString('hex')).toBe(sha(big));
    expect(file(m[6]).body.length).toBe(0);
    expect(list(m[7]).end?.count).toBe(0);
    expect(file(m[8]).response).toMatchObject({ size: big.length, offset: 0 });
    expect(file(m[9]).response).toMatchObject({ mode: 0o755, mtimeMs: Number(lstatSync(join(root, 'run.sh'), { bigint: true }).mtimeNs / 1_000_000n) });
    await s.closedByServer();
    const log = await logged();
    expect(log).toMatchObject({ protocol: 'v1', requests: 310, outcome: 'ok', name: 'photos/p000.txt' });
    expect(log.bytes).toBe(names.reduce((n, name) => n + statSync(join(root, name)).size, 0) + big.length + 18);
    expect(log.detail).toMatch(/^310 requests: 304 ok, 1 not-found, 1 is-directory, 1 bad-request, 2 forbidden, 1 changed \(first refused: nope.txt: no such file\)$/);
  });

  test('a resume inside a session: small and large files from an offset, hashes of the whole file', async () => {
    const { server } = await serve();
    const s = await open(server.port);
    s.send([{ file: 'big.bin' }, { file: 'photos/2024/a b.jpg' }]);
    const [whole, photo] = (await s.answers(2)).map(file);
    s.send([
      { file: 'big.bin', offset: 200_000, validator: whole!.response.validator },
      { file: 'photos/2024/a b.jpg', offset: 4000, validator: photo!.response.validator },
      { file: 'big.bin', offset: big.length + 1, validator: whole!.response.validator },
    ]);
    s.end();
    const [r1, r2, r3] = (await s.answers(3)).map(file);
    expect(r1!.response).toMatchObject({ status: Status.OK, offset: 200_000, size: big.length });
    expect(r1!.body.equals(big.subarray(200_000))).toBe(true);
    expect(r1!.sha256!.toString('hex')).toBe(sha(big));
    expect(r2!.body.equals(small.subarray(4000))).toBe(true);
    expect(r2!.sha256!.toString('hex')).toBe(sha(small));
    expect(r3!.response.status).toBe(Status.BAD_OFFSET);
  });

  test('a malformed frame ends the session after the requests before it are answered; nothing after it is read', async () => {
    const { server, logged } = await serve();
    const s = await open(server.port);
    s.send([{ file: 'run.sh' }, { raw: Buffer.from([FrameType.REQUEST, 0, 3, Tag.NAME, 0, 9]) }, { file: 'photos/zero' }]);
    const [ok, bad] = (await s.answers(2)).map(file);
    expect(ok!.response.status).toBe(Status.OK);
    expect(bad!.response.status).toBe(Status.BAD_REQUEST);
    await s.closedByServer();
    expect(await logged()).toMatchObject({ requests: 2, outcome: 'bad-request' });
  });

  test('a HELLO or TRAILER frame in place of a request ends the session with BAD_REQUEST', async () => {
    const { server } = await serve();
    const s = await open(server.port);
    s.send([{ raw: encodeFrame(FrameType.TRAILER, [[Tag.SHA256, Buffer.alloc(32)]]) }]);
    expect((await s.next()).response).toMatchObject({ status: Status.BAD_REQUEST, message: 'expected a REQUEST or LIST frame, got frame type 0x4' });
    await s.closedByServer();
  });
});

describe('the early request and round trips', () => {
  test('the first request travels with the HELLO: the first body byte arrives after one write and one read (with the TCP handshake, two round trips)', async () => {
    const { server } = await serve();
    const s = await open(server.port, { early: [{ file: 'big.bin' }] });
    s.end();
    const a = file(await s.next());
    expect(sha(a.body)).toBe(sha(big));
    expect(s.firstBodyAfterTurns).toBe(1);
    expect(s.turns).toBe(1);
    await s.closedByServer();
  });

  test('without the early request the client waits for the HELLO first: two turns', async () => {
    const { server } = await serve();
    const s = await open(server.port);
    s.send([{ file: 'run.sh' }]);
    s.end();
    await s.next();
    expect(s.firstBodyAfterTurns).toBe(2);
  });
});

describe('older clients', () => {
  test('a client without SESSION gets the HELLO it always got, one answer, FORBIDDEN for a directory, and nothing more', async () => {
    const { server } = await serve();
    const raw = await exchange(server.port, Buffer.concat([v1Conversation(Buffer.from('photos')), encodeRequest({ name: 'run.sh', offset: 0, validator: Buffer.alloc(0) })]));
    const a = parseV1Answer(raw);
    expect(a).toMatchObject({ status: Status.FORBIDDEN, message: 'is a directory' });
    // HELLO flags 0, then the RESPONSE, then nothing: the second REQUEST is never answered.
    expect(raw.subarray(0, 3)).toEqual(Buffer.from([FrameType.HELLO, 0, 0x2a]));
    expect(raw.subarray(0x2a + 3 - 4, 0x2a + 3)).toEqual(Buffer.alloc(4));
    expect(raw.length).toBe(0x2a + 3 + 3 + raw.readUInt16BE(0x2a + 3 + 1));
  });
});

describe('with a shared secret', () => {
  const KEY = deriveKey('session-secret-0123456789-abcdefghij', 'file');
  const throttle = (): FailureThrottle => new FailureThrottle({ baseDelayMs: 60_000, maxDelayMs: 60_000 });

  test('every answer carries a MAC over its sequence number; ENTRY frames are covered by END', async () => {
    const { server } = await serve({ secret: KEY });
    const s = await open(server.port, { key: KEY });
    expect(s.hello!.flags).toBe(HelloFlag.SESSION | HelloFlag.AUTH_REQUIRED);
    s.send([{ file: 'run.sh' }, { file: 'nope' }, { list: 'photos/2024' }, { file: 'big.bin' }]);
    s.end();
    const answers = await s.answers(4);
    expect(answers.map((a) => a.proofs)).toEqual([['ok', 'ok'], ['ok'], ['ok', 'ok'], ['ok', 'ok']]);
    expect(answers.map((a) => a.response.status)).toEqual([Status.OK, Status.NOT_FOUND, Status.OK, Status.OK]);
  });

  test('a request replayed inside the session (request 0 sent again as request 1) is refused, counted, and ends the session', async () => {
    const t = new FailureThrottle({ baseDelayMs: 10 });
    const { server, logged } = await serve({ secret: KEY, failureThrottle: t });
    const s = await open(server.port, { key: KEY });
    s.send([{ file: 'run.sh' }]);
    const first = file(await s.next());
    expect(first.proofs).toEqual(['ok', 'ok']);
    // The bytes of request 0 as the client sealed them: valid for sequence number 0 only.
    const replay = s.sealed({ file: 'run.sh' }, 0);
    s.send([{ raw: replay }, { file: 'photos/zero' }]);
    const refused = file(await s.next());
    expect(refused.response).toMatchObject({ status: Status.UNAUTHORIZED, message: 'the proof of the secret does not verify' });
    expect(refused.proofs).toEqual(['ok']);
    await s.closedByServer();
    expect(t.failures('127.0.0.1')).toBe(1);
    expect(await logged()).toMatchObject({ outcome: 'unauthorized', requests: 2 });
  });

  test('requests sealed out of order are refused', async () => {
    const { server } = await serve({ secret: KEY, failureThrottle: new FailureThrottle({ baseDelayMs: 0 }) });
    const s = await open(server.port, { key: KEY });
    s.send([{ raw: s.sealed({ file: 'run.sh' }, 1) }]);
    expect((await s.next()).response.status).toBe(Status.UNAUTHORIZED);
    await s.closedByServer();
  });

  test('an early request without a MAC: UNAUTHORIZED at once, no failure counted, no hold-off for anyone', async () => {
    const t = throttle();
    const { server, logged } = await serve({ secret: KEY, failureThrottle: t });
    const started = performance.now();
    const s = await open(server.port, { early: [{ file: 'run.sh' }] });
    expect(s.hello!.flags & HelloFlag.AUTH_REQUIRED).toBe(HelloFlag.AUTH_REQUIRED);
    const a = file(await s.next());
    expect(a.response).toMatchObject({ status: Status.UNAUTHORIZED, message: 'this server requires the shared secret' });
    await s.closedByServer();
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(t.failures('127.0.0.1')).toBe(0);
    expect(t.blockedFor('127.0.0.1')).toBe(0);
    expect((await logged()).outcome).toBe('unauthorized');
    // A client with the secret is served right after.
    const ok = await open(server.port, { key: KEY });
    ok.send([{ file: 'run.sh' }]);
    expect((await ok.next()).response.status).toBe(Status.OK);
  });
});

describe('deadlines and slots', () => {
  test('a session silent after its answers is closed gracefully after the idle timeout (FIN, not a reset)', async () => {
    const { server, logged } = await serve({ idleTimeoutMs: 300 });
    const s = await open(server.port);
    s.send([{ file: 'run.sh' }]);
    expect((await s.next()).response.status).toBe(Status.OK);
    let fin = false;
    s.socket.once('end', () => (fin = true));
    await s.closedByServer();
    expect(fin).toBe(true);
    const log = await logged();
    expect(log).toMatchObject({ outcome: 'ok', requests: 1 });
    expect(log.detail).toMatch(/no further request within 0.3s/);
  });

  test('a session that never sends a request is cut by the header deadline', async () => {
    const { server, logged } = await serve({ headerTimeoutMs: 200 });
    await open(server.port);
    expect(await logged()).toMatchObject({ outcome: 'timeout' });
  });

  test('while it waits for its next request a session may give its slot to a newcomer; while it answers it may not', async () => {
    const { server, logged } = await serve({ maxConnections: 1, maxPerSource: 1 });
    const s = await open(server.port);
    s.send([{ file: 'run.sh' }]);
    await s.next();
    const other = await open(server.port, { localAddress: '127.0.0.2', early: [{ file: 'photos/zero' }] });
    other.end();
    expect((await other.next()).response.status).toBe(Status.OK);
    const evicted = await logged();
    expect(evicted).toMatchObject({ outcome: 'evicted', requests: 1 });
  });
});

describe('over TLS', () => {
  test('a session inside TLS: a LIST, 300 small files, a large one and a refusal, in order and verified', async () => {
    const { transport } = tlsServerTransport({ identityDir: join(base, 'identity') });
    const server = await startFileServer({ dir: root, transport, host: '127.0.0.1', port: 0 });
    servers.push(server);
    const s = await open(server.port, { tls: true, early: [{ list: 'photos' }] });
    const names = Array.from({ length: 300 }, (_, i) => `photos/p${String(i).padStart(3, '0')}.txt`);
    s.send([...names.map((file) => ({ file })), { file: 'big.bin' }, { file: 'nope' }]);
    s.end();
    const [listing, ...answers] = await s.answers(303);
    expect(list(listing).end?.count).toBe(302);
    for (const [i, a] of answers.slice(0, 300).entries()) expect(file(a).body.toString()).toBe(`photo ${i}\n`);
    expect(sha(file(answers[300]).body)).toBe(sha(big));
    expect(file(answers[300]).sha256!.toString('hex')).toBe(sha(big));
    expect(answers[301]!.response.status).toBe(Status.NOT_FOUND);
  });
});

describe('frames a session accepts', () => {
  test('a LIST frame with extra unknown tags and no NAME lists the root', async () => {
    const { server } = await serve();
    const s = await open(server.port);
    s.send([{ raw: encodeFrame(FrameType.LIST, [[0x7f, Buffer.from('future')]]), as: 'list' }, { raw: encodeList({ name: '.', recursive: false }), as: 'list' }]);
    s.end();
    const [a, b] = (await s.answers(2)).map(list);
    expect(a!.entries.map((e) => e.name)).toEqual(b!.entries.map((e) => e.name));
    expect(a!.entries.map((e) => e.name)).toContain('run.sh');
  });
});
