// `file fetch http://…` in-process against netkit's HTTP and against small web servers that lack Range or digests, lie about digests, compress, redirect or cut the body.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchFile, type FetchOptions, type FetchResult } from '../../src/services/file/fetch/session.js';
import { startFileServer, type FileServer } from '../../src/services/file/serve/index.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { rejection } from '../helpers/errors.js';
import { plantPartial, staged } from '../helpers/staging.js';

let root: string;
let served: string;
const content = randomBytes(3 * 1024 * 1024 + 11);
const sha = createHash('sha256').update(content).digest();
const ETAG = '"v1"';

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'netkit-fetchhttp-'));
  served = join(root, 'served');
  mkdirSync(served);
  writeFileSync(join(served, 'data.bin'), content);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function netkit(): Promise<FileServer> {
  const server = await startFileServer({ dir: served, transport: tcpTransport, host: '127.0.0.1', port: 0 });
  closers.push(() => server.close(0));
  return server;
}

/** A web server of the test's own making. */
async function fake(handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
  return (server.address() as AddressInfo).port;
}

const outDir = (): string => mkdtempSync(join(root, 'out-'));

function fetchUrl(port: number, path: string, out: string, extra: Partial<FetchOptions> = {}): Promise<FetchResult> {
  const url = `http://127.0.0.1:${port}${path}`;
  return fetchFile({ name: path.slice(1), host: '127.0.0.1', port, outDir: out, transport: tcpTransport, retries: 0, http: { url, scheme: 'http', target: path }, ...extra });
}

describe('against netkit', () => {
  test('a fresh fetch is verified by the Repr-Digest trailer; a resume from a partial download sends Range and If-Range', async () => {
    const server = await netkit();
    const out = outDir();
    const first = await fetchUrl(server.port, '/data.bin', out);
    expect(first).toMatchObject({ protocol: 'http', verified: true, sha256: sha.toString('hex'), resumedFrom: 0, url: `http://127.0.0.1:${server.port}/data.bin` });
    expect(readFileSync(join(out, 'data.bin')).equals(content)).toBe(true);
    const etag = (await fetch(`http://127.0.0.1:${server.port}/data.bin`, { method: 'HEAD' })).headers.get('etag')!;
    const again = outDir();
    plantPartial(again, 'data.bin', content.subarray(0, 1024 * 1024), { name: 'data.bin', server: 'x', size: content.length, validator: Buffer.from(`http ${etag}`).toString('hex') });
    const notices: string[] = [];
    const r = await fetchUrl(server.port, '/data.bin', again, { onNotice: (m) => notices.push(m) });
    expect(r).toMatchObject({ verified: true, resumedFrom: 1024 * 1024, received: content.length - 1024 * 1024 });
    expect(notices.join('\n')).toMatch(/resuming data\.bin at 1\.0M/);
    expect(readFileSync(join(again, 'data.bin')).equals(content)).toBe(true);
  });
});

describe('against other web servers', () => {
  test('no Range, no digest: saved, said to be unverified; a partial download is started over', async () => {
    const port = await fake((_req, res) => {
      res.writeHead(200, { 'Content-Length': content.length, 'Last-Modified': 'Wed, 01 May 2024 12:00:00 GMT' });
      res.end(content);
    });
    const out = outDir();
    plantPartial(out, 'data.bin', content.subarray(0, 1000), { name: 'data.bin', server: 'x', size: content.length, validator: Buffer.from('http "old"').toString('hex') });
    const notices: string[] = [];
    const r = await fetchUrl(port, '/data.bin', out, { onNotice: (m) => notices.push(m) });
    expect(r).toMatchObject({ verified: false, resumedFrom: 0, received: content.length, size: content.length });
    expect(notices.join('\n')).toMatch(/sent the whole file/);
    expect(readFileSync(join(out, 'data.bin')).equals(content)).toBe(true);
  });

  test('the older Digest header verifies; a digest that does not match fails with INTEGRITY and saves nothing', async () => {
    const port = await fake((req, res) => {
      const lie = req.url === '/lie.bin';
      res.writeHead(200, { 'Content-Length': content.length, ...(lie ? { 'Repr-Digest': `sha-256=:${Buffer.alloc(32).toString('base64')}:` } : { Digest: `SHA-256=${sha.toString('base64')}` }) });
      res.end(content);
    });
    const out = outDir();
    expect((await fetchUrl(port, '/data.bin', out)).verified).toBe(true);
    const err = await rejection(fetchUrl(port, '/lie.bin', out));
    expect(err.code).toBe('INTEGRITY');
    expect(existsSync(join(out, 'lie.bin'))).toBe(false);
    expect(existsSync(staged(out, 'lie.bin').part)).toBe(false);
  });

  test('refusals map to codes; a compressed body is refused; same-origin redirects are followed, others are not', async () => {
    const port = await fake((req, res) => {
      const send = (status: number, headers: http.OutgoingHttpHeaders = {}, body = 'why\n'): void => void res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), ...headers }).end(body);
      if (req.url === '/gone') return send(404);
      if (req.url === '/secret') return send(401, {}, 'need a token\n');
      if (req.url === '/busy') return send(503);
      if (req.url === '/gz') return send(200, { 'Content-Encoding': 'gzip' }, 'xx');
      if (req.url === '/moved') return send(301, { Location: '/final.bin' });
      if (req.url === '/away') return send(302, { Location: 'http://elsewhere.invalid/final.bin' });
      if (req.url === '/final.bin') return send(200, {}, 'final');
      return send(500);
    });
    const out = outDir();
    const codes: Record<string, string> = { '/gone': 'NOT_FOUND', '/secret': 'UNAUTHORIZED', '/busy': 'BUSY', '/gz': 'PROTOCOL', '/away': 'PROTOCOL', '/other': 'FAILED' };
    for (const [path, code] of Object.entries(codes)) {
      const err = await rejection(fetchUrl(port, path, out));
      expect({ path, code: err.code }).toEqual({ path, code });
      if (path === '/secret') expect(`${err.message} ${err.hint}`).toMatch(/need a token.*https:\/\//);
    }
    const moved = await fetchUrl(port, '/moved', out);
    expect(readFileSync(moved.path, 'utf8')).toBe('final');
    expect(moved.path).toBe(join(out, 'moved'));
  });

  test('a same-server redirect loop is called a loop, a long chain too many redirects, and neither another server', async () => {
    let asked = 0;
    const port = await fake((req, res) => {
      asked += 1;
      const moved = (to: string): void => void res.writeHead(302, { Location: to, 'Content-Length': 0 }).end();
      if (req.url === '/redir-loop') return moved('/redir-loop');
      if (req.url === '/a') return moved('/b');
      if (req.url === '/b') return moved('http://127.0.0.1:' + String(port) + '/a');
      const hop = /^\/chain(\d+)$/.exec(req.url ?? '');
      if (hop) return moved(`/chain${Number(hop[1]) + 1}`);
      res.writeHead(500, { 'Content-Length': 0 }).end();
    });
    const out = outDir();
    const self = await rejection(fetchUrl(port, '/redir-loop', out));
    expect([self.code, self.message]).toEqual(['PROTOCOL', `http://127.0.0.1:${port}/redir-loop: a redirect loop on the server (/redir-loop -> /redir-loop)`]);
    expect(asked).toBe(1);
    const two = await rejection(fetchUrl(port, '/a', out));
    expect(two.message).toBe(`http://127.0.0.1:${port}/a: a redirect loop on the server (/a -> /b -> /a)`);
    const chain = await rejection(fetchUrl(port, '/chain0', out));
    expect([chain.code, chain.message]).toEqual(['PROTOCOL', `http://127.0.0.1:${port}/chain0: too many redirects (more than 5, the last to /chain6)`]);
    for (const err of [self, two, chain]) expect(`${err.message} ${err.hint}`).not.toMatch(/another server/);
  });

  test('a body cut short is resumed on the retry with Range and If-Range, and verified', async () => {
    const requests: Array<{ range?: string; ifRange?: string }> = [];
    const port = await fake((req, res) => {
      requests.push({ range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined });
      const digest = { 'Repr-Digest': `sha-256=:${sha.toString('base64')}:`, ETag: ETAG, 'Accept-Ranges': 'bytes' };
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const from = m ? Number(m[1]) : 0;
      if (requests.length === 1) {
        res.writeHead(206, { ...digest, 'Content-Length': content.length - from, 'Content-Range': `bytes ${from}-${content.length - 1}/${content.length}` });
        res.write(content.subarray(from, 1024 * 1024), () => res.socket?.destroy());
        return;
      }
      res.writeHead(206, { ...digest, 'Content-Length': content.length - from, 'Content-Range': `bytes ${from}-${content.length - 1}/${content.length}` });
      res.end(content.subarray(from));
    });
    const out = outDir();
    const retries: string[] = [];
    const r = await fetchUrl(port, '/data.bin', out, { retries: 2, onRetry: (n) => retries.push(n.reason) });
    expect(r).toMatchObject({ verified: true, retries: 1, sha256: sha.toString('hex') });
    expect(retries).toEqual(['connection lost']);
    expect(requests[0]).toEqual({ range: 'bytes=0-', ifRange: undefined });
    expect(requests[1]!.ifRange).toBe(ETAG);
    expect(Number(/^bytes=(\d+)-$/.exec(requests[1]!.range!)![1])).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'data.bin')).equals(content)).toBe(true);
  });
});
