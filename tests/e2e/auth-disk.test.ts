// netkit disk serve/query with a shared secret, using the built binary: right, wrong and missing secrets, replay, forgery, impostor, logging, usage errors.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { hkdfSync, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveKey, deriveMetricsToken } from '../../src/protocol/auth.js';
import { encodeAuthQuery, locateAuthFields, sealReply } from '../../src/protocol/disk-auth.js';
import { Scope, encodeAnswer } from '../../src/protocol/disk-v1.js';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { startMetricsServer } from '../helpers/metrics.js';
import { udpRecordingProxy } from '../helpers/recording-proxy.js';

const TOKEN = 'Hq2Wn8Rt5Yv1Xc7Zb4Nm9Kl3Jp6Df0Gs2Ae8Ui5Oy1';
const KEY = deriveKey(TOKEN, 'disk');
let dir: string;
let keyFile: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'netkit-auth-disk-'));
  keyFile = join(dir, 'key');
  await writeFile(keyFile, `${TOKEN}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function serve(args: string[] = [], env: NodeJS.ProcessEnv = { NETKIT_TOKEN: TOKEN }): Promise<Server> {
  const s = await startServer(['disk', 'serve', '--port', '0', '--host', '127.0.0.1', ...args], { env });
  cleanups.push(() => s.stop());
  return s;
}

/** Resolve once the server's stderr matches `re` (event-driven: no polling timers). */
function stderrMatch(s: Server, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve) => {
    const check = (): boolean => {
      const m = re.exec(s.stderr());
      if (m) resolve(m);
      return m !== null;
    };
    if (check()) return;
    const onData = (): void => {
      // startServer's own listener appends first; read after it on the next turn.
      setImmediate(() => {
        if (check()) s.child.stderr.off('data', onData);
      });
    };
    s.child.stderr.on('data', onData);
  });
}

const noSecret = { NETKIT_TOKEN: undefined };

describe('disk with a shared secret (built binary)', () => {
  test('the same secret, from a token file or NETKIT_TOKEN, gets the answer', async () => {
    const s = await serve();
    await stderrMatch(s, /requiring the secret from NETKIT_TOKEN/);
    const a = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--token-file', keyFile], { env: noSecret });
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1:${s.port}\\s+/`, 'm'));
    const b = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--json', '--all'], { env: { NETKIT_TOKEN: TOKEN } });
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout)[0]).toMatchObject({ ok: true, protocol: 'v1' });
    expect(a.stderr + b.stderr).toBe('');
  });

  test('no secret: no answer, and the client asks whether the server requires one; the server logs the refusal', async () => {
    const s = await serve();
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--timeout', '150ms', '--retries', '0'], { env: noSecret });
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/^netkit: no answer from 127\.0\.0\.1:\d+ after 1 attempt/m);
    expect(r.stderr).toContain('if the server requires a secret, set NETKIT_TOKEN or --token-file (it stays silent without one)');
    await stderrMatch(s, /^\S+ 127\.0\.0\.1:\d+ v1 refused unauthenticated \(1200B -> no reply\)$/m);
  });

  test('a wrong secret: no answer (exit 7), the server logs bad-mac', async () => {
    const s = await serve();
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--timeout', '150ms', '--retries', '0'], { env: { NETKIT_TOKEN: 'Wrong0Secret1Of2Good3Length4Xy5Zq6Rs7Tu8Vw' } });
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/hint: .*Does the server use the same secret\?/);
    await stderrMatch(s, /v1 refused bad-mac/);
  });

  test('a recorded request replayed to the server gets no reply, while a fresh one does; refusals are logged even with --quiet', async () => {
    const s = await serve(['--quiet']);
    const proxy = await udpRecordingProxy(s.port);
    cleanups.push(() => proxy.close());
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${proxy.port}`, '--token-file', keyFile], { env: noSecret });
    expect(r.code).toBe(0);
    expect(proxy.requests).toHaveLength(1);
    const wire = Buffer.concat([...proxy.requests, ...proxy.replies]);
    for (const needle of [TOKEN, Buffer.from(TOKEN, 'base64url').toString('hex')]) expect(wire.includes(Buffer.from(needle))).toBe(false);
    expect(wire.includes(Buffer.from(TOKEN, 'base64url'))).toBe(false);
    expect(wire.includes(KEY.export())).toBe(false);

    const sock = dgram.createSocket('udp4');
    cleanups.push(() => new Promise<void>((res) => sock.close(() => res())));
    sock.connect(s.port, '127.0.0.1');
    await once(sock, 'connect');
    const replies: Buffer[] = [];
    sock.on('message', (m) => replies.push(m));
    sock.send(proxy.requests[0]!); // the replay
    const fresh = encodeAuthQuery(KEY, 0xabcdef, Scope.PATH, randomBytes(16), Date.now(), 1200);
    const got = once(sock, 'message');
    sock.send(fresh);
    await got;
    expect(replies).toHaveLength(1);
    expect(replies[0]!.readUInt32BE(4)).toBe(0xabcdef);
    await stderrMatch(s, /v1 refused replay/);
    expect(s.stderr()).not.toMatch(/ answered /); // --quiet: only refusals
  });

  test('an impostor server without a secret is rejected by a client that holds one (exit 4)', async () => {
    const s = await serve([], noSecret);
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--timeout', '150ms', '--retries', '0'], { env: { NETKIT_TOKEN: TOKEN } });
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/sent an answer without a MAC.*rejected/);
  });

  test('forged answers (bad MAC) are reported as such, exit 4, nothing on stdout', async () => {
    const forger = dgram.createSocket('udp4');
    cleanups.push(() => new Promise<void>((res) => forger.close(() => res())));
    forger.on('message', (msg, rinfo) => {
      const at = locateAuthFields(msg, true);
      if (typeof at === 'string') return;
      const fake = sealReply(deriveKey('guess-guess-guess-guess-guess', 'disk'), at.nonce!, [encodeAnswer(msg.readUInt32BE(4), { host: 'evil', time: Date.now(), filesystems: [] })]);
      forger.send(fake, rinfo.port, rinfo.address);
    });
    forger.bind(0, '127.0.0.1');
    await once(forger, 'listening');
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${forger.address().port}`, '--timeout', '150ms', '--retries', '0', '--token-file', keyFile], { env: noSecret });
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/MAC that does not verify: forged, or the server uses a different secret/);
  });

  test('usage: --classic with a secret (server and client), a plain --token value, an unsafe token file', async () => {
    const srv = await runNetkit(['disk', 'serve', '--port', '0', '--classic'], { env: { NETKIT_TOKEN: TOKEN } });
    expect(srv.code).toBe(2);
    expect(srv.stderr).toMatch(/--classic cannot be used with a secret/);
    const cli = await runNetkit(['disk', 'query', '--classic', '--token-file', keyFile], { env: noSecret });
    expect(cli.code).toBe(2);
    const tok = await runNetkit(['disk', 'query', '--token', TOKEN], { env: noSecret });
    expect(tok.code).toBe(2);
    expect(tok.stderr).toMatch(/unknown option --token: .*--token-file FILE or NETKIT_TOKEN/);
    const loose = join(dir, 'loose');
    await writeFile(loose, TOKEN);
    await chmod(loose, 0o644);
    const perm = await runNetkit(['disk', 'query', '--token-file', loose], { env: noSecret });
    expect(perm.code).toBe(9);
    expect(perm.stderr).toMatch(/hint: make it private: chmod 600/);
  });

  test('/metrics wants the metrics token derived from the secret, never the secret; a wrong token waits out the hold-off', async () => {
    const printed = await runNetkit(['disk', 'serve', '--print-metrics-token', '--token-file', keyFile], { env: { NETKIT_TOKEN: undefined } });
    expect(printed.code).toBe(0);
    // HKDF-SHA-256(token, "netkit v1 hkdf salt", "netkit metrics token", 32), base64url: as docs/security.md says.
    const documented = Buffer.from(hkdfSync('sha256', Buffer.from(TOKEN), Buffer.from('netkit v1 hkdf salt'), Buffer.from('netkit metrics token'), 32)).toString('base64url');
    expect(printed.stdout).toBe(`${documented}\n`);
    expect(deriveMetricsToken(TOKEN)).toBe(documented);
    expect(printed.stdout).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    const none = await runNetkit(['disk', 'serve', '--print-metrics-token'], { env: { NETKIT_TOKEN: undefined } });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--print-metrics-token needs a secret/);

    const s = await startMetricsServer(['--quiet', '--token-file', keyFile], { env: { NETKIT_TOKEN: undefined } });
    cleanups.push(() => s.stop());
    const get = (token?: string): Promise<Response> => fetch(s.metricsUrl, token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } });
    expect((await get()).status).toBe(401); // no credential: no guess, no hold-off
    const ok = await get(printed.stdout.trim());
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/^node_filesystem_avail_bytes\{/m);
    // The secret itself is refused (it must never cross plain HTTP), and as a wrong guess it waits 250 ms.
    let t0 = performance.now();
    const raw = await get(TOKEN);
    expect(raw.status).toBe(401);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240);
    // A second wrong guess in a row waits twice as long; then the right token is welcome again.
    t0 = performance.now();
    expect((await get('wrong')).status).toBe(401);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(490);
    expect((await get(printed.stdout.trim())).status).toBe(200);
  });

  test('a weak secret works but warns on stderr', async () => {
    const s = await serve([], { NETKIT_TOKEN: 'short' });
    await stderrMatch(s, /warning: the secret in NETKIT_TOKEN is weak/);
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`], { env: { NETKIT_TOKEN: 'short' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: the secret in NETKIT_TOKEN is weak/);
  });
});
