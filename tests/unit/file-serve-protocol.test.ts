// What the server's RESPONSEs carry, as docs/protocol.md 2.2 to 2.6 say: OFFSET echoed only on OK, what refusals carry, the validator ignored at offset 0, names that reduce to nothing.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Status } from '../../src/protocol/file-v1.js';
import { validatorOf } from '../../src/services/file/serve/hash-cache.js';
import { startFileServer, type FileServer } from '../../src/services/file/serve/index.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { rawFetch } from '../helpers/raw-file-client.js';

let dir: string;
let server: FileServer;
const content = Buffer.from('0123456789');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'netkit-serve-protocol-'));
  writeFileSync(join(dir, 'ten.txt'), content);
});
afterEach(() => server?.close(0));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serve(): Promise<number> {
  server = await startFileServer({ dir, transport: tcpTransport, host: '127.0.0.1', port: 0 });
  return server.port;
}

const current = (): Buffer => validatorOf(statSync(join(dir, 'ten.txt'), { bigint: true }));

describe('RESPONSE fields', () => {
  test('OK echoes OFFSET; a refusal carries OFFSET 0, SIZE 0 and no VALIDATOR', async () => {
    const port = await serve();
    const ok = await rawFetch(port, 'ten.txt', { resume: { offset: 4, validator: current() } });
    expect(ok).toMatchObject({ status: Status.OK, size: 10, offset: 4 });
    expect(ok.body.toString()).toBe('456789');
    const missing = await rawFetch(port, 'nope.txt', { resume: { offset: 4, validator: current() } });
    expect(missing).toMatchObject({ status: Status.NOT_FOUND, size: 0, offset: 0, validator: Buffer.alloc(0) });
  });

  test('CHANGED and BAD_OFFSET carry the SIZE and VALIDATOR of the file as it is now, and OFFSET 0', async () => {
    const port = await serve();
    const changed = await rawFetch(port, 'ten.txt', { resume: { offset: 4, validator: Buffer.from('stale') } });
    expect(changed).toMatchObject({ status: Status.CHANGED, size: 10, offset: 0, validator: current() });
    const past = await rawFetch(port, 'ten.txt', { resume: { offset: 11, validator: current() } });
    expect(past).toMatchObject({ status: Status.BAD_OFFSET, size: 10, offset: 0, validator: current() });
  });

  test('the VALIDATOR is ignored at OFFSET 0', async () => {
    const port = await serve();
    const a = await rawFetch(port, 'ten.txt', { resume: { offset: 0, validator: Buffer.from('anything at all') } });
    expect(a).toMatchObject({ status: Status.OK, size: 10, offset: 0 });
    expect(a.body).toEqual(content);
  });

  test.each(['.', './.', './/./'])('the name %j reduces to the served directory itself: FORBIDDEN', async (name) => {
    const port = await serve();
    const a = await rawFetch(port, name);
    expect(a.status).toBe(Status.FORBIDDEN);
    expect(a.message).toBe('the name is the served directory itself');
  });

  test('an empty NAME is a malformed REQUEST: BAD_REQUEST', async () => {
    const port = await serve();
    expect((await rawFetch(port, '')).status).toBe(Status.BAD_REQUEST);
  });
});
