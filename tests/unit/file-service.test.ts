// The file server and client in-process over real loopback sockets: transfers, resume, limits, refusals, hostile peers.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetkitError } from '../../src/errors.js';
import { fetchFile, localNameOf, type FetchOptions } from '../../src/services/file/fetch/session.js';
import { startFileServer, type FileServer, type ServeOptions, type TransferLog } from '../../src/services/file/serve/index.js';
import { BufferPool } from '../../src/services/file/serve/body.js';
import {
  FrameReader,
  FrameType,
  Status,
  decodeResponse,
  decodeTrailer,
  encodeFrame,
  encodeHello,
  encodePreamble,
  encodeRequest,
  encodeResponse,
  encodeTrailer,
  Tag,
} from '../../src/protocol/file-v1.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { validatorOf } from '../../src/services/file/serve/hash-cache.js';
import { rejection } from '../helpers/errors.js';
import { plantPartial, staged } from '../helpers/staging.js';

let base: string;
let served: string;
const files: Record<string, Buffer> = {
  'empty.bin': Buffer.alloc(0),
  'one.bin': Buffer.from([0x42]),
  'odd.bin': randomBytes(4097),
  'big.bin': randomBytes(3 * 1024 * 1024 + 17),
  'digits.txt': Buffer.from('0123456789'),
};

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-filesvc-'));
  served = join(base, 'served');
  mkdirSync(join(served, 'nested'), { recursive: true });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(served, name), data);
  writeFileSync(join(served, 'nested', 'deep.txt'), 'deep');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const servers: FileServer[] = [];
const sockets: net.Socket[] = [];
const fakes: net.Server[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const f of fakes.splice(0)) await new Promise((r) => f.close(r));
  for (const s of servers.splice(0)) await s.close(0);
});

async function serve(opts: Partial<ServeOptions> = {}): Promise<{ server: FileServer; logs: TransferLog[]; next: () => Promise<TransferLog> }> {
  const logs: TransferLog[] = [];
  const waiting: Array<(l: TransferLog) => void> = [];
  let read = 0;
  const server = await startFileServer({
    dir: served,
    transport: tcpTransport,
    host: '127.0.0.1',
    port: 0,
    ...opts,
    onLog: (l) => {
      logs.push(l);
      waiting.shift()?.(l);
    },
  });
  servers.push(server);
  // next(): the next log entry not yet returned, in order.
  const next = (): Promise<TransferLog> => {
    if (read < logs.length) return Promise.resolve(logs[read++]!);
    return new Promise((resolve) => waiting.push((l) => {
      read++;
      resolve(l);
    }));
  };
  return { server, logs, next };
}

function outDir(): string {
  return mkdtempSync(join(base, 'out-'));
}

function fetchFrom(server: { port: number }, name: string, out: string, extra: Partial<FetchOptions> = {}) {
  // retries: 0 is the behaviour these tests pin down; automatic retries have their own tests.
  return fetchFile({ name, host: '127.0.0.1', port: server.port, outDir: out, transport: tcpTransport, timeoutMs: 5000, retries: 0, ...extra });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function rawConnect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  sockets.push(s);
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Collect everything the server sends until it closes. */
async function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await once(s, 'close');
  return Buffer.concat(chunks);
}

describe('file transfer, in process', () => {
  test.each(Object.keys(files))('%s arrives byte-identical and verified', async (name) => {
    const { server, next } = await serve();
    const out = outDir();
    const progress: Array<[number, number]> = [];
    const r = await fetchFrom(server, name, out, { onProgress: (a, b) => progress.push([a, b]) });
    expect(r.verified).toBe(true);
    expect(r.size).toBe(files[name]!.length);
    expect(r.sha256).toBe(sha(files[name]!));
    expect(readFileSync(join(out, name)).equals(files[name]!)).toBe(true);
    expect(readdirSync(out)).toEqual([name]); // no .part or sidecar left behind
    expect(progress.at(-1)).toEqual([files[name]!.length, files[name]!.length]);
    const log = await next();
    expect(log).toMatchObject({ protocol: 'v1', name, bytes: files[name]!.length, outcome: 'ok' });
  });

  test('a nested name is saved under its last segment only', async () => {
    const { server } = await serve();
    const out = outDir();
    const r = await fetchFrom(server, 'nested/deep.txt', out);
    expect(r.path).toBe(join(out, 'deep.txt'));
    expect(readFileSync(join(out, 'deep.txt'), 'utf8')).toBe('deep');
    expect(localNameOf('a/b/c.txt')).toBe('c.txt');
    expect(() => localNameOf('a/..')).toThrow(NetkitError);
  });

  test('eight concurrent fetches all verify', async () => {
    const { server } = await serve();
    const results = await Promise.all(Array.from({ length: 8 }, () => fetchFrom(server, 'big.bin', outDir())));
    for (const r of results) expect(r.sha256).toBe(sha(files['big.bin']!));
  });

  test('an existing file is never overwritten without force; with force it is replaced', async () => {
    const { server } = await serve();
    const out = outDir();
    writeFileSync(join(out, 'one.bin'), 'mine');
    const err = await rejection(fetchFrom(server, 'one.bin', out));
    expect(err.code).toBe('EXISTS');
    expect(readFileSync(join(out, 'one.bin'), 'utf8')).toBe('mine');
    await fetchFrom(server, 'one.bin', out, { force: true });
    expect(readFileSync(join(out, 'one.bin')).equals(files['one.bin']!)).toBe(true);
  });

  test.each([
    ['missing.bin', 'NOT_FOUND', 'not-found'],
    ['../etc/passwd', 'FORBIDDEN', 'forbidden'],
    ['nested', 'FORBIDDEN', 'is-directory'],
  ])('refusal %j -> %s, logged, nothing written', async (name, code, outcome) => {
    const { server, next } = await serve();
    const out = outDir();
    const err = await rejection(fetchFrom(server, name, out));
    expect(err.code).toBe(code);
    // A session's log line counts its requests' outcomes in its detail.
    const log = await next();
    expect(`${log.outcome} ${log.detail ?? ''}`).toMatch(new RegExp(`\\b(1 )?${outcome}\\b`));
    expect(readdirSync(out)).toEqual([]);
  });

  test('a destination without room is refused before receiving (sparse 1 TiB file)', async () => {
    const huge = join(served, 'huge.sparse');
    writeFileSync(huge, '');
    truncateSync(huge, 2 ** 40);
    try {
      const { server } = await serve();
      const out = outDir();
      const err = await rejection(fetchFrom(server, 'huge.sparse', out));
      expect(err.code).toBe('DISK_FULL');
      expect(err.message).toMatch(/not enough room/);
      expect(readdirSync(out)).toEqual([]);
    } finally {
      rmSync(huge);
    }
  });
});

describe('resume', () => {
  const content = randomBytes(24 * 1024 * 1024 + 5);
  const name = 'resume.bin';

  beforeAll(() => writeFileSync(join(served, name), content));

  async function interrupted(out: string): Promise<{ port: number; part: number }> {
    const { server } = await serve();
    let cut = false;
    const err = await rejection(
      fetchFrom(server, name, out, {
        onProgress: (received) => {
          if (!cut && received >= 2 * 1024 * 1024) {
            cut = true;
            void server.close(0); // the server goes away mid-transfer
          }
        },
      }),
    );
    expect(err.code).toBe('PEER_CLOSED');
    expect(err.message).toMatch(/is kept/);
    expect(existsSync(join(out, name))).toBe(false);
    const part = statSync(staged(out, name).part).size;
    expect(part).toBeGreaterThan(0);
    expect(part).toBeLessThan(content.length);
    return { port: server.port, part };
  }

  test('a fetch cut by the server resumes from the partial file and verifies the whole file', async () => {
    const out = outDir();
    const { port, part } = await interrupted(out);
    const { server } = await serve({ port });
    const notices: string[] = [];
    const r = await fetchFrom(server, name, out, { onNotice: (m) => notices.push(m) });
    expect(r.resumedFrom).toBe(part);
    expect(r.received).toBe(content.length - part);
    expect(r.sha256).toBe(sha(content));
    expect(readFileSync(join(out, name)).equals(content)).toBe(true);
    expect(readdirSync(out)).toEqual([name]);
    expect(notices.join('\n')).toMatch(/resuming/);
  });

  test('a file changed since the partial download is fetched again from zero, and says so', async () => {
    const out = outDir();
    const { port } = await interrupted(out);
    const changed = randomBytes(content.length);
    writeFileSync(join(served, name), changed);
    try {
      const { server } = await serve({ port });
      const notices: string[] = [];
      const r = await fetchFrom(server, name, out, { onNotice: (m) => notices.push(m) });
      expect(r.resumedFrom).toBe(0);
      expect(r.sha256).toBe(sha(changed));
      expect(notices.join('\n')).toMatch(/changed on the server/);
    } finally {
      writeFileSync(join(served, name), content);
    }
  });

  test('a resume with a cold hash cache: the idle timeout does not run while the server hashes the prefix', async () => {
    // Armed before the 24 MiB prefix hash, a 1 ms idle timeout would fire long before the trailer.
    const { server, next } = await serve({ idleTimeoutMs: 1 });
    const st = statSync(join(served, name), { bigint: true });
    const s = await rawConnect(server.port);
    s.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 })]));
    s.write(encodeRequest({ name, offset: content.length, validator: validatorOf(st) }));
    const reader = new FrameReader();
    reader.push(await readAll(s));
    expect(reader.next()!.type).toBe(FrameType.HELLO);
    expect(decodeResponse(reader.next()!)).toMatchObject({ status: Status.OK, size: content.length, offset: content.length });
    expect(decodeTrailer(reader.next()!).sha256.toString('hex')).toBe(sha(content));
    expect(await next()).toMatchObject({ outcome: 'ok', offset: content.length, bytes: 0 });
  });

  test('a resuming client that reads nothing while it hashes its prefix gets OFFSET / 32 MB/s on top of the idle timeout', async () => {
    const { server, next } = await serve({ idleTimeoutMs: 100 });
    const st = statSync(join(served, name), { bigint: true });
    // Silent for 2.5x the idle timeout (less than 100 ms + 16 MiB / 32 MB/s), then read everything.
    const stall = async (offset: number): Promise<Buffer> => {
      const s = await rawConnect(server.port);
      s.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 })]));
      s.write(encodeRequest({ name, offset, validator: validatorOf(st) }));
      s.pause();
      await new Promise((resolve) => setTimeout(resolve, 250));
      return readAll(s.resume());
    };
    const offset = 16 * 1024 * 1024;
    const reader = new FrameReader();
    const got = await stall(offset);
    expect(got.length).toBeGreaterThan(content.length - offset);
    expect(await next()).toMatchObject({ outcome: 'ok', offset, bytes: content.length - offset });
    reader.push(got);
    reader.next();
    expect(decodeResponse(reader.next()!).status).toBe(Status.OK);
    // The same silence without a prefix to hash: dropped after the plain idle timeout.
    await stall(0);
    expect((await next()).outcome).toBe('timeout');
  });
});

/** A v1 client that requests `name`, takes the first 64 KiB of the answer, then stops reading: a transfer in progress. */
async function stalledTransfer(port: number, name: string): Promise<net.Socket> {
  const s = await rawConnect(port);
  s.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 }), encodeRequest({ name, offset: 0, validator: Buffer.alloc(0) })]));
  let got = 0;
  await new Promise<void>((resolve) => {
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got < 64 * 1024) return;
      s.off('data', onData);
      s.pause();
      resolve();
    };
    s.on('data', onData);
  });
  return s;
}

describe('server limits', () => {
  test('past --max-connections a v1 client gets BUSY and a classic client -1; others are still served', async () => {
    writeFileSync(join(served, 'hold.bin'), Buffer.alloc(64 * 1024 * 1024, 7)); // more than the socket buffers take
    const { server, next } = await serve({ maxConnections: 1 });
    const holder = await stalledTransfer(server.port, 'hold.bin'); // a transfer holds the only slot: never evicted
    const err = await rejection(fetchFrom(server, 'one.bin', outDir()));
    expect(err.code).toBe('BUSY');
    expect((await next()).outcome).toBe('busy');
    const classic = await rawConnect(server.port);
    classic.end('one.bin');
    expect((await readAll(classic)).toString()).toBe('-1      ');
    holder.destroy();
    expect((await next()).outcome).toBe('busy');
    expect((await next()).outcome).toBe('aborted'); // the holder
    const r = await fetchFrom(server, 'one.bin', outDir());
    expect(r.verified).toBe(true);
  });

  test('when the server is full, an idle connection gives its slot to a newcomer (logged as evicted)', async () => {
    const { server, logs, next } = await serve({ maxConnections: 1 });
    const idle = await rawConnect(server.port);
    const idleClosed = once(idle.resume(), 'close');
    const r = await fetchFrom(server, 'one.bin', outDir());
    expect(r.verified).toBe(true);
    await idleClosed;
    const outcomes = [await next(), await next()].map((l) => l.outcome).sort();
    expect(outcomes).toEqual(['evicted', 'ok']);
    expect(logs.find((l) => l.outcome === 'evicted')!.detail).toMatch(/had not completed its request/);
  });

  test('a client that says nothing is dropped after the header timeout', async () => {
    const { server, next } = await serve({ headerTimeoutMs: 200 });
    const s = await rawConnect(server.port);
    s.write(encodePreamble().subarray(0, 2)); // a slow start does not extend the deadline
    await once(s, 'close');
    const log = await next();
    expect(log.outcome).toBe('timeout');
    expect(server.connections()).toBe(0);
  });

  test('a client that stops reading is dropped after the idle timeout', async () => {
    const big = join(served, 'idle.bin');
    writeFileSync(big, Buffer.alloc(32 * 1024 * 1024, 1));
    try {
      const { server, next } = await serve({ idleTimeoutMs: 300 });
      const s = await rawConnect(server.port);
      s.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 })]));
      s.write(encodeRequest({ name: 'idle.bin', offset: 0, validator: Buffer.alloc(0) }));
      s.pause(); // never read: the server's writes stall
      const log = await next();
      expect(log.outcome).toBe('timeout');
      expect(log.bytes).toBeLessThan(32 * 1024 * 1024);
    } finally {
      rmSync(big);
    }
  });

  test('a TLS ClientHello on the plain port is closed without a byte in answer', async () => {
    const { server, next } = await serve();
    const s = await rawConnect(server.port);
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    expect((await readAll(s)).length).toBe(0);
    const log = await next();
    expect(log.outcome).toBe('bad-request');
    expect(log.detail).toMatch(/TLS client/);
  });

  test('an unknown protocol version gets UNSUPPORTED_VERSION with the version spoken', async () => {
    const { server } = await serve();
    const s = await rawConnect(server.port);
    s.write(encodePreamble(9));
    const bytes = await readAll(s);
    const reader = new FrameReader();
    reader.push(bytes);
    const r = decodeResponse(reader.next()!);
    expect(r.status).toBe(Status.UNSUPPORTED_VERSION);
    expect(r.version).toBe(1);
  });

  test('a malformed REQUEST gets BAD_REQUEST and the server keeps serving', async () => {
    const { server } = await serve();
    const s = await rawConnect(server.port);
    s.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 }), encodeFrame(FrameType.REQUEST, [[Tag.NAME, Buffer.from([0xff])]])]));
    const reader = new FrameReader();
    reader.push(await readAll(s));
    reader.next(); // HELLO
    expect(decodeResponse(reader.next()!).status).toBe(Status.BAD_REQUEST);
    expect((await fetchFrom(server, 'one.bin', outDir())).verified).toBe(true);
  });

  test('close() lets a running transfer finish within the grace period', async () => {
    const { server } = await serve();
    const out = outDir();
    let closing: Promise<unknown> | undefined;
    const r = await fetchFrom(server, 'big.bin', out, {
      onProgress: (received) => {
        if (!closing && received > 0) closing = server.close(5000);
      },
    });
    expect(r.verified).toBe(true);
    expect(await closing).toEqual({ finished: 1, aborted: 0 });
    servers.splice(servers.indexOf(server), 1);
  });
});

describe('classic clients on the same port', () => {
  test('a bare name gets the padded size and the bytes, then the end of the stream', async () => {
    const { server, next } = await serve();
    const s = await rawConnect(server.port);
    s.write('odd.bin'); // no terminator, like the seed: the server waits for a short silence
    const bytes = await readAll(s);
    expect(bytes.subarray(0, 8).toString()).toBe('4097    ');
    expect(bytes.subarray(8).equals(files['odd.bin']!)).toBe(true);
    expect(await next()).toMatchObject({ protocol: 'classic', outcome: 'ok', bytes: 4097 });
  });

  test('files of 100,000,000 bytes or more get -1, and the log says why', async () => {
    const big = join(served, 'classic-too-big.bin');
    writeFileSync(big, '');
    truncateSync(big, 100_000_000);
    try {
      const { server, next } = await serve();
      const s = await rawConnect(server.port);
      s.write('classic-too-big.bin\n');
      expect((await readAll(s)).toString()).toBe('-1      ');
      const log = await next();
      expect(log.outcome).toBe('too-large');
      expect(log.detail).toMatch(/8-digit/);
    } finally {
      rmSync(big);
    }
  });

  test('the jail applies to classic names too', async () => {
    const { server, next } = await serve();
    const s = await rawConnect(server.port);
    s.end('../../../../etc/passwd');
    expect((await readAll(s)).toString()).toBe('-1      ');
    expect((await next()).outcome).toBe('forbidden');
  });
});

describe('the client against hostile or broken servers', () => {
  /** A one-shot fake v1 server: answers HELLO, then runs `script` on the socket after the REQUEST. */
  async function fake(script: (s: net.Socket) => void): Promise<{ port: number }> {
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      const reader = new FrameReader();
      let stage = 0;
      s.on('data', (c: Buffer) => {
        reader.push(c);
        if (stage === 0 && reader.take(5)) stage = 1;
        for (let f = stage > 0 ? reader.next() : undefined; f; f = reader.next()) {
          if (f.type === FrameType.HELLO) s.write(encodeHello({ nonce: randomBytes(32), flags: 0 }));
          if (f.type === FrameType.REQUEST) script(s);
        }
      });
    });
    fakes.push(srv);
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    return { port: (srv.address() as net.AddressInfo).port };
  }

  const ok = (size: number): Buffer => encodeResponse({ status: Status.OK, size, offset: 0, validator: Buffer.from('v1'), message: '' });

  test('a wrong trailer hash fails INTEGRITY and leaves neither final nor partial file', async () => {
    const body = randomBytes(100_000);
    const srv = await fake((s) => s.end(Buffer.concat([ok(body.length), body, encodeTrailer({ sha256: Buffer.alloc(32) })])));
    const out = outDir();
    const err = await rejection(fetchFrom(srv, 'x.bin', out));
    expect(err.code).toBe('INTEGRITY');
    expect(readdirSync(out)).toEqual([]);
  });

  test('a server that vanishes mid-body: PEER_CLOSED, the partial file keeps what arrived', async () => {
    const body = randomBytes(50_000);
    const srv = await fake((s) => s.end(Buffer.concat([ok(200_000), body])));
    const out = outDir();
    const err = await rejection(fetchFrom(srv, 'x.bin', out));
    expect(err.code).toBe('PEER_CLOSED');
    expect(readFileSync(staged(out, 'x.bin').part).equals(body)).toBe(true);
    expect(existsSync(join(out, 'x.bin'))).toBe(false);
  });

  test('resuming: a silence while the server hashes the prefix is allowed for (OFFSET / 32 MB/s on top of the timeout)', async () => {
    const k = 16 * 1024 * 1024;
    const whole = randomBytes(k + 1000);
    const validator = Buffer.from('v1');
    const trailer = encodeTrailer({ sha256: createHash('sha256').update(whole).digest() });
    // OK, then silent for 3x the client's timeout (as a server hashing [0, offset) is), then body and trailer.
    const answer = (s: net.Socket, offset: number): void => {
      s.write(encodeResponse({ status: Status.OK, size: whole.length, offset, validator, message: '' }));
      const t = setTimeout(() => s.end(Buffer.concat([whole.subarray(offset), trailer])), 300);
      s.once('close', () => clearTimeout(t));
    };
    const srv = await fake((s) => answer(s, k));
    const out = outDir();
    plantPartial(out, 'x.bin', whole.subarray(0, k), { name: 'x.bin', server: `127.0.0.1:${srv.port}`, size: whole.length, validator: validator.toString('hex') });
    const r = await fetchFrom(srv, 'x.bin', out, { timeoutMs: 100 });
    expect(r).toMatchObject({ resumedFrom: k, verified: true, sha256: sha(whole) });
    // The same silence with no prefix to hash is a timeout.
    const srv0 = await fake((s) => answer(s, 0));
    const err = await rejection(fetchFrom(srv0, 'x.bin', outDir(), { timeoutMs: 100 }));
    expect(err.code).toBe('TIMEOUT');
  });

  test('a silent server: TIMEOUT within the bound', async () => {
    const srv = await fake(() => undefined);
    const started = Date.now();
    const err = await rejection(fetchFrom(srv, 'x.bin', outDir(), { timeoutMs: 300 }));
    expect(err.code).toBe('TIMEOUT');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('escape sequences in a refusal message are neutralised', async () => {
    const srv = await fake((s) => s.end(encodeResponse({ status: Status.NOT_FOUND, size: 0, offset: 0, validator: Buffer.alloc(0), message: 'gone \u001b[2J\u001b]0;pwned\u0007' })));
    const err = await rejection(fetchFrom(srv, 'x.bin', outDir()));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).not.toMatch(/[\u0000-\u001f]/);
    expect(err.message).toMatch(/\\x1b\[2J/);
  });

  test('nobody listening: CONNECT_REFUSED with the hint', async () => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const err = await rejection(fetchFrom({ port }, 'x.bin', outDir()));
    expect(err.code).toBe('CONNECT_REFUSED');
    expect(err.hint).toMatch(/netkit file serve/);
  });
});

describe('the shared read-buffer pool', () => {
  test('hands out at most `max` 1 MiB buffers, then small ones, and reuses what comes back of both', () => {
    const pool = new BufferPool(2);
    const a = pool.get();
    const b = pool.get();
    expect([a.length, b.length]).toEqual([1024 * 1024, 1024 * 1024]);
    const small = pool.get();
    expect(small.length).toBe(64 * 1024);
    expect(pool.outstanding).toBe(2);
    pool.put(small); // kept apart: it does not free a 1 MiB slot
    expect(pool.outstanding).toBe(2);
    expect(pool.get()).toBe(small);
    pool.put(a);
    expect(pool.outstanding).toBe(1);
    expect(pool.get()).toBe(a);
  });
});
