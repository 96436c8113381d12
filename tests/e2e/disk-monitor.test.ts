// `disk query` for monitoring: hosts files, thresholds and their exit statuses, the Nagios line, Prometheus text, inodes, replies from another address, and the live view when piped.
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runNetkit, startServer, type Server } from '../helpers/netkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'netkit-mon-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function serve(args: string[] = []): Promise<Server> {
  const s = await startServer(['disk', 'serve', '--port', '0', '--quiet', ...args]);
  cleanups.push(() => s.stop());
  return s;
}

describe('disk query for monitoring', () => {
  test('a server bound to every address answers a query sent to another loopback address (replies matched by id)', async () => {
    const s = await serve(); // [::], IPv4 mapped: it answers from 127.0.0.1 whatever address was asked
    const r = await runNetkit(['disk', 'query', `127.0.1.5:${s.port}`, '--json', '--timeout', '300ms', '--retries', '1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)[0]).toMatchObject({ ok: true, host: `127.0.1.5:${s.port}` });
  });

  test('1,000 loopback addresses of one server bound to every address: each answered on the first attempt', async () => {
    const dir = tmp();
    const s = await serve(['--path', dir]);
    const file = join(dir, 'fleet');
    writeFileSync(file, Array.from({ length: 1000 }, (_, i) => `127.0.${(i + 257) >> 8}.${(i + 257) & 255}:${s.port}\n`).join(''));
    // One attempt with a long wait: a reply handed to the wrong socket shows as a timeout here. Twice,
    // since such a mix-up depends on which ports the kernel hands out.
    for (let run = 0; run < 2; run += 1) {
      const r = await runNetkit(['disk', 'query', '--hosts-file', file, '--json', '--timeout', '4s', '--retries', '0'], { timeoutMs: 30_000 });
      const hosts = JSON.parse(r.stdout) as Array<{ ok: boolean; attempts: number }>;
      expect(hosts.filter((h) => !h.ok || h.attempts !== 1)).toEqual([]);
      expect(hosts).toHaveLength(1000);
      expect(r.code).toBe(0);
    }
  });

  test('--hosts-file with comments and blank lines; --inodes and --json carry inodes and read-only', async () => {
    const dir = tmp();
    const s = await serve(['--host', '127.0.0.1', '--path', dir]);
    const file = join(dir, 'hosts');
    writeFileSync(file, `# the fleet\n\n127.0.0.1:${s.port}   # this one\n  [::1]:${s.port}\n`);
    const j = await runNetkit(['disk', 'query', '--hosts-file', file, '--json', '--timeout', '200ms', '--retries', '0']);
    const hosts = JSON.parse(j.stdout) as Array<{ host: string; ok: boolean; filesystems?: Array<{ files: number; filesFree: number; readonly: boolean }> }>;
    expect(hosts.map((h) => h.host)).toEqual([`127.0.0.1:${s.port}`, `[::1]:${s.port}`]);
    expect(hosts[1]!.ok).toBe(false); // bound to 127.0.0.1 only
    const st = statfsSync(dir);
    expect(hosts[0]!.filesystems![0]!.files).toBe(st.files);
    expect(hosts[0]!.filesystems![0]!.readonly).toBe(false);
    const t = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--inodes']);
    expect(t.stdout.split('\n')[0]).toMatch(/USE%\s+INODES\s+IFREE\s+IUSE%$/);
    const empty = join(dir, 'empty');
    writeFileSync(empty, '# nothing\n');
    const e = await runNetkit(['disk', 'query', '--hosts-file', empty]);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/names no host/);
    const d = await runNetkit(['disk', 'query', '--hosts-file', dir]);
    expect(d.code).toBe(2);
    expect(d.stderr).toMatch(/^netkit: --hosts-file .* is a directory\n/);
    // An endless file (a device) is refused once 1 MiB is read, not read to the end.
    const z = await runNetkit(['disk', 'query', '--hosts-file', '/dev/zero'], { timeoutMs: 10_000 });
    expect(z.code).toBe(2);
    expect(z.stderr).toMatch(/^netkit: --hosts-file \/dev\/zero is larger than 1 MiB\n/);
    // A bad line is named by FILE:LINE (comments and blank lines count as lines).
    const bad = join(dir, 'bad');
    writeFileSync(bad, `# fleet\n127.0.0.1:${s.port}\n\nnas:99999\n`);
    const b = await runNetkit(['disk', 'query', '--hosts-file', bad]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(new RegExp(`^netkit: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: invalid port '99999' in 'nas:99999'\n`));
  });

  test('a missing --path, --token-file or --hosts-file: exit 3, with a hint', async () => {
    const missing = join(tmp(), 'missing');
    const cases: Array<[string[], RegExp, RegExp]> = [
      [['disk', 'serve', '--path', missing, '--port', '0'], /^netkit: cannot serve --path .*missing: no such file or directory$/m, /^hint: give an existing file or directory/m],
      [['disk', 'query', '--token-file', missing], /^netkit: cannot read the token file .*missing: no such file or directory$/m, /^hint: check the path; to make a secret: netkit token > FILE/m],
      [['file', 'fetch', 'x', '--token-file', missing], /^netkit: cannot read the token file .*missing: no such file or directory$/m, /^hint: check the path; to make a secret/m],
      [['disk', 'query', '--hosts-file', missing], /^netkit: cannot read --hosts-file .*missing: no such file or directory$/m, /^hint: check the path: --hosts-file names a file/m],
    ];
    for (const [args, message, hint] of cases) {
      const r = await runNetkit(args, { timeoutMs: 10_000 });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(hint);
    }
  });

  test('--hosts-file given twice reads both; a host named twice, however written, is asked and shown once', async () => {
    const dir = tmp();
    const s = await serve(['--path', dir]);
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    writeFileSync(a, `127.0.0.1:${s.port}\nLOCALHOST:${s.port}\n`);
    writeFileSync(b, `localhost:${s.port}\n[::1]:${s.port}\n[0:0::1]:${s.port}\n127.0.0.1:${s.port}\n127.1:${s.port}\n0x7f.0.0.1:${s.port}\n`);
    const r = await runNetkit(['disk', 'query', '--hosts-file', a, '--hosts-file', b, `127.0.0.1:${s.port}`, '--json', '--timeout', '2s', '--retries', '0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const hosts = JSON.parse(r.stdout) as Array<{ host: string; ok: boolean }>;
    expect(hosts.map((h) => h.host)).toEqual([`127.0.0.1:${s.port}`, `LOCALHOST:${s.port}`, `[::1]:${s.port}`]);
    expect(hosts.every((h) => h.ok)).toBe(true);
  });

  test('--watch below 100ms is a usage error that says the minimum', async () => {
    for (const d of ['1ms', '99ms', '0.05']) {
      const r = await runNetkit(['disk', 'query', '127.0.0.1:9', '--watch', d]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^netkit: invalid --watch '[^']+': the interval must be at least 100ms\n/);
      expect(r.stdout).toBe('');
    }
  });

  test('thresholds: exit 0 below them, 12 WARNING, 13 CRITICAL; a bad SPEC is a usage error', async () => {
    const s = await serve(['--host', '127.0.0.1']);
    const h = `127.0.0.1:${s.port}`;
    expect((await runNetkit(['disk', 'query', h, '--warn', '0%', '--crit', '0%'])).code).toBe(0);
    expect((await runNetkit(['disk', 'query', h, '--warn', '100%', '--crit', '0%'])).code).toBe(12);
    // 100% AND 1 byte: both must hold, and no filesystem has less than 1 byte available.
    expect((await runNetkit(['disk', 'query', h, '--warn', '100%,1B'])).code).toBe(0);
    expect((await runNetkit(['disk', 'query', h, '--crit', '100%,1E'])).code).toBe(13);
    const bad = await runNetkit(['disk', 'query', h, '--warn', 'ten']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid --warn 'ten'/);
  });

  test('--format nagios: one status line with perfdata; exit 0, 1, 2, and 3 for a silent host or a bad option', async () => {
    const s = await serve(['--host', '127.0.0.1']);
    const h = `127.0.0.1:${s.port}`;
    const ok = await runNetkit(['disk', 'query', h, '--format', 'nagios', '--warn', '0%']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^DISK OK - 1 filesystem on 1 host fine \| '\/[^']*'=\d+B;\d+;;0;\d+\n$/);
    expect((await runNetkit(['disk', 'query', h, '--format', 'nagios', '--warn', '100%'])).code).toBe(1);
    const crit = await runNetkit(['disk', 'query', h, '--format', 'nagios', '--warn', '100%', '--crit', '100%']);
    expect(crit.code).toBe(2);
    expect(crit.stdout).toMatch(/^DISK CRITICAL - /);
    const dead = await runNetkit(['disk', 'query', '127.0.0.1:9', '--format', 'nagios', '--timeout', '100ms', '--retries', '0']);
    expect(dead.code).toBe(3);
    expect(dead.stdout).toMatch(/^DISK UNKNOWN - /);
    // The host is named once, not once by the check and again by the error.
    const refused = await runNetkit(['disk', 'query', '127.0.0.1:1', '--format', 'nagios', '--timeout', '1s', '--retries', '0']);
    expect(refused.code).toBe(3);
    expect(refused.stdout).toMatch(/^DISK UNKNOWN - 127\.0\.0\.1:1 /);
    expect(refused.stdout.split('127.0.0.1:1').length).toBe(2);
    const badOption = await runNetkit(['disk', 'query', h, '--format', 'nagios', '--bogus']);
    expect(badOption.code).toBe(3);
    expect(badOption.stdout).toMatch(/^DISK UNKNOWN - unknown option --bogus/);
    // A check runs once: --watch with it is a bad option too.
    const watching = await runNetkit(['disk', 'query', h, '--format', 'nagios', '--watch', '1s']);
    expect(watching.code).toBe(3);
    expect(watching.stdout).toBe('DISK UNKNOWN - --watch cannot be used with --format nagios: a check reports once and exits\n');
  });

  test('table with thresholds, piped: one stderr line per filesystem past a threshold; JSON leaves stderr alone', async () => {
    const s = await serve(['--host', '127.0.0.1']);
    const h = `127.0.0.1:${s.port}`;
    const warn = await runNetkit(['disk', 'query', h, '--warn', '100%'], { env: { NO_COLOR: '1' } });
    expect(warn.code).toBe(12);
    expect(warn.stderr).toMatch(new RegExp(`^netkit: WARNING: 127\\.0\\.0\\.1:${s.port}:/\\S* available [0-9.]+% \\(below 100%\\)$`, 'm'));
    const crit = await runNetkit(['disk', 'query', h, '--warn', '100%', '--crit', '100%,1E']);
    expect(crit.code).toBe(13);
    expect(crit.stderr).toMatch(new RegExp(`^netkit: CRITICAL: 127\\.0\\.0\\.1:${s.port}:/\\S* available [0-9.]+[BKMGTPE], [0-9.]+% \\(below 100%,1E\\)$`, 'm'));
    expect(crit.stderr).not.toMatch(/WARNING/);
    const json = await runNetkit(['disk', 'query', h, '--warn', '100%', '--json']);
    expect(json.code).toBe(12);
    expect(json.stderr).toBe('');
    const fine = await runNetkit(['disk', 'query', h, '--warn', '0%']);
    expect(fine.code).toBe(0);
    expect(fine.stderr).toBe('');
  });

  test('--format prom: node_exporter names with a host label, accepted by promtool where it is installed', async () => {
    const s = await serve(['--host', '127.0.0.1']);
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '127.0.0.1:9', '--format', 'prom', '--all', '--timeout', '100ms', '--retries', '0']);
    expect(r.stdout).toMatch(new RegExp(`^node_filesystem_avail_bytes\\{host="127\\.0\\.0\\.1:${s.port}",device="[^"]*",mountpoint="/[^"]*",fstype="[^"]*"\\} \\d+$`, 'm'));
    expect(r.stdout).toMatch(/^netkit_disk_query_up\{host="127\.0\.0\.1:9"\} 0$/m);
    if (spawnSync('sh', ['-c', 'command -v promtool']).status === 0) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: r.stdout, encoding: 'utf8' });
      expect(check.stdout + check.stderr).toBe('');
    }
  });

  test('--watch piped: one JSON object per round (NDJSON), no escape codes; SIGINT ends it with exit 0', async () => {
    const s = await serve(['--host', '127.0.0.1']);
    const child = spawn(process.execPath, [BIN, 'disk', 'query', `127.0.0.1:${s.port}`, '--watch', '200ms'], { env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.setEncoding('utf8');
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: string) => {
        out += d;
        if (out.split('\n').length > 3) resolve();
      });
    });
    const exited = once(child, 'exit');
    child.kill('SIGINT');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(out).not.toMatch(/\u001b|\r/);
    const rounds = out.trim().split('\n').map((l) => JSON.parse(l) as { round: number; hosts: Array<{ ok: boolean; answers: number; timeouts: number; ageMs: number }> });
    expect(rounds[0]!.round).toBe(1);
    expect(rounds[2]!.round).toBe(3);
    expect(rounds[2]!.hosts[0]).toMatchObject({ ok: true, answers: 3, timeouts: 0 });
    expect(rounds[2]!.hosts[0]!.ageMs).toBeLessThan(5000);
  });
});
