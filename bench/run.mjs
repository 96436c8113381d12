// `npm run bench [-- disk|startup|file|tls|fleet|flood|http|discover|tree|tree-serve|list ...] [--quick] [--no-docs]`: netkit against its peers, side by side.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OUT, ensureDir, log, machineFacts, killAll } from './lib/common.mjs';

const PARTS = ['disk', 'startup', 'file', 'tls', 'fleet', 'flood', 'http', 'discover', 'tree', 'tree-serve', 'list'];
const USAGE = `usage: npm run bench -- [${PARTS.join('|')} ...] [--quick] [--no-docs]

  (no part)   run every part (about 5-10 minutes)
  --quick     fewer rounds, shorter runs, a 256 MiB file: results go to bench/out/<part>.quick.json
              and docs/benchmarks.md is left alone
  --no-docs   do not regenerate the bench section of docs/benchmarks.md

Raw results: bench/out/<part>.json. Loopback only, except discover: network namespaces it makes itself (root).`;

const argv = process.argv.slice(2);
if (argv.includes('-h') || argv.includes('--help')) {
  console.log(USAGE);
  process.exit(0);
}
const unknown = argv.filter((a) => !PARTS.includes(a) && !['--quick', '--no-docs'].includes(a));
if (unknown.length) {
  console.error(`bench: unknown argument ${unknown.join(' ')}\n${USAGE}`);
  process.exit(2);
}
const quick = argv.includes('--quick');
const parts = PARTS.filter((p) => argv.includes(p));
const selected = parts.length ? parts : PARTS;
const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;

// The whole run is bounded: past the budget, stop every child we started and fail loudly.
const BUDGET_MS = (quick ? 5 : 15) * 60 * 1000;
const watchdog = setTimeout(() => {
  log(`bench: over the ${BUDGET_MS / 60000}-minute budget; stopping`);
  killAll();
  process.exit(1);
}, BUDGET_MS);
watchdog.unref();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

const runners = {
  disk: async (o) => (await import('./lib/disk.mjs')).runDisk(o),
  startup: async (o) => (await import('./lib/startup.mjs')).runStartup(o),
  file: async (o) => (await import('./lib/file.mjs')).runFile(o),
  tls: async (o) => (await import('./lib/file.mjs')).runTls(o),
  fleet: async (o) => (await import('./lib/fleet.mjs')).runFleet(o),
  http: async (o) => (await import('./lib/http.mjs')).runHttp(o),
  flood: async (o) => (await import('./lib/flood.mjs')).runFlood(o),
  discover: async (o) => (await import('./lib/discover.mjs')).runDiscover(o),
  tree: async (o) => (await import('./lib/tree.mjs')).runTree(o),
  'tree-serve': async (o) => (await import('./lib/tree-serve.mjs')).runTreeServe(o),
  list: async (o) => (await import('./lib/list.mjs')).runList(o),
};

ensureDir(OUT);
let failed = 0;
const t0 = Date.now();
for (const part of selected) {
  const machine = machineFacts();
  log(`\n== bench ${part}${quick ? ' (quick)' : ''}`);
  try {
    const result = await runners[part]({ quick });
    const file = join(OUT, `${part}${quick ? '.quick' : ''}.json`);
    writeFileSync(file, `${JSON.stringify({ part, command, quick, machine, result }, null, 2)}\n`);
    log(`bench: ${part} -> ${file}`);
  } catch (e) {
    failed++;
    log(`bench: ${part} failed: ${e.stack ?? e}`);
  }
}
log(`\nbench: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

if (!quick && !argv.includes('--no-docs')) {
  const { updateDoc, renderSection, BEGIN, END } = await import('./lib/report.mjs');
  const doc = updateDoc();
  log(`bench: updated ${doc}`);
  const text = (await import('node:fs')).readFileSync(doc, 'utf8');
  console.log(renderSection(text.slice(text.indexOf(BEGIN), text.indexOf(END))));
} else {
  const { renderSection } = await import('./lib/report.mjs');
  if (!quick) console.log(renderSection());
  else log('bench: quick mode: docs/benchmarks.md left alone; raw results in bench/out/*.quick.json');
}
clearTimeout(watchdog);
process.exitCode = failed ? 1 : 0;
