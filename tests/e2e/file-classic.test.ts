// Classic interoperability both ways: the seed's client against `netkit file serve`, and `fetch --classic` against the seed's server.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

const SEED = fileURLToPath(new URL('../helpers/seed_file.py', import.meta.url));

let base: string;
let served: string;
// First byte is not an ASCII digit or a space: the only kind of file a seed server can deliver unambiguously.
const binary = Buffer.concat([Buffer.from('B'), randomBytes(2 * 1024 * 1024 + 3)]);

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-classic-e2e-'));
  served = join(base, 'served');
  mkdirSync(served);
  writeFileSync(join(served, 'binary.bin'), binary);
  writeFileSync(join(served, 'empty.txt'), '');
  writeFileSync(join(served, 'text.txt'), 'olá, mundo\n');
  writeFileSync(join(served, '2024-report.txt'), '2024 was a year');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const servers: Server[] = [];
const seeds: ChildProcessWithoutNullStreams[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop('SIGKILL');
  for (const c of seeds.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await once(c, 'exit');
    }
  }
});

async function seedServer(count: number, linger = false): Promise<{ port: number; child: ChildProcessWithoutNullStreams }> {
  const child = spawn('python3', [SEED, 'server', '--port', '0', '--dir', served, '--count', String(count), ...(linger ? ['--linger'] : [])]);
  seeds.push(child);
  let out = '';
  child.stdout.setEncoding('utf8');
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: string) => {
      out += d;
      const m = /listening tcp [^:]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`seed server exited (${code})`)));
  });
  return { port, child };
}

async function seedClient(port: number, name: string, out: string): Promise<{ code: number | null; stdout: string }> {
  const child = spawn('python3', [SEED, 'client', '--port', String(port), '--name', name, '--out', out]);
  seeds.push(child);
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stdin.end();
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout };
}

async function netkitServer(): Promise<Server> {
  const s = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0']);
  servers.push(s);
  return s;
}

const outDir = (): string => mkdtempSync(join(base, 'out-'));

describe('the seed client against netkit file serve', () => {
  test('a binary file arrives byte-identical (the size field is exactly the 8 bytes recv(8) takes)', async () => {
    const s = await netkitServer();
    const out = outDir();
    const r = await seedClient(s.port, 'binary.bin', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Tamanho do arquivo 2097156/);
    expect(r.stdout).toMatch(/Transferência Concluída!/);
    expect(readFileSync(join(out, 'binary.bin')).equals(binary)).toBe(true);
  });

  test('an empty file and a text file', async () => {
    const s = await netkitServer();
    const out = outDir();
    expect((await seedClient(s.port, 'empty.txt', out)).code).toBe(0);
    expect(readFileSync(join(out, 'empty.txt')).length).toBe(0);
    expect((await seedClient(s.port, 'text.txt', out)).code).toBe(0);
    expect(readFileSync(join(out, 'text.txt'), 'utf8')).toBe('olá, mundo\n');
  });

  test('a missing file gets -1: "Arquivo não encontrado!"', async () => {
    const s = await netkitServer();
    const r = await seedClient(s.port, 'missing.txt', outDir());
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/Arquivo não encontrado!/);
  });
});

describe('netkit file fetch --classic against the seed server', () => {
  test('a file whose first byte is not a digit arrives byte-identical, reported as unverified', async () => {
    const { port } = await seedServer(2);
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', 'binary.bin', '--classic', '--host', '127.0.0.1', '--port', String(port), '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/UNVERIFIED/);
    expect(readFileSync(join(out, 'binary.bin')).equals(binary)).toBe(true);
    const t = await runNetkit(['file', 'fetch', 'text.txt', '--classic', '--host', '127.0.0.1', '--port', String(port), '--out', out, '--json']);
    expect(t.code).toBe(0);
    expect(JSON.parse(t.stdout)).toMatchObject({ ok: true, verified: false, protocol: 'classic', size: 12 });
    expect(readFileSync(join(out, 'text.txt'), 'utf8')).toBe('olá, mundo\n');
  });

  test('a seed server that keeps the connection open after the last byte: done at the announced size', async () => {
    const { port } = await seedServer(1, true);
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', 'binary.bin', '--classic', '--host', '127.0.0.1', '--port', String(port), '--out', out, '--timeout', '20s']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, 'binary.bin')).equals(binary)).toBe(true);
  });

  test('a file that starts with digits cannot be told from its size: exit 8, nothing saved', async () => {
    const { port } = await seedServer(1);
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', '2024-report.txt', '--classic', '--host', '127.0.0.1', '--port', String(port), '--out', out]);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/starts with (white space, or with )?digits/);
    expect(readdirSync(out)).toEqual([]);
  });

  test('an empty file (size "0" and the end of the stream)', async () => {
    const { port } = await seedServer(1);
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', 'empty.txt', '--classic', '--host', '127.0.0.1', '--port', String(port), '--out', out]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, 'empty.txt')).length).toBe(0);
  });

  test('-1 from the seed server exits 3', async () => {
    const { port } = await seedServer(1);
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', 'missing.txt', '--classic', '--host', '127.0.0.1', '--port', String(port), '--out', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/has no file 'missing\.txt'/);
    expect(existsSync(join(out, 'missing.txt'))).toBe(false);
  });

  test('--classic against a netkit server: the padded size is ambiguous, so it refuses and says why', async () => {
    const s = await netkitServer();
    const out = outDir();
    const r = await runNetkit(['file', 'fetch', 'text.txt', '--classic', '--host', '127.0.0.1', '--port', String(s.port), '--out', out]);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/followed by a space/);
    expect(r.stderr).toMatch(/without --classic/);
    expect(readdirSync(out)).toEqual([]);
  });
});
