// Tree bench: many files on loopback. netkit file fetch of a whole directory against `tar c | nc` -> `nc | tar x`
// and `rsync -a` from an rsync daemon, interleaved; a re-run with nothing changed against rsync's; peak RSS.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BIN, NODE, cleanEnv, log, which, skippedTool, median, rotated, startProcess, runTimed, freePort, tcpListening, waitUntil, netkitHas, nowMs, track } from './common.mjs';

const KiB = 1024;
const MiB = 1 << 20;
const DATA_DIR = join(tmpdir(), 'netkit-bench-data');

/** Create `name` under DATA_DIR once (a marker file records its shape); returns its path and totals. */
function tree(name, files) {
  const root = join(DATA_DIR, name);
  const marker = join(DATA_DIR, `${name}.done`);
  const shape = JSON.stringify(files.map((f) => [f.path, f.size]));
  const sum = files.reduce((a, f) => a + f.size, 0);
  if (existsSync(marker) && readFileSync(marker, 'utf8') === shape) return { root, name, files: files.length, bytes: sum };
  log(`tree: creating ${name} (${files.length} files, ${(sum / MiB).toFixed(0)} MiB) in ${DATA_DIR}`);
  rmSync(root, { recursive: true, force: true });
  const buf = Buffer.allocUnsafe(16 * MiB);
  for (const f of files) {
    const p = join(root, f.path);
    mkdirSync(join(p, '..'), { recursive: true });
    const chunks = [];
    for (let left = f.size; left > 0; ) {
      const n = Math.min(left, buf.length);
      chunks.push(Buffer.from(randomFillSync(buf.subarray(0, n))));
      left -= n;
    }
    writeFileSync(p, Buffer.concat(chunks));
  }
  writeFileSync(marker, shape);
  return { root, name, files: files.length, bytes: sum };
}

/** 10,000 files of 4 KiB in 100 directories. */
function smallTree(quick) {
  const dirs = quick ? 20 : 100;
  const files = [];
  for (let d = 0; d < dirs; d++) for (let f = 0; f < 100; f++) files.push({ path: `d${String(d).padStart(3, '0')}/f${String(f).padStart(3, '0')}`, size: 4 * KiB });
  return tree(quick ? 'tree-2k' : 'tree-10k', files);
}

/** 200 files between 1 KiB and 100 MiB (log-uniform, fixed sequence), scaled to 1 GiB in all. */
function mixedTree(quick) {
  const n = 200;
  const total = quick ? 256 * MiB : 1024 * MiB;
  let x = 12345;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
  const raw = Array.from({ length: n }, () => Math.exp(Math.log(KiB) + rnd() * (Math.log(100 * MiB) - Math.log(KiB))));
  const scale = total / raw.reduce((a, b) => a + b, 0);
  const sizes = raw.map((s) => Math.max(KiB, Math.min(100 * MiB, Math.round(s * scale))));
  sizes[0] += total - sizes.reduce((a, b) => a + b, 0);
  return tree(quick ? 'tree-mixed-256m' : 'tree-mixed-1g', sizes.map((size, i) => ({ path: `m${String(i % 10)}/f${String(i).padStart(3, '0')}.bin`, size: Math.max(KiB, size) })));
}

/**
 * Remove an output and flush the file system, untimed: on a file system mounted with `discard` (this VM's
 * ext4), freeing 10,000 files costs each of the next creates until the journal commits; every contender
 * starts clean instead of paying for the one before it.
 */
function clean(dir) {
  rmSync(dir, { recursive: true, force: true });
  spawnSync('sync', ['-f', join(dir, '..')], { stdio: 'ignore' });
  mkdirSync(dir, { recursive: true });
}

/** diff -r between the source tree and what arrived. */
async function same(src, out) {
  const r = await runTimed('diff', ['-r', '-q', src, out], { timeoutMs: 300000 });
  if (r.code !== 0) log(`tree: diff -r found differences: ${(r.stdout + r.stderr).trim().split('\n').slice(0, 3).join('; ')}`);
  return r.code === 0;
}

async function netkitServer(dir) {
  const srv = await startProcess(NODE, [BIN, 'file', 'serve', dir, '--port', '0', '--host', '127.0.0.1', '--quiet', '--no-announce'], { re: /^listening tcp \S+$/m, env: cleanEnv() });
  srv.port = Number(/:(\d+)\b/.exec(srv.match[0])[1]);
  return srv;
}

/** netkit file fetch NAME -o OUT: wall time from the client's start to its exit. `keep`: leave the output (for a re-run). */
async function netkitFetch(t, port, out, extra = [], { keep = false, check = true, wrap } = {}) {
  if (!keep) clean(out);
  const args = [BIN, 'file', 'fetch', t.name, '-H', `127.0.0.1:${port}`, '-o', out, '--quiet', ...extra];
  const r = wrap ? await runTimed(wrap[0], [...wrap.slice(1), NODE, ...args], { timeoutMs: 600000 }) : await runTimed(NODE, args, { timeoutMs: 600000 });
  let ok = r.code === 0;
  if (!ok) log(`tree: netkit fetch failed (exit ${r.code}): ${(r.stdout + r.stderr).trim().slice(0, 400)}`);
  if (ok && check) ok = await same(t.root, join(out, t.name));
  return { ms: r.ms, ok, stderr: r.stderr };
}

/** `tar c -C SRC NAME | nc -N` -> `nc -l | tar x -C OUT`: from the sender's start until both ends have exited. */
async function tarNc(t, out) {
  clean(out);
  const port = await freePort('tcp');
  const listener = track(spawn('sh', ['-c', `nc -l 127.0.0.1 ${port} | tar x -C "$0"`, out], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() }));
  let lerr = '';
  listener.stderr.setEncoding('utf8').on('data', (d) => (lerr += d));
  const lexit = once(listener, 'exit');
  await waitUntil(() => tcpListening(port), { timeoutMs: 5000, what: 'nc -l to listen' });
  const t0 = nowMs();
  const sender = track(spawn('sh', ['-c', `tar c -C "$0" "$1" | nc -N 127.0.0.1 ${port}`, join(t.root, '..'), t.name], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() }));
  sender.stderr.resume();
  const killer = setTimeout(() => {
    sender.kill('SIGKILL');
    listener.kill('SIGKILL');
  }, 600000);
  const [[scode], [lcode]] = await Promise.all([once(sender, 'exit'), lexit]);
  const ms = nowMs() - t0;
  clearTimeout(killer);
  let ok = scode === 0 && lcode === 0;
  if (!ok) log(`tree: tar|nc failed (sender ${scode}, receiver ${lcode}) ${lerr.trim().slice(0, 300)}`);
  if (ok) ok = await same(t.root, join(out, t.name));
  return { ms, ok };
}

/** An rsync daemon serving DATA_DIR read-only on a free loopback port, with a generated config. */
async function rsyncDaemon(work) {
  const port = await freePort('tcp');
  const conf = join(work, 'rsyncd.conf');
  writeFileSync(conf, `pid file = ${join(work, 'rsyncd.pid')}\nuse chroot = false\nreverse lookup = false\n[bench]\n  path = ${DATA_DIR}\n  read only = true\n`);
  const child = track(spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() }));
  child.stderr.resume();
  await waitUntil(() => tcpListening(port), { timeoutMs: 10000, what: 'the rsync daemon to listen' });
  return {
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    },
  };
}

async function rsyncFetch(t, port, out, { keep = false } = {}) {
  if (!keep) clean(out);
  const r = await runTimed('rsync', ['-a', `rsync://127.0.0.1:${port}/bench/${t.name}`, `${out}/`], { timeoutMs: 600000 });
  let ok = r.code === 0;
  if (!ok) log(`tree: rsync failed (exit ${r.code}): ${r.stderr.trim().slice(0, 300)}`);
  if (ok) ok = await same(t.root, join(out, t.name));
  return { ms: r.ms, ok };
}

function summarize(samples) {
  const good = samples.filter((s) => s.ok).map((s) => s.ms);
  return { median_ms: median(good), ok_runs: good.length, failed_runs: samples.length - good.length, runs_ms: samples.map((s) => (s.ok ? s.ms : null)) };
}

/** Interleaved rounds over `contenders` ({key, label, run}); the order rotates and every other round runs backwards. */
async function rounds(what, contenders, n) {
  const samples = Object.fromEntries(contenders.map((c) => [c.key, []]));
  for (let r = 0; r < n; r++) {
    const order = rotated(contenders, r);
    if (r % 2 === 1) order.reverse();
    for (const c of order) {
      const s = await c.run();
      samples[c.key].push(s);
      log(`tree: ${what} round ${r + 1}/${n} ${c.key}: ${s.ok ? `${(s.ms / 1000).toFixed(2)} s` : 'FAILED'}`);
    }
  }
  return contenders.map((c) => ({ key: c.key, label: c.label, ...summarize(samples[c.key]) }));
}

export async function runTree({ quick }) {
  const n = quick ? 1 : 3;
  mkdirSync(DATA_DIR, { recursive: true });
  const small = smallTree(quick);
  const mixed = mixedTree(quick);
  const work = mkdtempSync(join(DATA_DIR, 'tree-run-'));
  const skipped = [];
  const stops = [];
  try {
    if (!netkitHas(['file', 'fetch'], '--no-preserve')) throw new Error('netkit file fetch of a tree is not built (npm run build)');
    const srv = await netkitServer(DATA_DIR);
    stops.push(() => srv.stop());
    const out = join(work, 'out');
    const peers = [];
    if (which('nc') && which('tar')) peers.push('tar');
    else skipped.push({ key: 'tar|nc', reason: skippedTool(which('nc') ? 'tar' : 'nc') });
    let rsync;
    if (which('rsync')) {
      rsync = await rsyncDaemon(work);
      stops.push(() => rsync.stop());
    } else skipped.push({ key: 'rsync', reason: skippedTool('rsync') });

    // Many small files: each run writes into a directory of its own, all removed after the rounds (on this
    // VM's ext4, mounted with `discard`, creating files right after 10,000 were removed costs several
    // times more). The large tree reuses one output, removed and flushed before each run.
    let runs = 0;
    const fresh = (t) => (t === small ? join(work, `fresh-${runs++}`) : out);
    const contendersFor = (t) => [
      { key: 'netkit', label: 'netkit file fetch (every file SHA-256 verified, flushed before its rename; the default)', run: () => netkitFetch(t, srv.port, fresh(t)) },
      { key: 'netkit_nofsync', label: 'netkit file fetch --no-fsync (verified, not flushed)', run: () => netkitFetch(t, srv.port, fresh(t), ['--no-fsync']) },
      ...(peers.includes('tar') ? [{ key: 'tar_nc', label: '`tar c | nc -N` → `nc -l | tar x` (nothing verified or flushed)', run: () => tarNc(t, fresh(t)) }] : []),
      ...(rsync ? [{ key: 'rsync', label: '`rsync -a rsync://127.0.0.1/…` from an rsync daemon (not flushed)', run: () => rsyncFetch(t, rsync.port, fresh(t)) }] : []),
    ];
    // One untimed netkit fetch first: the server's first listing reads every directory from the disk.
    await netkitFetch(small, srv.port, out);
    const smallRuns = await rounds('10k', contendersFor(small), n);
    for (let i = 0; i < runs; i++) rmSync(join(work, `fresh-${i}`), { recursive: true, force: true });
    spawnSync('sync', ['-f', work], { stdio: 'ignore' });
    const mixedRuns = await rounds('mixed', contendersFor(mixed), n);

    // Re-run with nothing changed: the output of a full fetch stays, the same command runs again.
    await netkitFetch(small, srv.port, join(work, 'again-nk'));
    if (rsync) await rsyncFetch(small, rsync.port, join(work, 'again-rs'));
    const again = await rounds(
      're-run',
      [
        { key: 'netkit', label: 'netkit file fetch again (every file skipped: same size and time)', run: () => netkitFetch(small, srv.port, join(work, 'again-nk'), [], { keep: true }) },
        ...(rsync ? [{ key: 'rsync', label: 'rsync -a again (nothing to transfer)', run: () => rsyncFetch(small, rsync.port, join(work, 'again-rs'), { keep: true }) }] : []),
      ],
      n,
    );

    // Peak RSS on the 10,000-file tree: the client through /usr/bin/time, a fresh server through VmHWM.
    let rss = null;
    if (existsSync('/usr/bin/time')) {
      const fresh = await netkitServer(DATA_DIR);
      try {
        const r = await netkitFetch(small, fresh.port, out, [], { wrap: ['/usr/bin/time', '-f', 'maxrss_kib=%M'] });
        const m = /maxrss_kib=(\d+)/.exec(r.stderr);
        rss = { client_kib: m ? Number(m[1]) : NaN, server_kib: fresh.peakRssKiB(), ok: r.ok };
      } finally {
        await fresh.stop();
      }
      log(`tree: peak RSS: client ${(rss.client_kib / 1024).toFixed(1)} MiB, server ${(rss.server_kib / 1024).toFixed(1)} MiB`);
    } else skipped.push({ key: 'rss', reason: 'skipped: /usr/bin/time not installed (sudo apt-get install -y time)' });

    return {
      conditions: {
        rounds: n,
        small: { files: small.files, bytes: small.bytes, dirs: quick ? 20 : 100 },
        mixed: { files: mixed.files, bytes: mixed.bytes },
        data: `random data in ${DATA_DIR} (page cache warm after the first run), output on the same file system, removed (and the file system flushed, untimed) before each run`,
        check: 'diff -r -q against the source after every run (a run that differs is not counted)',
      },
      small: smallRuns,
      mixed: mixedRuns,
      again,
      rss,
      skipped,
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
    rmSync(work, { recursive: true, force: true });
  }
}
