// HTTP on the file server's port, in-process over real loopback sockets: files, ranges, validators, digests, directories, refusals, keep-alive and the connection limits.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFileServer, type FileServer, type ServeOptions, type TransferLog } from '../../src/services/file/serve/index.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { classicFetch } from '../helpers/raw-file-client.js';
import { raw, request, statusOf } from '../helpers/http-client.js';

let base: string;
let served: string;
const big = randomBytes(5 * 1024 * 1024 + 3);
const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-http-'));
  served = join(base, 'served');
  mkdirSync(join(served, 'nested'), { recursive: true });
  writeFileSync(join(served, 'hello.txt'), 'hello\n');
  writeFileSync(join(served, 'big.bin'), big);
  writeFileSync(join(served, 'empty.bin'), '');
  writeFileSync(join(served, 'nested', 'deep.txt'), 'deep');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const servers: FileServer[] = [];
afterEach(async () => {
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
  const next = (): Promise<TransferLog> => (read < logs.length ? Promise.resolve(logs[read++]!) : new Promise((r) => waiting.push((l) => (read++, r(l)))));
  return { server, logs, next };
}

describe('a file', () => {
  test('GET: 200 with length, type, validators, and the bytes; HEAD: the same head and no body', async () => {
    const { server, next } = await serve();
    const a = await request(server.port, '/hello.txt');
    expect(a.status).toBe(200);
    expect(a.body.toString()).toBe('hello\n');
    expect(a.headers).toMatchObject({ 'content-length': '6', 'content-type': 'text/plain', 'accept-ranges': 'bytes', 'x-content-type-options': 'nosniff' });
    expect(a.headers.etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(Date.parse(a.headers['last-modified']!)).toBeGreaterThan(0);
    expect(await next()).toMatchObject({ protocol: 'http', method: 'GET', name: '/hello.txt', status: 200, outcome: 'ok', bytes: 6 });
    const h = await request(server.port, '/hello.txt', { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.body.length).toBe(0);
    expect(h.headers['content-length']).toBe('6');
    expect(h.headers.etag).toBe(a.headers.etag);
    const b = await request(server.port, '/big.bin');
    expect(b.body.equals(big)).toBe(true);
    expect(b.headers['content-type']).toBe('application/octet-stream');
    expect((await request(server.port, '/empty.bin')).headers['content-length']).toBe('0');
  });

  test('ranges a-b, a- and -n get 206 with Content-Range; outside the file 416; several ranges the whole file', async () => {
    const { server } = await serve();
    const size = big.length;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=1000-', 1000, size - 1],
      ['bytes=-500', size - 500, size - 1],
      ['bytes=10-99999999999', 10, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const a = await request(server.port, '/big.bin', { headers: { Range: range } });
      expect({ range, status: a.status, cr: a.headers['content-range'] }).toEqual({ range, status: 206, cr: `bytes ${start}-${end}/${size}` });
      expect(a.body.equals(big.subarray(start, end + 1))).toBe(true);
    }
    const out = await request(server.port, '/big.bin', { headers: { Range: `bytes=${size}-` } });
    expect(out.status).toBe(416);
    expect(out.headers['content-range']).toBe(`bytes */${size}`);
    const multi = await request(server.port, '/hello.txt', { headers: { Range: 'bytes=0-1,3-4' } });
    expect(multi.status).toBe(200);
    expect(multi.body.toString()).toBe('hello\n');
  });

  test('If-Range with the ETag gets the range; with another tag or date the whole file', async () => {
    const { server } = await serve();
    const { headers } = await request(server.port, '/big.bin', { method: 'HEAD' });
    const same = await request(server.port, '/big.bin', { headers: { Range: 'bytes=5-9', 'If-Range': headers.etag! } });
    expect(same.status).toBe(206);
    const dated = await request(server.port, '/big.bin', { headers: { Range: 'bytes=5-9', 'If-Range': headers['last-modified']! } });
    expect(dated.status).toBe(206);
    const other = await request(server.port, '/big.bin', { headers: { Range: 'bytes=5-9', 'If-Range': '"0000"' } });
    expect(other.status).toBe(200);
    expect(other.body.length).toBe(big.length);
  });

  test('If-None-Match and If-Modified-Since get 304 with the validators and no body', async () => {
    const { server } = await serve();
    const { headers } = await request(server.port, '/hello.txt');
    const a = await request(server.port, '/hello.txt', { headers: { 'If-None-Match': `"x", ${headers.etag}` } });
    expect(a.status).toBe(304);
    expect(a.body.length).toBe(0);
    expect(a.headers.etag).toBe(headers.etag);
    expect(a.headers['content-length']).toBeUndefined();
    expect((await request(server.port, '/hello.txt', { headers: { 'If-Modified-Since': headers['last-modified']! } })).status).toBe(304);
    expect((await request(server.port, '/hello.txt', { headers: { 'If-None-Match': '"x"', 'If-Modified-Since': headers['last-modified']! } })).status).toBe(200);
  });

  test('Repr-Digest: a trailer when asked for with TE: trailers (whole file, or a range to the end), then a header once known', async () => {
    const { server } = await serve();
    const want = `sha-256=:${sha(big).toString('base64')}:`;
    const plain = await request(server.port, '/big.bin');
    expect(plain.headers['repr-digest']).toBeUndefined();
    const tail = await request(server.port, '/big.bin', { headers: { TE: 'trailers', Range: 'bytes=4000000-' } });
    expect(tail.status).toBe(206);
    expect(tail.headers.trailer).toBe('Repr-Digest');
    expect(tail.headers['content-length']).toBeUndefined();
    expect(tail.body.equals(big.subarray(4_000_000))).toBe(true);
    expect(tail.trailers['repr-digest']).toBe(want);
    const known = await request(server.port, '/big.bin', { headers: { TE: 'trailers' } });
    expect(known.headers['repr-digest']).toBe(want);
    expect(known.headers['content-length']).toBe(String(big.length));
    expect((await request(server.port, '/big.bin', { method: 'HEAD' })).headers['repr-digest']).toBe(want);
  });

  test('a file that changes while it is sent with a trailer: the body never completes, the log says changed', async () => {
    const name = 'changing.bin';
    writeFileSync(join(served, name), big);
    const { server, next } = await serve();
    const failed = new Promise<string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: server.port, path: `/${name}`, headers: { TE: 'trailers' }, agent: false }, (res) => {
        res.once('data', () => {
          res.pause();
          appendFileSync(join(served, name), 'more');
          res.resume();
        });
        res.on('data', () => undefined);
        res.on('error', (e) => resolve(e.message));
        res.on('end', () => resolve('complete'));
      });
      req.on('error', (e) => resolve(e.message));
    });
    expect(await failed).not.toBe('complete');
    expect(await next()).toMatchObject({ outcome: 'changed', name: `/${name}` });
  });
});

describe('refusals', () => {
  test('404, 403 and 400 carry a short text and no path of the server; 405 names what is allowed', async () => {
    const { server, next } = await serve();
    const cases: Array<[string, number, string]> = [
      ['/nope.txt', 404, 'not-found'],
      ['/%2e%2e/served/hello.txt', 403, 'forbidden'],
      ['/nested/..%2F..%2Fetc/passwd', 403, 'forbidden'],
      ['/a%5c..%5cb', 403, 'forbidden'],
      ['/bad%zz', 400, 'bad-request'],
      ['/ok%00.txt', 400, 'bad-request'],
    ];
    for (const [path, status, outcome] of cases) {
      const a = await request(server.port, path);
      expect({ path, status: a.status }).toEqual({ path, status });
      expect(a.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(a.body.length).toBeLessThan(200);
      expect(a.body.toString()).not.toContain(base);
      expect((await next()).outcome).toBe(outcome);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const a = await request(server.port, '/hello.txt', { method, body: method === 'POST' ? 'x=1' : undefined });
      expect({ method, status: a.status, allow: a.headers.allow }).toEqual({ method, status: 405, allow: 'GET, HEAD' });
    }
  });

  test('a GET with a body is refused and the connection closed; a head over 8 KiB gets 431', async () => {
    const { server } = await serve();
    const withBody = await raw(server.port, 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    expect(statusOf(withBody)).toBe(400);
    expect(withBody.toString()).toMatch(/connection: close/i);
    const huge = await raw(server.port, `GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`);
    expect(statusOf(huge)).toBe(431);
  });

  test('two Host headers get 400 and a close; CONNECT (the authority form) gets 400, and the log names the method, the target and why', async () => {
    const { server, next } = await serve();
    const twice = await raw(server.port, 'GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
    expect(statusOf(twice)).toBe(400);
    expect(twice.toString()).toMatch(/connection: close/i);
    expect(twice.toString()).toContain('more than one Host header');
    expect(await next()).toMatchObject({ method: 'GET', name: '/hello.txt', status: 400, outcome: 'bad-request', detail: 'more than one Host header' });
    const connect = await raw(server.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expect(statusOf(connect)).toBe(400);
    expect(connect.toString()).toMatch(/connection: close/i);
    expect(connect.toString()).toContain('CONNECT (the authority form) is not served here');
    expect(await next()).toMatchObject({ method: 'CONNECT', name: 'example.com:443', status: 400, outcome: 'bad-request' });
    // One Host is still fine.
    expect(statusOf(await raw(server.port, 'GET /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'))).toBe(200);
  });

  test('an HTTP/1.1 request without Host gets 400 with its reason and a close, logged as such; HTTP/1.0 needs none', async () => {
    const { server, next } = await serve();
    const none = await raw(server.port, 'GET /hello.txt HTTP/1.1\r\n\r\n');
    expect(statusOf(none)).toBe(400);
    expect(none.toString()).toMatch(/connection: close/i);
    expect(none.toString()).toMatch(/x-content-type-options: nosniff/i);
    expect(none.toString()).toContain('an HTTP/1.1 request needs a Host header');
    expect(await next()).toMatchObject({ method: 'GET', name: '/hello.txt', status: 400, outcome: 'bad-request', detail: 'an HTTP/1.1 request needs a Host header' });
    expect(statusOf(await raw(server.port, 'GET /hello.txt HTTP/1.0\r\n\r\n'))).toBe(200);
  });
});

describe('directories', () => {
  test('/dir redirects to /dir/; the page lists names with links; JSON on request; a file with a slash is 404', async () => {
    const { server } = await serve();
    const r = await request(server.port, '/nested?format=json');
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('/nested/?format=json');
    const page = await request(server.port, '/nested/');
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toMatch(/^default-src 'none'/);
    expect(page.body.toString()).toContain('<a href="./deep.txt">deep.txt</a>');
    const json = await request(server.port, '/nested/?format=json');
    expect(JSON.parse(json.body.toString())).toEqual([{ path: 'nested/deep.txt', type: 'file', size: 4, mtime: expect.stringMatching(/Z$/), mode: expect.stringMatching(/^0[0-7]{3}$/) }]);
    const byAccept = await request(server.port, '/', { headers: { Accept: 'application/json' } });
    const paths = (JSON.parse(byAccept.body.toString()) as Array<{ path: string }>).map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['big.bin', 'empty.bin', 'hello.txt', 'nested']));
    expect(paths).toEqual([...paths].sort());
    expect((await request(server.port, '/missing/')).status).toBe(404);
    expect((await request(server.port, '/hello.txt/')).status).toBe(404);
    expect((await request(server.port, '/%2e%2e/')).status).toBe(403);
  });
});

describe('connections', () => {
  test('keep-alive: two requests on one connection, one log line each; HTTP/1.0 gets its answer and a close', async () => {
    const { server, next } = await serve();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const a = await request(server.port, '/hello.txt', { agent });
    const b = await request(server.port, '/nested/deep.txt', { agent });
    agent.destroy();
    expect(b.localPort).toBe(a.localPort);
    expect((await next()).name).toBe('/hello.txt');
    expect((await next()).name).toBe('/nested/deep.txt');
    const old = (await raw(server.port, 'GET /hello.txt HTTP/1.0\r\n\r\n')).toString();
    expect(old).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(old).toMatch(/\r\n\r\nhello\n$/);
  });

  test('an idle keep-alive connection is in its header phase: a newcomer on a full server takes its slot', async () => {
    const { server, next } = await serve({ maxConnections: 1 });
    const agent = new http.Agent({ keepAlive: true });
    await request(server.port, '/hello.txt', { agent });
    // The server has finished that answer (the client may read it a moment before).
    await next();
    const idle = Object.values(agent.freeSockets)[0]![0]!;
    const closed = once(idle, 'close');
    const b = await request(server.port, '/nested/deep.txt');
    expect(b.body.toString()).toBe('deep');
    await closed;
    agent.destroy();
  });

  test('a request line that stops short is cut at the header deadline; over the limits a client gets 503', async () => {
    const { server, next } = await serve({ headerTimeoutMs: 300, maxConnections: 1, maxPerSource: 1 });
    const slow = await raw(server.port, 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n');
    expect(slow.length).toBe(0);
    expect(await next()).toMatchObject({ protocol: 'http', outcome: 'timeout' });
    // One slot, held by a transfer that does not read: the next client is answered 503 at once.
    const holder = http.get({ host: '127.0.0.1', port: server.port, path: '/big.bin', agent: false });
    const res = (await once(holder, 'response')) as [http.IncomingMessage];
    res[0].pause();
    const busy = await raw(server.port, 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(statusOf(busy)).toBe(503);
    expect(busy.toString()).toMatch(/retry-after: 1/i);
    holder.destroy();
  });

  test('a client that stops reading a body is cut at the idle timeout, and the log says so', async () => {
    const { server, next } = await serve({ idleTimeoutMs: 300 });
    const req = http.get({ host: '127.0.0.1', port: server.port, path: '/big.bin', agent: false });
    req.on('error', () => undefined);
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    res.on('error', () => undefined);
    res.pause();
    expect(await next()).toMatchObject({ protocol: 'http', name: '/big.bin', status: 200, outcome: 'timeout' });
    req.destroy();
  });

  test('--no-http: a request line is a classic name like any other', async () => {
    const { server } = await serve({ http: false });
    expect(server.http).toBe(false);
    expect((await classicFetch(server.port, 'GET /hello.txt HTTP/1.1\r\n\r\n')).toString()).toBe('-1      ');
    const on = await serve();
    expect(statusOf(await raw(on.server.port, 'GET /hello.txt HTTP/1.0\r\n\r\n'))).toBe(200);
    // A classic name that only starts like a method is still classic.
    expect((await classicFetch(on.server.port, 'GET')).toString()).toBe('-1      ');
  });
});
