// Trust on first use keyed by the server, not by its spelling: localhost, 127.0.0.1, 127.1 and 0x7f000001 reach one entry, and a new certificate is the same hard error under each.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

let work: string;
let served: string;
let clientEnv: NodeJS.ProcessEnv;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'netkit-tofu-'));
  served = join(work, 'srv');
  mkdirSync(served);
  writeFileSync(join(served, 'f.txt'), 'hello\n');
  clientEnv = { XDG_CONFIG_HOME: join(work, 'client') };
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

/** A TLS file server whose identity lives in `config`; resolves once it printed its fingerprint. */
async function serve(config: string, port = 0): Promise<{ server: Server; fingerprint: string }> {
  const server = await startServer(['file', 'serve', served, '--port', String(port), '--host', '127.0.0.1', '--tls'], { env: { XDG_CONFIG_HOME: join(work, config) } });
  servers.push(server);
  const re = /^tls fingerprint (sha256:[0-9a-f]{64})/m;
  while (!re.test(server.stdout())) await once(server.child.stdout, 'data');
  return { server, fingerprint: re.exec(server.stdout())![1]! };
}

const fetchAs = (spelling: string, port: number) =>
  runNetkit(['file', 'fetch', 'f.txt', '-H', spelling, '-p', String(port), '-o', mkdtempSync(join(work, 'out-')), '--tls'], { env: clientEnv });

describe('TOFU under four spellings of one server', () => {
  test('one first-use notice, one entry per name and address; a changed certificate is refused under every spelling', async () => {
    const first = await serve('server-a');
    const port = first.server.port;
    const initial = await fetchAs('localhost', port);
    expect(initial.code).toBe(0);
    expect(initial.stderr).toMatch(/^netkit: first TLS connection to localhost:\d+ and (127\.0\.0\.1|\[::1\]):\d+: trusting certificate sha256:[0-9a-f]{64}; recorded in /m);
    for (const spelling of ['127.0.0.1', '127.1', '0x7f000001']) {
      const r = await fetchAs(spelling, port);
      expect({ spelling, code: r.code, stderr: r.stderr }).toEqual({ spelling, code: 0, stderr: '' });
    }
    const known = readFileSync(join(work, 'client', 'netkit', 'known_hosts'), 'utf8').trim().split('\n');
    expect(known.sort()).toEqual([`127.0.0.1:${port} ${first.fingerprint}`, `localhost:${port} ${first.fingerprint}`].sort());

    // The same port, another certificate (as a machine in the middle would present).
    await first.server.stop();
    servers.splice(0);
    const second = await serve('server-b', port);
    expect(second.fingerprint).not.toBe(first.fingerprint);
    for (const spelling of ['localhost', '127.0.0.1', '127.1', '0x7f000001']) {
      const r = await fetchAs(spelling, port);
      expect({ spelling, code: r.code }).toEqual({ spelling, code: 11 });
      expect(r.stderr).toMatch(/has CHANGED: .*known_hosts line \d+/);
      expect(r.stderr).toContain(second.fingerprint);
    }
    expect(readFileSync(join(work, 'client', 'netkit', 'known_hosts'), 'utf8').trim().split('\n')).toHaveLength(2);
  });
});
