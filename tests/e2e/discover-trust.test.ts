// Discovery is a hint: fingerprints against known_hosts, TLS deciding, names through DNS-SD, --discover choices, silence and its fallback.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { runNetkit } from '../helpers/netkit.js';
import { Lab, LabServers, describeInNamespaces, have, type LabHost } from '../helpers/netns.js';

describeInNamespaces('discovery is a hint: trust, names and fallbacks', () => {
  let lab: Lab;
  let b: LabHost; // the client
  let c: LabHost; // servers
  let f: LabHost; // more servers
  let g: LabHost; // alone on its own bridge: nothing answers there
  let h: LabHost; // no interface but loopback
  let dir: string;
  let servers: LabServers;

  beforeAll(() => {
    lab = Lab.create('dtr');
    lab.addBridge('br2');
    b = lab.addHost('b');
    c = lab.addHost('c');
    f = lab.addHost('f');
    g = lab.addHost('g');
    h = lab.addHost('h');
    lab.connect(b, 'br0', 'eth0', '10.77.0.2/24');
    lab.connect(c, 'br0', 'eth0', '10.77.0.3/24');
    lab.connect(f, 'br0', 'eth0', '10.77.0.6/24');
    lab.connect(g, 'br2', 'eth0', '10.79.0.7/24');
    dir = mkdtempSync(join(tmpdir(), 'netkit-discover-trust-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello over discovery\n');
    servers = new LabServers(dir);
  });

  afterAll(async () => {
    await servers?.stopAll();
    lab?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const serve = (host: LabHost, args: string[]) => servers.start(host, args);
  const client = (name: string, knownHosts?: string): NodeJS.ProcessEnv => {
    const cfg = join(dir, `client-${name}`);
    mkdirSync(join(cfg, 'netkit'), { recursive: true });
    if (knownHosts !== undefined) writeFileSync(join(cfg, 'netkit', 'known_hosts'), knownHosts);
    return { XDG_CONFIG_HOME: cfg };
  };

  test('an announced fingerprint is compared with known_hosts: new, CHANGED (a loud warning; TLS still decides), matches', async () => {
    const s = await serve(c, ['file', 'serve', '.', '--tls', '--name', 'gamma']);
    const fp = /tls fingerprint (sha256:[0-9a-f]{64})/.exec(s.stdout())![1]!;
    const out = mkdtempSync(join(dir, 'out-'));

    const fresh = client('fresh');
    let r = await runNetkit(['discover', '--type', 'file', '--timeout', '1.5s'], { netns: b.ns, env: fresh });
    expect(r.stdout).toMatch(new RegExp(`^file\\s+gamma\\s.*\\syes\\s+${fp} new$`, 'm'));

    // known_hosts holds another certificate for that address: discovery warns loudly, TLS refuses.
    const wrong = `sha256:${'0'.repeat(64)}`;
    const changed = client('changed', `# pinned earlier\n10.77.0.3:${s.port} ${wrong}\n`);
    r = await runNetkit(['discover', '--json', '--timeout', '1.5s'], { netns: b.ns, env: changed });
    const listed = (JSON.parse(r.stdout) as { name: string; fingerprintStatus: string; knownHosts?: { line: number } }[]).find((x) => x.name === 'gamma');
    expect(listed).toMatchObject({ fingerprintStatus: 'changed', knownHosts: { line: 2 } });
    expect(r.stderr).toMatch(/WARNING: "gamma" announces the TLS certificate sha256:[0-9a-f]{64}, but .*known_hosts line 2/);
    const refused = await runNetkit(['file', 'fetch', 'hello.txt', '-H', 'gamma', '--tls', '-o', out], { netns: b.ns, env: changed });
    expect(refused.stderr).toMatch(/WARNING: "gamma" announces/);
    expect(refused.stderr).toMatch(/has CHANGED/);
    expect(refused.code).toBe(11);

    // A first TLS use records what the handshake proved; from then on the announcement matches.
    const ok = await runNetkit(['file', 'fetch', 'hello.txt', '-H', 'gamma', '--tls', '-o', out], { netns: b.ns, env: fresh });
    expect(ok.code).toBe(0);
    expect(readFileSync(join(fresh.XDG_CONFIG_HOME!, 'netkit', 'known_hosts'), 'utf8')).toContain(`10.77.0.3:${s.port} ${fp}`);
    r = await runNetkit(['discover', '--type', 'file', '--timeout', '1.5s'], { netns: b.ns, env: fresh });
    expect(r.stdout).toMatch(new RegExp(`${fp} matches known_hosts$`, 'm'));
    await s.stop();
  });

  test('file fetch --discover uses the one file server; with several it stops and lists them', async () => {
    const env = client('choice');
    const out = mkdtempSync(join(dir, 'out-'));
    const one = await serve(c, ['file', 'serve', '.', '--name', 'only']);
    const r1 = await runNetkit(['file', 'fetch', 'hello.txt', '--discover', '-o', out], { netns: b.ns, env });
    expect(r1.stderr).toMatch(/fetching from "only" \(10\.77\.0\.3:\d+\)/);
    expect(r1.code).toBe(0);
    const two = await serve(f, ['file', 'serve', '.', '--name', 'other']);
    const r2 = await runNetkit(['file', 'fetch', 'hello.txt', '--discover', '-f', '-o', out], { netns: b.ns, env });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/2 netkit file servers announced themselves; choose one:/);
    expect(r2.stderr).toMatch(/"only" \(10\.77\.0\.3:\d+\)/);
    expect(r2.stderr).toMatch(/"other" \(10\.77\.0\.6:\d+\)/);
    expect(r2.stderr).toMatch(/hint: name it with -H, e\.g\. -H '/);
    await Promise.all([one.stop(), two.stop()]);
  });

  test('-H with a name nobody knows: the resolver and DNS-SD were both asked', async () => {
    const r = await runNetkit(['file', 'fetch', 'x', '-H', 'nosuchname', '--discover-timeout', '1s', '-o', dir], { netns: b.ns, env: client('nosuch') });
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/cannot resolve host 'nosuchname': the system resolver does not know it, and no netkit file server announces that name/);
  });

  test('disk query: an announced name as a host, and --discover together with a named host (asked once)', async () => {
    const s = await serve(c, ['disk', 'serve', '--name', 'dq']);
    const byName = await runNetkit(['disk', 'query', 'dq', '--json'], { netns: b.ns });
    expect(JSON.parse(byName.stdout)).toMatchObject([{ host: 'dq', ok: true, address: '10.77.0.3', port: s.port }]);
    const both = await runNetkit(['disk', 'query', `10.77.0.3:${s.port}`, '--discover', '--discover-timeout', '1.5s', '--json'], { netns: b.ns });
    expect(both.code).toBe(0);
    const rows = JSON.parse(both.stdout) as { host: string; ok: boolean }[];
    expect(rows.map((x) => x.host)).toEqual([`10.77.0.3:${s.port}`]);
    await s.stop();
  });

  test('where nothing answers, discover says so and why, points to -H and --hosts-file, and ends in time', async () => {
    const t0 = Date.now();
    const r = await runNetkit(['discover', '--timeout', '1s'], { netns: g.ns });
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/no netkit server announced itself on eth0 within 1\.0s/);
    expect(r.stderr).toMatch(/VPN/);
    expect(r.stderr).toMatch(/client isolation/);
    expect(r.stderr).toMatch(/firewall/);
    expect(r.stderr).toMatch(/-H HOST/);
    expect(r.stderr).toMatch(/--hosts-file/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const json = await runNetkit(['discover', '--json', '--timeout', '0.5s'], { netns: g.ns });
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toEqual([]);
    const alone = await runNetkit(['discover', '--timeout', '0.5s'], { netns: h.ns });
    expect(alone.code).toBe(6);
    expect(alone.stderr).toMatch(/no network interface with an IPv4 address besides loopback/);
    const fetch = await runNetkit(['file', 'fetch', 'x', '--discover', '--discover-timeout', '0.5s', '-o', dir], { netns: g.ns });
    expect(fetch.code).toBe(3);
    expect(fetch.stderr).toMatch(/no netkit file server announced itself/);
  });

  const tcpdumpTest = have('tcpdump') ? test : test.skip;
  tcpdumpTest('--no-announce puts nothing on the wire (a capture inside the namespace); without it, packets go out', async () => {
    const capture = async (announce: boolean): Promise<{ packets: number; found: boolean }> => {
      const dump = spawn('ip', ['netns', 'exec', f.ns, 'tcpdump', '-i', 'any', '-n', '-l', '--immediate-mode', 'udp port 5353 and src host 10.77.0.6']);
      let err = '';
      dump.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      dump.stdout.resume();
      while (!/listening on/.test(err)) {
        if (dump.exitCode !== null) throw new Error(`tcpdump: ${err}`);
        await once(dump.stderr, 'data');
      }
      const s = await serve(f, ['file', 'serve', '.', '--name', announce ? 'loud' : 'quiet', ...(announce ? [] : ['--no-announce'])]);
      // A browser asks; a silent server must not answer either.
      const r = await runNetkit(['discover', '--timeout', '1.5s'], { netns: b.ns });
      expect(await s.stop()).toBe(0);
      const closed = once(dump, 'close');
      dump.kill('SIGINT');
      await closed;
      return { packets: Number(/(\d+) packets? captured/.exec(err)?.[1] ?? NaN), found: /\b(loud|quiet)\b/.test(r.stdout) };
    };
    expect(await capture(false)).toEqual({ packets: 0, found: false });
    const loud = await capture(true);
    expect(loud.found).toBe(true);
    expect(loud.packets).toBeGreaterThan(0);
  });
});
