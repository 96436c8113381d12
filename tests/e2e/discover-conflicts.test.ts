// Names that collide or that cannot be typed: cloned machines, responders that never rename, malformed and partial answers, `.local` and spaced names, a browser that asks just after another.
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, serverSaid, type Server } from '../helpers/netkit.js';
import { Lab, LabServers, describeInNamespaces, have, type LabHost } from '../helpers/netns.js';
import { runHelper, startRogue, type Rogue } from '../helpers/mdns.js';

interface Listed {
  name: string;
  host: string;
  port: number;
  addresses: string[];
  address: string;
  missing?: string[];
}

describeInNamespaces('discovery: collisions, partial answers and names people type', () => {
  let lab: Lab;
  let x: LabHost;
  let y: LabHost;
  let c: LabHost; // the client
  let w: LabHost; // another client
  let r1: LabHost;
  let r2: LabHost;
  let m1: LabHost; // br0
  let m2: LabHost; // br1 at first, then moved to br0
  let dir: string;
  let servers: LabServers;
  const rogues: Rogue[] = [];
  const running: Server[] = [];

  beforeAll(() => {
    lab = Lab.create('dcf');
    lab.addBridge('br1');
    [x, y, c, w, r1, r2, m1, m2] = ['x', 'y', 'c', 'w', 'r1', 'r2', 'm1', 'm2'].map((n) => lab.addHost(n)) as [LabHost, LabHost, LabHost, LabHost, LabHost, LabHost, LabHost, LabHost];
    lab.connect(x, 'br0', 'eth0', '10.77.0.11/24');
    lab.connect(y, 'br0', 'eth0', '10.77.0.12/24');
    lab.connect(c, 'br0', 'eth0', '10.77.0.13/24');
    lab.connect(r1, 'br0', 'eth0', '10.77.0.14/24');
    lab.connect(r2, 'br0', 'eth0', '10.77.0.15/24');
    lab.connect(w, 'br0', 'eth0', '10.77.0.16/24');
    lab.connect(m1, 'br0', 'eth0', '10.77.0.21/24');
    lab.connect(m2, 'br1', 'eth0', '10.77.0.22/24');
    dir = mkdtempSync(join(tmpdir(), 'netkit-discover-conflicts-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello over discovery\n');
    servers = new LabServers(dir);
  });

  afterEach(async () => {
    await Promise.all([...rogues.splice(0).map((r) => r.stop()), ...running.splice(0).map((s) => s.stop())]);
  });

  afterAll(async () => {
    await servers?.stopAll();
    lab?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const serve = async (host: LabHost, args: string[], o: { hostName?: string; port?: number } = {}): Promise<Server> => {
    const s = await servers.start(host, args, {}, o);
    running.push(s);
    return s;
  };
  const discover = async (host: LabHost, args: string[] = []): Promise<{ code: number | null; list: Listed[]; stderr: string }> => {
    const r = await runNetkit(['discover', '--json', '--timeout', '1.5s', ...args], { netns: host.ns });
    return { code: r.code, list: JSON.parse(r.stdout || '[]') as Listed[], stderr: r.stderr };
  };
  const fetch = (host: LabHost, args: string[]) => runNetkit(['file', 'fetch', 'hello.txt', '-o', mkdtempSync(join(dir, 'out-')), ...args], { netns: host.ns });
  const txt = ['v=1', 'auth=0', 'tls=0'];

  const unshareTest = have('unshare') ? test : test.skip;
  unshareTest('two machines with one host name, one instance name and one port: the second takes both new names; .local names resolve over mDNS', async () => {
    const first = await serve(x, ['file', 'serve', '.', '--name', 'dup'], { hostName: 'clone', port: 8881 });
    const disk = await serve(x, ['disk', 'serve', '--name', 'clone disk'], { hostName: 'clone' });
    const second = await serve(y, ['file', 'serve', '.', '--name', 'dup'], { hostName: 'clone', port: 8881 });
    expect(second.stderr()).toMatch(/the host name "clone\.local" is taken on the network \(10\.77\.0\.11 answers for it\); announcing this machine as "clone-2\.local"/);
    expect(second.stderr()).toMatch(/the name "dup" is taken on the network; announcing as "dup \(2\)"/);
    expect(first.stderr()).not.toMatch(/taken|claims/);
    // Two servers under two names: never one merged entry.
    const r = await discover(c, ['--type', 'file']);
    expect(r.list).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'dup', host: 'clone.local', addresses: ['10.77.0.11'], port: 8881 }),
        expect.objectContaining({ name: 'dup (2)', host: 'clone-2.local', addresses: ['10.77.0.12'], port: 8881 }),
      ]),
    );
    expect(r.list).toHaveLength(2);
    const pick = await fetch(c, ['--discover', '--discover-timeout', '1.5s']);
    expect(pick.code).toBe(2);
    expect(pick.stderr).toMatch(/"dup" \(10\.77\.0\.11:8881\)/);
    expect(pick.stderr).toMatch(/"dup \(2\)" \(10\.77\.0\.12:8881\)/);
    // The HOST column's names work with -H: the resolver does not know them, multicast DNS does.
    const out = mkdtempSync(join(dir, 'out-'));
    const f = await runNetkit(['file', 'fetch', 'hello.txt', '-H', 'clone-2.local:8881', '-o', out], { netns: c.ns });
    expect(f.code).toBe(0);
    expect(readFileSync(join(out, 'hello.txt'), 'utf8')).toBe('hello over discovery\n');
    const q = await runNetkit(['disk', 'query', `clone.local:${disk.port}`, '--json'], { netns: c.ns });
    expect(JSON.parse(q.stdout)).toMatchObject([{ host: `clone.local:${disk.port}`, ok: true, address: '10.77.0.11' }]);
    const none = await runNetkit(['file', 'fetch', 'x', '-H', 'nobody.local', '--discover-timeout', '1s', '-o', dir], { netns: c.ns });
    expect(none.code).toBe(6);
    expect(none.stderr).toMatch(/cannot resolve host 'nobody\.local': the system resolver does not know it, and no host answered for it over multicast DNS within 1\.0s/);
  });

  unshareTest('two machines with one host name and one instance name that start together settle it: each name ends up held by one machine', async () => {
    const both = await Promise.all([r1, r2].map((h) => serve(h, ['disk', 'serve', '--name', 'pair'], { hostName: 'twins' })));
    // The tie-break is per name: one server may lose both, or each one of the two.
    const text = both.map((s) => s.stderr()).join('');
    expect(text.match(/announcing as "pair \(2\)"/g)).toHaveLength(1);
    expect(text.match(/announcing this machine as "twins-2\.local"/g)).toHaveLength(1);
    const r = await discover(c, ['--type', 'disk']);
    expect(r.list).toHaveLength(2);
    expect(r.list.map((s) => s.name).sort()).toEqual(['pair', 'pair (2)']);
    expect(r.list.map((s) => s.host).sort()).toEqual(['twins-2.local', 'twins.local']);
    expect(r.list.map((s) => s.address).sort()).toEqual(['10.77.0.14', '10.77.0.15']);
  });

  unshareTest('two servers that announced the same names apart meet on one link: one probes again and takes new names', async () => {
    const s1 = await serve(m1, ['file', 'serve', '.', '--name', 'same'], { hostName: 'merged', port: 8881 });
    const s2 = await serve(m2, ['file', 'serve', '.', '--name', 'same'], { hostName: 'merged', port: 8881 });
    lab.rewire(m2, 'eth0', 'br0');
    // A browser's question makes both answer; each hears the other (RFC 6762 section 9).
    await discover(c, ['--type', 'file']);
    const loser = await Promise.race([serverSaid(s1, /announcing as "same \(2\)"/).then(() => s1), serverSaid(s2, /announcing as "same \(2\)"/).then(() => s2)]);
    expect(loser.stderr()).toMatch(/also claims "(same|merged\.local)"; probing again/);
    expect(loser.stderr()).toMatch(/announcing this machine as "merged-2\.local"/);
    await serverSaid(loser, /announcing "same \(2\)"/);
    const r = await discover(c, ['--type', 'file']);
    expect(r.list.map((s) => s.name).sort()).toEqual(['same', 'same (2)']);
  });

  test('one name answered by two responders that never rename is two servers: listed twice; --discover and -H NAME stop with the list', async () => {
    for (const [host, address] of [[r1, '10.77.0.14'], [r2, '10.77.0.15']] as const) {
      rogues.push(await startRogue(host, 'eth0', { instance: 'twin', type: '_netkit-file._tcp', host: 'twin.local', port: 8881, txt, addresses: [address] }));
    }
    const r = await discover(c, ['--type', 'file']);
    const twins = r.list.filter((s) => s.name === 'twin').map((s) => s.addresses);
    expect(twins.sort()).toEqual([['10.77.0.14'], ['10.77.0.15']]);
    const pick = await fetch(c, ['--discover', '--discover-timeout', '1.5s']);
    expect(pick.code).toBe(2);
    expect(pick.stderr).toMatch(/2 netkit file servers announced themselves; choose one:/);
    expect(pick.stderr).toMatch(/"twin" \(10\.77\.0\.14:8881\)/);
    expect(pick.stderr).toMatch(/"twin" \(10\.77\.0\.15:8881\)/);
    expect(pick.stderr).toMatch(/hint: the same name is announced by different machines; name one by address, e\.g\. -H 10\.77\.0\.1[45]:8881/);
    const byName = await fetch(c, ['-H', 'twin', '--discover-timeout', '1.5s']);
    expect(byName.code).toBe(2);
    expect(byName.stderr).toMatch(/2 netkit file servers announce the name "twin"; choose one:/);
  });

  test('an SRV with port 0 is ignored; one whose address records never come is listed with the address it came from, and works', async () => {
    const real = await serve(r1, ['file', 'serve', '.', '--no-announce']);
    rogues.push(await startRogue(r1, 'eth0', { instance: 'ghost', type: '_netkit-file._tcp', host: 'ghost.local', port: real.port, txt, addresses: [] }));
    rogues.push(await startRogue(r2, 'eth0', { instance: 'zero', type: '_netkit-file._tcp', host: 'zero.local', port: 0, txt, addresses: ['10.77.0.15'] }));
    const r = await discover(c, ['--type', 'file']);
    expect(r.list.find((s) => s.name === 'zero')).toBeUndefined();
    expect(r.list.find((s) => s.name === 'ghost')).toMatchObject({ port: real.port, addresses: [], address: '10.77.0.14', missing: ['addresses'] });
    expect(r.stderr).toMatch(/"ghost" \(file\) sent no address records for ghost\.local within 1\.5s: using 10\.77\.0\.14, where its answer came from/);
    const f = await fetch(c, ['-H', 'ghost', '--discover-timeout', '1s']);
    expect(f.stderr).toMatch(new RegExp(`fetching from "ghost" \\(10\\.77\\.0\\.14:${real.port}\\)`));
    expect(f.code).toBe(0);
  });

  test('names with spaces are typed back with -H and as disk query hosts; malformed host text is still a usage error', async () => {
    const fs = await serve(x, ['file', 'serve', '.', '--name', 'plain share']);
    const ds = await serve(x, ['disk', 'serve', '--name', 'disk one']);
    const f = await fetch(c, ['-H', 'plain share']);
    expect(f.stderr).toMatch(new RegExp(`fetching from "plain share" \\(10\\.77\\.0\\.11:${fs.port}\\)`));
    expect(f.code).toBe(0);
    const q = await runNetkit(['disk', 'query', 'disk one', '-H', `disk one:${ds.port}`, '--json'], { netns: c.ns });
    expect(q.code).toBe(0);
    expect(JSON.parse(q.stdout)).toMatchObject([
      { host: 'disk one', ok: true, address: '10.77.0.11', port: ds.port },
      { host: `disk one:${ds.port}`, ok: true, address: '10.77.0.11', port: ds.port },
    ]);
    const unknown = await fetch(c, ['-H', 'no such share', '--discover-timeout', '1s']);
    expect(unknown.code).toBe(6);
    expect(unknown.stderr).toMatch(/cannot resolve host 'no such share': no netkit file server announces that name/);
    for (const bad of ['plain share:0', 'plain share:', '']) {
      const u = await fetch(c, ['-H', bad]);
      expect(u.code).toBe(2);
    }
    expect((await runNetkit(['disk', 'query', 'disk one:70000'], { netns: c.ns })).code).toBe(2);
    // The live view asks fixed addresses: it says so rather than failing on names it never looks up.
    for (const args of [['disk one', '--watch', '1s'], ['--discover', '--watch', '1s']]) {
      const watch = await runNetkit(['disk', 'query', ...args], { netns: c.ns });
      expect(watch.code).toBe(2);
      expect(watch.stderr).toMatch(/--watch cannot be used with (an announced name \('disk one'\)|--discover): the live view does not look servers up through DNS-SD/);
    }
  });

  test('a question with the QU bit, just after the answer was multicast, is answered directly instead of a second later', async () => {
    await serve(x, ['disk', 'serve', '--name', 'quick']);
    const r = await runHelper(w, 'mdns-qu-probe.mjs', { address: w.addresses.eth0, name: '_netkit-disk._udp.local' });
    expect(JSON.parse(r.stdout)).toEqual({ multicast: true, unicast: true });
  });

  test('--discover with a server named as well is a usage error', async () => {
    for (const args of [['--discover', '-H', '10.77.0.11:8881'], ['--discover', '--port', '8881']]) {
      const r = await fetch(c, args);
      expect(r.code).toBe(2);
    }
    const url = await runNetkit(['file', 'fetch', 'netkit://10.77.0.11:8881/hello.txt', '--discover', '-o', dir], { netns: c.ns });
    expect(url.code).toBe(2);
    expect(url.stderr).toMatch(/the server is given twice: in 'netkit:\/\/10\.77\.0\.11:8881\/hello\.txt' and with --discover/);
    const h = await fetch(c, ['-H', '10.77.0.11:8881', '--discover']);
    expect(h.stderr).toMatch(/the server is given twice: with -H 10\.77\.0\.11:8881 and with --discover/);
  });
});
