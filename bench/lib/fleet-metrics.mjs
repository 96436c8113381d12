// Scrape bench: `/metrics` of a disk server that sees 50 mounted filesystems (tmpfs, in a private mount namespace
// that ends with the server), scraped over one keep-alive connection as Prometheus does; latency p50/p99.
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BIN, NODE, cpuSeconds, log, nowMs, quantile, startProcess } from './common.mjs';

const MOUNTS = 50;

function get(agent, url) {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const req = http.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, ms: nowMs() - t0 }));
    });
    req.setTimeout(10000, () => req.destroy(new Error(`no answer from ${url} in 10 s`)));
    req.on('error', reject);
  });
}

export async function runScrape({ quick }) {
  if (spawnSync('unshare', ['-m', '--propagation', 'private', 'true'], { stdio: 'ignore' }).status !== 0) {
    return { skipped: 'cannot create a mount namespace for the 50 tmpfs mounts (needs root and util-linux unshare)' };
  }
  const scrapes = quick ? 200 : 1000;
  const dir = mkdtempSync(join(tmpdir(), 'netkit-bench-scrape-'));
  const setup = `i=1; while [ $i -le ${MOUNTS} ]; do mkdir -p "$0/fs$i" && mount -t tmpfs -o size=1m "netkit-bench-$i" "$0/fs$i" || exit 9; i=$((i+1)); done; exec "$@"`;
  const srv = await startProcess('unshare', ['-m', '--propagation', 'private', 'sh', '-c', setup, dir, NODE, BIN, 'disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--metrics', '0', '--quiet', '--path', dir], {
    re: /^metrics (http:\S+)$/m,
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const url = srv.match[1];
    const first = await get(agent, url);
    if (first.status !== 200) throw new Error(`${url}: HTTP ${first.status}`);
    const avail = first.body.split('\n').filter((l) => l.startsWith('node_filesystem_avail_bytes{'));
    const ours = avail.filter((l) => l.includes(`mountpoint="${dir}/fs`)).length;
    if (ours !== MOUNTS) throw new Error(`the exposition has ${ours} of the ${MOUNTS} bench mounts`);
    for (let i = 0; i < 20; i++) await get(agent, url); // warm-up, not counted
    const cpu0 = cpuSeconds(srv.pid);
    const times = [];
    const t0 = nowMs();
    for (let i = 0; i < scrapes; i++) {
      const r = await get(agent, url);
      if (r.status !== 200) throw new Error(`scrape ${i}: HTTP ${r.status}`);
      times.push(r.ms);
    }
    const elapsed = (nowMs() - t0) / 1000;
    const cpu = cpuSeconds(srv.pid) - cpu0;
    const result = {
      scrapes,
      filesystems: avail.length,
      bench_mounts: ours,
      body_bytes: Buffer.byteLength(first.body),
      p50_ms: quantile(times, 0.5),
      p99_ms: quantile(times, 0.99),
      max_ms: Math.max(...times),
      server_cpu_ms_per_scrape: (1000 * cpu) / scrapes,
      seconds: elapsed,
    };
    log(`fleet: /metrics with ${avail.length} filesystems: p50 ${result.p50_ms.toFixed(2)} ms, p99 ${result.p99_ms.toFixed(2)} ms over ${scrapes} scrapes`);
    return result;
  } finally {
    agent.destroy();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
