// Start-up bench: whole-process `netkit disk query --json` against the `node -e 0` floor, same run.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BIN, NODE, cleanEnv, log, which, skippedTool, median, rotated, runTimed } from './common.mjs';
import { startNetkitDisk } from './disk.mjs';

const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Bundle bench/peers/yargs-floor.mjs with netkit's own build settings; returns the launcher's path. */
async function buildYargsFloor(tmp) {
  let bundle;
  try {
    ({ bundle } = await import('../../scripts/build.mjs'));
  } catch {
    return null;
  }
  const out = join(tmp, 'yargs-floor');
  await bundle({ entryPoints: { floor: 'bench/peers/yargs-floor.mjs' }, outdir: out });
  const launcher = join(out, 'launch.mjs');
  writeFileSync(launcher, "import { main } from './floor.js';\nprocess.exitCode = await main(process.argv.slice(2));\n");
  return launcher;
}

export async function runStartup({ quick }) {
  const rounds = quick ? 1 : 5;
  const runsPerRound = quick ? 10 : 12;
  const tmp = mkdtempSync(join(tmpdir(), 'netkit-bench-startup-'));
  const notes = [];
  let srv = null;
  try {
    const cmds = [
      { key: 'node', label: '`node -e 0` (the floor)', argv: [NODE, '-e', '0'] },
      { key: 'version', label: '`netkit --version`', argv: [NODE, BIN, '--version'] },
    ];
    const floor = await buildYargsFloor(tmp);
    if (floor) cmds.push({ key: 'yargs', label: 'a yargs-only program parsing the same command line (bench/peers/yargs-floor.mjs, bundled like netkit)', argv: [NODE, floor, 'disk', 'query', '127.0.0.1:9', '--json'] });
    else notes.push('skipped: the yargs floor (esbuild not installed: run npm ci)');
    srv = await startNetkitDisk(tmp);
    if (srv) {
      cmds.push({ key: 'query', label: '`netkit disk query 127.0.0.1:PORT --json`', argv: [NODE, BIN, 'disk', 'query', `127.0.0.1:${srv.port}`, '--json'] });
    } else {
      notes.push('skipped: netkit disk serve|query not implemented yet');
    }
    // A command that fails fast would look fast: check each once, and that the query really answered.
    for (const c of cmds) {
      const r = await runTimed(c.argv[0], c.argv.slice(1), { timeoutMs: 20000 });
      if (r.code !== 0) throw new Error(`${c.argv.join(' ')} exited ${r.code}: ${r.stderr}`);
      if (c.key === 'query') {
        const j = JSON.parse(r.stdout);
        c.check = JSON.stringify(j).slice(0, 200);
      }
    }
    const times = Object.fromEntries(cmds.map((c) => [c.key, []]));
    const roundMedians = Object.fromEntries(cmds.map((c) => [c.key, []]));
    const hyperfine = which('hyperfine');
    const method = hyperfine
      ? `hyperfine --warmup 3 --runs ${runsPerRound}, ${rounds} rounds with the command order rotated each round`
      : `interleaved loop (hyperfine not installed), ${runsPerRound} runs each per round, ${rounds} rounds`;
    if (!hyperfine) notes.push(skippedTool('hyperfine').replace('skipped', 'hyperfine missing, used a Node loop'));
    for (let r = 0; r < rounds; r++) {
      const order = rotated(cmds, r);
      if (hyperfine) {
        const json = join(tmp, `hf-${r}.json`);
        const args = ['--warmup', '3', '--runs', String(runsPerRound), '--export-json', json, '--style', 'none'];
        for (const c of order) args.push('-n', c.key, c.argv.map(q).join(' '));
        const res = await runTimed(hyperfine, args, { timeoutMs: 300000 });
        if (res.code !== 0) throw new Error(`hyperfine failed: ${res.stderr}`);
        const data = JSON.parse(readFileSync(json, 'utf8'));
        for (const b of data.results) {
          const ms = b.times.map((t) => t * 1000);
          times[b.command].push(...ms);
          roundMedians[b.command].push(median(ms));
        }
      } else {
        const per = Object.fromEntries(cmds.map((c) => [c.key, []]));
        for (let i = 0; i < runsPerRound; i++) {
          for (const c of order) {
            const res = await runTimed(c.argv[0], c.argv.slice(1), { timeoutMs: 20000 });
            if (res.code !== 0) throw new Error(`${c.argv.join(' ')} exited ${res.code}`);
            per[c.key].push(res.ms);
          }
        }
        for (const c of cmds) {
          times[c.key].push(...per[c.key]);
          roundMedians[c.key].push(median(per[c.key]));
        }
      }
      log(`startup: round ${r + 1}/${rounds}: ` + cmds.map((c) => `${c.key} ${roundMedians[c.key].at(-1).toFixed(1)} ms`).join(', '));
    }
    const ratio = (k) => median(roundMedians[k].map((m, i) => m / roundMedians.node[i]));
    return {
      conditions: { method, rounds, runs_per_round: runsPerRound, env: 'NODE_EXTRA_CA_CERTS and NODE_OPTIONS unset, NO_COLOR=1', server: srv ? 'netkit disk serve on 127.0.0.1, port 0' : null },
      commands: cmds.map((c) => ({
        key: c.key, label: c.label, argv: c.argv.map((a) => a.replace(BIN, 'bin/netkit.js').replace(NODE, 'node')),
        median_ms: median(times[c.key]), round_medians_ms: roundMedians[c.key], ratio_to_node: c.key === 'node' ? 1 : ratio(c.key), runs: times[c.key].length,
        check: c.check,
      })),
      notes,
    };
  } finally {
    if (srv) await srv.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
