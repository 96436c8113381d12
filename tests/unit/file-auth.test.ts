// The file service with a shared secret, in process over real loopback sockets: right, wrong and missing proofs, replay, impostors, held-off sources, and no secret on the wire.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { deriveKey } from '../../src/protocol/auth.js';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../../src/protocol/auth-frames.js';
import {
  FrameReader,
  FrameType,
  HelloFlag,
  Status,
  decodeHello,
  decodeRequest,
  decodeResponse,
  encodeHello,
  encodePreamble,
  encodeRequest,
  encodeResponse,
  encodeTrailer,
  type Frame,
} from '../../src/protocol/file-v1.js';
import { fetchFile, type FetchOptions } from '../../src/services/file/fetch/session.js';
import { startFileServer, type FileServer, type ServeOptions, type TransferLog } from '../../src/services/file/serve/index.js';
import { validatorOf } from '../../src/services/file/serve/hash-cache.js';
import { FailureThrottle } from '../../src/services/limits.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';
import { rejection } from '../helpers/errors.js';
import { plantPartial, staged } from '../helpers/staging.js';

const TOKEN = 'Hq2Wn8Rt5Yv1Xc7Zb4Nm9Kl3Jp6Df0Gs2Ae8Ui5Oy1';
const KEY = deriveKey(TOKEN, 'file');
const OTHER_KEY = deriveKey('a-completely-different-secret-of-43-chars-x', 'file');
const DATA = randomBytes(2 * 1024 * 1024 + 5);

let base: string;
let served: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'netkit-fileauth-'));
  served = join(base, 'served');
  mkdirSync(served);
  writeFileSync(join(served, 'data.bin'), DATA);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** No hold-off, so back-to-back fetches from 127.0.0.1 never race one (the real default is 250 ms doubling to 30 s). */
const fastThrottle = (): FailureThrottle => new FailureThrottle({ baseDelayMs: 0, maxDelayMs: 0 });

/** A throttle that says when a failure has been recorded (event-driven waiting, no polling). */
class WatchedThrottle extends FailureThrottle {
  private hit: () => void = () => undefined;
  readonly recorded = new Promise<void>((resolve) => (this.hit = resolve));
  override recordFailure(source: string) {
    const r = super.recordFailure(source);
    this.hit();
    return r;
  }
}

async function serve(opts: Partial<ServeOptions> = {}): Promise<{ server: FileServer; next: () => Promise<TransferLog> }> {
  const logs: TransferLog[] = [];
  const waiting: Array<(l: TransferLog) => void> = [];
  let read = 0;
  const server = await startFileServer({
    dir: served,
    transport: tcpTransport,
    host: '127.0.0.1',
    port: 0,
    secret: KEY,
    failureThrottle: fastThrottle(),
    ...opts,
    onLog: (l) => {
      logs.push(l);
      waiting.shift()?.(l);
    },
  });
  cleanups.push(() => server.close(0).catch(() => undefined));
  const next = (): Promise<TransferLog> => {
    if (read < logs.length) return Promise.resolve(logs[read++]!);
    return new Promise((resolve) =>
      waiting.push((l) => {
        read++;
        resolve(l);
      }),
    );
  };
  return { server, next };
}

function outDir(): string {
  return mkdtempSync(join(base, 'out-'));
}

function fetchFrom(port: number, out: string, extra: Partial<FetchOptions> = {}, host = '127.0.0.1') {
  return fetchFile({ name: 'data.bin', host, port, outDir: out, transport: tcpTransport, timeoutMs: 5000, retries: 0, secret: KEY, ...extra });
}

async function proxyTo(port: number): Promise<TcpRecordingProxy> {
  const p = await tcpRecordingProxy(port);
  cleanups.push(() => p.close());
  return p;
}

async function rawConnect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const s = net.connect({ host, port });
  cleanups.push(() => void s.destroy());
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Everything the server sends until it closes. */
async function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  if (!s.destroyed) await once(s, 'close');
  return Buffer.concat(chunks);
}

/** The first `max` frames in `bytes` (stop before body bytes, which are not frames). */
function framesOf(bytes: Buffer, max = Infinity): Frame[] {
  const r = new FrameReader();
  r.push(bytes);
  const out: Frame[] = [];
  while (out.length < max) {
    const f = r.next();
    if (!f) break;
    out.push(f);
  }
  return out;
}

/**
 * A scripted v1 server: reads the preamble, the client HELLO and the REQUEST, then lets `answer`
 * write whatever a real or fake server would. Gives the test both nonces and the raw REQUEST.
 */
async function fakeServer(answer: (s: net.Socket, ctx: { clientNonce: Buffer; serverNonce: Buffer; request: Frame }) => void, flags: number = HelloFlag.AUTH_REQUIRED): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    const reader = new FrameReader();
    let preamble = false;
    let clientNonce: Buffer | undefined;
    const serverNonce = randomBytes(32);
    s.on('data', (d: Buffer) => {
      reader.push(d);
      if (!preamble) {
        if (!reader.take(5)) return;
        preamble = true;
      }
      for (let f = reader.next(); f; f = reader.next()) {
        if (!clientNonce) {
          clientNonce = decodeHello(f).nonce;
          s.write(encodeHello({ nonce: serverNonce, flags }));
        } else {
          answer(s, { clientNonce, serverNonce, request: f });
        }
      }
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanups.push(() => new Promise((r) => srv.close(r)));
  return (srv.address() as net.AddressInfo).port;
}

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

describe('file service with a shared secret', () => {
  test('the same secret: the file arrives verified; HELLO says AUTH_REQUIRED; REQUEST, RESPONSE and TRAILER carry valid proofs', async () => {
    const { server, next } = await serve();
    const proxy = await proxyTo(server.port);
    const out = outDir();
    const r = await fetchFrom(proxy.port, out);
    expect(r.verified).toBe(true);
    expect(readFileSync(join(out, 'data.bin')).equals(DATA)).toBe(true);
    expect(readdirSync(out)).toEqual(['data.bin']);
    expect(await next()).toMatchObject({ protocol: 'v1', name: 'data.bin', outcome: 'ok', bytes: DATA.length });

    // Check the recorded exchange against the spec independently of the client's own checks.
    const up = Buffer.concat(proxy.toServer);
    const down = Buffer.concat(proxy.toClient);
    const [clientHello, request] = framesOf(up.subarray(5));
    const [serverHello, response] = framesOf(down, 2);
    const nonces = { client: decodeHello(clientHello!).nonce, server: decodeHello(serverHello!).nonce };
    expect(decodeHello(serverHello!).flags & HelloFlag.AUTH_REQUIRED).toBe(HelloFlag.AUTH_REQUIRED);
    // Both HELLOs set SESSION: every MAC carries the request's sequence number (0 for the first).
    expect(decodeHello(clientHello!).flags & decodeHello(serverHello!).flags & HelloFlag.SESSION).toBe(HelloFlag.SESSION);
    expect(checkFrame('client', KEY, nonces, request!.payload)).toBe('bad-mac');
    expect(checkFrame('client', KEY, nonces, request!.payload, 0)).toBe('ok');
    expect(checkFrame('server', KEY, nonces, response!.payload, 0)).toBe('ok');
    const respLen = 3 + response!.payload.length;
    const trailer = framesOf(down.subarray(3 + serverHello!.payload.length + respLen + DATA.length), 1)[0]!;
    expect(trailer.type).toBe(FrameType.TRAILER);
    expect(checkFrame('trailer', KEY, nonces, trailer.payload, 0)).toBe('ok');
    // A proof for one frame kind never verifies as another.
    expect(checkFrame('server', KEY, nonces, request!.payload, 0)).toBe('bad-mac');
  });

  test('no secret: the first request goes with the HELLO (no round trip saved is wasted), the server refuses it, the client stops with UNAUTHORIZED (exit 4, hint)', async () => {
    const { server, next } = await serve();
    const proxy = await proxyTo(server.port);
    const out = outDir();
    const err = await rejection(fetchFrom(proxy.port, out, { secret: undefined }));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.exitCode).toBe(4);
    expect(err.message).toMatch(/requires a shared secret/);
    expect(err.hint).toMatch(/NETKIT_TOKEN or --token-file/);
    expect(readdirSync(out)).toEqual([]);
    const log = await next();
    expect(log).toMatchObject({ protocol: 'v1', outcome: 'unauthorized' });
    // The preamble, the HELLO and the early REQUEST (without a proof) went out together; nothing after.
    const frames = framesOf(Buffer.concat(proxy.toServer).subarray(5));
    expect(frames.map((f) => f.type)).toEqual([FrameType.HELLO, FrameType.REQUEST]);
    expect(decodeRequest(frames[1]!).name).toBe('data.bin');
  });

  test('a wrong secret is refused with UNAUTHORIZED after the hold-off, logged with the peer; nothing is written', async () => {
    const throttle = fastThrottle();
    const { server, next } = await serve({ failureThrottle: throttle });
    const out = outDir();
    const err = await rejection(fetchFrom(server.port, out, { secret: OTHER_KEY }));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.message).toMatch(/different secrets/);
    expect(readdirSync(out)).toEqual([]);
    const log = await next();
    expect(log.outcome).toBe('unauthorized');
    expect(log.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(log.detail).toMatch(/does not verify \(failure 1 from this address, answered after 0 ms\)/);
    expect(throttle.failures('127.0.0.1')).toBe(1);
    // A right proof afterwards clears the record.
    await fetchFrom(server.port, outDir());
    expect(throttle.failures('127.0.0.1')).toBe(0);
  });

  test('a REQUEST without AUTH_MAC, and a proof that is not last, are refused before the file system is touched', async () => {
    const { server, next } = await serve();
    for (const build of [
      () => encodeRequest({ name: 'data.bin', offset: 0, validator: Buffer.alloc(0) }),
      () => encodeRequest({ name: 'data.bin', offset: 0, validator: Buffer.alloc(0) }, [MAC_PLACEHOLDER, [0x20, Buffer.from('x')]]),
    ]) {
      const s = await rawConnect(server.port);
      s.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: 0 })]));
      const [hello] = await new Promise<Frame[]>((resolve) => s.once('data', (d: Buffer) => resolve(framesOf(d))));
      expect(decodeHello(hello!).flags).toBe(HelloFlag.AUTH_REQUIRED);
      s.write(build());
      const frames = framesOf(await readAll(s));
      expect(decodeResponse(frames[0]!).status).toBe(Status.UNAUTHORIZED);
      expect((await next()).outcome).toBe('unauthorized');
    }
  });

  test('a recorded REQUEST replayed on a new connection is refused (the server nonce is new)', async () => {
    const { server, next } = await serve();
    const proxy = await proxyTo(server.port);
    await fetchFrom(proxy.port, outDir());
    expect((await next()).outcome).toBe('ok');
    // Replay the client's bytes verbatim: preamble, HELLO (same client nonce), sealed REQUEST.
    const recorded = Buffer.concat(proxy.toServer);
    const s = await rawConnect(server.port);
    s.write(recorded);
    const frames = framesOf(await readAll(s));
    expect(frames.map((f) => f.type)).toEqual([FrameType.HELLO, FrameType.RESPONSE]);
    expect(decodeResponse(frames[1]!).status).toBe(Status.UNAUTHORIZED);
    const log = await next();
    expect(log).toMatchObject({ outcome: 'unauthorized', name: 'data.bin', bytes: 0 });
  });

  test('a classic client is refused with -1 and logged', async () => {
    const { server, next } = await serve();
    const s = await rawConnect(server.port);
    s.write('data.bin');
    expect((await readAll(s)).toString()).toBe('-1      ');
    expect(await next()).toMatchObject({ protocol: 'classic', outcome: 'unauthorized', name: 'data.bin' });
    // And a classic fetch holding a secret is a usage error before any connection.
    const err = await rejection(fetchFrom(server.port, outDir(), { classic: true }));
    expect(err.code).toBe('USAGE');
  });

  test('a failed proof is answered only after the hold-off; a held-off source is refused without its proof being tested', async () => {
    let now = 0;
    // The clock moves only when the test says so; the service waits the hold-off (50 ms) on a real timer.
    const throttle = new FailureThrottle({ baseDelayMs: 50, clock: () => now });
    const { server, next } = await serve({ failureThrottle: throttle });
    const t0 = performance.now();
    expect((await rejection(fetchFrom(server.port, outDir(), { secret: OTHER_KEY }))).code).toBe('UNAUTHORIZED');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
    expect((await next()).detail).toMatch(/answered after 50 ms/);
    expect(throttle.blockedFor('127.0.0.1')).toBe(50);
    const held = await rejection(fetchFrom(server.port, outDir()));
    // The refusal is sealed, so the client (with the right key) believes it and reports the server's reason.
    expect(held.code).toBe('UNAUTHORIZED');
    expect(held.message).toMatch(/refused the request as unauthorized: too many failed proofs from this address; try again in 1s/);
    expect(throttle.failures('127.0.0.1')).toBe(1); // not counted as another guess
    now = 50;
    expect((await fetchFrom(server.port, outDir())).verified).toBe(true);
    expect(throttle.failures('127.0.0.1')).toBe(0);
  });

  test('a refusal held back for a minute holds up nobody else', async () => {
    const throttle = new WatchedThrottle({ baseDelayMs: 60_000, maxDelayMs: 60_000 });
    // Dual-stack on loopback clients only: 127.0.0.1 and ::1 are different sources.
    const { server } = await serve({ failureThrottle: throttle, host: '::' });
    let settled = false;
    const wrong = rejection(fetchFrom(server.port, outDir(), { secret: OTHER_KEY, timeoutMs: 120_000 })).finally(() => (settled = true));
    await throttle.recorded;
    const r = await fetchFrom(server.port, outDir(), {}, '::1');
    expect(r.verified).toBe(true);
    expect(settled).toBe(false);
    await server.close(0);
    // Cut at shutdown, never answered early.
    expect((await wrong).code).not.toBe('UNAUTHORIZED');
  });
});

describe('a client holding a secret against servers that cannot prove it', () => {
  test('an impostor without a secret (HELLO without AUTH_REQUIRED, plain RESPONSE): refused, no file, no partial file', async () => {
    const impostor = await startFileServer({ dir: served, transport: tcpTransport, host: '127.0.0.1', port: 0 });
    cleanups.push(() => impostor.close(0));
    const out = outDir();
    const err = await rejection(fetchFrom(impostor.port, out));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.message).toMatch(/could not prove it knows the secret \(its answer carries no MAC/);
    expect(readdirSync(out)).toEqual([]);
  });

  test('an impostor that copies AUTH_REQUIRED and sends a forged MAC: refused before any byte is written', async () => {
    const port = await fakeServer((s) => {
      s.write(encodeResponse({ status: Status.OK, size: DATA.length, offset: 0, validator: Buffer.alloc(8, 1), message: '' }, [[0x10, randomBytes(32)]]));
      s.write(DATA);
    });
    const out = outDir();
    const err = await rejection(fetchFrom(port, out));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.message).toMatch(/does not verify/);
    expect(readdirSync(out)).toEqual([]);
  });

  test('an unproven CHANGED does not make a resuming client throw its partial file away', async () => {
    const port = await fakeServer((s) => {
      s.write(encodeResponse({ status: Status.CHANGED, size: 1, offset: 0, validator: Buffer.alloc(0), message: 'changed' }));
    }, 0);
    const out = outDir();
    plantPartial(out, 'data.bin', DATA.subarray(0, 1000), { name: 'data.bin', server: `127.0.0.1:${port}`, size: DATA.length, validator: '00' });
    const err = await rejection(fetchFrom(port, out));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(readFileSync(staged(out, 'data.bin').part).equals(DATA.subarray(0, 1000))).toBe(true);
  });

  test('a proven RESPONSE but a TRAILER without a valid proof: no final file, the unvouched bytes are removed', async () => {
    for (const trailerExtra of [[], [[0x10, randomBytes(32)]]] as const) {
      const port = await fakeServer((s, { clientNonce, serverNonce, request }) => {
        const nonces = { client: clientNonce, server: serverNonce };
        expect(checkFrame('client', KEY, nonces, request.payload)).toBe('ok');
        expect(decodeRequest(request).name).toBe('data.bin');
        s.write(sealFrame('server', KEY, nonces, encodeResponse({ status: Status.OK, size: DATA.length, offset: 0, validator: Buffer.alloc(8, 2), message: '' }, [MAC_PLACEHOLDER])));
        s.write(DATA);
        s.write(encodeTrailer({ sha256: sha(DATA) }, trailerExtra));
      });
      const out = outDir();
      const err = await rejection(fetchFrom(port, out));
      expect(err.code).toBe('UNAUTHORIZED');
      expect(err.message).toMatch(/TRAILER/);
      expect(existsSync(join(out, 'data.bin'))).toBe(false);
      expect(readdirSync(out)).toEqual([]);
    }
  });
});

describe('the secret never crosses the wire', () => {
  test('no form of the token or of the derived keys appears in the bytes of authenticated fetches (right, wrong, resumed)', async () => {
    const { server } = await serve();
    const proxy = await proxyTo(server.port);
    const out = outDir();
    await fetchFrom(proxy.port, out);
    await rejection(fetchFrom(proxy.port, outDir(), { secret: OTHER_KEY }));
    // A resume too: REQUEST with an offset and a validator.
    const resumeOut = outDir();
    const st = statSync(join(served, 'data.bin'), { bigint: true });
    plantPartial(resumeOut, 'data.bin', DATA.subarray(0, 4096), { name: 'data.bin', server: `127.0.0.1:${proxy.port}`, size: DATA.length, validator: validatorOf(st).toString('hex') });
    const resumed = await fetchFrom(proxy.port, resumeOut);
    expect(resumed.resumedFrom).toBe(4096);

    const wire = proxy.all();
    expect(wire.length).toBeGreaterThan(2 * DATA.length - 8192);
    const raw = Buffer.from(TOKEN, 'utf8');
    const decoded = Buffer.from(TOKEN, 'base64url');
    const keyBytes = KEY.export();
    const forms: Array<[string, Buffer]> = [
      ['token text', raw],
      ['token base64url-decoded', decoded],
      ['token hex', Buffer.from(raw.toString('hex'))],
      ['decoded token hex', Buffer.from(decoded.toString('hex'))],
      ['decoded token base64', Buffer.from(decoded.toString('base64'))],
      ['k_file', keyBytes],
      ['k_file hex', Buffer.from(keyBytes.toString('hex'))],
      ['k_file base64url', Buffer.from(keyBytes.toString('base64url'))],
      ['k_disk', deriveKey(TOKEN, 'disk').export()],
    ];
    for (const [what, bytes] of forms) {
      // Any 12-byte window of the secret would already be a leak.
      for (let at = 0; at + 12 <= bytes.length; at += 4) {
        expect([what, wire.indexOf(bytes.subarray(at, at + 12))]).toEqual([what, -1]);
      }
    }
  });
});
