// bench discover: time to the first (and last) result of `netkit discover` with 1, 10 and 50 announced servers in
// network namespaces, and mDNS traffic per server per minute, netkit against avahi-daemon announcing one service.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, NODE, ROOT, cleanEnv, live, log, median, nowMs, startProcess, waitUntil, which } from './common.mjs';

const ip = (...args) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Namespaces named with the pid, a bridge per LAN in a switch namespace; close() removes everything. */
class Lab {
  constructor() {
    this.namespaces = [];
    this.links = 0;
    this.sw = this.add('sw');
  }
  add(role) {
    const ns = `nkb${role}-${process.pid}`;
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    return ns;
  }
  bridge(name) {
    ip('-n', this.sw, 'link', 'add', name, 'type', 'bridge');
    ip('-n', this.sw, 'link', 'set', name, 'up');
  }
  host(role, bridge, cidr) {
    const ns = this.add(role);
    const n = this.links++;
    const inside = `nkbv${n}x${process.pid}`.slice(0, 15);
    ip('link', 'add', inside, 'netns', ns, 'type', 'veth', 'peer', 'name', `bp${n}`, 'netns', this.sw);
    ip('-n', this.sw, 'link', 'set', `bp${n}`, 'master', bridge, 'up');
    ip('-n', ns, 'link', 'set', inside, 'name', 'eth0');
    ip('-n', ns, 'addr', 'add', cidr, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    return ns;
  }
  close() {
    for (const ns of this.namespaces) {
      try {
        for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* gone */
      }
    }
  }
}

function unavailable() {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'skipped: network namespaces need Linux and root';
  for (const t of ['ip', 'unshare']) if (!which(t)) return `skipped: ${t} not installed (sudo apt-get install -y iproute2 util-linux)`;
  try {
    const probe = `nkbprobe-${process.pid}`;
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
  } catch (e) {
    return `skipped: 'ip netns add' failed (${String(e.stderr ?? e).trim()})`;
  }
  return undefined;
}

function tracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

async function startServer(ns, i) {
  const name = `srv${String(i).padStart(2, '0')}`;
  // Each namespace is a machine of its own, with a host name of its own (namespaces otherwise share this
  // machine's name, and every server would have to claim another one: <host>-2.local, -3…).
  const own = which('unshare') ? ['unshare', '-u', 'sh', '-c', 'hostname "$0" && exec "$@"', name] : [];
  const [cmd, ...args] = [...own, 'ip', 'netns', 'exec', ns, NODE, BIN, 'disk', 'serve', '--port', '9991', '--name', name, '--path', tmpdir()];
  const p = await startProcess(cmd, args, { timeoutMs: 30000 });
  await waitUntil(() => /netkit: announcing /.test(p.stderr()), { timeoutMs: 30000, what: `srv${i} announcing` });
  return p;
}

/** One `netkit discover` run in `ns`: ms from spawn to the first server line and to the n-th, and what --json says. */
async function discoverOnce(ns, n, json) {
  const t0 = nowMs();
  const child = tracked('ip', ['netns', 'exec', ns, NODE, BIN, 'discover', '--type', 'disk', ...(json ? ['--json'] : [])]);
  child.stdin.end();
  let out = '';
  let first = NaN;
  let all = NaN;
  child.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
    if (json) return;
    const rows = out.split('\n').filter((l) => /^disk\s/.test(l)).length;
    if (rows >= 1 && Number.isNaN(first)) first = nowMs() - t0;
    if (rows >= n && Number.isNaN(all)) all = nowMs() - t0;
  });
  child.stderr.resume();
  const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
  const [code] = await once(child, 'close');
  clearTimeout(killer);
  const total = nowMs() - t0;
  if (!json) return { code, first_ms: first, all_ms: all, exit_ms: total, found: out.split('\n').filter((l) => /^disk\s/.test(l)).length };
  const list = code === 0 ? JSON.parse(out) : [];
  const el = list.map((s) => s.elapsedMs).sort((a, b) => a - b);
  return { code, found: list.length, internal_first_ms: el[0] ?? NaN, internal_last_ms: el[el.length - 1] ?? NaN, exit_ms: total };
}

async function versionOnce(ns) {
  const t0 = nowMs();
  const child = tracked('ip', ['netns', 'exec', ns, NODE, BIN, '--version']);
  child.stdin.end();
  child.stdout.resume();
  child.stderr.resume();
  await once(child, 'close');
  return nowMs() - t0;
}

async function firstResult(lab, quick) {
  lab.bridge('br0');
  const client = lab.host('cl', 'br0', '10.80.1.250/16');
  const rounds = quick ? 2 : 5;
  const sizes = [1, 10, 50];
  const servers = [];
  const results = [];
  try {
    for (const size of sizes) {
      while (servers.length < size) {
        const batch = [];
        for (let k = 0; k < 10 && servers.length + batch.length < size; k++) {
          const i = servers.length + batch.length + 1;
          batch.push(startServer(lab.host(`s${i}`, 'br0', `10.80.0.${i}/16`), i));
        }
        servers.push(...(await Promise.all(batch)));
      }
      log(`bench discover: ${size} server(s) announced; ${rounds} rounds`);
      const runs = [];
      const jsonRuns = [];
      const startup = [];
      for (let r = 0; r < rounds; r++) {
        startup.push(await versionOnce(client));
        runs.push(await discoverOnce(client, size, false));
        jsonRuns.push(await discoverOnce(client, size, true));
      }
      results.push({
        servers: size,
        runs,
        json_runs: jsonRuns,
        median_first_ms: median(runs.map((x) => x.first_ms)),
        median_all_ms: median(runs.map((x) => x.all_ms)),
        all_found_every_round: runs.every((x) => x.found === size) && jsonRuns.every((x) => x.found === size),
        median_internal_first_ms: median(jsonRuns.map((x) => x.internal_first_ms)),
        median_internal_last_ms: median(jsonRuns.map((x) => x.internal_last_ms)),
        median_version_ms: median(startup),
      });
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop('SIGTERM', 3000)));
  }
  return results;
}

// A passive listener in its own namespace: counts mDNS packets and bytes per source address per phase;
// in phase 1 (window 2) it asks for _netkit-disk._udp.local every 10 s, as a browser would.
const LISTENER = `
const dgram = require('dgram');
const packet = require(process.argv[1]);
const me = process.argv[2];
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const counts = [{}, {}, {}];
let phase = 0, timer, asked = 0;
s.on('message', (m, r) => {
  if (r.address === me) return;
  const c = (counts[phase][r.address] ??= { packets: 0, bytes: 0 });
  c.packets++; c.bytes += m.length;
});
const ask = () => { asked++; s.send(packet.encode({ type: 'query', questions: [{ name: '_netkit-disk._udp.local', type: 'PTR' }] }), 5353, '224.0.0.251'); };
s.bind(5353, () => { s.addMembership('224.0.0.251', me); s.setMulticastInterface(me); console.log('ready'); });
require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
  if (l === 'phase') { phase++; if (phase === 1) { ask(); timer = setInterval(ask, 10000); } else clearInterval(timer); }
  if (l === 'end') { clearInterval(timer); console.log(JSON.stringify({ counts, asked })); s.close(); process.stdin.destroy(); }
});
`;

async function startAvahi(ns, dir) {
  const bus = join(dir, 'bus');
  writeFileSync(join(dir, 'dbus.conf'), `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${bus}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/><allow send_type="signal"/>
<allow send_requested_reply="true" send_type="method_return"/><allow send_requested_reply="true" send_type="error"/>
<allow receive_type="method_call"/><allow receive_type="method_return"/><allow receive_type="error"/><allow receive_type="signal"/></policy></busconfig>`);
  writeFileSync(join(dir, 'avahi.conf'), '[server]\nhost-name=avbench\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=eth0\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation=no\n');
  const env = cleanEnv({ DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` });
  await startProcess('ip', ['netns', 'exec', ns, 'dbus-daemon', `--config-file=${join(dir, 'dbus.conf')}`, '--nofork', '--print-address'], { re: /unix:path=/ });
  const daemon = tracked('ip', ['netns', 'exec', ns, 'unshare', '-m', 'sh', '-c', `mount -t tmpfs tmpfs /run && exec avahi-daemon -f '${join(dir, 'avahi.conf')}' --no-drop-root --no-chroot --no-rlimits --no-proc-title`], { env });
  let err = '';
  daemon.stdout.resume();
  daemon.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  await waitUntil(() => /Server startup complete/.test(err), { timeoutMs: 15000, what: 'avahi-daemon' });
  const pub = tracked('ip', ['netns', 'exec', ns, 'avahi-publish', '-s', 'avbench', '_netkit-disk._udp', '9991', 'v=1', 'auth=0', 'tls=0'], { env });
  let perr = '';
  pub.stdout.resume();
  pub.stderr.setEncoding('utf8').on('data', (d) => (perr += d));
  await waitUntil(() => /Established/.test(perr), { timeoutMs: 15000, what: 'avahi-publish' });
}

async function traffic(lab, quick) {
  const missing = ['avahi-daemon', 'avahi-publish', 'dbus-daemon', 'unshare'].filter((t) => !which(t));
  if (missing.length) return { skipped: `skipped: ${missing.join(', ')} not installed (sudo apt-get install -y avahi-daemon avahi-utils dbus)` };
  const windowMs = quick ? 15000 : 60000;
  lab.bridge('br1');
  const nk = lab.host('tn', 'br1', '10.81.0.1/24');
  const av = lab.host('ta', 'br1', '10.81.0.2/24');
  const ls = lab.host('tl', 'br1', '10.81.0.3/24');
  const dir = mkdtempSync(join(tmpdir(), 'netkit-bench-mdns-'));
  try {
    const listener = tracked('ip', ['netns', 'exec', ls, NODE, '-e', LISTENER, join(ROOT, 'node_modules', 'dns-packet'), '10.81.0.3']);
    let out = '';
    listener.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    listener.stderr.resume();
    await waitUntil(() => /ready/.test(out), { timeoutMs: 10000, what: 'the listener' });
    // Both start now; window 1 is their first minute (probes, announcements), window 2 a minute with a query every 10 s.
    const t0 = nowMs();
    const [server] = await Promise.all([startServer(nk, 0), startAvahi(av, dir)]);
    const lag = nowMs() - t0;
    await new Promise((r) => setTimeout(r, Math.max(0, windowMs - lag)));
    listener.stdin.write('phase\n');
    await new Promise((r) => setTimeout(r, windowMs));
    listener.stdin.write('phase\n');
    // Window 3 is the shutdown: goodbyes.
    await server.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    listener.stdin.write('end\n');
    await waitUntil(() => /"counts"/.test(out), { timeoutMs: 5000, what: 'the listener counts' });
    const { counts, asked } = JSON.parse(out.slice(out.indexOf('{')));
    const pick = (w, a) => counts[w][a] ?? { packets: 0, bytes: 0 };
    return {
      window_s: windowMs / 1000,
      queries_in_window_2: asked,
      netkit: { start: pick(0, '10.81.0.1'), queried: pick(1, '10.81.0.1'), goodbye: pick(2, '10.81.0.1') },
      avahi: { start: pick(0, '10.81.0.2'), queried: pick(1, '10.81.0.2') },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runDiscover({ quick }) {
  const reason = unavailable();
  if (reason) return { skipped: reason };
  const lab = new Lab();
  try {
    const first = await firstResult(lab, quick);
    const traf = await traffic(lab, quick);
    return {
      conditions: {
        lab: 'one switch namespace with a Linux bridge; each server in its own namespace (veth, one IPv4 address, no default route); the client in another',
        server: '`netkit disk serve --port 9991 --name srvNN` on a machine named srvNN (its own UTS namespace; announcing; probing done before timing)',
        client: '`netkit discover --type disk` (default 2 s timeout), spawned with `ip netns exec`; rounds alternate plain and --json runs',
        rounds: quick ? 2 : 5,
      },
      first_result: first,
      traffic: traf,
    };
  } finally {
    lab.close();
  }
}
