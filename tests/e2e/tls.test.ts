// `netkit file serve|fetch --tls` as a user meets it: the built binary, a temp XDG config, pins, TOFU and mismatches.
import { describe, test, expect, beforeAll, afterAll, afterEach } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

let work: string;
let served: string;
let env: NodeJS.ProcessEnv;
const content = randomBytes(2 * 1024 * 1024 + 3);
const sha = createHash('sha256').update(content).digest('hex');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'netkit-e2e-tls-'));
  served = join(work, 'srv');
  mkdirSync(served);
  writeFileSync(join(served, 'f.bin'), content);
  env = { XDG_CONFIG_HOME: join(work, 'config') };
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

/** Start a server and wait (on its output, not a timer) for the fingerprint line when --tls is on. */
async function serve(args: string[]): Promise<{ server: Server; fingerprint?: string }> {
  const server = await startServer(['file', 'serve', served, '--port', '0', '--host', '127.0.0.1', ...args], { env });
  servers.push(server);
  if (!args.includes('--tls')) return { server };
  const re = /^tls fingerprint (sha256:[0-9a-f]{64})/m;
  while (!re.test(server.stdout())) await once(server.child.stdout, 'data');
  return { server, fingerprint: re.exec(server.stdout())![1] };
}

function out(): string {
  return mkdtempSync(join(work, 'out-'));
}

const fetch = (port: number, dir: string, args: string[]) =>
  runNetkit(['file', 'fetch', 'f.bin', '--host', '127.0.0.1', '--port', String(port), '-o', dir, ...args], { env });

describe('netkit file --tls', () => {
  test('serve prints its fingerprint; a pinned fetch is byte-identical; the key is 0600', async () => {
    const { server, fingerprint } = await serve(['--tls']);
    expect(server.line).toMatch(/^listening tls 127\.0\.0\.1:\d+$/);
    const dir = out();
    const r = await fetch(server.port, dir, ['--tls-fingerprint', fingerprint!]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`sha256 ${sha} verified`);
    expect(readFileSync(join(dir, 'f.bin')).equals(content)).toBe(true);
    expect(statSync(join(work, 'config', 'netkit', 'tls', 'key.pem')).mode & 0o777).toBe(0o600);
  });

  test('a wrong pin exits 11 and writes nothing', async () => {
    const { server } = await serve(['--tls']);
    const dir = out();
    const r = await fetch(server.port, dir, ['--tls-fingerprint', `sha256:${'0'.repeat(64)}`]);
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(/^netkit: the TLS certificate of 127\.0\.0\.1:\d+ does not match the pinned fingerprint/);
    expect(r.stderr).toMatch(/\nhint: /);
    expect(r.stdout).toBe('');
    expect(readdirSync(dir)).toEqual([]);
  });

  test('TOFU: the first fetch announces and records, the next is quiet, a changed certificate exits 11', async () => {
    const { server, fingerprint } = await serve(['--tls']);
    const first = await fetch(server.port, out(), ['--tls']);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(`first TLS connection to 127.0.0.1:${server.port}: trusting certificate ${fingerprint}`);
    const known = join(work, 'config', 'netkit', 'known_hosts');
    expect(readFileSync(known, 'utf8')).toContain(`127.0.0.1:${server.port} ${fingerprint}\n`);

    const second = await fetch(server.port, out(), ['--tls', '--quiet']);
    expect(second.code).toBe(0);
    expect(second.stderr).toBe('');

    // The server comes back on the same port with another certificate (its own --tls-cert/--tls-key).
    const port = server.port;
    await servers.pop()!.stop();
    const { generateSelfSigned } = await import('../../src/transport/cert.js');
    const id = generateSelfSigned();
    writeFileSync(join(work, 'c.pem'), id.certPem);
    writeFileSync(join(work, 'k.pem'), id.keyPem, { mode: 0o600 });
    const again = await startServer(['file', 'serve', served, '--port', String(port), '--host', '127.0.0.1', '--tls-cert', join(work, 'c.pem'), '--tls-key', join(work, 'k.pem')], { env });
    servers.push(again);
    const third = await fetch(port, out(), ['--tls']);
    expect(third.code).toBe(11);
    expect(third.stderr).toContain('has CHANGED');
    expect(third.stderr).toMatch(/delete line \d+ of .*known_hosts/);
  });

  test('plain fetch -> TLS server and TLS fetch -> plain server: clear messages, no hang', async () => {
    const { server: tlsServer } = await serve(['--tls']);
    const plain = await fetch(tlsServer.port, out(), ['--timeout', '20s']);
    expect(plain.code).toBe(4);
    expect(plain.stderr).toContain("rejected the request for 'f.bin': this server requires TLS: fetch with --tls");
    // With a local copy to compare, no request travels with the HELLO: the refusal is of the connection,
    // not of a name ''.
    const had = out();
    writeFileSync(join(had, 'f.bin'), 'an older copy');
    const again = await fetch(tlsServer.port, had, ['--timeout', '20s']);
    expect(again.code).toBe(4);
    expect(again.stderr).toContain('refused the connection: this server requires TLS: fetch with --tls');
    expect(again.stderr).not.toContain("for ''");

    const { server: plainServer } = await serve([]);
    const tls = await fetch(plainServer.port, out(), ['--tls', '--timeout', '20s']);
    expect(tls.code).toBe(8);
    expect(tls.stderr).toMatch(/not TLS|does not seem to speak TLS/);
    expect(tls.stderr).toContain('hint: is the server running with --tls?');
  });

  test('--classic with --tls is a usage error', async () => {
    const r = await runNetkit(['file', 'fetch', 'x', '--classic', '--tls'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^netkit: --classic and --tls/);
  });
});
