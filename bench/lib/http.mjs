// HTTP bench: `curl -o` of a 1 GiB file from netkit's HTTP, nginx (sendfile on) and python3 -m http.server,
// interleaved with cmp checks; 100 concurrent 1 MiB range requests against netkit and nginx; peak server RSS.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, openSync, readSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { BIN, NODE, cleanEnv, log, which, skippedTool, median, rotated, startProcess, runTimed, freePort, tcpListening, waitUntil, netkitHas, track } from './common.mjs';
import { DATA_DIR, dataFile, verify } from './file.mjs';

const MiB = 1 << 20;
const GiB = 1 << 30;
const CONCURRENT = 100;

/** A minimal nginx of our own: one process (no master), our port, our temp paths, sendfile on, no logs. */
async function startNginx(work, root) {
  const port = await freePort('tcp');
  const prefix = mkdtempSync(join(work, 'nginx-'));
  for (const d of ['logs', 'tmp']) mkdirSync(join(prefix, d));
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'logs', 'error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  sendfile on;',
      '  tcp_nopush on;',
      '  access_log off;',
      '  keepalive_timeout 30s;',
      `  client_body_temp_path ${join(prefix, 'tmp', 'body')};`,
      `  proxy_temp_path ${join(prefix, 'tmp', 'proxy')};`,
      `  fastcgi_temp_path ${join(prefix, 'tmp', 'fastcgi')};`,
      `  uwsgi_temp_path ${join(prefix, 'tmp', 'uwsgi')};`,
      `  scgi_temp_path ${join(prefix, 'tmp', 'scgi')};`,
      '  types { application/octet-stream bin; }',
      `  server { listen 127.0.0.1:${port}; root ${root}; }`,
      '}',
      '',
    ].join('\n'),
  );
  // nginx says nothing when it is ready: wait for its port to be in LISTEN state.
  const child = track(spawn(which('nginx'), ['-p', prefix, '-c', conf], { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const exited = once(child, 'exit');
  try {
    await waitUntil(() => tcpListening(port) || child.exitCode !== null, { timeoutMs: 10000, what: 'nginx to listen' });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${err}`);
  return {
    port,
    peakRssKiB: () => {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : NaN;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGQUIT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function startNetkit() {
  // 100 concurrent connections from one address: the per-source and total limits are raised to let them in.
  const srv = await startProcess(NODE, [BIN, 'file', 'serve', DATA_DIR, '--port', '0', '--host', '127.0.0.1', '--quiet', '--no-announce', '--max-connections', '256', '--max-per-source', '256'], {
    re: /^listening tcp \S+:(\d+)$/m,
    env: cleanEnv(),
  });
  srv.port = Number(srv.match[1]);
  return srv;
}

/** `curl -o` of the whole file; the clock runs from spawn to exit; the output is compared with cmp. */
async function curlWhole(src, port, outDir) {
  const out = join(outDir, src.name);
  rmSync(out, { force: true });
  const r = await runTimed('curl', ['-sS', '-f', '-o', out, `http://127.0.0.1:${port}/${src.name}`], { timeoutMs: 300000 });
  const ok = r.code === 0 && (await verify(src, out));
  if (!ok) log(`http: curl failed (exit ${r.code}) ${r.stderr.trim()}`);
  rmSync(out, { force: true });
  return { ms: r.ms, ok };
}

/** The bytes [start, start + MiB) of the source, to check a range's answer. */
function slice(src, start) {
  const fd = openSync(src.path, 'r');
  try {
    const b = Buffer.alloc(MiB);
    readSync(fd, b, 0, MiB, start);
    return b;
  } finally {
    closeSync(fd);
  }
}

/**
 * CONCURRENT range requests of 1 MiB at random offsets, all at once from one curl (--parallel), each into its
 * own file. Returns requests per second (spawn to exit) and whether every answer was the right slice.
 */
async function curlRanges(src, port, outDir, check) {
  const starts = Array.from({ length: CONCURRENT }, () => randomInt(0, Math.floor((src.size - MiB) / 4096)) * 4096);
  const args = ['-sS', '-f', '--parallel', '--parallel-immediate', '--parallel-max', String(CONCURRENT)];
  starts.forEach((s, i) => {
    if (i > 0) args.push('--next');
    args.push('-r', `${s}-${s + MiB - 1}`, '-o', join(outDir, `r${i}`), `http://127.0.0.1:${port}/${src.name}`);
  });
  const r = await runTimed('curl', args, { timeoutMs: 300000 });
  let ok = r.code === 0;
  if (ok && check) {
    for (let i = 0; i < starts.length && ok; i++) ok = readFileSync(join(outDir, `r${i}`)).equals(slice(src, starts[i]));
  }
  if (!ok) log(`http: parallel ranges failed (exit ${r.code}) ${r.stderr.trim().slice(0, 300)}`);
  for (let i = 0; i < starts.length; i++) rmSync(join(outDir, `r${i}`), { force: true });
  return { rps: (CONCURRENT * 1000) / r.ms, ms: r.ms, ok };
}

export async function runHttp({ quick }) {
  const rounds = quick ? 1 : 5;
  const rangeRounds = quick ? 2 : 6;
  const size = quick ? 256 * MiB : GiB;
  const src = await dataFile(size, quick ? 'data-256MiB.bin' : 'data-1GiB.bin');
  const work = mkdtempSync(join(DATA_DIR, 'http-'));
  const servers = [];
  const skipped = [];
  try {
    if (!which('curl')) throw new Error(skippedTool('curl'));
    const outDir = mkdtempSync(join(work, 'out-'));
    const contenders = [];
    if (netkitHas(['file', 'serve'], '--no-http')) {
      const srv = await startNetkit();
      servers.push(srv);
      contenders.push({ key: 'netkit', label: 'netkit file serve (HTTP on the file port)', srv });
    } else skipped.push({ key: 'netkit', reason: 'skipped: this netkit serves no HTTP' });
    if (which('nginx')) {
      const srv = await startNginx(work, DATA_DIR);
      servers.push(srv);
      contenders.push({ key: 'nginx', label: 'nginx (1 process, sendfile on)', srv });
    } else skipped.push({ key: 'nginx', reason: skippedTool('nginx') });
    if (which('python3')) {
      const srv = await startProcess('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', DATA_DIR], { re: /Serving HTTP on \S+ port (\d+)/, env: cleanEnv() });
      srv.port = Number(srv.match[1]);
      servers.push(srv);
      contenders.push({ key: 'python', label: 'python3 -m http.server', srv });
    } else skipped.push({ key: 'python', reason: skippedTool('python3') });

    const whole = Object.fromEntries(contenders.map((c) => [c.key, []]));
    for (let round = 0; round < rounds; round++) {
      for (const c of rotated(contenders, round)) {
        const s = await curlWhole(src, c.srv.port, outDir);
        whole[c.key].push(s);
        log(`http: whole file round ${round + 1}/${rounds} ${c.key}: ${s.ok ? `${(s.ms / 1000).toFixed(2)} s` : 'FAILED'}`);
      }
    }
    const ranged = contenders.filter((c) => c.key !== 'python');
    const ranges = Object.fromEntries(ranged.map((c) => [c.key, []]));
    for (let round = 0; round < rangeRounds; round++) {
      for (const c of rotated(ranged, round)) {
        const s = await curlRanges(src, c.srv.port, outDir, round === 0);
        ranges[c.key].push(s);
        log(`http: ${CONCURRENT} ranges round ${round + 1}/${rangeRounds} ${c.key}: ${s.ok ? `${Math.round(s.rps)} requests/s` : 'FAILED'}`);
      }
    }
    const result = {
      size,
      rounds,
      range_rounds: rangeRounds,
      concurrent: CONCURRENT,
      skipped,
      contenders: contenders.map((c) => {
        const good = whole[c.key].filter((s) => s.ok);
        const ms = median(good.map((s) => s.ms));
        const r = ranges[c.key]?.filter((s) => s.ok) ?? [];
        return {
          key: c.key,
          label: c.label,
          whole_runs_ms: whole[c.key].map((s) => (s.ok ? Math.round(s.ms) : null)),
          whole_median_ms: ms,
          whole_mb_s: (size / 1e6) / (ms / 1000),
          whole_failed: whole[c.key].length - good.length,
          ranges_rps: r.map((s) => Math.round(s.rps)),
          ranges_median_rps: r.length ? median(r.map((s) => s.rps)) : null,
          ranges_failed: (ranges[c.key]?.length ?? 0) - r.length,
          peak_rss_mib: c.srv.peakRssKiB() / 1024,
        };
      }),
    };
    return result;
  } finally {
    for (const s of servers) await s.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
