// Real HTTP clients against `netkit file serve`: curl (whole file, a range, -I, --http1.0, the listing as JSON, -C - after a cut) and wget (-c after a cut, -r -np mirroring a tree from the HTML listing).
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startServer, type Server } from '../helpers/netkit.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';

let base: string;
let served: string;
let server: Server;
const big = randomBytes(24 * 1024 * 1024 + 7);
const CUT_AT = 6 * 1024 * 1024;
const tree: Record<string, Buffer> = {
  'a.txt': Buffer.from('alpha\n'),
  'space name.txt': Buffer.from('spaced\n'),
  'ünï €.txt': Buffer.from('unicode\n'),
  'sub/b.txt': Buffer.from('beta\n'),
  'sub/deeper/c.bin': randomBytes(70_000),
  'sub/q?x#y.txt': Buffer.from('query-like name\n'),
};

interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd?: string): Promise<Exec> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-httpclients-'));
  served = join(base, 'served');
  for (const [name, data] of Object.entries(tree)) {
    mkdirSync(join(served, 'tree', name, '..'), { recursive: true });
    writeFileSync(join(served, 'tree', name), data);
  }
  writeFileSync(join(served, 'big.bin'), big);
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce']);
});
afterAll(async () => {
  await server.stop();
  rmSync(base, { recursive: true, force: true });
});

const proxies: TcpRecordingProxy[] = [];
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
});

const url = (path: string, port = server.port): string => `http://127.0.0.1:${port}${path}`;
const outDir = (): string => mkdtempSync(join(base, 'out-'));

/** A relay whose first connection is reset once it has passed CUT_AT bytes to the client. */
async function cuttingProxy(): Promise<TcpRecordingProxy> {
  const p = await tcpRecordingProxy(server.port, '127.0.0.1', { cut: (connection, bytes) => connection === 0 && bytes >= CUT_AT });
  proxies.push(p);
  return p;
}

/** The Range header the client sent on its second connection through the proxy. */
function rangeAsked(p: TcpRecordingProxy): string | undefined {
  const requests = Buffer.concat(p.toServer).toString('latin1');
  return /\r\nRange: (bytes=\d+-)/i.exec(requests)?.[1];
}

const has = (cmd: string): boolean => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const withCurl = has('curl') ? describe : describe.skip;
const withWget = has('wget') ? describe : describe.skip;
for (const cmd of ['curl', 'wget']) {
  // eslint-disable-next-line no-console
  if (!has(cmd)) console.warn(`http-clients: the ${cmd} tests are skipped: ${cmd} is not installed (apt-get install ${cmd})`);
}

withCurl('curl', () => {
  test('the whole file, a range, -I and --http1.0', async () => {
    const out = outDir();
    expect((await run('curl', ['-sS', '-o', join(out, 'big.bin'), url('/big.bin')])).code).toBe(0);
    expect(readFileSync(join(out, 'big.bin')).equals(big)).toBe(true);
    const range = await run('curl', ['-sS', '-r', '1000-1999', '-o', join(out, 'part'), '-w', '%{http_code}', url('/big.bin')]);
    expect(range.stdout).toBe('206');
    expect(readFileSync(join(out, 'part')).equals(big.subarray(1000, 2000))).toBe(true);
    const head = await run('curl', ['-sSI', url('/big.bin')]);
    expect(head.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head.stdout).toMatch(new RegExp(`\r\ncontent-length: ${big.length}\r\n`, 'i'));
    expect(head.stdout).toMatch(/\r\netag: "[0-9a-f]{32}"\r\n/i);
    expect(head.stdout).toMatch(/\r\naccept-ranges: bytes\r\n/i);
    const old = await run('curl', ['-sS', '--http1.0', '-D', join(out, 'head10'), '-o', join(out, 'a10'), url('/tree/a.txt')]);
    expect(old.code).toBe(0);
    expect(readFileSync(join(out, 'head10'), 'utf8')).toMatch(/\r\nconnection: close\r\n/i);
    expect(readFileSync(join(out, 'a10'), 'utf8')).toBe('alpha\n');
  });

  test('the listing as JSON', async () => {
    const r = await run('curl', ['-sS', '-H', 'Accept: application/json', url('/tree/sub/')]);
    expect(JSON.parse(r.stdout)).toEqual([
      { path: 'tree/sub/b.txt', type: 'file', size: 5, mtime: expect.any(String), mode: expect.any(String) },
      { path: 'tree/sub/deeper', type: 'dir', size: 0, mtime: expect.any(String), mode: expect.any(String) },
      { path: 'tree/sub/q?x#y.txt', type: 'file', size: 16, mtime: expect.any(String), mode: expect.any(String) },
    ]);
  });

  test('-C - resumes a download the network cut, with a Range for what is missing', async () => {
    const p = await cuttingProxy();
    const out = outDir();
    const file = join(out, 'big.bin');
    const cut = await run('curl', ['-sS', '-o', file, url('/big.bin', p.port)]);
    expect(cut.code).not.toBe(0);
    const kept = statSync(file).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(big.length);
    const resumed = await run('curl', ['-sS', '-C', '-', '-o', file, url('/big.bin', p.port)]);
    expect(resumed.code).toBe(0);
    expect(rangeAsked(p)).toBe(`bytes=${kept}-`);
    expect(readFileSync(file).equals(big)).toBe(true);
  });
});

withCurl('--no-http', () => {
  test('no url line, and curl gets the classic answer instead of HTTP', async () => {
    const plain = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce', '--no-http']);
    try {
      expect(plain.stdout()).not.toMatch(/^url /m);
      expect(server.stdout()).toContain(`url http://127.0.0.1:${server.port}/`);
      const r = await run('curl', ['-sS', '--http0.9', url('/tree/a.txt', plain.port)]);
      expect(r.stdout).toBe('-1      ');
    } finally {
      await plain.stop();
    }
  });
});

withWget('wget', () => {
  test('-c resumes a download the network cut', async () => {
    const p = await cuttingProxy();
    const out = outDir();
    const cut = await run('wget', ['-q', '--tries=1', '-P', out, url('/big.bin', p.port)]);
    expect(cut.code).not.toBe(0);
    const kept = statSync(join(out, 'big.bin')).size;
    expect(kept).toBeLessThan(big.length);
    const resumed = await run('wget', ['-q', '-c', '--tries=1', '-P', out, url('/big.bin', p.port)]);
    expect(resumed.code).toBe(0);
    expect(rangeAsked(p)).toBe(`bytes=${kept}-`);
    expect(readFileSync(join(out, 'big.bin')).equals(big)).toBe(true);
  });

  test('-r -np mirrors a tree through the links of the HTML listing, odd names included', async () => {
    const out = outDir();
    const r = await run('wget', ['-q', '-r', '-np', '-nH', '--restrict-file-names=nocontrol', '-e', 'robots=off', '-P', out, url('/tree/')]);
    expect(r.stderr).toBe('');
    const got: Record<string, Buffer> = {};
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (name !== 'index.html') got[relative(join(out, 'tree'), p)] = readFileSync(p);
      }
    };
    walk(join(out, 'tree'));
    expect(Object.keys(got).sort()).toEqual(Object.keys(tree).sort());
    for (const [name, data] of Object.entries(tree)) expect({ name, same: got[name]!.equals(data) }).toEqual({ name, same: true });
    // Nothing above the starting directory was fetched.
    expect(readdirSync(out)).toEqual(['tree']);
  });
});
