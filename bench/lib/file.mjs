// File bench: 1 GiB loopback transfer wall time for netkit vs nc vs curl+http.server,
// peak RSS of netkit's processes, 32 concurrent fetches, and TLS vs plain, all interleaved in one run.
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  BIN, NODE, cleanEnv, log, which, skippedTool, median, rotated, startProcess, runTimed, freePort, tcpListening,
  waitUntil, netkitHas, nowMs, fileSize, track,
} from './common.mjs';

const MiB = 1 << 20;
const GiB = 1 << 30;
export const DATA_DIR = join(tmpdir(), 'netkit-bench-data');

async function sha256File(p) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p, { highWaterMark: 4 * MiB })) h.update(chunk);
  return h.digest('hex');
}

/**
 * A random file of `size` bytes under the shared data dir, created once and reused across runs (its hash is
 * cached next to it). Hashing it also reads it once, so it starts in the page cache.
 */
export async function dataFile(size, name) {
  mkdirSync(DATA_DIR, { recursive: true });
  const p = join(DATA_DIR, name);
  const meta = `${p}.sha256`;
  if (fileSize(p) === size && existsSync(meta) && statSync(meta).mtimeMs >= statSync(p).mtimeMs) {
    const hash = readFileSync(meta, 'utf8').trim();
    await sha256File(p); // warm the page cache; the bench measures transfers, not the disk
    return { path: p, name, size, sha256: hash };
  }
  log(`file: creating ${name} (${size} bytes of random data) in ${DATA_DIR}`);
  const fd = openSync(p, 'w');
  const buf = Buffer.allocUnsafe(Math.min(size, 16 * MiB));
  for (let left = size; left > 0; ) {
    const n = Math.min(left, buf.length);
    randomFillSync(buf, 0, n);
    writeSync(fd, buf, 0, n);
    left -= n;
  }
  closeSync(fd);
  const hash = await sha256File(p);
  writeFileSync(meta, `${hash}\n`);
  return { path: p, name, size, sha256: hash };
}

/** Is `out` byte-identical to `src`? cmp when present (fast, stops at the first difference), else SHA-256. */
export async function verify(src, out) {
  if (fileSize(out) !== src.size) return false;
  if (which('cmp')) {
    const r = await runTimed('cmp', ['-s', src.path, out], { timeoutMs: 120000 });
    return r.code === 0;
  }
  return (await sha256File(out)) === src.sha256;
}

const portOf = (line) => Number(/:(\d+)\b/.exec(line)[1]);

async function netkitFileServer(dir, extra = [], env) {
  const srv = await startProcess(NODE, [BIN, 'file', 'serve', dir, '--port', '0', '--host', '127.0.0.1', '--quiet', ...extra], {
    re: /^listening (?:tcp|tls) \S+$/m, env: env ?? cleanEnv(),
  });
  srv.port = portOf(srv.match[0]);
  srv.transport = /^listening (\S+)/.exec(srv.match[0])[1];
  return srv;
}

function fetchArgs(src, port, outDir, extra = []) {
  return [BIN, 'file', 'fetch', src.name, '--host', '127.0.0.1', '--port', String(port), '--out', outDir, '--json', '--quiet', ...extra];
}

/** One netkit fetch: client start to client exit. */
async function netkitFetch(src, port, outDir, extra = [], env) {
  const out = join(outDir, src.name);
  rmSync(out, { force: true });
  rmSync(join(outDir, '.netkit'), { recursive: true, force: true }); // a partial download left by a failed run
  const r = await runTimed(NODE, fetchArgs(src, port, outDir, extra), { env: env ?? cleanEnv(), timeoutMs: 300000 });
  const ok = r.code === 0 && (await verify(src, out));
  if (!ok) log(`file: netkit fetch failed (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`);
  rmSync(out, { force: true });
  return { ms: r.ms, ok, code: r.code };
}

/**
 * fsync(2) of a finished output and of its directory, from the bench process itself (no spawn, no
 * syncfs of other people's data): the durability netkit's default gives before its rename.
 */
function fsyncOutput(out) {
  for (const p of [out, dirname(out)]) {
    const fd = openSync(p, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * nc pair: the listener writes the file; the clock runs from the sending client's start until both have
 * exited, and with `fsync` until the output and its directory are flushed too (the same durability as
 * netkit's default).
 */
async function ncTransfer(src, outDir, { fsync = false } = {}) {
  const out = join(outDir, src.name);
  rmSync(out, { force: true });
  const port = await freePort('tcp');
  const outFd = openSync(out, 'w');
  const listener = track(spawn('nc', ['-l', '127.0.0.1', String(port)], { stdio: ['ignore', outFd, 'pipe'], env: cleanEnv() }));
  closeSync(outFd);
  let lerr = '';
  listener.stderr.setEncoding('utf8').on('data', (d) => (lerr += d));
  const lexit = new Promise((r) => listener.once('exit', (code) => r(code)));
  try {
    await waitUntil(() => tcpListening(port), { timeoutMs: 5000, what: 'nc -l to listen' });
  } catch (e) {
    listener.kill('SIGKILL');
    throw e;
  }
  const inFd = openSync(src.path, 'r');
  const t0 = nowMs();
  const client = track(spawn('nc', ['-N', '127.0.0.1', String(port)], { stdio: [inFd, 'ignore', 'pipe'], env: cleanEnv() }));
  closeSync(inFd);
  client.stderr.resume();
  const killer = setTimeout(() => {
    client.kill('SIGKILL');
    listener.kill('SIGKILL');
  }, 300000);
  const [ccode, lcode] = await Promise.all([new Promise((r) => client.once('exit', (c) => r(c))), lexit]);
  if (fsync && ccode === 0 && lcode === 0) fsyncOutput(out);
  const ms = nowMs() - t0;
  clearTimeout(killer);
  const ok = ccode === 0 && lcode === 0 && (await verify(src, out));
  if (!ok) log(`file: nc transfer failed (client ${ccode}, listener ${lcode}) ${lerr}`);
  rmSync(out, { force: true });
  return { ms, ok };
}

async function curlFetch(src, port, outDir) {
  const out = join(outDir, src.name);
  rmSync(out, { force: true });
  const r = await runTimed('curl', ['-s', '-f', '-o', out, `http://127.0.0.1:${port}/${src.name}`], { timeoutMs: 300000 });
  const ok = r.code === 0 && (await verify(src, out));
  if (!ok) log(`file: curl failed (exit ${r.code}) ${r.stderr}`);
  rmSync(out, { force: true });
  return { ms: r.ms, ok };
}

function summarize(samples) {
  const good = samples.filter((s) => s.ok).map((s) => s.ms);
  return { median_ms: median(good), ok_runs: good.length, failed_runs: samples.length - good.length, runs_ms: samples.map((s) => (s.ok ? s.ms : null)) };
}

/** Peak RSS of a netkit client (/usr/bin/time -f %M) and of the server that served it (VmHWM), fresh server per size. */
async function peakRss(src, workDir) {
  const outDir = mkdtempSync(join(workDir, 'rss-'));
  const srv = await netkitFileServer(DATA_DIR);
  try {
    const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
    let clientKiB = NaN;
    let ok = false;
    const out = join(outDir, src.name);
    if (timeBin) {
      const r = await runTimed(timeBin, ['-f', 'maxrss_kib=%M', NODE, ...fetchArgs(src, srv.port, outDir)], { timeoutMs: 300000 });
      const m = /maxrss_kib=(\d+)/.exec(r.stderr);
      clientKiB = m ? Number(m[1]) : NaN;
      ok = r.code === 0 && (await verify(src, out));
    } else {
      const r = await netkitFetch(src, srv.port, outDir);
      ok = r.ok;
    }
    const serverKiB = srv.peakRssKiB();
    return { size: src.size, client_kib: clientKiB, server_kib: serverKiB, ok, client_method: timeBin ? '/usr/bin/time -f %M' : 'not measured (/usr/bin/time missing)' };
  } finally {
    await srv.stop();
    rmSync(outDir, { recursive: true, force: true });
  }
}

/** 32 fetches of one file at once against one server: all must complete and verify. */
async function concurrent(src, workDir, n) {
  const srv = await netkitFileServer(DATA_DIR);
  const dirs = Array.from({ length: n }, (_, i) => mkdtempSync(join(workDir, `c${i}-`)));
  try {
    const t0 = nowMs();
    const results = await Promise.all(dirs.map((d) => runTimed(NODE, fetchArgs(src, srv.port, d), { timeoutMs: 300000 })));
    const wall = nowMs() - t0;
    let verified = 0;
    const failures = [];
    for (let i = 0; i < n; i++) {
      if (results[i].code === 0 && (await verify(src, join(dirs[i], src.name)))) verified++;
      else failures.push(`#${i}: exit ${results[i].code} ${results[i].stderr.trim().split('\n')[0] ?? ''}`);
    }
    const serverKiB = srv.peakRssKiB();
    return { clients: n, size: src.size, wall_ms: wall, verified, failures: failures.slice(0, 5), aggregate_bytes: verified * src.size, server_kib: serverKiB };
  } finally {
    await srv.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/**
 * A TCP relay on 127.0.0.1 that resets each of the first `cuts` connections once it has relayed `every`
 * bytes to the client, and notes when (nowMs) each cut happened and how many bytes it relayed in all.
 */
async function cuttingProxy(targetPort, cuts, every) {
  const cutAt = [];
  let relayed = 0;
  let n = 0;
  const sockets = new Set();
  // Half-open both ways, so the client's half-close after its request is passed on without cutting the answer.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const index = n++;
    let mine = 0;
    const upstream = connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.on('data', (d) => {
      if (client.destroyed) return;
      relayed += d.length;
      mine += d.length;
      if (!client.write(d)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
      if (index < cuts && mine >= every) {
        cutAt.push(nowMs());
        client.resetAndDestroy();
        upstream.destroy();
      }
    });
    upstream.on('end', () => client.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    cutAt,
    relayed: () => relayed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * A fetch whose connection is cut three times (each time after a quarter of the file): the time from
 * the first and from the last cut to the completed, verified file, and the bytes relayed in all.
 */
async function cutThreeTimes(src, port, workDir, rounds) {
  const outDir = mkdtempSync(join(workDir, 'cut-'));
  const runs = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const proxy = await cuttingProxy(port, 3, Math.floor(src.size / 4));
      try {
        const out = join(outDir, src.name);
        rmSync(out, { force: true });
        const t0 = nowMs();
        const r = await runTimed(NODE, fetchArgs(src, proxy.port, outDir), { env: cleanEnv(), timeoutMs: 300000 });
        const end = t0 + r.ms;
        let retries = null;
        try {
          retries = JSON.parse(r.stdout).retries;
        } catch {
          // reported as failed below
        }
        const ok = r.code === 0 && retries === 3 && proxy.cutAt.length === 3 && (await verify(src, out));
        if (!ok) log(`file: cut fetch failed (exit ${r.code}, ${proxy.cutAt.length} cuts, retries ${retries}): ${r.stderr.trim().slice(0, 300)}`);
        runs.push({ ok, first_cut_to_done_ms: end - proxy.cutAt[0], last_cut_to_done_ms: end - proxy.cutAt[2], wall_ms: r.ms, wire_ratio: proxy.relayed() / src.size });
        rmSync(out, { force: true });
      } finally {
        await proxy.close();
      }
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  const good = runs.filter((x) => x.ok);
  const med = (k) => median(good.map((x) => x[k]));
  return { size: src.size, rounds, ok_runs: good.length, first_cut_to_done_ms: med('first_cut_to_done_ms'), last_cut_to_done_ms: med('last_cut_to_done_ms'), wall_ms: med('wall_ms'), wire_ratio: med('wire_ratio'), runs };
}

export async function runFile({ quick }) {
  // Five contenders of a few seconds each; page-cache allocation on this kind of VM makes single runs
  // vary by 2x, so five rounds for medians.
  const rounds = quick ? 1 : 5;
  const bigSize = quick ? 256 * MiB : GiB;
  const big = await dataFile(bigSize, quick ? 'data-256MiB.bin' : 'data-1GiB.bin');
  const work = mkdtempSync(join(DATA_DIR, 'run-'));
  const skipped = [];
  const servers = [];
  try {
    const outDir = mkdtempSync(join(work, 'out-'));
    const contenders = [];
    const hasNetkit = netkitHas(['file', 'fetch']) && netkitHas(['file', 'serve']);
    if (hasNetkit) {
      const srv = await netkitFileServer(DATA_DIR);
      servers.push(srv);
      contenders.push({ key: 'netkit', label: 'netkit file fetch (SHA-256 verified both sides; fsync before rename, the default)', run: () => netkitFetch(big, srv.port, outDir) });
      if (netkitHas(['file', 'fetch'], '--no-fsync')) {
        contenders.push({ key: 'netkit_nofsync', label: 'netkit file fetch --no-fsync (verified, not flushed)', run: () => netkitFetch(big, srv.port, outDir, ['--no-fsync']) });
      }
    } else skipped.push({ key: 'netkit', reason: 'skipped: netkit file serve|fetch not implemented yet' });
    if (which('nc')) {
      contenders.push({ key: 'nc', label: '`nc -l 127.0.0.1 P > out` ← `nc -N 127.0.0.1 P < file`', run: () => ncTransfer(big, outDir) });
      contenders.push({ key: 'nc_fsync', label: 'the same nc pair, then fsync(2) of out and its directory', run: () => ncTransfer(big, outDir, { fsync: true }) });
    } else skipped.push({ key: 'nc', reason: skippedTool('nc') });
    if (which('curl') && which('python3')) {
      const srv = await startProcess('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', DATA_DIR], {
        re: /Serving HTTP on \S+ port (\d+)/, env: cleanEnv(),
      });
      servers.push(srv);
      const port = Number(srv.match[1]);
      contenders.push({ key: 'curl', label: '`curl -s -o out` from `python3 -m http.server`', run: () => curlFetch(big, port, outDir) });
    } else skipped.push({ key: 'curl', reason: skippedTool(which('curl') ? 'python3' : 'curl') });

    // netkit's server hashes every full fetch (it sends the hash of the bytes it read; its digest cache
    // only spares resumes their prefix). Time the first fetch from a fresh server on its own; the
    // interleaved rounds then measure the steady state.
    let first = null;
    const nk = contenders.find((c) => c.key === 'netkit');
    if (nk) {
      first = await nk.run();
      log(`file: first netkit fetch from a fresh server: ${first.ok ? `${(first.ms / 1000).toFixed(2)} s` : 'FAILED'}`);
    }
    const samples = Object.fromEntries(contenders.map((c) => [c.key, []]));
    for (let r = 0; r < rounds; r++) {
      // Rotation alone keeps each contender behind the same predecessor every round (and what one run
      // leaves in memory affects the next): every other round runs the rotated order backwards.
      const order = rotated(contenders, r);
      if (r % 2 === 1) order.reverse();
      for (const c of order) {
        const s = await c.run();
        samples[c.key].push(s);
        log(`file: round ${r + 1}/${rounds} ${c.key}: ${s.ok ? `${(s.ms / 1000).toFixed(2)} s (${((big.size / 1e6) / (s.ms / 1000)).toFixed(0)} MB/s)` : 'FAILED'}`);
      }
    }
    const transfer = contenders.map((c) => ({ key: c.key, label: c.label, ...summarize(samples[c.key]) }));

    let rss = [];
    let conc = null;
    let cut = null;
    if (hasNetkit && netkitHas(['file', 'fetch'], '--retries')) {
      cut = await cutThreeTimes(big, servers[0].port, work, quick ? 1 : 3);
      log(`file: fetch cut three times: first cut to verified file ${(cut.first_cut_to_done_ms / 1000).toFixed(2)} s, last cut ${(cut.last_cut_to_done_ms / 1000).toFixed(2)} s, ${cut.ok_runs}/${cut.rounds} ok`);
    }
    if (hasNetkit) {
      const small = await dataFile(10 * MiB, 'data-10MiB.bin');
      for (const f of [small, big]) {
        const r = await peakRss(f, work);
        rss.push(r);
        log(`file: peak RSS for ${f.name}: client ${(r.client_kib / 1024).toFixed(1)} MiB, server ${(r.server_kib / 1024).toFixed(1)} MiB${r.ok ? '' : ' (FETCH FAILED)'}`);
      }
      const mid = await dataFile(32 * MiB, 'data-32MiB.bin');
      conc = await concurrent(mid, work, 32);
      log(`file: 32 concurrent fetches of 32 MiB: ${conc.verified}/32 verified in ${(conc.wall_ms / 1000).toFixed(2)} s`);
    }
    return {
      conditions: { rounds, size: big.size, file: `random data in ${DATA_DIR}, read once beforehand (page cache)`, out: 'same filesystem, deleted after each run', verify: which('cmp') ? 'cmp -s against the source after every run' : 'SHA-256 after every run' },
      transfer, first_fetch: first, rss, concurrent: conc, cut, skipped,
    };
  } finally {
    for (const s of servers) await s.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** TLS vs plain netkit fetch of the big file, interleaved, pinned by fingerprint so no prompt appears. */
export async function runTls({ quick }) {
  if (!(netkitHas(['file', 'serve'], '--tls') && netkitHas(['file', 'fetch'], '--tls-fingerprint'))) {
    return { skipped: 'skipped: --tls not implemented yet' };
  }
  const rounds = quick ? 1 : 5;
  const big = await dataFile(quick ? 256 * MiB : GiB, quick ? 'data-256MiB.bin' : 'data-1GiB.bin');
  const work = mkdtempSync(join(DATA_DIR, 'tls-'));
  // Certificates and known hosts go to a throwaway config dir, never the user's.
  const env = cleanEnv({ XDG_CONFIG_HOME: join(work, 'config') });
  const servers = [];
  try {
    const outDir = mkdtempSync(join(work, 'out-'));
    const plain = await netkitFileServer(DATA_DIR, [], env);
    servers.push(plain);
    const tls = await netkitFileServer(DATA_DIR, ['--tls'], env);
    servers.push(tls);
    await waitUntil(() => /sha256:[0-9a-fA-F:]{64,}/.test(tls.stdout() + tls.stderr()), { timeoutMs: 5000, what: 'the TLS fingerprint line' });
    const fp = /sha256:[0-9a-fA-F:]{64,}/.exec(tls.stdout() + tls.stderr())[0];
    const contenders = [
      // Both --no-fsync: the flush to disk is the same work for both and its time varies run to run by
      // more than TLS costs, so it would hide the transport difference this part measures.
      { key: 'plain', run: () => netkitFetch(big, plain.port, outDir, ['--no-fsync'], env) },
      { key: 'tls', run: () => netkitFetch(big, tls.port, outDir, ['--no-fsync', '--tls', '--tls-fingerprint', fp], env) },
    ];
    const samples = { plain: [], tls: [] };
    for (let r = 0; r < rounds; r++) {
      for (const c of rotated(contenders, r)) {
        const s = await c.run();
        samples[c.key].push(s);
        log(`tls: round ${r + 1}/${rounds} ${c.key}: ${s.ok ? `${(s.ms / 1000).toFixed(2)} s` : 'FAILED'}`);
      }
    }
    const paired = samples.plain.map((p, i) => (p.ok && samples.tls[i]?.ok ? p.ms / samples.tls[i].ms : null)).filter((x) => x !== null);
    return { conditions: { rounds, size: big.size, pin: 'sha256 fingerprint printed by the server', fsync: 'off for both (--no-fsync)', transports: [plain.transport, tls.transport] }, plain: summarize(samples.plain), tls: summarize(samples.tls), paired_ratios: paired };
  } finally {
    for (const s of servers) await s.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
