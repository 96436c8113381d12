// Hostile HTTP/1.x requests to the built `netkit file serve` over real loopback sockets: smuggling shapes (a body on a GET with a request behind it), folding, bare LF, 64 KiB targets, odd ranges and encodings. Each gets its documented answer and nothing more, the server keeps serving, and its descriptors return to their baseline.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

let base: string;
let server: Server;
const data = randomBytes(100_000);

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-http-hostile-'));
  mkdirSync(join(base, 'served', 'sub'), { recursive: true });
  writeFileSync(join(base, 'served', 'a.bin'), data);
  writeFileSync(join(base, 'served', 'sub', 't.txt'), 'hello\n');
  server = await startServer(['file', 'serve', join(base, 'served'), '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
});
afterAll(async () => {
  await server.stop();
  rmSync(base, { recursive: true, force: true });
});

const fdCount = (): number => readdirSync(`/proc/${server.child.pid}/fd`).length;

/** Send `bytes` and half-close; resolve with everything the server sent until it closed (bounded). */
function exchange(bytes: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(server.port, '127.0.0.1');
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within 5 s; got ${JSON.stringify(Buffer.concat(got).toString('latin1').slice(0, 200))}`));
    }, 5_000);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got).toString('latin1'));
    });
    s.end(bytes);
  });
}

const statuses = (answer: string): string[] => [...answer.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1]!);
const bodyOf = (answer: string): string => answer.slice(answer.indexOf('\r\n\r\n') + 4);
const H = 'Host: x\r\n';

async function fetchOk(): Promise<void> {
  const out = mkdtempSync(join(base, 'out-'));
  const r = await runNetkit(['file', 'fetch', 'a.bin', '-H', `127.0.0.1:${server.port}`, '-o', out]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(createHash('sha256').update(readFileSync(join(out, 'a.bin'))).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
}

describe('hostile HTTP requests', () => {
  test('each gets its documented answer and nothing behind it; then a fetch succeeds and descriptors return to the baseline', async () => {
    await fetchOk();
    const baseline = fdCount();
    const smuggled = `GET /sub/t.txt HTTP/1.1\r\n${H}\r\n`;
    const cases: Array<[string, string | Buffer, string[], RegExp?]> = [
      ['Transfer-Encoding and Content-Length on a GET, a request behind', `GET /a.bin HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n${smuggled}`, ['400']],
      ['a body on a GET, a request behind', `GET /sub/t.txt HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello${smuggled}`, ['400'], /carries no body/],
      ['a chunked body on a GET', `GET / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzzzz\r\n`, ['400']],
      ['a folded header', `GET /sub/t.txt HTTP/1.1\r\n${H}X-A: b\r\n  folded\r\n\r\n`, ['400'], /invalid header/],
      ['many ranges past 8 KiB of head', `GET /a.bin HTTP/1.1\r\n${H}Range: bytes=${Array.from({ length: 1500 }, (_, i) => `${i}-${i}`).join(',')}\r\n\r\n`, ['431']],
      ['a range with huge numbers', `GET /a.bin HTTP/1.1\r\n${H}Range: bytes=99999999999999999999999-99999999999999999999999999\r\nConnection: close\r\n\r\n`, ['416']],
      ['a negative range', `GET /sub/t.txt HTTP/1.1\r\n${H}Range: bytes=-5--3\r\nConnection: close\r\n\r\n`, ['200'], /^hello\n$/],
      ['If-Range with an impossible date', `GET /sub/t.txt HTTP/1.1\r\n${H}Range: bytes=0-1\r\nIf-Range: Tue, 99 Foo 99999 99:99:99 GMT\r\nConnection: close\r\n\r\n`, ['200'], /^hello\n$/],
      ['HEAD with several ranges', `HEAD /sub/t.txt HTTP/1.1\r\n${H}Range: bytes=0-1,3-4\r\nConnection: close\r\n\r\n`, ['200'], /^$/],
      ['%00 in the path', `GET /sub%00/t.txt HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, ['400'], /control characters/],
      ['%2e%2e%2f', `GET /sub/%2e%2e%2f%2e%2e%2fetc/passwd HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, ['403'], /'\.\.' segments/],
      ['double encoding', `GET /%252e%252e%252fetc/passwd HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, ['404']],
      ['overlong UTF-8', `GET /%c0%ae%c0%ae/etc/passwd HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, ['400'], /not UTF-8/],
      ['raw invalid UTF-8 in the target', Buffer.concat([Buffer.from('GET /'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from(` HTTP/1.1\r\n${H}\r\n`)]), ['400']],
      ['an asterisk-form GET', `GET * HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, ['400']],
      ['an absolute-form target', `GET http://elsewhere/sub/t.txt HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, ['200'], /^hello\n$/],
      ['?format=json on a file', `GET /sub/t.txt?format=json HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, ['200'], /^hello\n$/],
    ];
    for (const [label, bytes, expected, body] of cases) {
      const answer = await exchange(bytes);
      expect({ label, statuses: statuses(answer) }).toEqual({ label, statuses: expected });
      if (body) expect({ label, body: bodyOf(answer) }).toEqual({ label, body: expect.stringMatching(body) });
    }
    // A refusal that closes the connection drops the requests behind it unopened: none may hold its file open.
    for (let i = 0; i < 10; i++) {
      expect(statuses(await exchange(`GET /nothere HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello${smuggled.repeat(3)}`))).toEqual(['400']);
    }
    // Not a request line (bare LF, a 64 KiB target): classic, whose only refusal is the padded -1.
    expect(await exchange(`GET /sub/t.txt HTTP/1.1\n${H}\n`)).toBe('-1      ');
    expect(await exchange(`GET /${'a'.repeat(65_536)} HTTP/1.1\r\n${H}\r\n`)).toBe('-1      ');
    expect(server.child.exitCode).toBeNull();
    await fetchOk();
    // Each closed connection lingers at most 2 s after the server's last byte (section 2.3): bounded polling.
    let now = fdCount();
    for (let i = 0; i < 30 && now > baseline; i++) {
      await new Promise((r) => setTimeout(r, 200));
      now = fdCount();
    }
    expect(now).toBeLessThanOrEqual(baseline);
  }, 60_000);
});
