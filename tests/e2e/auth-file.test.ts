// netkit file serve/fetch with a shared secret, using the built binary: token file and env, no/wrong secret, replay and the wire through a recording proxy, impostor, classic, --quiet refusal log, and all of it over --tls.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveKey } from '../../src/protocol/auth.js';
import { FrameReader, FrameType, Status, decodeResponse, type Frame } from '../../src/protocol/file-v1.js';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { tcpRecordingProxy } from '../helpers/recording-proxy.js';

const TOKEN = 'Hq2Wn8Rt5Yv1Xc7Zb4Nm9Kl3Jp6Df0Gs2Ae8Ui5Oy1';
const content = randomBytes(1024 * 1024 + 7);
const sha = createHash('sha256').update(content).digest('hex');
let work: string;
let served: string;
let keyFile: string;
let config: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'netkit-e2e-fileauth-'));
  served = join(work, 'srv');
  mkdirSync(served);
  writeFileSync(join(served, 'f.bin'), content);
  keyFile = join(work, 'key');
  writeFileSync(keyFile, `${TOKEN}\n`, { mode: 0o600 });
  config = join(work, 'config');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const noSecret = { NETKIT_TOKEN: undefined };
const withToken = (token = TOKEN): NodeJS.ProcessEnv => ({ NETKIT_TOKEN: token });

/** Start a file server; with --tls, wait (on its output) for the fingerprint line. */
async function serve(args: string[], env: NodeJS.ProcessEnv = withToken()): Promise<{ server: Server; fingerprint?: string }> {
  const server = await startServer(['file', 'serve', served, '--port', '0', '--host', '127.0.0.1', ...args], { env: { XDG_CONFIG_HOME: config, ...env } });
  cleanups.push(() => server.stop());
  if (!args.includes('--tls')) return { server };
  const re = /^tls fingerprint (sha256:[0-9a-f]{64})/m;
  while (!re.test(server.stdout())) await once(server.child.stdout, 'data');
  return { server, fingerprint: re.exec(server.stdout())![1] };
}

/** Resolve once the server's stderr matches `re` (event-driven: no polling timers). */
async function stderrMatch(s: Server, re: RegExp): Promise<RegExpExecArray> {
  for (;;) {
    const m = re.exec(s.stderr());
    if (m) return m;
    await once(s.child.stderr, 'data');
    // startServer's own listener appends first; read after it on the next turn.
    await new Promise((r) => setImmediate(r));
  }
}

function out(): string {
  return mkdtempSync(join(work, 'out-'));
}

const fetch = (port: number, dir: string, args: string[], env: NodeJS.ProcessEnv) =>
  runNetkit(['file', 'fetch', 'f.bin', '--host', '127.0.0.1', '--port', String(port), '-o', dir, ...args], { env: { XDG_CONFIG_HOME: config, ...env } });

function framesOf(bytes: Buffer, max: number): Frame[] {
  const r = new FrameReader();
  r.push(bytes);
  const frames: Frame[] = [];
  while (frames.length < max) {
    const f = r.next();
    if (!f) break;
    frames.push(f);
  }
  return frames;
}

for (const tls of [false, true]) {
  describe(`netkit file with a shared secret${tls ? ' over --tls' : ''}`, () => {
    const start = async (env?: NodeJS.ProcessEnv, extra: string[] = []) => {
      const { server, fingerprint } = await serve([...(tls ? ['--tls'] : []), ...extra], env);
      return { server, pin: tls ? ['--tls-fingerprint', fingerprint!] : [] };
    };

    test('the same secret, from a token file or NETKIT_TOKEN, fetches the file verified', async () => {
      const { server, pin } = await start(noSecret, ['--token-file', keyFile]);
      await stderrMatch(server, /requiring the secret from --token-file /);
      const a = out();
      const r1 = await fetch(server.port, a, [...pin, '--token-file', keyFile], noSecret);
      expect(r1.stderr).toBe('');
      expect(r1.code).toBe(0);
      expect(r1.stdout).toContain(`sha256 ${sha} verified`);
      expect(readFileSync(join(a, 'f.bin')).equals(content)).toBe(true);
      const r2 = await fetch(server.port, out(), [...pin, '--json'], withToken());
      expect(r2.code).toBe(0);
      expect(JSON.parse(r2.stdout)).toMatchObject({ ok: true, verified: true, sha256: sha });
    });

    test('no secret: exit 4 with the hint, nothing written; a wrong secret: exit 4; both logged by a --quiet server', async () => {
      const { server, pin } = await start(withToken(), ['--quiet']);
      const a = out();
      const none = await fetch(server.port, a, pin, noSecret);
      expect(none.code).toBe(4);
      expect(none.stderr).toMatch(/^netkit: 127\.0\.0\.1:\d+ requires a shared secret; nothing was fetched\nhint: set NETKIT_TOKEN or --token-file/m);
      expect(readdirSync(a)).toEqual([]);
      // The name went with the HELLO (no secret, so no reason to wait); refused without a proof, and logged.
      await stderrMatch(server, /127\.0\.0\.1:\d+ v1 session of 1 request from "f\.bin" 0B in \S+ unauthorized: the request carries no proof of the secret \(not counted as a failure\)/);

      const b = out();
      const wrong = await fetch(server.port, b, pin, withToken('another-secret-that-is-long-enough-0123456789'));
      expect(wrong.code).toBe(4);
      expect(wrong.stderr).toMatch(/could not prove it knows the secret \(it refused our proof.*different secrets\); nothing was written/);
      expect(readdirSync(b)).toEqual([]);
      await stderrMatch(server, /127\.0\.0\.1:\d+ v1 session of 1 request from "f\.bin" 0B in \S+ unauthorized: the proof of the secret does not verify \(failure 1 from this address, answered after 250 ms\)/);
      // --quiet: successful transfers are not logged, refusals are.
      expect((await fetch(server.port, out(), pin, withToken())).code).toBe(0);
      expect(server.stderr()).not.toMatch(/ ok$/m);
    });

    test('an impostor without the secret is refused by a client holding it; nothing is written', async () => {
      const { server, pin } = await start(noSecret);
      const a = out();
      const r = await fetch(server.port, a, pin, withToken());
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/could not prove it knows the secret \(its answer carries no MAC/);
      expect(readdirSync(a)).toEqual([]);
    });
  });
}

describe('netkit file with a shared secret: the wire, replay and classic', () => {
  test('through a recording proxy: the secret never appears on the wire, and the recorded request replayed is refused', async () => {
    const { server } = await serve([]);
    const proxy = await tcpRecordingProxy(server.port);
    cleanups.push(() => proxy.close());
    const r = await fetch(proxy.port, out(), [], withToken());
    expect(r.code).toBe(0);
    const wire = proxy.all();
    expect(wire.length).toBeGreaterThan(content.length);
    const decoded = Buffer.from(TOKEN, 'base64url');
    for (const k of ['file', 'disk'] as const) {
      const key = deriveKey(TOKEN, k).export();
      for (const form of [key, Buffer.from(key.toString('hex')), Buffer.from(key.toString('base64url'))]) expect(wire.indexOf(form.subarray(0, 16))).toBe(-1);
    }
    for (const form of [Buffer.from(TOKEN), decoded, Buffer.from(decoded.toString('hex')), Buffer.from(Buffer.from(TOKEN).toString('hex'))]) {
      for (let at = 0; at + 12 <= form.length; at += 4) expect(wire.indexOf(form.subarray(at, at + 12))).toBe(-1);
    }

    // Replay the client's recorded bytes on a fresh connection: the server's nonce is new, so the proof fails.
    const s = net.connect({ host: '127.0.0.1', port: server.port });
    cleanups.push(async () => void s.destroy());
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.write(Buffer.concat(proxy.toServer));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    await once(s, 'close');
    const frames = framesOf(Buffer.concat(chunks), 2);
    expect(frames.map((f) => f.type)).toEqual([FrameType.HELLO, FrameType.RESPONSE]);
    expect(decodeResponse(frames[1]!).status).toBe(Status.UNAUTHORIZED);
    await stderrMatch(server, /v1 (?:session of 1 request from )?"f\.bin" 0B in \S+ unauthorized: the proof of the secret does not verify/);
  });

  test('classic: a seed-style client gets -1 from a server with a secret; --classic with a secret is a usage error', async () => {
    const { server } = await serve([]);
    const a = out();
    const classic = await fetch(server.port, a, ['--classic'], noSecret);
    expect(classic.code).toBe(3);
    expect(readdirSync(a)).toEqual([]);
    await stderrMatch(server, /classic "f\.bin" 0B in \S+ unauthorized: a classic client cannot prove the secret/);
    const usage = await fetch(server.port, out(), ['--classic'], withToken());
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^netkit: --classic cannot be used with a secret \(NETKIT_TOKEN\)/m);
  });

  test('--help lists --token-file for serve and fetch', async () => {
    for (const cmd of ['serve', 'fetch']) {
      const r = await runNetkit(['file', cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('--token-file');
    }
  });
});
