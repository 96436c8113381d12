// Tree bench, server side (`npm run bench -- tree-serve`): `netkit file serve` streaming 10,000 files of 4 KiB in 100 directories to a session client that lists the tree and fetches every file (each SHA-256 checked, bytes discarded), against `tar c | nc` into `nc > /dev/null`; interleaved rounds, server CPU and peak RSS.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, NODE, cleanEnv, freePort, log, median, rotated, runTimed, skippedTool, startProcess, tcpListening, waitUntil, which } from './common.mjs';

const TREE = join(tmpdir(), 'netkit-bench-data', 'serve-tree-10k');
const CLIENT = fileURLToPath(new URL('./tree-client.mjs', import.meta.url));
const DIRS = 100;
const PER_DIR = 100;
const SIZE = 4096;

/** The tree, made once and reused (a marker file says it is complete). */
function makeTree() {
  const marker = `${TREE}.complete`;
  if (existsSync(marker)) return;
  log(`tree-serve: creating ${DIRS * PER_DIR} files of ${SIZE} bytes in ${TREE}`);
  rmSync(TREE, { recursive: true, force: true });
  for (let d = 0; d < DIRS; d++) {
    const dir = join(TREE, `d${String(d).padStart(3, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < PER_DIR; f++) {
      const b = Buffer.allocUnsafe(SIZE);
      for (let i = 0; i < SIZE; i += 4) b.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
      writeFileSync(join(dir, `f${String(f).padStart(3, '0')}.bin`), b);
    }
  }
  writeFileSync(marker, '');
}

/** user + system CPU seconds of a process so far (clock ticks of 1/100 s). */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function netkitRun(port, pid) {
  const before = cpuSeconds(pid);
  const r = await runTimed(NODE, [CLIENT, String(port)], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`tree client failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  if (out.files !== DIRS * PER_DIR) throw new Error(`the client fetched ${out.files} files`);
  return { ms: r.ms, inClientMs: out.ms, listMs: out.listMs, firstByteMs: out.firstByteMs, serverCpuS: cpuSeconds(pid) - before };
}

async function tarRun() {
  const port = await freePort();
  const rx = runTimed('sh', ['-c', `exec nc -l 127.0.0.1 ${port} > /dev/null`], { timeoutMs: 120_000 });
  await waitUntil(() => tcpListening(port), { what: 'nc listening' });
  const tx = await runTimed('sh', ['-c', `tar c -C "${TREE}" . | nc -N 127.0.0.1 ${port}`], { timeoutMs: 120_000 });
  const done = await rx;
  if (tx.code !== 0 || done.code !== 0) throw new Error(`tar | nc failed: ${tx.stderr}${done.stderr}`);
  return { ms: tx.ms };
}

export async function runTreeServe({ quick }) {
  makeTree();
  const rounds = quick ? 2 : 5;
  const result = {
    conditions: {
      tree: `${DIRS * PER_DIR} files of ${SIZE} bytes in ${DIRS} directories, page cache warm`,
      rounds,
      netkit: 'netkit file serve --quiet; client bench/lib/tree-client.mjs (LIST early, then every REQUEST with 64 outstanding, SHA-256 of each file checked against its TRAILER, bytes discarded), spawn to exit',
      tar: 'tar c -C TREE . | nc -N 127.0.0.1 P, into nc -l > /dev/null; sender spawn to exit',
    },
    netkit: [],
    tar: [],
    skipped: [],
  };
  const haveNc = which('nc') && which('tar');
  if (!haveNc) result.skipped.push(skippedTool('nc'));
  const server = await startProcess(NODE, [BIN, 'file', 'serve', TREE, '--port', '0', '--host', '127.0.0.1', '--quiet'], { env: cleanEnv() });
  try {
    const port = Number(/:(\d+)/.exec(server.match[0])[1]);
    // Warm up both (page cache, JIT), untimed.
    await netkitRun(port, server.pid);
    if (haveNc) await tarRun();
    for (let round = 0; round < rounds; round++) {
      for (const who of rotated(haveNc ? ['netkit', 'tar'] : ['netkit'], round)) {
        const r = who === 'netkit' ? await netkitRun(port, server.pid) : await tarRun();
        result[who].push(r);
        log(`tree-serve: round ${round + 1} ${who} ${r.ms.toFixed(0)} ms${r.serverCpuS !== undefined ? ` (server CPU ${r.serverCpuS.toFixed(2)} s, list ${r.listMs.toFixed(0)} ms)` : ''}`);
      }
    }
    result.serverPeakRssKiB = server.peakRssKiB();
  } finally {
    await server.stop();
  }
  const med = (who, k = 'ms') => median(result[who].map((r) => r[k]));
  result.median = { netkitMs: med('netkit'), netkitInClientMs: med('netkit', 'inClientMs'), listMs: med('netkit', 'listMs'), serverCpuS: med('netkit', 'serverCpuS'), tarMs: haveNc ? med('tar') : NaN };
  result.ratio = result.median.netkitMs / result.median.tarMs;
  result.pairedRatios = result.tar.map((t, i) => result.netkit[i].ms / t.ms);
  log(`tree-serve: median netkit ${result.median.netkitMs.toFixed(0)} ms (list ${result.median.listMs.toFixed(0)} ms, server CPU ${result.median.serverCpuS.toFixed(2)} s), tar | nc ${result.median.tarMs.toFixed(0)} ms, ratio ${result.ratio.toFixed(2)}x; server peak RSS ${(result.serverPeakRssKiB / 1024).toFixed(1)} MiB`);
  return result;
}
