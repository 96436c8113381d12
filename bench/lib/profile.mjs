// Where a netkit process's time goes, from a V8 CPU profile (node --cpu-prof): phases on the wall clock and CPU by kind of work.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** What a sample was doing, from the frames on its stack (innermost first). */
function kindOf(frames) {
  for (const f of frames) {
    const name = f.functionName;
    if (f.url === '' && name === '(garbage collector)') return 'gc';
    if (f.url === '' && name === '(idle)') return 'idle';
    if (f.url === 'node:dgram') {
      if (/send/i.test(name)) return 'send';
      if (/onMessage/.test(name)) return 'receive';
      return 'socket';
    }
    if (/^(dispatch|onMessage)$/.test(name)) return 'receive';
    if (/^(renderJson|renderTable|jsonOf|stringify)$/.test(name) || (f.url === '' && name === 'stringify')) return 'render';
  }
  return frames.some((f) => f.url.startsWith('node:internal/modules') || f.url.includes('esm/')) ? 'load' : 'other';
}

/**
 * Read the one profile in `dir`. `spawnedUs` and `exitedUs` are the bench's process.hrtime (CLOCK_MONOTONIC,
 * like V8's profile clock) at spawn and at exit, in µs, so that boot and teardown show too.
 * Phases: boot (spawn to the profile's start: Node itself), start-up (to the first socket call: netkit's
 * code loading, argument parsing, the hosts file), network (first to last socket call), output (to the
 * profile's end: rendering and writing), exit (to the process's end).
 */
export function breakdown(dir, spawnedUs, exitedUs) {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const kindCache = new Map();
  const kind = (id) => {
    if (!kindCache.has(id)) {
      const frames = [];
      for (let cur = id; cur !== undefined; cur = parent.get(cur)) frames.push(byId.get(cur).callFrame);
      kindCache.set(id, kindOf(frames));
    }
    return kindCache.get(id);
  };
  let t = p.startTime;
  const samples = p.samples.map((id, i) => {
    t += p.timeDeltas[i];
    return { t, dt: p.timeDeltas[i + 1] ?? 0, kind: kind(id) };
  });
  const net = samples.filter((s) => s.kind === 'socket' || s.kind === 'send' || s.kind === 'receive');
  const netStart = net.length ? net[0].t : p.startTime;
  const netEnd = net.length ? net[net.length - 1].t : p.startTime;
  const ms = (us) => Math.round(us / 100) / 10;
  const cpu = {};
  for (const s of samples) if (s.t >= netStart && s.t <= netEnd) cpu[s.kind] = (cpu[s.kind] ?? 0) + s.dt;
  return {
    phases_ms: {
      boot: ms(p.startTime - spawnedUs),
      startup: ms(netStart - p.startTime),
      network: ms(netEnd - netStart),
      output: ms(p.endTime - netEnd),
      exit: ms(exitedUs - p.endTime),
    },
    network_ms_by_kind: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, ms(v)]).sort((a, b) => b[1] - a[1])),
  };
}
