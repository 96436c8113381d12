// `file fetch` at the edges of its command line: names netkit cannot save under (checked before anything is created), URL schemes, numeric options in --help and their hints, and what a stdout failure stops.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runNetkit, startServer, type RunResult, type Server } from '../helpers/netkit.js';

let base: string;
let served: string;
let server: Server;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-edges-'));
  served = join(base, 'served');
  mkdirSync(served);
  writeFileSync(join(served, 'small.txt'), 'hello\n');
  writeFileSync(join(served, 'big.bin'), Buffer.alloc(32 * 1024 * 1024, 7));
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet']);
});
afterAll(async () => {
  await server.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

const outDir = (): string => mkdtempSync(join(base, 'out-'));

function usage(r: RunResult, message: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('a name netkit cannot save under is refused before anything is created', () => {
  test.each([
    ['.netkit', []],
    ['.netkit', ['--classic']],
    ['dir/.netkit', []],
    ['dir/.netkit/', []],
  ])('%s %j: a usage error, and no staging directory is left behind', async (name, more) => {
    const out = outDir();
    usage(await runNetkit(['file', 'fetch', name, '-H', `127.0.0.1:${server.port}`, '-o', out, ...more]), /cannot save to '\.netkit': \.netkit in the output directory is where netkit keeps partial downloads/);
    expect(readdirSync(out)).toEqual([]);
  });

  test('over HTTP too, and with our own .netkit already there it is still a usage error, not "already exists"', async () => {
    const out = outDir();
    mkdirSync(join(out, '.netkit'), { mode: 0o700 });
    usage(await runNetkit(['file', 'fetch', `http://127.0.0.1:${server.port}/x/.netkit`, '-o', out]), /cannot save to '\.netkit'/);
    usage(await runNetkit(['file', 'fetch', 'x/.netkit', '-H', `127.0.0.1:${server.port}`, '-o', out]), /cannot save to '\.netkit'/);
    expect(readdirSync(out)).toEqual(['.netkit']);
  });

  test('-o naming a .netkit directory is refused (partial downloads and results would mix)', async () => {
    const out = outDir();
    mkdirSync(join(out, '.netkit'), { mode: 0o700 });
    usage(await runNetkit(['file', 'fetch', 'small.txt', '-H', `127.0.0.1:${server.port}`, '-o', join(out, '.netkit')]), /--out .*\.netkit: \.netkit is the name of netkit's staging directory/);
    expect(readdirSync(join(out, '.netkit'))).toEqual([]);
  });

  test('a name longer than a file system allows says so, not an errno name', async () => {
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', 'x'.repeat(300), '-H', `127.0.0.1:${server.port}`, '-o', out]);
    usage(r, /a name of 300 bytes, more than the 255 a file system allows/);
    expect(r.stderr).not.toMatch(/ENAMETOOLONG/);
    expect(readdirSync(out)).toEqual([]);
  });

  test('-o on a file system that takes no new files (/proc) is a local file problem (exit 9), not "not found"', async () => {
    const r = await runNetkit(['file', 'fetch', 'small.txt', '-H', `127.0.0.1:${server.port}`, '-o', '/proc']);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/cannot create the staging directory \/proc\/\.netkit: that file system takes no new files/);
  });
});

describe('URLs', () => {
  test('NETKIT:// in upper case is a netkit URL', async () => {
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', `NETKIT://127.0.0.1:${server.port}/small.txt`, '-o', out]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(join(out, 'small.txt'), 'utf8')).toBe('hello\n');
  });

  test('another scheme is never taken for scp HOST:NAME', async () => {
    usage(await runNetkit(['file', 'fetch', 'ftp://127.0.0.1/small.txt']), /cannot use 'ftp:\/\/127\.0\.0\.1\/small\.txt': netkit fetches netkit:\/\/, http:\/\/ and https:\/\/ URLs/);
  });

  test('file list of an http(s) URL (or a near-URL) is a usage error naming the listing it likely meant, never a host called http', async () => {
    const list = async (url: string, hint: string): Promise<void> => {
      const r = await runNetkit(['file', 'list', url]);
      usage(r, /file list lists a netkit file server's directories and takes no https?:\/\/ URL/);
      expect(r.stderr).toContain(`hint: name the directory and the server: ${hint}`);
      expect(r.stderr).not.toMatch(/resolve/);
    };
    await list(`http://127.0.0.1:${server.port}/`, `netkit file list '.' -H 127.0.0.1:${server.port}`);
    await list(`http://127.0.0.1:${server.port}/a/`, `netkit file list 'a/' -H 127.0.0.1:${server.port}`);
    await list('https://nas/a/b', "netkit file list 'a/b' -H nas --tls");
    await list('http:/nas/x', "netkit file list 'x' -H nas");
  });
});

describe('numeric options', () => {
  test('--help shows them as numbers with numeric defaults', async () => {
    const r = await runNetkit(['file', 'fetch', '--help']);
    expect(r.stdout).toMatch(/--port .*\n?.*\[number\] \[default: 8881\]/);
    expect(r.stdout).toMatch(/\[number\] \[default: 5\]/);
    expect(r.stdout).not.toMatch(/default: "5"/);
  });

  test.each([
    [['--retries='], /option --retries needs a value/],
    [['--retries', ''], /option --retries needs a value/],
    [['--retries', '0x10'], /invalid --retries '0x10'/],
    [['--retries', '1e1'], /invalid --retries '1e1'/],
  ])('%j is refused as written, not read as a number', async (more, message) => {
    usage(await runNetkit(['file', 'fetch', 'small.txt', '-H', `127.0.0.1:${server.port}`, ...more]), message);
  });

  test('--port 0 keeps its own hint', async () => {
    const r = await runNetkit(['file', 'fetch', 'small.txt', '--port', '0']);
    usage(r, /invalid --port '0'/);
    expect(r.stderr).toMatch(/^hint: a client needs the port the server listens on$/m);
  });
});

describe('a stdout that cannot be written', () => {
  test('stops a server, which says so instead of naming a signal that never came', async () => {
    const child = spawn('sh', ['-c', 'exec "$0" "$@" > /dev/full', process.execPath, BIN, 'file', 'serve', served, '--host', '127.0.0.1', '--port', '0']);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [code] = (await once(child, 'close')) as [number];
    expect(code).toBe(15);
    expect(stderr).toMatch(/^netkit: stdout cannot be written: no longer accepting/m);
    expect(stderr).not.toMatch(/SIGTERM/);
  });

  test('-o - into a full device: one message, exit 15, not "interrupted"', async () => {
    const child = spawn('sh', ['-c', 'exec "$0" "$@" > /dev/full', process.execPath, BIN, 'file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', '-']);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [code] = (await once(child, 'close')) as [number];
    expect(code).toBe(15);
    expect(stderr).toBe('netkit: cannot write to stdout: no space left on the device\n');
  });

  test('-o - to a reader that already left: the failure alone, no "wrote stdout" line before it', async () => {
    const child = spawn(process.execPath, [BIN, 'file', 'fetch', 'small.txt', '-H', `127.0.0.1:${server.port}`, '-o', '-'], { env: { ...process.env, NO_COLOR: '1' } });
    child.stdout.destroy(); // the reading end is closed before netkit writes a byte, as with `| head -0`
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code] = (await once(child, 'close')) as [number];
    clearTimeout(timer);
    expect(code).toBe(15);
    expect(stderr).not.toMatch(/wrote stdout/);
    expect(stderr.match(/^netkit: /gm)).toEqual(['netkit: ']);
    expect(stderr).toMatch(/^netkit: cannot write to stdout: the pipe is closed \(the reading command ended\)$/m);
  });
});
