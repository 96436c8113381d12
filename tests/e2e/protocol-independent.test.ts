// An independent client, written in Python from docs/protocol.md alone, against the built netkit servers:
// disk v1 with and without a secret, file v1 fetch and resume, a session with LIST and pipelined requests,
// the classic file protocol and HTTP ranges with Repr-Digest. Its output is checked against the files and statfs.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, stat, statfs, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type Server } from '../helpers/netkit.js';

const CLIENT = fileURLToPath(new URL('../helpers/indep_client.py', import.meta.url));
const PYTHON = 'python3';
const TOKEN = 'Vq3Lm8Tz1Rw6Yb4Nc9Kx2Jp7Hd5Gs0Fa3Eu8Io1Py';

function skipReason(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import sys; assert sys.version_info >= (3, 6)'], { stdio: 'ignore' });
  return r.status === 0 ? null : 'python3 (3.6 or later) is not on PATH';
}
const reason = skipReason();
if (reason) console.warn(`skipping the independent-client tests: ${reason}`);
const maybe = reason ? describe.skip : describe;

interface Fs {
  served: boolean;
  total: number;
  used: number;
  available: number;
  free: number;
  mount: string;
  fstype: string;
  inodes_total?: number;
  inodes_free?: number;
  readonly?: boolean;
}
interface Entry {
  name: string;
  kind: string;
  size: number;
  mtime: number;
  mode: number;
  reason?: number;
}

/** Run the Python client; resolve with its parsed JSON output (rejects with its stderr on failure). */
function client(args: string[]): Promise<any> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [CLIENT, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`indep_client ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let served: string;
let tokenFile: string;
const servers: Server[] = [];
const files: Record<string, Buffer> = {};

async function serve(args: string[]): Promise<Server> {
  const s = await startServer([...args, '--host', '127.0.0.1', '--port', '0'], { env: { NETKIT_TOKEN: undefined } });
  servers.push(s);
  return s;
}

beforeAll(async () => {
  if (reason) return;
  dir = await mkdtemp(join(tmpdir(), 'netkit-indep-'));
  served = join(dir, 'served');
  tokenFile = join(dir, 'token');
  // A byte-order mark and a form feed around the secret: the documented trim removes both.
  await writeFile(tokenFile, `\ufeff${TOKEN}\f\n`, { mode: 0o600 });
  files['big.bin'] = randomBytes(700_000);
  files['hi.txt'] = Buffer.from('hello\n');
  files['photos/2024/a.jpg'] = randomBytes(5_000);
  files['photos/a0.txt'] = Buffer.from('beside the directory a0\n');
  files['photos/a0/x'] = Buffer.from('x');
  files['photos/B'] = Buffer.from('upper case first');
  files['photos/a b'] = Buffer.from('a space');
  files['photos/é'] = Buffer.from('non-ASCII last');
  for (const [name, data] of Object.entries(files)) {
    await mkdir(join(served, name, '..'), { recursive: true });
    await writeFile(join(served, name), data);
  }
  await chmod(join(served, 'photos/a0.txt'), 0o600);
  await symlink('/etc/hostname', join(served, 'photos/out'));
  await symlink('../hi.txt', join(served, 'photos/hi-link'));
}, 20_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

maybe('an independent client written from docs/protocol.md', () => {
  test("section 5.4's keys and MACs are what the client computes from sections 1.8, 2.9, 2.12 and 5", async () => {
    const out = await client(['vectors', fileURLToPath(new URL('../../docs/protocol.md', import.meta.url))]);
    expect(out.checked).toHaveLength(14);
  });

  test('disk v1, without and with the secret, scope 0 and 1, matches statfs of the served path', async () => {
    const plain = await serve(['disk', 'serve', '--path', served, '--quiet']);
    const sealed = await serve(['disk', 'serve', '--path', served, '--quiet', '--token-file', tokenFile]);
    const st = await statfs(served);
    const real = await realpath(served);
    for (const [s, extra] of [[plain, []], [sealed, ['--token-file', tokenFile]]] as const) {
      for (const scope of ['0', '1']) {
        const out = await client(['disk', '127.0.0.1', String(s.port), '--scope', scope, ...extra]);
        expect(typeof out.host).toBe('string');
        expect(Math.abs(out.time - Date.now())).toBeLessThan(10_000);
        const fss = out.filesystems as Fs[];
        const mine = fss.filter((f) => f.served);
        expect(mine).toHaveLength(1);
        if (scope === '0') expect(fss).toHaveLength(1);
        const f = mine[0]!;
        expect(f.total).toBe(st.blocks * st.bsize);
        expect(f.used + f.free).toBe(f.total);
        expect(f.available).toBeLessThanOrEqual(f.free);
        // Others write to this filesystem too: the figures were read within the last second or so.
        expect(Math.abs(f.free - st.bfree * st.bsize)).toBeLessThan(256 * 2 ** 20);
        expect(f.inodes_total).toBe(st.files);
        expect(real === f.mount || real.startsWith(f.mount.endsWith('/') ? f.mount : `${f.mount}/`)).toBe(true);
        expect(f.fstype).not.toBe('');
        expect(typeof f.readonly).toBe('boolean');
      }
    }
    // Without the secret, the server with one stays silent: the client gives up.
    await expect(client(['disk', '127.0.0.1', String(sealed.port), '--timeout', '0.2', '--retries', '1'])).rejects.toThrow(/no answer/);
  });

  test('disk v1 with the secret: a scope-1 answer too large for 1,200 bytes is asked again, padded to NEED', async () => {
    // Every mount point and type (proc, sysfs, cgroups...): more filesystems than 1,200 bytes can carry.
    const s = await serve(['disk', 'serve', '--path', served, '--token-file', tokenFile, '--fs-include', '*', '--mount-include', '/**']);
    const out = await client(['disk', '127.0.0.1', String(s.port), '--scope', '1', '--token-file', tokenFile]);
    const fss = out.filesystems as Fs[];
    if (out.request_size === 1200) {
      console.warn('this machine has too few mounts for a TOO_LARGE answer; the retry path was not exercised');
      return;
    }
    expect(out.request_size).toBeGreaterThan(1200);
    expect(fss.length).toBeGreaterThan(3);
    expect(fss.filter((f) => f.served)).toHaveLength(1);
    const mounts = fss.map((f) => f.mount);
    expect(mounts).toEqual([...mounts].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(s.stderr()).toMatch(/too-large \(1200B -> \d+B\)/);
  });

  describe('file server', () => {
    let plain: Server;
    let sealed: Server;
    beforeAll(async () => {
      if (reason) return;
      plain = await serve(['file', 'serve', served, '--quiet', '--no-announce']);
      sealed = await serve(['file', 'serve', served, '--quiet', '--no-announce', '--token-file', tokenFile]);
    }, 20_000);

    test('v1 fetch, without and with the secret, whole and resumed from an offset; the TRAILER verifies', async () => {
      const big = files['big.bin']!;
      const st = await stat(join(served, 'big.bin'));
      for (const [s, extra] of [[plain, []], [sealed, ['--token-file', tokenFile]]] as const) {
        for (const cut of [undefined, '123457']) {
          const out = join(dir, `out-${s.port}-${cut ?? 'whole'}`);
          const r = await client(['fetch', '127.0.0.1', String(s.port), 'big.bin', out, ...extra, ...(cut ? ['--cut', cut] : [])]);
          expect(r).toMatchObject({ size: big.length, sha256: sha(big), verified: true, resumed_from: cut ? Number(cut) : null });
          expect(r.mtime).toBe(Math.floor(st.mtimeMs));
          expect(r.mode).toBe(st.mode & 0o7777);
          expect((await readFile(out)).equals(big)).toBe(true);
        }
      }
      // Without the secret the client stops at AUTH_REQUIRED, as documented.
      await expect(client(['fetch', '127.0.0.1', String(sealed.port), 'hi.txt', join(dir, 'no')])).rejects.toThrow(/requires the secret/);
    });

    test('a session: recursive LIST with LEFT_OUT and pipelined REQUESTs; END count and hash check out', async () => {
      const names = ['hi.txt', 'photos/2024/a.jpg', 'photos', 'nope.txt', 'photos/hi-link', 'big.bin'];
      const expected: Entry[] = [];
      const listed = async (rel: string): Promise<void> => {
        for (const name of ['2024', '2024/a.jpg', 'B', 'a b', 'a0', 'a0/x', 'a0.txt', 'hi-link', 'out', 'é']) {
          const path = `${rel}/${name}`;
          if (name === 'out') {
            expected.push({ name: path, kind: 'left-out', size: 0, mtime: 0, mode: 0, reason: 7 });
            continue;
          }
          const st = await stat(join(served, path));
          const isDir = st.isDirectory();
          expected.push({ name: path, kind: isDir ? 'dir' : 'file', size: isDir ? 0 : st.size, mtime: Math.floor(st.mtimeMs), mode: st.mode & 0o7777 });
        }
      };
      await listed('photos');
      for (const [s, extra] of [[plain, []], [sealed, ['--token-file', tokenFile]]] as const) {
        const out = await client(['session', '127.0.0.1', String(s.port), 'photos', ...names, ...extra]);
        expect(out.early).toBe(extra.length === 0);
        expect(out.entries).toEqual(expected);
        expect(out.skipped).toBe(1);
        expect(out.files['hi.txt']).toMatchObject({ size: 6, sha256: sha(files['hi.txt']!) });
        expect(out.files['photos/2024/a.jpg']).toMatchObject({ sha256: sha(files['photos/2024/a.jpg']!) });
        expect(out.files['photos/hi-link']).toMatchObject({ sha256: sha(files['hi.txt']!) });
        expect(out.files['big.bin']).toMatchObject({ size: files['big.bin']!.length, sha256: sha(files['big.bin']!) });
        expect(out.files['photos']).toEqual({ status: 10, message: 'is a directory' });
        expect(out.files['nope.txt']).toEqual({ status: 1, message: 'no such file' });
      }
      // A LIST NAME is normalised like a REQUEST's: the entries are named from the served directory.
      const odd = await client(['session', '127.0.0.1', String(plain.port), './photos//2024/']);
      expect(odd.entries.map((e: Entry) => e.name)).toEqual(['photos/2024/a.jpg']);
    });

    test('the classic file protocol: an 8-byte size field, then the bytes', async () => {
      const r = await client(['classic', '127.0.0.1', String(plain.port), 'photos/2024/a.jpg']);
      expect(r).toEqual({ size: 5_000, sha256: sha(files['photos/2024/a.jpg']!), field: '5000    ' });
      await expect(client(['classic', '127.0.0.1', String(plain.port), 'nope.txt'])).rejects.toThrow(/refused \(-1\)/);
    });

    test('HTTP: two ranges put the file together, checked against Repr-Digest (a trailer, then a header)', async () => {
      const fresh = randomBytes(200_000);
      await writeFile(join(served, 'fresh.bin'), fresh);
      const first = await client(['http', '127.0.0.1', String(plain.port), 'fresh.bin', '--from', '4096']);
      expect(first).toMatchObject({ size: fresh.length, sha256: sha(fresh), digest_in: 'trailer', verified: true });
      expect(first.etag).toMatch(/^"[0-9a-f]{32}"$/);
      // Sent whole once (the trailer answer hashed every byte): the server now knows the digest.
      const v1 = await client(['fetch', '127.0.0.1', String(plain.port), 'fresh.bin', join(dir, 'fresh-v1')]);
      expect(first.etag).toBe(`"${v1.validator}"`); // the ETag is the v1 VALIDATOR in hex (section 7.3)
      const again = await client(['http', '127.0.0.1', String(plain.port), 'fresh.bin', '--from', '100']);
      expect(again).toMatchObject({ sha256: sha(fresh), digest_in: 'header', etag: first.etag });
      // A file of at most 64 KiB sent over v1 leaves no digest behind (section 2.7); a trailer answer does.
      const small = join(dir, 'small-v1');
      await client(['fetch', '127.0.0.1', String(plain.port), 'photos/2024/a.jpg', small]);
      const head = (): Promise<string | null> =>
        fetch(`http://127.0.0.1:${plain.port}/photos/2024/a.jpg`, { method: 'HEAD' }).then((r) => r.headers.get('repr-digest'));
      expect(await head()).toBeNull();
      const viaTrailer = await client(['http', '127.0.0.1', String(plain.port), 'photos/2024/a.jpg', '--from', '10']);
      expect(viaTrailer).toMatchObject({ digest_in: 'trailer', sha256: sha(files['photos/2024/a.jpg']!) });
      expect(await head()).toBe(`sha-256=:${createHash('sha256').update(files['photos/2024/a.jpg']!).digest('base64')}:`);
    });
  });
});
