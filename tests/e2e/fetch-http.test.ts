// The built `netkit file fetch http(s)://…` against `python3 -m http.server` (no Range, no digest) and against netkit's own HTTP (Range and digest), cut mid-body by a relay, and over HTTPS with a pin.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';

let base: string;
let served: string;
let netkit: Server;
let python: { child: ChildProcessWithoutNullStreams; port: number };
const big = randomBytes(16 * 1024 * 1024 + 9);
const sha = createHash('sha256').update(big).digest('hex');
const CUT_AT = 4 * 1024 * 1024;

/** `python3 -m http.server` on a free loopback port: resolves with its port once it says it is serving. */
function startPython(dir: string): Promise<{ child: ChildProcessWithoutNullStreams; port: number }> {
  const child = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir]);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.stderr.resume();
    child.once('exit', (code) => reject(new Error(`python3 -m http.server exited (${code}): ${out}`)));
  });
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-fetchhttp-e2e-'));
  served = join(base, 'served');
  mkdirSync(served);
  writeFileSync(join(served, 'big.bin'), big);
  mkdirSync(join(served, 'dir'));
  writeFileSync(join(served, 'dir', 'inside.txt'), 'inside\n');
  writeFileSync(join(served, 'empty.bin'), '');
  netkit = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
  python = await startPython(served);
});
afterAll(async () => {
  await netkit.stop();
  python.child.kill();
  rmSync(base, { recursive: true, force: true });
});

const proxies: TcpRecordingProxy[] = [];
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
});

/** A relay to `port` whose first connection is reset after CUT_AT bytes. */
async function cutting(port: number): Promise<TcpRecordingProxy> {
  const p = await tcpRecordingProxy(port, '127.0.0.1', { cut: (connection, bytes) => connection === 0 && bytes >= CUT_AT });
  proxies.push(p);
  return p;
}

const outDir = (): string => mkdtempSync(join(base, 'out-'));
const fetchUrl = (url: string, out: string, ...more: string[]) => runNetkit(['file', 'fetch', url, '-o', out, ...more], { timeoutMs: 60_000 });

describe('python3 -m http.server: no Range, no digest', () => {
  test('saved, and the result says it is unverified', async () => {
    const out = outDir();
    const r = await fetchUrl(`http://127.0.0.1:${python.port}/big.bin`, out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^saved .*big\.bin \(16M, UNVERIFIED: the server sent no digest \(Repr-Digest or Digest\); sha256 of what arrived [0-9a-f]{64}/);
    expect(readFileSync(join(out, 'big.bin')).equals(big)).toBe(true);
  });

  test('cut mid-body: the retry starts over (the server cannot resume) and still saves the whole file', async () => {
    const p = await cutting(python.port);
    const out = outDir();
    const r = await fetchUrl(`http://127.0.0.1:${p.port}/big.bin`, out, '--json', '--retries', '2');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, verified: false, protocol: 'http', retries: 1, resumedFrom: 0, sha256: sha });
    expect(r.stderr).toMatch(/connection lost after .*; retrying in 1s \(1\/2\)/);
    expect(r.stderr).toMatch(/starting over: .* cannot resume big\.bin \(it announced no byte ranges/);
    expect(readdirSync(out)).toEqual(['big.bin']);
  });

  test('cut mid-body without retries: exit 8, and it says the bytes were discarded (the server cannot resume), keeps no partial file, and the rerun starts clean', async () => {
    const p = await cutting(python.port);
    const out = outDir();
    const url = `http://127.0.0.1:${p.port}/big.bin`;
    const first = await fetchUrl(url, out, '--retries', '0');
    expect(first.code).toBe(8);
    expect(first.stderr).toMatch(/that arrived were discarded: the server gives no way to resume this file \(no byte ranges/);
    expect(first.stderr).toMatch(/run the same fetch again \(it starts from the beginning\)/);
    expect(first.stderr).not.toMatch(/is kept|again to resume/);
    expect(readdirSync(out, { recursive: true }).map(String).filter((n) => n.endsWith('.part'))).toEqual([]);
    const second = await fetchUrl(url, out);
    expect(second.code).toBe(0);
    expect(second.stderr).not.toMatch(/starting over|resuming/);
    expect(readFileSync(join(out, 'big.bin')).equals(big)).toBe(true);
  });
});

describe("netkit's own HTTP: Range and digest", () => {
  test('cut mid-body: the retry resumes with Range and If-Range, and the whole file is verified', async () => {
    const p = await cutting(netkit.port);
    const out = outDir();
    const r = await fetchUrl(`http://127.0.0.1:${p.port}/big.bin`, out, '--json', '--retries', '2');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, protocol: 'http', retries: 1, sha256: sha });
    const requests = Buffer.concat(p.toServer).toString('latin1').split('GET ').slice(1);
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatch(/\r\nRange: bytes=0-\r\n/i);
    expect(requests[1]).toMatch(/\r\nRange: bytes=[1-9]\d*-\r\n/i);
    expect(requests[1]).toMatch(/\r\nIf-Range: "[0-9a-f]{32}"\r\n/i);
    expect(readFileSync(join(out, 'big.bin')).equals(big)).toBe(true);
  });

  test('without retries the cut fails (exit 8) and keeps the partial file; the next run resumes it', async () => {
    const p = await cutting(netkit.port);
    const out = outDir();
    const url = `http://127.0.0.1:${p.port}/big.bin`;
    const first = await fetchUrl(url, out, '--retries', '0');
    expect(first.code).toBe(8);
    expect(first.stderr).toMatch(/is kept \(\d/);
    const second = await fetchUrl(url, out);
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/resuming big\.bin at/);
    expect(second.stdout).toMatch(/sha256 [0-9a-f]{64} verified.*resumed at/);
    expect(readFileSync(join(out, 'big.bin')).equals(big)).toBe(true);
  });

  test('a URL of a directory (with or without its trailing slash, or the root) saves nothing and says so, with the tree fetch as the hint, which works; -o NAME saves the page', async () => {
    const out = outDir();
    for (const path of ['dir/', 'dir', 'dir/?format=json']) {
      const r = await fetchUrl(`http://127.0.0.1:${netkit.port}/${path}`, out);
      expect({ path, code: r.code }).toEqual({ path, code: 4 });
      expect(r.stderr).toMatch(/dir\/?(\?format=json)? is a directory \(.*\): nothing was saved/);
      expect(r.stderr).toContain(`hint: name a file in it, or, from a netkit file server, fetch the whole tree: netkit file fetch 'dir/' -H 127.0.0.1:${netkit.port}`);
      expect(readdirSync(out).filter((n) => n !== '.netkit')).toEqual([]);
    }
    for (const path of ['', '/']) {
      const r = await fetchUrl(`http://127.0.0.1:${netkit.port}${path}`, out);
      expect({ path, code: r.code }).toEqual({ path, code: 2 });
      expect(r.stderr).toContain(`names the server's root directory, not a file`);
      expect(r.stderr).toContain(`fetch the whole tree: netkit file fetch '.' -H 127.0.0.1:${netkit.port}`);
    }
    expect(readdirSync(out).filter((n) => n !== '.netkit')).toEqual([]);
    // -o NAME asks for the page itself.
    const page = await fetchUrl(`http://127.0.0.1:${netkit.port}/dir/`, join(out, 'page.html'));
    expect(page.code).toBe(0);
    expect(readFileSync(join(out, 'page.html'), 'utf8')).toContain('inside.txt');
    rmSync(join(out, 'page.html'));
    const tree = await runNetkit(['file', 'fetch', 'dir/', '-H', `127.0.0.1:${netkit.port}`, '-o', out], { timeoutMs: 60_000 });
    expect(tree.code).toBe(0);
    expect(readFileSync(join(out, 'dir', 'inside.txt'), 'utf8')).toBe('inside\n');
  });

  test('an empty file (the client always asks for bytes=0-): saved empty and verified', async () => {
    const out = outDir();
    const r = await fetchUrl(`http://127.0.0.1:${netkit.port}/empty.bin`, out, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, verified: true, size: 0, sha256: createHash('sha256').digest('hex') });
    expect(readFileSync(join(out, 'empty.bin')).length).toBe(0);
  });

  test('a URL with options that name another server or protocol is a usage error', async () => {
    const out = outDir();
    for (const extra of [['-H', 'other'], ['--classic'], ['--tls']]) {
      const r = await fetchUrl(`http://127.0.0.1:${netkit.port}/big.bin`, out, ...extra);
      expect({ extra, code: r.code }).toEqual({ extra, code: 2 });
    }
  });
});

describe('https://', () => {
  test('with the pin the fetch is verified; without, the self-signed certificate is refused (exit 11)', async () => {
    const identity = join(base, 'config');
    const env = { XDG_CONFIG_HOME: identity };
    const tls = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce', '--tls'], { env });
    try {
      const fingerprint = /tls fingerprint (sha256:[0-9a-f]{64})/.exec(tls.stdout())![1]!;
      expect(tls.stdout()).toContain(`url https://127.0.0.1:${tls.port}/`);
      const url = `https://127.0.0.1:${tls.port}/big.bin`;
      const out = outDir();
      const refused = await runNetkit(['file', 'fetch', url, '-o', out], { env });
      expect(refused.code).toBe(11);
      const r = await runNetkit(['file', 'fetch', url, '-o', out, '--json', '--tls-fingerprint', fingerprint], { env, timeoutMs: 60_000 });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, protocol: 'http', sha256: sha });
    } finally {
      await tls.stop();
    }
  });
});
