// The file service over the TLS adapter: byte-identical fetches, trust failures, and plain/TLS mismatches with typed answers.
import { describe, test, expect, beforeAll, afterAll, afterEach } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetkitError } from '../../src/errors.js';
import { fetchFile } from '../../src/services/file/fetch/session.js';
import { startFileServer, type FileServer } from '../../src/services/file/serve/index.js';
import { TLS_REQUIRED_MESSAGE, tlsClientTransport, tlsServerTransport } from '../../src/services/file-tls.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { rejection } from '../helpers/errors.js';

let root: string;
let served: string;
let identityDir: string;
const content = randomBytes(3 * 1024 * 1024 + 17);
const sha = createHash('sha256').update(content).digest('hex');

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'netkit-tlsfile-'));
  served = join(root, 'served');
  identityDir = join(root, 'identity');
  mkdirSync(served);
  writeFileSync(join(served, 'data.bin'), content);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const servers: FileServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close(0);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function outDir(): string {
  const d = mkdtempSync(join(root, 'out-'));
  dirs.push(d);
  return d;
}

async function serveTls() {
  const { transport, identity } = tlsServerTransport({ identityDir });
  const server = await startFileServer({ dir: served, transport, host: '127.0.0.1', port: 0 });
  servers.push(server);
  return { server, identity };
}

describe('file service over TLS', () => {
  test('a pinned fetch is byte-identical and verified; the listening transport is "tls"', async () => {
    const { server, identity } = await serveTls();
    expect(server.transport).toBe('tls');
    const secure: string[] = [];
    const out = outDir();
    const result = await fetchFile({
      name: 'data.bin',
      host: '127.0.0.1',
      port: server.port,
      outDir: out,
      transport: tlsClientTransport({ fingerprint: identity.fingerprint, onFirstUse: () => undefined, onSecure: (i) => secure.push(`${i.protocol} ${i.trust.how}`) }),
    });
    expect(result.verified).toBe(true);
    expect(result.sha256).toBe(sha);
    expect(readFileSync(join(out, 'data.bin')).equals(content)).toBe(true);
    expect(secure).toEqual(['TLSv1.3 pin']);
  });

  test('the stored identity is reused: same fingerprint on the next start', async () => {
    const a = tlsServerTransport({ identityDir }).identity;
    const b = tlsServerTransport({ identityDir }).identity;
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(existsSync(join(identityDir, 'key.pem'))).toBe(true);
  });

  test('TOFU through the service: told once, then known; a wrong pin leaves no file behind', async () => {
    const { server } = await serveTls();
    const told: string[] = [];
    const knownHostsFile = join(outDir(), 'known_hosts');
    const transport = tlsClientTransport({ knownHostsFile, onFirstUse: (i) => told.push(i.fingerprint) });
    for (let i = 0; i < 2; i++) {
      const r = await fetchFile({ name: 'data.bin', host: '127.0.0.1', port: server.port, outDir: outDir(), transport });
      expect(r.sha256).toBe(sha);
    }
    expect(told).toHaveLength(1);

    const out = outDir();
    const err = await rejection(
      fetchFile({ name: 'data.bin', host: '127.0.0.1', port: server.port, outDir: out, transport: tlsClientTransport({ fingerprint: `sha256:${'0'.repeat(64)}`, onFirstUse: () => undefined }) }),
    );
    expect(err.code).toBe('TLS_TRUST');
    expect(existsSync(join(out, 'data.bin'))).toBe(false);
    expect(readdirSync(out)).toEqual([]); // not even a staging directory
  });

  test('--tls-ca with the server certificate as the CA, by name', async () => {
    const { server, identity } = await serveTls();
    const caFile = join(outDir(), 'ca.pem');
    writeFileSync(caFile, identity.certPem);
    const r = await fetchFile({ name: 'data.bin', host: 'localhost', port: server.port, outDir: outDir(), transport: tlsClientTransport({ caFile, onFirstUse: () => undefined }) });
    expect(r.sha256).toBe(sha);
  });

  test('option mistakes are usage errors', () => {
    expect(() => tlsClientTransport({ fingerprint: 'nope', onFirstUse: () => undefined })).toThrow(NetkitError);
    expect(() => tlsClientTransport({ fingerprint: `sha256:${'a'.repeat(64)}`, caFile: '/x', onFirstUse: () => undefined })).toThrow(/alternatives/);
    expect(() => tlsServerTransport({ certPath: '/x' })).toThrow(/go together/);
  });
});

describe('plain and TLS mismatched, through the real services', () => {
  test('plain netkit fetch -> TLS server: a typed refusal saying to use --tls, quickly', async () => {
    const { server } = await serveTls();
    const err = await rejection(fetchFile({ name: 'data.bin', host: '127.0.0.1', port: server.port, outDir: outDir(), transport: tcpTransport, timeoutMs: 20_000 }));
    expect(err.code).toBe('BAD_REQUEST');
    expect(err.message).toContain(TLS_REQUIRED_MESSAGE);
  });

  test('classic (seed-style) client -> TLS server: the classic "missing" answer, then close', async () => {
    const { server } = await serveTls();
    const sock = net.connect(server.port, '127.0.0.1');
    sock.on('error', () => undefined);
    sock.write('data.bin');
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    await once(sock, 'close');
    expect(Buffer.concat(chunks).toString('ascii').trim()).toBe('-1');
  });

  test('TLS fetch -> plain server: a clear "not TLS" error, not a hang', async () => {
    const server = await startFileServer({ dir: served, transport: tcpTransport, host: '127.0.0.1', port: 0 });
    servers.push(server);
    const t0 = Date.now();
    const err = await rejection(
      fetchFile({ name: 'data.bin', host: '127.0.0.1', port: server.port, outDir: outDir(), timeoutMs: 20_000, transport: tlsClientTransport({ fingerprint: `sha256:${'a'.repeat(64)}`, onFirstUse: () => undefined }) }),
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err.code).toBe('PROTOCOL');
    expect(err.message).toMatch(/not TLS|does not seem to speak TLS/);
    expect(err.hint).toContain('--tls');
  });
});
