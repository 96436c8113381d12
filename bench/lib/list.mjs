// Listing bench (`npm run bench -- list`): `netkit file list -r` of a tree of 150,000 empty files in 150 directories (150,150 entries), as a table and as JSON: wall time, the client's peak RSS (/usr/bin/time -f %M) and a fresh server's peak RSS (VmHWM), against the server at rest.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, NODE, cleanEnv, log, median, skippedTool, startProcess, runTimed } from './common.mjs';

const TREE = join(tmpdir(), 'netkit-bench-data', 'list-150k');
const DIRS = 150;
const PER_DIR = 1000;
const ENTRIES = DIRS + DIRS * PER_DIR;

/** The tree, made once and reused (a marker file says it is complete). */
function makeTree() {
  const marker = `${TREE}.complete`;
  if (existsSync(marker)) return;
  log(`list: creating ${DIRS * PER_DIR} empty files in ${TREE}`);
  rmSync(TREE, { recursive: true, force: true });
  for (let d = 0; d < DIRS; d++) {
    const dir = join(TREE, `d${String(d).padStart(3, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < PER_DIR; f++) closeSync(openSync(join(dir, `f${String(f).padStart(4, '0')}`), 'w'));
  }
  writeFileSync(marker, '');
}

/** Resident set now (VmRSS), KiB. */
function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** One listing from a fresh server: the client's wall time and peak RSS, the server's RSS at rest and its peak. */
async function round(json) {
  const server = await startProcess(NODE, [BIN, 'file', 'serve', TREE, '--port', '0', '--host', '127.0.0.1', '--quiet', '--no-announce'], { env: cleanEnv() });
  try {
    const port = Number(/:(\d+)/.exec(server.match[0])[1]);
    const idle = rssKiB(server.pid);
    const r = await runTimed('/usr/bin/time', ['-f', 'maxrss_kib=%M', NODE, BIN, 'file', 'list', '-r', ...(json ? ['--json'] : []), '-H', `127.0.0.1:${port}`], { timeoutMs: 180_000, stdout: 'pipe' });
    const m = /maxrss_kib=(\d+)/.exec(r.stderr);
    if (r.code !== 0 || !m) throw new Error(`file list failed (${r.code}): ${r.stderr}`);
    return { ms: r.ms, client_kib: Number(m[1]), server_idle_kib: idle, server_peak_kib: server.peakRssKiB() };
  } finally {
    await server.stop();
  }
}

export async function runList({ quick }) {
  const rounds = quick ? 1 : 3;
  const result = {
    conditions: {
      tree: `${DIRS * PER_DIR} empty files in ${DIRS} directories (${ENTRIES} entries), page cache warm`,
      rounds,
      client: 'netkit file list -r [--json] -H 127.0.0.1:P, stdout into a pipe, spawn to exit, under /usr/bin/time -f %M',
      server: 'a fresh netkit file serve --quiet per listing; VmRSS at rest before it, VmHWM after it',
    },
    table: [],
    json: [],
    skipped: [],
  };
  if (!existsSync('/usr/bin/time')) {
    result.skipped.push(skippedTool('time'));
    return result;
  }
  makeTree();
  await round(false); // warm-up: page cache, untimed
  for (let i = 0; i < rounds; i++) {
    for (const kind of i % 2 === 0 ? ['table', 'json'] : ['json', 'table']) {
      const r = await round(kind === 'json');
      result[kind].push(r);
      log(`list: round ${i + 1} ${kind} ${r.ms.toFixed(0)} ms, client peak ${(r.client_kib / 1024).toFixed(1)} MiB, server ${(r.server_idle_kib / 1024).toFixed(1)} MiB at rest, peak ${(r.server_peak_kib / 1024).toFixed(1)} MiB`);
    }
  }
  const med = (kind, k) => median(result[kind].map((r) => r[k]));
  result.median = Object.fromEntries(['table', 'json'].map((kind) => [kind, { ms: med(kind, 'ms'), client_kib: med(kind, 'client_kib'), server_idle_kib: med(kind, 'server_idle_kib'), server_peak_kib: med(kind, 'server_peak_kib') }]));
  return result;
}
