// Path traversal over HTTP against a running `netkit file serve` (encoded, double-encoded, backslashes, `..;/`, absolute URIs in the request line, links out), and v1, classic and HTTP clients served at once.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { raw, statusOf } from '../helpers/http-client.js';

const MARKER = 'TOP-SECRET-MARKER-http-9c2d';
const SEED = fileURLToPath(new URL('../helpers/seed_file.py', import.meta.url));

let base: string;
let root: string;
let server: Server;
const big = randomBytes(12 * 1024 * 1024 + 1);
const small = randomBytes(300_000);

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-httptrav-'));
  root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), MARKER);
  writeFileSync(join(root, 'ok.txt'), 'ok\n');
  writeFileSync(join(root, 'big.bin'), big);
  writeFileSync(join(root, 'small.bin'), small);
  symlinkSync(outside, join(root, 'link-out'));
  symlinkSync(join(outside, 'secret.txt'), join(root, 'sub', 'link-file-out'));
  server = await startServer(['file', 'serve', root, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
});
afterAll(async () => {
  await server.stop();
  rmSync(base, { recursive: true, force: true });
});

/** request-target -> the statuses allowed. Whatever the status, the secret never appears. */
const CORPUS: Array<[string, number[]]> = [
  ['/../outside/secret.txt', [403]],
  ['/sub/../../outside/secret.txt', [403]],
  ['/./../outside/secret.txt', [403]],
  ['/%2e%2e/outside/secret.txt', [403]],
  ['/%2E%2E/outside/secret.txt', [403]],
  ['/.%2e/outside/secret.txt', [403]],
  ['/..%2foutside%2fsecret.txt', [403]],
  ['/..%2Foutside/secret.txt', [403]],
  ['/%252e%252e/outside/secret.txt', [404]],
  ['/..%252foutside%252fsecret.txt', [404]],
  ['/%25%32%65%25%32%65/outside/secret.txt', [404]],
  ['/..%5coutside%5csecret.txt', [403]],
  ['/..\\outside\\secret.txt', [400, 403]],
  ['/sub\\..\\..\\outside\\secret.txt', [400, 403]],
  ['/..;/outside/secret.txt', [404]],
  ['/sub/..;/..;/outside/secret.txt', [404]],
  ['/..%3b/outside/secret.txt', [404]],
  ['//etc/passwd', [403]],
  ['/%2fetc%2fpasswd', [403]],
  ['/%2F%2Fetc/passwd', [403]],
  ['/C:%5cWindows%5cwin.ini', [403]],
  ['/c:/windows/win.ini', [403]],
  ['http://127.0.0.1/../outside/secret.txt', [403]],
  ['http://evil.example/%2e%2e/outside/secret.txt', [403]],
  ['HTTP://127.0.0.1:1/..%2f..%2fetc%2fpasswd', [403]],
  ['https://x/..;/outside/secret.txt', [404]],
  ['http://x', [200]],
  ['http://127.0.0.1/link-out/secret.txt', [403]],
  ['/link-out/secret.txt', [403]],
  ['/link-out/', [403]],
  ['/link-out', [403]],
  ['/sub/link-file-out', [403]],
  ['/%2e%2e/', [403]],
  ['/sub/%2e%2e/%2e%2e/outside/', [403]],
  ['/ok.txt%00../../outside/secret.txt', [400]],
  ['/%0a../outside', [400]],
  ['/%c0%ae%c0%ae/outside/secret.txt', [400]],
  ['/%e2%80%ae../outside', [400]],
  ['/%ef%bc%8e%ef%bc%8e/outside/secret.txt', [404]],
  ['/..%e2%88%95outside%e2%88%95secret.txt', [404]],
  ['/?../../outside/secret.txt', [200]],
  ['/ok.txt?/../../outside/secret.txt', [200]],
  ['/ok.txt#/../../outside/secret.txt', [400]],
  ['*', [400]],
  ['outside/secret.txt', [400]],
  ['file:///etc/passwd', [400]],
  ['/%', [400]],
  ['/%2', [400]],
];

describe('traversal over HTTP', () => {
  test.each(CORPUS)('%s -> %j, and nothing leaks', async (target, statuses) => {
    for (const version of ['1.1', '1.0']) {
      const answer = await raw(server.port, `GET ${target} HTTP/${version}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      const status = statusOf(answer);
      expect({ target, version, status, allowed: statuses.includes(status) }).toEqual({ target, version, status, allowed: true });
      const text = answer.toString('latin1');
      expect(text).not.toContain(MARKER);
      expect(text).not.toContain(base);
    }
  });

  test('the listing leaves out links that leave the served directory', async () => {
    const answer = (await raw(server.port, 'GET /?format=json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toString();
    expect(answer).not.toContain('link-out');
    expect(answer).toContain('"path":"ok.txt"');
  });
});

describe('one server, every kind of client at once', () => {
  test('v1 fetches, seed (classic) clients and curl, concurrently, all get their bytes', async () => {
    const out = mkdtempSync(join(base, 'mixed-'));
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 3; i++) {
      const dir = join(out, `v1-${i}`);
      mkdirSync(dir);
      jobs.push(
        runNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', dir, '--json'], { timeoutMs: 60_000 }).then((r) => {
          expect(r.code).toBe(0);
          expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, sha256: sha(big) });
        }),
      );
      const cdir = join(out, `classic-${i}`);
      jobs.push(
        new Promise<void>((resolve, reject) =>
          execFile('python3', [SEED, 'client', '--port', String(server.port), '--name', 'small.bin', '--out', cdir], { timeout: 60_000 }, (err) => {
            if (err) return reject(err);
            expect(sha(readFileSync(join(cdir, 'small.bin')))).toBe(sha(small));
            resolve();
          }),
        ),
      );
      const file = join(out, `curl-${i}.bin`);
      jobs.push(
        new Promise<void>((resolve, reject) =>
          execFile('curl', ['-sS', '-o', file, `http://127.0.0.1:${server.port}/big.bin`], { timeout: 60_000 }, (err) => {
            if (err) return reject(err);
            expect(sha(readFileSync(file))).toBe(sha(big));
            resolve();
          }),
        ),
      );
    }
    await Promise.all(jobs);
  }, 90_000);
});
