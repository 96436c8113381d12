// `disk serve --metrics` scraped by a real Prometheus server (Debian package prometheus), and its exposition checked by promtool.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit } from '../helpers/netkit.js';
import { startMetricsServer, type MetricsServer } from '../helpers/metrics.js';

const TOKEN = 'Pr0m3theusScrapeT0kenForNetkitTests0123456';
const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const missing = ['prometheus', 'promtool'].filter((t) => !has(t));
if (missing.length > 0) {
  // eslint-disable-next-line no-console
  console.warn(`skipping the Prometheus tests: ${missing.join(' and ')} not installed (apt-get install -y prometheus)`);
}
const maybe = missing.length === 0 ? describe : describe.skip;

async function freeTcpPort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

maybe('a real Prometheus scrapes two netkit disk servers', () => {
  let dir: string;
  let plain: MetricsServer;
  let secured: MetricsServer;
  let prom: ChildProcess;
  let promUrl: string;
  let metricsToken: string;
  let metricsTokenFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netkit-prom-'));
    const tokenFile = join(dir, 'token');
    metricsTokenFile = join(dir, 'metrics-token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    plain = await startMetricsServer(['--path', dir, '--quiet']);
    secured = await startMetricsServer(['--path', dir, '--quiet', '--token-file', tokenFile], { env: { NETKIT_TOKEN: undefined } });
    // Prometheus holds the metrics token derived from the secret, never the secret itself.
    const printed = await runNetkit(['disk', 'serve', '--print-metrics-token', '--token-file', tokenFile], { env: { NETKIT_TOKEN: undefined } });
    if (printed.code !== 0) throw new Error(`--print-metrics-token failed: ${printed.stderr}`);
    metricsToken = printed.stdout.trim();
    writeFileSync(metricsTokenFile, printed.stdout, { mode: 0o600 });
    const port = await freeTcpPort();
    promUrl = `http://127.0.0.1:${port}`;
    const target = (u: string): string => new URL(u).host;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 900ms',
        'scrape_configs:',
        '  - job_name: netkit-plain',
        '    static_configs:',
        `      - targets: ['${target(plain.metricsUrl)}']`,
        '  - job_name: netkit-secured',
        '    authorization:',
        `      credentials_file: ${metricsTokenFile}`,
        '    static_configs:',
        `      - targets: ['${target(secured.metricsUrl)}']`,
        '',
      ].join('\n'),
    );
    prom = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    await new Promise<void>((resolve, reject) => {
      prom.stderr!.setEncoding('utf8').on('data', (d: string) => {
        log += d;
        if (log.includes('Server is ready to receive web requests')) resolve();
      });
      prom.once('exit', (code) => reject(new Error(`prometheus exited ${code}:\n${log}`)));
    });
  }, 30_000);

  afterAll(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await once(prom, 'exit');
    }
    await plain?.stop();
    await secured?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Ask Prometheus' HTTP API until the query has a result (bounded: scrapes run every second). */
  async function promQuery(q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (r.data.result.length > 0) return r.data.result;
      if (Date.now() > deadline) throw new Error(`no result for ${q}`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  test('node_filesystem_avail_bytes of the served filesystem, from both servers, matches statfs', async () => {
    const q = await runNetkit(['disk', 'query', `127.0.0.1:${plain.port}`, '--json']);
    const mount = (JSON.parse(q.stdout) as Array<{ filesystems: Array<{ mount: string }> }>)[0]!.filesystems[0]!.mount;
    // One query per job: each result appears once that job's first scrape is in.
    const result = [
      ...(await promQuery(`node_filesystem_avail_bytes{mountpoint="${mount}",job="netkit-plain"}`)),
      ...(await promQuery(`node_filesystem_avail_bytes{mountpoint="${mount}",job="netkit-secured"}`)),
    ];
    expect(result).toHaveLength(2);
    const st = statfsSync(dir);
    for (const r of result) {
      expect(r.metric).toMatchObject({ mountpoint: mount, fstype: expect.any(String), device: expect.any(String) });
      expect(Math.abs(Number(r.value[1]) - st.bavail * st.bsize)).toBeLessThan(2 ** 30);
    }
    const up = await promQuery('up{job=~"netkit-.*"} == 1');
    expect(up).toHaveLength(2);
    const info = await promQuery('netkit_build_info');
    expect(info[0]!.metric.version).toMatch(/^\d+\.\d+\.\d+/);
  }, 40_000);

  test('promtool check metrics accepts the exposition; without the bearer token the secured one answers 401', async () => {
    const body = await (await fetch(plain.metricsUrl)).text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(check.stderr + check.stdout).toBe('');
    expect(check.status).toBe(0);
    expect(body).toMatch(/^# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes\.$/m);
    expect(body).toMatch(/^netkit_disk_queries_total\{outcome="answered"\} \d+$/m);
    expect((await fetch(secured.metricsUrl)).status).toBe(401);
    expect((await fetch(secured.metricsUrl, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(401); // the secret itself never crosses HTTP
    const ok = await fetch(secured.metricsUrl, { headers: { Authorization: `Bearer ${metricsToken}` } });
    expect(ok.status).toBe(200);
    expect(new URL(plain.metricsUrl).hostname).toBe('127.0.0.1'); // loopback unless told otherwise
  }, 30_000);
});
