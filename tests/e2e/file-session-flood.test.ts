// A session client that pipelines requests without end and never reads, against the built `netkit file serve`: the server stops taking requests once its answers stop draining, its memory stops growing, the idle timeout ends the session, and another client is served meanwhile.
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { HelloFlag, encodeHello, encodePreamble, encodeRequest } from '../../src/protocol/file-v1.js';
import { runNetkit, serverSaid, startServer, type Server } from '../helpers/netkit.js';
import { RawSession, type ListAnswer } from '../helpers/raw-session-client.js';

let dir: string;
let srv: string;
const FILES = 500;
const servers: Server[] = [];
const sockets: net.Socket[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'netkit-flood-e2e-'));
  srv = path.join(dir, 'srv');
  mkdirSync(path.join(srv, 'many'), { recursive: true });
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(srv, 'many', `f${i}`), randomBytes(4096));
  writeFileSync(path.join(srv, 'big.bin'), randomBytes(2 * 1024 * 1024));
});

afterEach(async () => {
  for (const c of sockets.splice(0)) c.destroy();
  while (servers.length > 0) await servers.pop()!.stop();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const rssMiB = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** Least-squares slope of y over x. */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

/** One connection that pipelines REQUEST frames as fast as the kernel takes them and never reads. */
interface Flooder {
  socket: net.Socket;
  /** Requests whose bytes the kernel took: they grow only while the server reads them. */
  accepted: number;
  /** Resolves once the first batch was taken (the flood is on). */
  started: Promise<void>;
  done: Promise<void>;
}

const BATCH = 500;

async function flood(port: number, large: boolean, isStopped: () => boolean): Promise<Flooder> {
  const socket = net.connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.pause(); // never reads
  socket.write(Buffer.concat([encodePreamble(), encodeHello({ nonce: randomBytes(32), flags: HelloFlag.SESSION })]));
  let onStart!: () => void;
  const f: Flooder = { socket, accepted: 0, started: new Promise((resolve) => (onStart = resolve)), done: Promise.resolve() };
  // Existing small files and missing names (answers the server can make at once, without a disk wait),
  // and with `large` a large file among them now and then (an answer streamed at its turn).
  const name = (i: number): string => (large && i % 50 === 25 ? 'big.bin' : i % 5 === 4 ? `nope${i % BATCH}` : `many/f${i % FILES}`);
  const batch = (k: number): Buffer => Buffer.concat(Array.from({ length: BATCH }, (_, j) => encodeRequest({ name: name(k + j), offset: 0, validator: Buffer.alloc(0) })));
  f.done = (async () => {
    for (let k = 0; !isStopped() && !socket.destroyed; k += BATCH) {
      const ok = await new Promise<boolean>((resolve) => socket.write(batch(k), (err) => resolve(!err)));
      if (!ok) break;
      f.accepted += BATCH;
      onStart();
    }
  })();
  return f;
}

test('four sessions pipelining requests (small, missing and large files) without end and never reading: the server stops reading them once its answers stop draining, its RSS stops growing, the idle timeout ends each, another client fetches and lists meanwhile', async () => {
  const FLOODERS = 4;
  const IDLE_S = 8;
  const s = await startServer(['file', 'serve', srv, '--port', '0', '--host', '127.0.0.1', '--idle-timeout', `${IDLE_S}s`], { env: { XDG_CONFIG_HOME: path.join(dir, 'config') } });
  servers.push(s);
  const pid = s.child.pid!;
  const warm = await runNetkit(['file', 'fetch', 'many/f0', '-H', '127.0.0.1', '-p', String(s.port), '-o', mkdtempSync(path.join(dir, 'out-'))]);
  expect([warm.code, warm.stderr]).toEqual([0, '']);
  const baseline = rssMiB(pid);

  let stop = false;
  const t0 = performance.now();
  const now = (): number => (performance.now() - t0) / 1000;
  const flooders: Flooder[] = [];
  for (let i = 0; i < FLOODERS; i++) flooders.push(await flood(s.port, i % 2 === 1, () => stop));
  const accepted = (): number => flooders.reduce((a, f) => a + f.accepted, 0);
  const samples: { t: number; accepted: number; rss: number }[] = [];
  const sampler = setInterval(() => samples.push({ t: now(), accepted: accepted(), rss: rssMiB(pid) }), 200);
  const line = 'session of \\d+ requests from "many\\/f0" [^\\n]*timeout: the client read nothing';
  try {
    await Promise.all(flooders.map((f) => f.started));
    // Another client is served while the flood runs.
    const fetchedAt = performance.now();
    const r = await runNetkit(['file', 'fetch', 'big.bin', '-H', '127.0.0.1', '-p', String(s.port), '-o', mkdtempSync(path.join(dir, 'out-'))], { timeoutMs: 20_000 });
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(performance.now() - fetchedAt).toBeLessThan(10_000);
    const list = await RawSession.open(s.port, { timeoutMs: 20_000, early: [{ list: 'many' }] });
    try {
      list.end();
      expect(((await list.next()) as ListAnswer).end?.count).toBe(FILES);
    } finally {
      list.destroy();
    }
    // ...while every flooder was still connected.
    expect(s.stderr()).not.toMatch(new RegExp(line));

    // Each flooding session stalls and is ended by the idle timeout. Bounded in time: a server that kept
    // answering into its own memory would never end them.
    const ended = serverSaid(s, new RegExp(`(${line}[^]*){${FLOODERS}}`)).then(() => true);
    const cap = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), (IDLE_S + 12) * 1000).unref());
    const endedByItself = await Promise.race([ended, cap]);
    const cutAt = now();
    expect(endedByItself).toBe(true);
    const answered = [...s.stderr().matchAll(new RegExp(line.replace('\\d+', '(\\d+)'), 'g'))].map((m) => Number(m[1]));
    expect(answered).toHaveLength(FLOODERS);
    expect(answered.reduce((a, n) => a + n, 0)).toBeLessThanOrEqual(accepted());

    // Over the stalled part (from one second after the last possible progress to the cut) no request was
    // taken and the server's memory stayed flat; overall it stayed bounded.
    const stalled = samples.filter((p) => p.t >= cutAt - IDLE_S + 1 && p.t <= cutAt - 0.3);
    expect(stalled.length).toBeGreaterThan(20);
    expect(stalled.at(-1)!.accepted).toBe(stalled[0]!.accepted);
    expect(slope(stalled.map((p) => ({ x: p.t, y: p.rss })))).toBeLessThan(1);
    expect(Math.max(...samples.map((p) => p.rss)) - baseline).toBeLessThan(64);
  } finally {
    stop = true;
    clearInterval(sampler);
    for (const f of flooders) f.socket.destroy();
    await Promise.all(flooders.map((f) => f.done));
  }
}, 60_000);
