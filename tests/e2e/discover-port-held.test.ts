// Where multicast DNS cannot be used at all (UDP 5353 held by a program that does not share it, no interface): clear errors, servers that keep serving, no stack.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, serverSaid, startServer, type RunResult, type Server } from '../helpers/netkit.js';
import { Lab, describeInNamespaces, type LabHost } from '../helpers/netns.js';

/** Binds 0.0.0.0:5353 without SO_REUSEADDR, as a program that does not share the port would; ends with its stdin (or after 2 min). */
const HOLDER = `
const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: false });
s.bind(5353, '0.0.0.0', () => console.log('holding'));
process.stdin.on('end', () => process.exit(0)).resume();
setTimeout(() => process.exit(0), 120000).unref();
`;

describeInNamespaces('multicast DNS unavailable: the port held, or no interface', () => {
  let lab: Lab;
  let p: LabHost; // UDP 5353 held by another program
  let n: LabHost; // loopback only
  let dir: string;
  let holder: ChildProcess;
  const servers: Server[] = [];

  beforeAll(async () => {
    lab = Lab.create('dph');
    p = lab.addHost('p');
    n = lab.addHost('n');
    lab.connect(p, 'br0', 'eth0', '10.77.0.31/24');
    dir = mkdtempSync(join(tmpdir(), 'netkit-port-held-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello without discovery\n');
    holder = spawn('ip', ['netns', 'exec', p.ns, process.execPath, '-e', HOLDER], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.setEncoding('utf8').on('data', (d: string) => d.includes('holding') && resolve());
      holder.once('exit', (code) => reject(new Error(`the port holder exited (${code})`)));
    });
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    holder?.stdin?.end();
    lab?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const held = /cannot use the mDNS port \(UDP 5353\) on eth0 \(10\.77\.0\.31\): another program holds it without sharing it/;
  const noStack = (r: RunResult): void => {
    expect(r.stderr).not.toMatch(/\n\s+at |Unhandled|node:events/);
  };

  test('discover exits 6 and says why, once', async () => {
    const r = await runNetkit(['discover', '--timeout', '0.5s'], { netns: p.ns });
    expect(r.code).toBe(6);
    expect(r.stderr.match(new RegExp(held.source, 'g'))).toHaveLength(1);
    expect(r.stderr).toMatch(/hint: stop that program, or name servers with -H instead of discovering them/);
    noStack(r);
  });

  test('both servers warn and keep serving', async () => {
    const disk = await startServer(['disk', 'serve', '--port', '0', '--name', 'held'], { netns: p.ns, cwd: dir });
    const file = await startServer(['file', 'serve', '.', '--port', '0', '--name', 'held'], { netns: p.ns, cwd: dir });
    servers.push(disk, file);
    for (const s of [disk, file]) await serverSaid(s, new RegExp(`netkit: warning: ${held.source}`));
    const q = await runNetkit(['disk', 'query', `127.0.0.1:${disk.port}`, '--json'], { netns: p.ns });
    expect(JSON.parse(q.stdout)).toMatchObject([{ ok: true }]);
    const f = await runNetkit(['file', 'fetch', 'hello.txt', '-H', `127.0.0.1:${file.port}`, '-o', mkdtempSync(join(dir, 'out-'))], { netns: p.ns });
    expect(f.code).toBe(0);
    expect(disk.child.exitCode).toBeNull();
    expect(file.child.exitCode).toBeNull();
    // Alone, --discover fails as discover does; with a named host, that host is still asked.
    const alone = await runNetkit(['disk', 'query', '--discover', '--discover-timeout', '0.5s'], { netns: p.ns });
    expect(alone.code).toBe(6);
    expect(alone.stderr).toMatch(held);
    noStack(alone);
    const both = await runNetkit(['disk', 'query', `127.0.0.1:${disk.port}`, '--discover', '--discover-timeout', '0.5s', '--json'], { netns: p.ns });
    expect(both.code).toBe(0);
    expect(JSON.parse(both.stdout)).toMatchObject([{ ok: true }]);
    expect(both.stderr).toMatch(new RegExp(`--discover: ${held.source}; only the named hosts were asked`));
  });

  test('a name the resolver does not know: DNS-SD could not be asked, and why; nothing contradicts it', async () => {
    const fetch = await runNetkit(['file', 'fetch', 'x', '-H', 'nas', '-o', dir], { netns: p.ns });
    const query = await runNetkit(['disk', 'query', 'nas'], { netns: p.ns });
    for (const [r, kind] of [[fetch, 'file'], [query, 'disk']] as const) {
      expect(r.code).toBe(6);
      expect(r.stderr).toMatch(new RegExp(`cannot resolve host 'nas': the system resolver does not know it, and DNS-SD could not be asked: ${held.source}`));
      expect(r.stderr).not.toMatch(new RegExp(`no netkit ${kind} server announces`));
      expect(r.stderr).not.toMatch(/warning/);
      noStack(r);
    }
  });

  test('with no interface but loopback, the same names say there is nowhere to ask', async () => {
    const noIface = /this machine has no network interface with an IPv4 address besides loopback: there is nowhere to ask/;
    const fetch = await runNetkit(['file', 'fetch', 'x', '-H', 'nas', '-o', dir], { netns: n.ns });
    const query = await runNetkit(['disk', 'query', 'nas'], { netns: n.ns });
    for (const r of [fetch, query]) {
      expect(r.code).toBe(6);
      expect(r.stderr).toMatch(new RegExp(`cannot resolve host 'nas': the system resolver does not know it, and DNS-SD could not be asked: ${noIface.source}`));
      expect(r.stderr).not.toMatch(/announces that name|warning/);
    }
    const local = await runNetkit(['file', 'fetch', 'x', '-H', 'vm.local', '-o', dir], { netns: n.ns });
    expect(local.code).toBe(6);
    expect(local.stderr).toMatch(new RegExp(`cannot resolve host 'vm\\.local': the system resolver does not know it, and multicast DNS could not be asked: ${noIface.source}`));
    const spaced = await runNetkit(['disk', 'query', 'disk one'], { netns: n.ns });
    expect(spaced.code).toBe(6);
    expect(spaced.stderr).toMatch(new RegExp(`cannot resolve host 'disk one': DNS-SD could not be asked: ${noIface.source}`));
  });
});
