// Fleet bench: one `disk serve` bound to every address answers on 1,000 loopback addresses (127.0.1.1 onward).
// One `disk query --hosts-file` asks all of them (timed against a single-host query in the same rounds, and
// profiled once); `--watch 1` runs on them for a while (client and server CPU, piped and on a terminal); and
// `/metrics` of a server with 50 mounted filesystems is scraped 1,000 times (bench/lib/fleet-metrics.mjs).
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BIN, NODE, cleanEnv, cpuSeconds, log, median, nowMs, startProcess, runTimed, track, which, waitUntil } from './common.mjs';
import { breakdown } from './profile.mjs';
import { runScrape } from './fleet-metrics.mjs';

const HOSTS = 1000;
const TIME = '/usr/bin/time';

/** Run a netkit command under GNU time for its peak RSS; wall time from spawn to exit. */
async function measured(args) {
  const withTime = existsSync(TIME);
  const r = withTime ? await runTimed(TIME, ['-f', 'maxrss_kib=%M', NODE, BIN, ...args]) : await runTimed(NODE, [BIN, ...args]);
  const rss = Number(/maxrss_kib=(\d+)/.exec(r.stderr)?.[1] ?? NaN);
  return { ms: r.ms, rssKiB: rss, code: r.code, stdout: r.stdout };
}

function summarise(stdout) {
  const hosts = JSON.parse(stdout);
  return { answered: hosts.filter((h) => h.ok).length, retried: hosts.filter((h) => h.ok && h.attempts > 1).length };
}

/** One fleet query under --cpu-prof: where its wall time and CPU go. */
async function profiled(file, dir) {
  mkdirSync(dir, { recursive: true });
  const spawned = nowMs();
  const r = await runTimed(NODE, ['--cpu-prof', '--cpu-prof-interval', '200', '--cpu-prof-dir', dir, BIN, 'disk', 'query', '--hosts-file', file, '--json']);
  const exited = spawned + r.ms;
  return { wall_ms: Math.round(r.ms), ...summarise(r.stdout), ...breakdown(dir, spawned * 1000, exited * 1000) };
}

/** `--watch 1` on every host for `seconds`, piped: CPU of the client and of the server over the window after the first round. */
async function watchPiped(file, srv, seconds) {
  const child = track(spawn(NODE, [BIN, 'disk', 'query', '--hosts-file', file, '--watch', '1'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
  let rounds = 0;
  let lastLine = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    rounds += parts.length;
    if (parts.length) lastLine = parts[parts.length - 1];
  });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntil(() => rounds >= 1, { timeoutMs: 15000, what: 'the first round of --watch' });
  const c0 = cpuSeconds(child.pid);
  const s0 = cpuSeconds(srv.pid);
  const r0 = rounds;
  const t0 = nowMs();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const c1 = cpuSeconds(child.pid);
  const s1 = cpuSeconds(srv.pid);
  const window = (nowMs() - t0) / 1000;
  const windowRounds = rounds - r0;
  child.kill('SIGINT');
  const code = await exited;
  const last = JSON.parse(lastLine);
  return {
    seconds: window,
    rounds: windowRounds,
    client_cpu_pct: (100 * (c1 - c0)) / window,
    server_cpu_pct: (100 * (s1 - s0)) / window,
    last_round_answered: last.hosts.filter((h) => h.ok).length,
    exit_code: code,
  };
}

/** The same on a terminal: tmux on a private server, 120×50, the client is the pane's process. */
async function watchTerminal(file, srv, seconds) {
  if (!which('tmux')) return { skipped: 'tmux not installed (sudo apt-get install -y tmux)' };
  const sock = `netkit-bench-${process.pid}`;
  const tmux = (...a) => runTimed('tmux', ['-L', sock, '-f', '/dev/null', ...a], { timeoutMs: 10000 });
  const cmd = [NODE, BIN, 'disk', 'query', '--hosts-file', file, '--watch', '1'].map((s) => `'${s}'`).join(' ');
  try {
    await tmux('new-session', '-d', '-s', 'w', '-x', '120', '-y', '50', '-e', 'NO_COLOR=', `exec ${cmd}`);
    const pid = Number((await tmux('display-message', '-p', '-t', 'w', '#{pane_pid}')).stdout.trim());
    const round = async () => Number(/round (\d+)/.exec((await tmux('capture-pane', '-p', '-t', 'w')).stdout)?.[1] ?? 0);
    const t0 = nowMs();
    while ((await round()) < 1) {
      if (nowMs() - t0 > 15000) throw new Error('--watch on a terminal drew nothing in 15 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const r0 = await round();
    const c0 = cpuSeconds(pid);
    const s0 = cpuSeconds(srv.pid);
    const w0 = nowMs();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const c1 = cpuSeconds(pid);
    const s1 = cpuSeconds(srv.pid);
    const window = (nowMs() - w0) / 1000;
    const screen = (await tmux('capture-pane', '-p', '-t', 'w')).stdout;
    return {
      seconds: window,
      rounds: (await round()) - r0,
      client_cpu_pct: (100 * (c1 - c0)) / window,
      server_cpu_pct: (100 * (s1 - s0)) / window,
      title: screen.split('\n')[0],
    };
  } finally {
    await tmux('kill-server');
  }
}

export async function runFleet({ quick }) {
  const rounds = quick ? 1 : 5;
  const watchSeconds = quick ? 8 : 30;
  const tmp = mkdtempSync(join(tmpdir(), 'netkit-bench-fleet-'));
  // No --host: the server listens on every address and answers from 127.0.0.1 whatever was asked.
  const srv = await startProcess(NODE, [BIN, 'disk', 'serve', '--port', '0', '--quiet', '--path', tmp], { cwd: tmp });
  try {
    const port = Number(/:(\d+)\s*$/m.exec(srv.match[0])[1]);
    const file = join(tmp, 'fleet.txt');
    writeFileSync(file, `${Array.from({ length: HOSTS }, (_, i) => `127.0.${(i + 257) >> 8}.${(i + 257) & 255}:${port}`).join('\n')}\n`);
    const single = [];
    const fleet = [];
    for (let r = 0; r < rounds; r++) {
      single.push(await measured(['disk', 'query', `127.0.0.1:${port}`, '--json']));
      const f = await measured(['disk', 'query', '--hosts-file', file, '--json']);
      fleet.push({ ms: f.ms, rssKiB: f.rssKiB, ...summarise(f.stdout) });
      log(`fleet: round ${r + 1}/${rounds}: ${HOSTS} hosts in ${f.ms.toFixed(0)} ms, ${(f.rssKiB / 1024).toFixed(0)} MiB, ${fleet[r].answered} answered (${fleet[r].retried} after a retry); one host ${single[r].ms.toFixed(0)} ms`);
    }
    const profile = await profiled(file, join(tmp, 'prof'));
    log(`fleet: profiled query: ${JSON.stringify(profile.phases_ms)} network CPU ${JSON.stringify(profile.network_ms_by_kind)}`);
    const piped = await watchPiped(file, srv, watchSeconds);
    log(`fleet: --watch 1 piped for ${piped.seconds.toFixed(0)} s: client ${piped.client_cpu_pct.toFixed(1)}% of a core, server ${piped.server_cpu_pct.toFixed(1)}%`);
    const terminal = await watchTerminal(file, srv, watchSeconds);
    if (!terminal.skipped) log(`fleet: --watch 1 on a terminal for ${terminal.seconds.toFixed(0)} s: client ${terminal.client_cpu_pct.toFixed(1)}%, server ${terminal.server_cpu_pct.toFixed(1)}%`);
    const scrape = await runScrape({ quick });
    return {
      conditions: { hosts: HOSTS, rounds, watch_seconds: watchSeconds, server: 'netkit disk serve on [::] (every address), loopback exempt from the rate limit' },
      single: { median_ms: median(single.map((x) => x.ms)), median_rss_kib: median(single.map((x) => x.rssKiB)), runs_ms: single.map((x) => x.ms) },
      fleet: { median_ms: median(fleet.map((x) => x.ms)), median_rss_kib: median(fleet.map((x) => x.rssKiB)), max_rss_kib: Math.max(...fleet.map((x) => x.rssKiB)), runs: fleet },
      profile,
      watch: { piped, terminal },
      scrape,
    };
  } finally {
    await srv.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
