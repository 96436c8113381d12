// The command line at its edges: empty option values, a closed pipe or a full device on stdout for every command, -H forms, peer text in JSON, the bar in 40/60/100-column terminals.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeAnswer, readId } from '../../src/protocol/disk-v1.js';
import { BIN, runNetkit, startServer, type RunResult, type Server } from '../helpers/netkit.js';

let base: string;
let served: string;
let files: Server;
let disks: Server;
const big = randomBytes(48 * 1024 * 1024);

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-cli-io-'));
  served = join(base, 'served');
  mkdirSync(served);
  writeFileSync(join(served, 'small.txt'), 'hello\n');
  writeFileSync(join(served, 'a-rather-long-file-name-for-a-narrow-terminal.bin'), big);
  files = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet']);
  disks = await startServer(['disk', 'serve', '--host', '127.0.0.1', '--port', '0', '--quiet']);
}, 30_000);
afterAll(async () => {
  await files.stop('SIGKILL');
  await disks.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

const outDir = (): string => mkdtempSync(join(base, 'out-'));

describe('an option given an empty value is a usage error, never its default', () => {
  test.each([
    [['file', 'fetch', 'x', '-H', ''], /option -H needs a value/],
    [['file', 'fetch', 'x', '-H'], /option -H needs a value/],
    [['file', 'fetch', 'x', '-H', '--json'], /option -H needs a value/],
    [['file', 'fetch', 'x', '--host='], /option --host needs a value/],
    [['file', 'fetch', 'x', '-p', '-H', '127.0.0.1'], /option -p needs a value/],
    [['file', 'fetch', 'x', '-o'], /option -o needs a value/],
    [['file', 'fetch', 'x', '-o', ''], /option -o needs a value/],
    [['file', 'fetch', 'x', '--timeout'], /option --timeout needs a value/],
    [['file', 'fetch', 'x', '--retries'], /option --retries needs a value/],
    [['file', 'fetch', 'x', '--token-file', ''], /option --token-file needs a value/],
    [['file', 'fetch', ''], /an empty NAME is not allowed/],
    [['file', 'fetch', 'x', '--port', '0'], /invalid --port '0': expected a number from 1 to 65535/],
    [['file', 'fetch', 'x', '-H', '127.0.0.1:0'], /invalid port '0'/],
    [['file', 'fetch', 'x', '-H', 'h:1', '--port', '2'], /two different ports/],
    [['file', 'serve', '--host'], /option --host needs a value/],
    [['disk', 'query', '-H'], /option -H needs a value/],
    [['disk', 'query', '-p'], /option -p needs a value/],
    [['disk', 'query', ''], /an empty HOSTS is not allowed|empty host name/],
    [['disk', 'serve', '--path'], /option --path needs a value/],
  ])('%j', async (args, message) => {
    const r = await runNetkit(args, { timeoutMs: 10_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^hint: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('one way to name a server', () => {
  test('file fetch -H HOST:PORT, -H [v6]:PORT, HOST:NAME and netkit://HOST:PORT/NAME all reach it', async () => {
    for (const args of [
      ['small.txt', '-H', `127.0.0.1:${files.port}`],
      ['small.txt', '-H', '[::ffff:127.0.0.1]', '-p', String(files.port)],
      [`127.0.0.1:small.txt`, '--port', String(files.port)],
      [`netkit://127.0.0.1:${files.port}/small.txt`],
    ]) {
      const out = outDir();
      const r = await runNetkit(['file', 'fetch', ...args, '-o', out]);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(readFileSync(join(out, 'small.txt'), 'utf8')).toBe('hello\n');
    }
  });

  test('disk query -H HOST:PORT adds to the positional hosts', async () => {
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${disks.port}`, '-H', `127.0.0.1:${disks.port}`, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveLength(2);
  });

  test('the classic hint reads as a sentence and says a netkit server needs --classic', async () => {
    const r = await runNetkit(['disk', 'query', '--classic', `127.0.0.1:${disks.port}`, '-t', '0.2', '-r', '0']);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/hint: is the host up, a classic disk server \(a seed program, or `netkit disk serve --classic`: a netkit disk server answers classic queries only with --classic\) running there, and UDP port \d+ open/);
  });
});

describe('peer text in --json', () => {
  test('C1 controls and bidi overrides from a hostile disk server are escaped, as in the table', async () => {
    const evil = 'box\u009b2J\u202eevil';
    const sock = dgram.createSocket('udp4');
    sock.on('message', (msg, from) => {
      const answer = encodeAnswer(readId(msg), { host: evil, time: Date.now(), filesystems: [{ mount: '/\u009b', fstype: 'ext4', device: 'd', total: 10n, used: 5n, available: 5n, free: 5n, served: true }] });
      sock.send(answer, from.port, from.address);
    });
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    try {
      const r = await runNetkit(['disk', 'query', `127.0.0.1:${sock.address().port}`, '--json']);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(/[\u0080-\u009f\u202a-\u202e]/);
      expect(r.stdout).toContain('box\\u009b2J\\u202eevil');
      expect(JSON.parse(r.stdout)[0].serverHost).toBe(evil);
    } finally {
      sock.close();
    }
  });
});

/** Every command, with what it needs to get as far as writing its result (built once the servers run). */
const COMMANDS = ['--help', 'file fetch --help', '--version', 'token', 'disk query', 'disk query --json', 'disk serve', 'file serve', 'file fetch', 'file fetch --json'];
function argsOf(name: string): string[] {
  const all: Array<[string, string[]]> = [
    ['--help', ['--help']],
    ['file fetch --help', ['file', 'fetch', '--help']],
    ['--version', ['--version']],
    ['token', ['token']],
    ['disk query', ['disk', 'query', `127.0.0.1:${disks.port}`]],
    ['disk query --json', ['disk', 'query', `127.0.0.1:${disks.port}`, '--json']],
    ['disk serve', ['disk', 'serve', '--host', '127.0.0.1', '--port', '0']],
    ['file serve', ['file', 'serve', served, '--host', '127.0.0.1', '--port', '0']],
    ['file fetch', ['file', 'fetch', 'small.txt', '-H', `127.0.0.1:${files.port}`, '--force', '-o', base]],
    ['file fetch --json', ['file', 'fetch', 'small.txt', '-H', `127.0.0.1:${files.port}`, '--force', '-o', base, '--json']],
  ];
  return all.find(([n]) => n === name)![1];
}

function expectOneLine(r: RunResult, why: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.code).toBe(15);
  expect(r.stderr).toMatch(why);
  expect(r.stderr).not.toMatch(/\n\s+at |internal error/);
}

describe('stdout that cannot be written', () => {
  test.each(COMMANDS)('%s > /dev/full: one line, exit 15', async (name) => {
    const args = argsOf(name);
    const child = spawn('sh', ['-c', `exec "$0" "$@" > /dev/full`, process.execPath, BIN, ...args], { env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    clearTimeout(timer);
    expectOneLine({ code, signal, stdout: '', stderr }, /^netkit: cannot write to stdout: no space left on the device$/m);
  });

  test.each(COMMANDS)('%s | (a reader that already left): one line, exit 15', async (name) => {
    const args = argsOf(name);
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1' } });
    child.stdout.destroy(); // the reading end is closed before netkit writes a byte
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    clearTimeout(timer);
    expectOneLine({ code, signal, stdout: '', stderr }, /^netkit: cannot write to stdout: the pipe is closed \(the reading command ended\)$/m);
  });
});

describe('the progress bar in a terminal', () => {
  test.each([40, 60, 100])('at %i columns every frame fits, with percentage, speed and ETA, and the name shortened first', async (columns) => {
    const out = outDir();
    const name = 'a-rather-long-file-name-for-a-narrow-terminal.bin';
    const cmd = [process.execPath, BIN, 'file', 'fetch', name, '-H', `127.0.0.1:${files.port}`, '-o', out].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qfec', `stty cols ${columns} rows 24; ${cmd}`, '/dev/null'], { env: { ...process.env, NO_COLOR: '1', TERM: 'xterm' } });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    const [code] = (await once(child, 'close')) as [number];
    expect(code).toBe(0);
    expect(existsSync(join(out, name))).toBe(true);
    const frames = text
      .replace(/\u001b\[1G/g, '\n')
      .replace(/\u001b(?:\[[0-9;?]*[A-Za-z]|[78])/g, '')
      .split(/[\r\n]/)
      .filter((f) => /\d%/.test(f));
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) {
      expect(f.length).toBeLessThan(columns);
      expect(f).toMatch(/\d+% .*(\S+\/s|-) .*ETA +\S+$/);
    }
    expect(frames.at(-1)).toMatch(/100%/);
    if (columns < 100) expect(frames.at(-1)).toContain('…');
  });
});
