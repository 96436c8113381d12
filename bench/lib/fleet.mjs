// Fleet bench: one `disk serve` bound to every address answers on 1,000 loopback addresses (127.0.1.1 onward);
// one `disk query --hosts-file` asks all of them, timed against a single-host query in the same run.
import { writeFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BIN, NODE, log, median, startProcess, runTimed } from './common.mjs';

const HOSTS = 1000;
const TIME = '/usr/bin/time';

/** Run a netkit command under GNU time for its peak RSS; wall time from spawn to exit. */
async function measured(args) {
  const withTime = existsSync(TIME);
  const r = withTime ? await runTimed(TIME, ['-f', 'maxrss_kib=%M', NODE, BIN, ...args]) : await runTimed(NODE, [BIN, ...args]);
  const rss = Number(/maxrss_kib=(\d+)/.exec(r.stderr)?.[1] ?? NaN);
  return { ms: r.ms, rssKiB: rss, code: r.code, stdout: r.stdout };
}

export async function runFleet({ quick }) {
  const rounds = quick ? 1 : 5;
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
      const answered = JSON.parse(f.stdout).filter((h) => h.ok).length;
      fleet.push({ ms: f.ms, rssKiB: f.rssKiB, answered });
      log(`fleet: round ${r + 1}/${rounds}: ${HOSTS} hosts in ${f.ms.toFixed(0)} ms, ${(f.rssKiB / 1024).toFixed(0)} MiB, ${answered} answered; one host ${single[r].ms.toFixed(0)} ms`);
    }
    return {
      conditions: { hosts: HOSTS, rounds, server: 'netkit disk serve on [::] (every address), loopback exempt from the rate limit' },
      single: { median_ms: median(single.map((x) => x.ms)), median_rss_kib: median(single.map((x) => x.rssKiB)) },
      fleet: { median_ms: median(fleet.map((x) => x.ms)), median_rss_kib: median(fleet.map((x) => x.rssKiB)), answered: fleet.map((x) => x.answered), runs: fleet },
      not_measured: ['--watch 1 on 1,000 hosts for 30 s (CPU)', '/metrics p99 with 50 mounted filesystems', 'spoofed-source flood answers/s'],
    };
  } finally {
    await srv.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
