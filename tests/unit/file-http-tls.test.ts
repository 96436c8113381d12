// HTTPS on a TLS file server's port, and the secret over HTTP: plain HTTP refused, a bearer token over TLS checked with the v1 hold-off, and `fetch https://` with a pin.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchFile } from '../../src/services/file/fetch/session.js';
import { startFileServer, type FileServer, type ServeOptions, type TransferLog } from '../../src/services/file/serve/index.js';
import { tlsClientTransport, tlsServerTransport } from '../../src/services/file-tls.js';
import { FailureThrottle } from '../../src/services/limits.js';
import { secretFromText } from '../../src/services/secret.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { rejection } from '../helpers/errors.js';
import { rawAuthFetch } from '../helpers/raw-file-client.js';
import { raw, request, statusOf } from '../helpers/http-client.js';

let root: string;
let served: string;
let identityDir: string;
const content = randomBytes(2 * 1024 * 1024 + 5);
const secret = secretFromText('a-strong-enough-test-secret-0123456789', 'test');

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'netkit-https-'));
  served = join(root, 'served');
  identityDir = join(root, 'identity');
  mkdirSync(served);
  writeFileSync(join(served, 'data.bin'), content);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const servers: FileServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close(0);
});

async function serve(tls: boolean, opts: Partial<ServeOptions> = {}): Promise<{ server: FileServer; fingerprint: string; logs: TransferLog[] }> {
  const logs: TransferLog[] = [];
  const t = tls ? tlsServerTransport({ identityDir }) : { transport: tcpTransport, identity: { fingerprint: '' } };
  const server = await startFileServer({ dir: served, transport: t.transport, host: '127.0.0.1', port: 0, onLog: (l) => logs.push(l), ...opts });
  servers.push(server);
  return { server, fingerprint: t.identity.fingerprint, logs };
}

describe('HTTPS on the TLS port', () => {
  test('HTTPS gets the file; plain HTTP on the TLS port gets 400 saying to use https://', async () => {
    const { server } = await serve(true);
    const a = await request(server.port, '/data.bin', { tls: true });
    expect(a.status).toBe(200);
    expect(a.body.equals(content)).toBe(true);
    const plain = await raw(server.port, 'GET /data.bin HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(statusOf(plain)).toBe(400);
    expect(plain.toString()).toContain('this server speaks HTTPS only: use an https:// address');
  });
});

describe('a server with a secret', () => {
  test('plain HTTP is refused with 401, whatever it sends, and the body says HTTP carries the secret only over TLS', async () => {
    const { server, logs } = await serve(false, { secret: secret.key('file') });
    const a = await request(server.port, '/data.bin', { headers: { Authorization: `Bearer ${secret.reveal()}` } });
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toBe('Bearer realm="netkit"');
    expect(a.body.toString()).toMatch(/requires the shared secret, and HTTP can carry it only over TLS/);
    expect(logs[0]).toMatchObject({ protocol: 'http', method: 'GET', name: '/data.bin', outcome: 'unauthorized', status: 401 });
    await request(server.port, '/dir%20x/a.bin');
    await new Promise<void>((r) => {
      const wait = (): void => void (logs.length >= 2 ? r() : setImmediate(wait));
      wait();
    });
    expect(logs[1]).toMatchObject({ name: '/dir x/a.bin', outcome: 'unauthorized', status: 401 });
  });

  test('over HTTPS: no header 401 at no cost; a wrong token 401 after the hold-off, the source held off meanwhile; then the right one 200', async () => {
    const throttle = new FailureThrottle({ baseDelayMs: 300, maxDelayMs: 300 });
    const { server } = await serve(true, { secret: secret.key('file'), failureThrottle: throttle });
    const none = await request(server.port, '/data.bin', { tls: true });
    expect(none.status).toBe(401);
    expect(throttle.failures('127.0.0.1')).toBe(0);
    const until = (cond: () => boolean): Promise<void> =>
      new Promise<void>((r) => {
        const wait = (): void => void (cond() ? r() : setImmediate(wait));
        wait();
      });
    const t0 = performance.now();
    const wrong = request(server.port, '/data.bin', { tls: true, headers: { Authorization: 'Bearer not-the-secret' } });
    await until(() => throttle.failures('127.0.0.1') === 1);
    // While held off, even the right token is refused at once, with the time left.
    const held = await request(server.port, '/data.bin', { tls: true, headers: { Authorization: `Bearer ${secret.reveal()}` } });
    expect(held.status).toBe(401);
    expect(held.headers['retry-after']).toBe('1');
    expect((await wrong).status).toBe(401);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    await until(() => throttle.blockedFor('127.0.0.1') === 0);
    const right = await request(server.port, '/data.bin', { tls: true, headers: { Authorization: `Bearer  ${secret.reveal()} ` } });
    expect(right.status).toBe(200);
    expect(right.body.equals(content)).toBe(true);
    expect(throttle.failures('127.0.0.1')).toBe(0);
  });

  test('fetch https:// with the pin and the secret: verified; without the secret: UNAUTHORIZED', async () => {
    const { server, fingerprint } = await serve(true, { secret: secret.key('file') });
    const transport = tlsClientTransport({ fingerprint, onFirstUse: () => undefined });
    const url = `https://127.0.0.1:${server.port}/data.bin`;
    const out = mkdtempSync(join(root, 'out-'));
    const base = { name: 'data.bin', host: '127.0.0.1', port: server.port, outDir: out, transport, retries: 0 };
    const err = await rejection(fetchFile({ ...base, http: { url, scheme: 'https', target: '/data.bin' } }));
    expect(err.code).toBe('UNAUTHORIZED');
    const r = await fetchFile({ ...base, http: { url, scheme: 'https', target: '/data.bin', bearer: secret.bearer() } });
    expect(r).toMatchObject({ protocol: 'http', verified: true, sha256: createHash('sha256').update(content).digest('hex') });
    expect(readFileSync(join(out, 'data.bin')).equals(content)).toBe(true);
  });

  test('a v1 client with the secret is served on the same port', async () => {
    const { server } = await serve(false, { secret: secret.key('file') });
    const a = await rawAuthFetch(server.port, 'data.bin', secret.key('file'));
    expect(a.body.equals(content)).toBe(true);
  });
});
