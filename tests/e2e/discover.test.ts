// Discovery between network namespaces: found from another host, goodbyes, late servers, multi-homed hosts, interfaces that come and go.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, serverSaid, startNetkit } from '../helpers/netkit.js';
import { Lab, LabServers, describeInNamespaces, type LabHost } from '../helpers/netns.js';

interface Listed {
  type: string;
  name: string;
  port: number;
  addresses: string[];
  address: string;
  version: number | null;
  auth: boolean | null;
  tls: boolean | null;
  fingerprint: string | null;
}

describeInNamespaces('discovery across network namespaces', () => {
  let lab: Lab;
  let a: LabHost; // multi-homed: eth0 on br0, eth1 on br1
  let b: LabHost; // br0
  let d: LabHost; // br1
  let e: LabHost; // eth0 on br0, eth1 on br1 (down at first)
  let dir: string;
  let servers: LabServers;

  beforeAll(() => {
    lab = Lab.create('dsc');
    lab.addBridge('br1');
    a = lab.addHost('a');
    b = lab.addHost('b');
    d = lab.addHost('d');
    e = lab.addHost('e');
    lab.connect(a, 'br0', 'eth0', '10.77.0.1/24');
    lab.connect(a, 'br1', 'eth1', '10.78.0.1/24');
    lab.connect(b, 'br0', 'eth0', '10.77.0.2/24');
    lab.connect(d, 'br1', 'eth0', '10.78.0.4/24');
    lab.connect(e, 'br0', 'eth0', '10.77.0.5/24');
    lab.connect(e, 'br1', 'eth1', '10.78.0.5/24', false);
    dir = mkdtempSync(join(tmpdir(), 'netkit-discover-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello over discovery\n');
    servers = new LabServers(dir);
  });

  afterAll(async () => {
    await servers?.stopAll();
    lab?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const serve = (host: LabHost, args: string[]) => servers.start(host, args);
  const discover = async (host: LabHost, args: string[] = []): Promise<{ code: number | null; list: Listed[]; stderr: string }> => {
    const r = await runNetkit(['discover', '--json', '--timeout', '1.5s', ...args], { netns: host.ns });
    return { code: r.code, list: JSON.parse(r.stdout || '[]') as Listed[], stderr: r.stderr };
  };

  test('a disk server in one namespace is found from another, with its TXT keys', async () => {
    const s = await serve(a, ['disk', 'serve', '--name', 'alpha']);
    const r = await discover(b);
    expect(r.code).toBe(0);
    const alpha = r.list.find((x) => x.name === 'alpha');
    expect(alpha).toMatchObject({ type: 'disk', port: s.port, address: '10.77.0.1', version: 1, auth: false, tls: false, fingerprint: null });
    // The answer on br0 carries br0's address only (RFC 6762 section 14), never the other link's.
    expect(alpha!.addresses).toEqual(['10.77.0.1']);
    // Filtering by type: a disk server is not a file server.
    const files = await discover(b, ['--type', 'file']);
    expect(files.list.find((x) => x.name === 'alpha')).toBeUndefined();
    // What was found is usable: query it by what discovery said.
    const q = await runNetkit(['disk', 'query', '--discover', '--discover-timeout', '1.5s', '--json'], { netns: b.ns });
    const rows = JSON.parse(q.stdout) as { host: string; ok: boolean; address: string }[];
    expect(rows.find((x) => x.host === 'alpha')).toMatchObject({ ok: true, address: '10.77.0.1' });
    await s.stop();
  });

  test('a multi-homed server answers on each link with that link\'s address, without a default route', async () => {
    const s = await serve(a, ['file', 'serve', '.', '--name', 'multi']);
    expect(s.stderr()).toMatch(/announcing "multi" \(_netkit-file\._tcp\) on eth0 10\.77\.0\.1, eth1 10\.78\.0\.1/);
    const [fromB, fromD] = await Promise.all([discover(b, ['--type', 'file']), discover(d, ['--type', 'file'])]);
    expect(fromB.list.find((x) => x.name === 'multi')?.addresses).toEqual(['10.77.0.1']);
    expect(fromD.list.find((x) => x.name === 'multi')?.addresses).toEqual(['10.78.0.1']);
    // -H with the announced name, from the second link: resolved through DNS-SD, then fetched.
    const out = mkdtempSync(join(dir, 'out-'));
    const f = await runNetkit(['file', 'fetch', 'hello.txt', '-H', 'multi', '-o', out], { netns: d.ns });
    expect(f.stderr).toMatch(/fetching from "multi" \(10\.78\.0\.1:\d+\), found through DNS-SD/);
    expect(f.code).toBe(0);
    await s.stop();
  });

  test('a goodbye removes the server from a running browser at once', async () => {
    const browser = startNetkit(['discover', '--timeout', '20s'], { netns: b.ns });
    const s = await serve(a, ['file', 'serve', '.', '--name', 'leaving']);
    await browser.waitFor('stdout', /^file\s+leaving\s/m);
    expect(await s.stop('SIGTERM')).toBe(0);
    await browser.waitFor('stderr', /"leaving" \(file\) said goodbye/);
    browser.child.kill('SIGTERM');
    await browser.done();
  });

  test('a server killed without a goodbye is still listed (the goodbye above is what removed it)', async () => {
    const browser = startNetkit(['discover', '--timeout', '4s'], { netns: b.ns });
    const s = await serve(a, ['file', 'serve', '.', '--name', 'crashed']);
    await browser.waitFor('stdout', /^file\s+crashed\s/m);
    await s.stop('SIGKILL');
    const r = await browser.done();
    expect(r.stderr).not.toMatch(/said goodbye/);
    expect(r.stderr).toMatch(/1 server answered/);
  });

  test('a server started after the browser is found within the same run', async () => {
    const browser = startNetkit(['discover', '--timeout', '20s', '--type', 'disk'], { netns: d.ns });
    // The browser has asked once already when its first query is answered by nobody; the server comes later.
    const s = await serve(a, ['disk', 'serve', '--name', 'latecomer']);
    const row = await browser.waitFor('stdout', /^disk\s+latecomer\s+\S+\s+(\d+)\s+10\.78\.0\.1\s/m);
    expect(Number(row[1])).toBe(s.port);
    browser.child.kill('SIGTERM');
    await browser.done();
    await s.stop();
  });

  test('interfaces that come and go are followed: announced when up, dropped when gone', async () => {
    const s = await serve(e, ['disk', 'serve', '--name', 'roamer']);
    expect(s.stderr()).toMatch(/announcing "roamer" \(_netkit-disk\._udp\) on eth0 10\.77\.0\.5\n/);
    const before = await discover(d, ['--timeout', '1s']);
    expect(before.list.find((x) => x.name === 'roamer')).toBeUndefined();
    lab.setLink(e, 'eth1', 'up');
    await serverSaid(s, /eth1 came up: announcing there too \(10\.78\.0\.5\)/);
    const after = await discover(d);
    expect(after.list.find((x) => x.name === 'roamer')?.addresses).toEqual(['10.78.0.5']);
    lab.setLink(e, 'eth1', 'down');
    await serverSaid(s, /eth1 went away/);
    await s.stop();
  });
});
