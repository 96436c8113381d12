// `netkit disk serve|query` end to end: the built binary, real UDP sockets on loopback, port 0.
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

const SEED = fileURLToPath(new URL('../helpers/seed_disk.py', import.meta.url));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function serve(args: string[] = []): Promise<Server> {
  const s = await startServer(['disk', 'serve', '--port', '0', '--host', '127.0.0.1', ...args]);
  cleanups.push(() => s.stop());
  return s;
}

/** A UDP socket that never answers: queries to it time out. */
async function silentPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s.address().port;
}

/** A UDP port on which nothing listens (bound, then closed): the kernel answers ICMP port unreachable. */
async function closedPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Seed {
  child: ChildProcessWithoutNullStreams;
  port: number;
}

async function seedServer(cwd: string): Promise<Seed> {
  const child = spawn('python3', [SEED, 'server', '--port', '0', '--path', cwd], { cwd });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening udp [^\s]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`seed server exited ${code}: ${err}`)));
  });
  return { child, port };
}

async function seedClient(port: number, msg = 'y'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('python3', [SEED, 'client', '--port', String(port), '--msg', msg, '--timeout', '5']);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'netkit-disk-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

interface JsonFs {
  mount: string;
  fstype: string;
  device: string;
  served: boolean;
  total: number;
  used: number;
  available: number;
  free: number;
}

describe('netkit disk serve -> query', () => {
  test('the figures match fs.statfs of the served path, and the table is plain when piped', async () => {
    const dir = tmp();
    const s = await serve(['--path', dir, '--quiet']);
    expect(s.line).toBe(`listening udp 127.0.0.1:${s.port}`);
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const st = statfsSync(dir);
    const [host] = JSON.parse(r.stdout) as Array<{ ok: boolean; serverHost: string; timeMs: number; filesystems: JsonFs[] }>;
    expect(host!.ok).toBe(true);
    expect(host!.serverHost).toBe(hostname());
    expect(Math.abs(Date.now() - host!.timeMs)).toBeLessThan(5000);
    expect(host!.filesystems).toHaveLength(1);
    const fs = host!.filesystems[0]!;
    expect(fs.served).toBe(true);
    expect(fs.total).toBe(st.blocks * st.bsize); // the size of a filesystem does not move
    // Free space moves with other writers on the machine: compare within 1 GiB.
    expect(Math.abs(fs.available - st.bavail * st.bsize)).toBeLessThan(2 ** 30);
    expect(Math.abs(fs.free - st.bfree * st.bsize)).toBeLessThan(2 ** 30);
    expect(fs.used + fs.free).toBe(fs.total);
    expect(fs.mount.startsWith('/')).toBe(true);

    const t = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`]);
    expect(t.code).toBe(0);
    const lines = t.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^HOST\s+MOUNT\s+TYPE\s+SIZE\s+USED\s+AVAIL\s+USE%$/);
    expect(lines[1]).toMatch(new RegExp(`^127\\.0\\.0\\.1:${s.port}\\s+/\\S*\\s+\\S+\\s+[\\d.]+[BKMGTPE]\\s+[\\d.]+[BKMGTPE]\\s+[\\d.]+[BKMGTPE]\\s+\\d+%$`));
    expect(t.stdout).not.toMatch(/\u001b|\r/);
  });

  test('--all lists the served filesystem, flagged, among real ones', async () => {
    const s = await serve(['--quiet']);
    const r = await runNetkit(['disk', 'query', '--all', '--json', '--port', String(s.port), '127.0.0.1']);
    expect(r.code).toBe(0);
    const [host] = JSON.parse(r.stdout) as Array<{ filesystems: JsonFs[] }>;
    expect(host!.filesystems.filter((f) => f.served)).toHaveLength(1);
    for (const f of host!.filesystems) expect(['proc', 'sysfs', 'cgroup', 'cgroup2', 'devtmpfs', 'devpts']).not.toContain(f.fstype);
  });

  test('--mount-timeout 10ms: the server starts (the worker thread start-up does not count) and answers', async () => {
    const s = await serve(['--mount-timeout', '10ms', '--path', tmpdir()]);
    const q = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--json']);
    expect(q.code).toBe(0);
    expect((JSON.parse(q.stdout) as Array<{ filesystems: Array<{ served: boolean }> }>)[0]!.filesystems.filter((f) => f.served)).toHaveLength(1);
  });

  test('the server logs one line per query on stderr, and SIGINT exits 0', async () => {
    const s = await serve();
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`]);
    expect(r.code).toBe(0);
    expect(await s.stop('SIGINT')).toBe(0);
    expect(s.stderr()).toMatch(/127\.0\.0\.1:\d+ path answered \(1200B -> \d+B\)/);
  });

  test('SIGTERM exits 0 too', async () => {
    const s = await serve(['--quiet']);
    expect(await s.stop('SIGTERM')).toBe(0);
  });

  test('several hosts: the dead one is reported with how long we waited, the others still shown, exit non-zero', async () => {
    const s = await serve(['--quiet']);
    const dead = await silentPort();
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, `127.0.0.1:${dead}`, `[::1]:${s.port}`, '--timeout', '150ms', '--retries', '1']);
    expect(r.code).toBe(7);
    expect(r.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1:${s.port}\\s`, 'm'));
    expect(r.stderr).toMatch(new RegExp(`^netkit: no answer from 127\\.0\\.0\\.1:${dead} after 2 attempts \\(waited \\d+\\.\\ds\\)$`, 'm'));
    expect(r.stderr).toMatch(/^hint: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a silent port times out after the attempts', async () => {
    const dead = await silentPort();
    const started = Date.now();
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${dead}`, '--timeout', '100ms', '--retries', '2']);
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/no answer from 127\.0\.0\.1:\d+ after 3 attempts/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700); // 100 + 200 + 400 ms
  });

  test.each([
    ['a refused port', async () => [`127.0.0.1:${await closedPort()}`], 6, /refused the query \(ICMP port unreachable\)/],
    ['an unresolvable name', async () => ['no-such-host.invalid'], 6, /cannot resolve host 'no-such-host\.invalid'/],
    ['an invalid port', async () => ['127.0.0.1:99999'], 2, /invalid port '99999' in '127\.0\.0\.1:99999'/],
    ['an invalid --port', async () => ['--port', 'x'], 2, /invalid --port 'x'/],
  ])('%s gets its own message', async (_name, args, code, message) => {
    const r = await runNetkit(['disk', 'query', ...(await args()), '--timeout', '200ms']);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^netkit: /);
    expect(r.stderr).toMatch(/^hint: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('serve reports a busy port and a missing --path', async () => {
    const s = await serve(['--quiet']);
    const busy = await runNetkit(['disk', 'serve', '--host', '127.0.0.1', '--port', String(s.port)]);
    expect(busy.code).toBe(6);
    expect(busy.stderr).toMatch(/port in use/);
    const missing = await runNetkit(['disk', 'serve', '--port', '0', '--path', join(tmp(), 'nope')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/cannot serve --path .*nope: no such file or directory/);
  });
});

describe('classic interoperability (tests/helpers/seed_disk.py)', () => {
  test('netkit disk query --classic reads a seed server', async () => {
    const dir = tmp();
    const seed = await seedServer(dir);
    const r = await runNetkit(['disk', 'query', '--classic', `127.0.0.1:${seed.port}`, '--json']);
    expect(r.code).toBe(0);
    const [host] = JSON.parse(r.stdout) as Array<{ protocol: string; text: string; serverName: string; totalGiB: number; availableGiB: number }>;
    expect(host!.protocol).toBe('classic');
    const st = statfsSync(dir);
    expect(host!.serverName).toBe(hostname());
    expect(host!.totalGiB).toBeCloseTo((st.blocks * st.bsize) / 2 ** 30, 2);
    expect(Math.abs(host!.availableGiB - (st.bavail * st.bsize) / 2 ** 30)).toBeLessThan(1);
    const t = await runNetkit(['disk', 'query', '--classic', `127.0.0.1:${seed.port}`]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1:${seed.port}\\s+-\\s+classic\\s+[\\d.]+G`, 'm'));
  });

  test('the seed client reads netkit disk serve --classic, and gets the seed error for anything but "y"', async () => {
    const dir = tmp();
    const s = await serve(['--classic', '--path', dir]);
    const ok = await seedClient(s.port);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^\\nNome do Servidor: ${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\nEspaço total: \\d+\\.\\d{1,2}GB \\nDisponivel: \\d+\\.\\d{1,2}GB\\n$`));
    const st = statfsSync(dir);
    expect(Number(/total: ([\d.]+)GB/.exec(ok.stdout)![1])).toBeCloseTo((st.blocks * st.bsize) / 2 ** 30, 2);
    // The error text is 18 bytes: it is only sent to a request at least that big (anti-amplification).
    const bad = await seedClient(s.port, 'please send me the disk');
    expect(bad.stdout).toBe('Erro: Digite "y".\n');
    expect(s.stderr()).toMatch(/classic answered \(1B -> \d+B\)/);
  });

  test('without --classic, a seed client gets no answer (the server stays silent)', async () => {
    const s = await serve();
    const r = await runNetkit(['disk', 'query', '--classic', `127.0.0.1:${s.port}`, '--timeout', '100ms', '--retries', '0']);
    expect(r.code).toBe(7);
    expect(s.stderr()).toMatch(/foreign silent \(1B -> no reply\)/);
  });
});

/** Random bytes of a random length; sometimes huge, sometimes with a netkit header, sometimes a mutated query. */
function fuzzDatagram(rand: () => number): Buffer {
  const pick = rand();
  const len = pick < 0.02 ? 65507 - Math.floor(rand() * 10) : Math.floor(rand() * 1400);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i += 1) b[i] = Math.floor(rand() * 256);
  if (len >= 8 && pick > 0.35) {
    b[0] = 0x4e;
    b[1] = 0x4b;
    if (pick > 0.5) b[2] = 1;
    if (pick > 0.6) b[3] = 1;
    if (pick > 0.75 && len >= 12) {
      // a valid SCOPE field, then random or zero padding
      b[8] = 1;
      b.writeUInt16BE(1, 9);
      b[11] = Math.floor(rand() * 3);
      if (pick > 0.85) b.fill(0, 12);
    }
  }
  return b;
}

/** A small seeded PRNG (mulberry32) so that a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function probe(id: number, scope = 0, size = 1200): Buffer {
  const b = Buffer.alloc(size);
  b.write('NK', 0, 'latin1');
  b[2] = 1;
  b[3] = 1;
  b.writeUInt32BE(id, 4);
  b[8] = 1;
  b.writeUInt16BE(1, 9);
  b[11] = scope;
  return b;
}

describe('bounded fuzz', () => {
  test('thousands of random datagrams: never a reply larger than its request, and still serving', async () => {
    const s = await serve(['--quiet', '--classic']);
    const sock = dgram.createSocket('udp4');
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
    sock.connect(s.port, '127.0.0.1');
    await once(sock, 'connect');
    const seed = Number(process.env.NETKIT_FUZZ_SEED ?? Date.now() % 100000);
    const rand = prng(seed);
    const deadline = Date.now() + 15_000;
    const COUNT = 3000;
    let sent = 0;
    let replies = 0;
    const oversize: string[] = [];
    // Each fuzz datagram is followed by two probe queries, one per scope: the server handles datagrams
    // in order (a query parked while its scope's figures are re-read is answered before later ones of
    // that scope), so every reply that arrives before both probes' answers belongs to that fuzz datagram.
    for (let i = 0; i < COUNT && Date.now() < deadline; i += 1) {
      const fuzz = fuzzDatagram(rand);
      const probeId = 0xa5000000 + i;
      if (fuzz.length >= 8 && fuzz.readUInt32BE(4) === probeId) fuzz.writeUInt32BE(0, 4);
      if (fuzz.length === 1 && fuzz[0] === 0x79) fuzz[0] = 0x6e; // "y" is the documented classic exception
      const allProbeId = 0xb5000000 + i;
      if (fuzz.length >= 8 && fuzz.readUInt32BE(4) === allProbeId) fuzz.writeUInt32BE(0, 4);
      const done = new Promise<void>((resolve) => {
        let pending = 2;
        const onMsg = (m: Buffer): void => {
          if (m.length >= 8 && m[0] === 0x4e && m[1] === 0x4b && m[3] === 2 && (m.readUInt32BE(4) === probeId || m.readUInt32BE(4) === allProbeId)) {
            pending -= 1;
            if (pending === 0) {
              sock.off('message', onMsg);
              resolve();
            }
            return;
          }
          replies += 1;
          // The documented exception (--classic): any datagram not starting with NK gets the seed's 17-byte error text.
          const classicError = !(fuzz.length >= 2 && fuzz[0] === 0x4e && fuzz[1] === 0x4b) && m.toString('utf8') === 'Erro: Digite "y".';
          if (m.length > fuzz.length && !classicError) oversize.push(`seed ${seed} #${i}: ${m.length}B reply to ${fuzz.length}B request ${fuzz.subarray(0, 16).toString('hex')}`);
        };
        sock.on('message', onMsg);
      });
      sock.send(fuzz);
      sock.send(probe(probeId));
      sock.send(probe(allProbeId, 1, 65_507));
      await done;
      sent += 1;
    }
    expect(oversize).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(1000);
    expect(replies).toBeGreaterThan(0); // some fuzz was well-formed enough to earn an (error) reply
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`]);
    expect(r.code).toBe(0);
    expect(s.child.exitCode).toBeNull();
  }, 60_000);
});
