// An independent implementation, avahi, sees netkit's announcements, and netkit finds what avahi publishes (forged fingerprints included).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { runNetkit } from '../helpers/netkit.js';
import { Lab, LabServers, netnsUnavailable, type LabHost } from '../helpers/netns.js';
import { avahiUnavailable, startAvahi, type Avahi } from '../helpers/avahi.js';

const reason = netnsUnavailable() ?? avahiUnavailable();
const title = 'netkit and avahi-daemon see each other';
(reason ? describe.skip : describe)(reason ? `${title} [skipped: ${reason}]` : title, () => {
  let lab: Lab;
  let a: LabHost; // netkit servers
  let b: LabHost; // netkit client
  let av: LabHost; // avahi-daemon (and a netkit server it advertises)
  let dir: string;
  let avahi: Avahi;
  let servers: LabServers;
  const published: ChildProcess[] = [];

  beforeAll(async () => {
    lab = Lab.create('dav');
    a = lab.addHost('a');
    b = lab.addHost('b');
    av = lab.addHost('av');
    lab.connect(a, 'br0', 'eth0', '10.77.0.1/24');
    lab.connect(b, 'br0', 'eth0', '10.77.0.2/24');
    lab.connect(av, 'br0', 'eth0', '10.77.0.3/24');
    dir = mkdtempSync(join(tmpdir(), 'netkit-avahi-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello from behind avahi\n');
    mkdirSync(join(dir, 'avahi'));
    servers = new LabServers(dir);
    avahi = await startAvahi(av, join(dir, 'avahi'), 'avbox');
  });

  afterAll(async () => {
    for (const p of published) p.kill('SIGTERM');
    await servers?.stopAll();
    await avahi?.close();
    lab?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const serve = (host: LabHost, args: string[]) => servers.start(host, args);
  /** avahi-browse -rtp lines of resolved services: `=;iface;proto;name;type;domain;host;address;port;txt`. */
  const browse = async (type: string): Promise<{ name: string; host: string; address: string; port: number; txt: string[] }[]> => {
    const r = await avahi.run(['avahi-browse', '-rtp', type]);
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('=;'))
      .map((l) => {
        const f = l.split(';');
        return { name: f[3]!.replace(/\\032/g, ' '), host: f[6]!, address: f[7]!, port: Number(f[8]), txt: [...(f[9] ?? '').matchAll(/"([^"]*)"/g)].map((m) => m[1]!).sort() };
      });
  };

  test('avahi-browse -rtp lists netkit\'s file service with the right TXT (and no secret in it)', async () => {
    const token = 'a-secret-that-must-never-appear-in-txt-0123456789';
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${token}\n`);
    chmodSync(tokenFile, 0o600);
    const plain = await serve(a, ['file', 'serve', '.', '--name', 'plain share']);
    const sealed = await serve(a, ['file', 'serve', '.', '--tls', '--name', 'sealed', '--token-file', tokenFile]);
    const fp = /tls fingerprint (sha256:[0-9a-f]{64})/.exec(sealed.stdout())![1]!;
    const seen = await browse('_netkit-file._tcp');
    expect(seen.find((s) => s.name === 'plain share')).toMatchObject({ address: '10.77.0.1', port: plain.port, txt: ['auth=0', 'tls=0', 'v=1'] });
    expect(seen.find((s) => s.name === 'sealed')).toMatchObject({ address: '10.77.0.1', port: sealed.port, txt: ['auth=1', `fp=${fp}`, 'tls=1', 'v=1'] });
    expect(JSON.stringify(seen)).not.toContain(token);
    expect(seen.find((s) => s.name === 'plain share')!.host).toMatch(/\.local$/);
    await Promise.all([plain.stop(), sealed.stop()]);
  });

  test('a server started with --no-announce is not seen by avahi', async () => {
    const s = await serve(a, ['disk', 'serve', '--no-announce', '--name', 'hidden']);
    const control = await serve(a, ['disk', 'serve', '--name', 'shown']);
    const seen = await browse('_netkit-disk._udp');
    expect(seen.map((x) => x.name)).toContain('shown');
    expect(seen.map((x) => x.name)).not.toContain('hidden');
    await Promise.all([s.stop(), control.stop()]);
  });

  test('netkit discover finds a service published with avahi-publish', async () => {
    published.push(await avahi.publish(['-s', 'avahi box', '_netkit-disk._udp', '9991', 'v=1', 'auth=1', 'tls=0']));
    const r = await runNetkit(['discover', '--type', 'disk', '--json', '--timeout', '3s'], { netns: b.ns });
    expect(r.code).toBe(0);
    const found = (JSON.parse(r.stdout) as { name: string }[]).find((x) => x.name === 'avahi box');
    expect(found).toMatchObject({ type: 'disk', host: 'avbox.local', port: 9991, addresses: ['10.77.0.3'], version: 1, auth: true, tls: false });
  });

  test('a forged TXT fingerprint gives a loud warning, and the TLS connection still decides', async () => {
    // The real server, silent; avahi advertises it with somebody else's fingerprint.
    const real = await serve(av, ['file', 'serve', '.', '--tls', '--no-announce']);
    const fp = /tls fingerprint (sha256:[0-9a-f]{64})/.exec(real.stdout())![1]!;
    const forged = `sha256:${'1'.repeat(64)}`;
    published.push(await avahi.publish(['-s', 'forged', '_netkit-file._tcp', String(real.port), 'v=1', 'auth=0', 'tls=1', `fp=${forged}`]));
    const cfg = join(dir, 'client-forged');
    mkdirSync(join(cfg, 'netkit'), { recursive: true });
    writeFileSync(join(cfg, 'netkit', 'known_hosts'), `10.77.0.3:${real.port} ${fp}\n`);
    const env = { XDG_CONFIG_HOME: cfg };
    const d = await runNetkit(['discover', '--type', 'file', '--timeout', '3s'], { netns: b.ns, env });
    expect(d.stdout).toMatch(new RegExp(`^file\\s+forged\\s.*${forged} CHANGED$`, 'm'));
    expect(d.stderr).toMatch(/WARNING: "forged" announces the TLS certificate sha256:1{64}, but .*known_hosts line 1 \(10\.77\.0\.3:\d+\) holds sha256:[0-9a-f]{64}/);
    const out = mkdtempSync(join(dir, 'out-'));
    const f = await runNetkit(['file', 'fetch', 'hello.txt', '-H', 'forged', '--tls', '-o', out], { netns: b.ns, env });
    expect(f.stderr).toMatch(/WARNING: "forged" announces/);
    // The handshake proved the certificate known_hosts holds: the fetch goes ahead, TXT or not.
    expect(f.code).toBe(0);
    expect(f.stdout).toMatch(/verified/);
    await real.stop();
  });
});
