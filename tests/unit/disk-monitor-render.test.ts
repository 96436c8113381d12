// The monitoring outputs: the Nagios status line and perfdata (monitoring-plugins guidelines), and the Prometheus text with a host label (checked by promtool where installed).
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { renderNagios, renderProm } from '../../src/commands/disk/render-monitor.js';
import { NetkitError } from '../../src/errors.js';
import { FsErrorCode, type FsFigures } from '../../src/protocol/disk-v1.js';
import type { HostResult } from '../../src/services/disk/query.js';
import { Status, parseThreshold } from '../../src/services/disk/thresholds.js';

const G = 2n ** 30n;
const fs = (mount: string, usedG: bigint, availG: bigint, extra: Partial<FsFigures> = {}): FsFigures => ({
  mount, fstype: 'ext4', device: '/dev/vda1', total: (usedG + availG) * G, used: usedG * G, available: availG * G, free: availG * G, served: false, ...extra,
});
const host = (label: string, filesystems: FsFigures[]): HostResult => ({ ok: true, protocol: 'v1', target: { label, host: label, port: 9991 }, address: '10.0.0.1', attempts: 1, elapsedMs: 1, answer: { host: label, time: 1, omitted: 0, filesystems } });
const silent: HostResult = { ok: false, target: { label: 'dead', host: 'dead', port: 9991 }, elapsedMs: 7000, error: new NetkitError('TIMEOUT', 'no answer from dead:9991 after 3 attempts (waited 7.0s)') };
const hung = fs('/mnt/nfs', 0n, 0n, { error: { code: FsErrorCode.TIMEOUT, message: 'statfs timed out after 2000ms' } });

describe('--format nagios', () => {
  const t = { warn: parseThreshold('10%', '--warn'), crit: parseThreshold('5%', '--crit') };

  test('OK: one line, SERVICE STATUS - text | perfdata in bytes with warn and crit as the used amount at which each fires, 0 and the size', () => {
    const r = renderNagios([host('nas', [fs('/', 50n, 50n)])], t);
    expect(r.status).toBe(Status.OK);
    // 100 GiB: warn fires above 90 GiB used, crit above 95 GiB.
    expect(r.line).toBe(`DISK OK - 1 filesystem on 1 host fine | '/'=${50n * G}B;${90n * G};${95n * G};0;${100n * G}\n`);
  });

  test('a filesystem whose figures could not be read is WARNING with an unknown value (U), never 0 bytes', () => {
    const r = renderNagios([host('nas', [fs('/', 50n, 50n), hung])], t);
    expect(r.status).toBe(Status.WARNING);
    expect(r.line).toMatch(/^DISK WARNING - \/mnt\/nfs statfs timed out \| '\/'=\d+B;\d+;\d+;0;\d+ '\/mnt\/nfs'=U\n$/);
  });

  test('several hosts: labels carry the host; CRITICAL outranks a silent host (UNKNOWN), which outranks WARNING', () => {
    const crit = renderNagios([host('a', [fs('/', 97n, 3n)]), silent], t);
    expect(crit.status).toBe(Status.CRITICAL);
    expect(crit.line).toMatch(/^DISK CRITICAL - a:\/ available below 5%; dead: no answer from dead:9991 .* \| 'a:\/'=/);
    expect(renderNagios([host('a', [fs('/', 92n, 8n)]), silent], t).status).toBe(Status.UNKNOWN);
  });

  test('a label never breaks the perfdata syntax: quotes and = are replaced, control characters escaped', () => {
    const r = renderNagios([host('nas', [fs("/it's=odd\u001b[2J", 1n, 99n)])], {});
    const perf = r.line.split(' | ')[1]!;
    expect(perf).toMatch(/^'\/it_s_odd\\x1b\[2J'=\d+B;;;0;\d+\n$/);
  });
});

describe('--format prom', () => {
  test('a server that does not say whether a filesystem is read-only gets no readonly sample (unknown), not 0', () => {
    const text = renderProm([host('old', [fs('/', 1n, 9n)]), host('new', [fs('/', 1n, 9n, { readonly: false }), fs('/ro', 1n, 9n, { readonly: true })])]);
    expect(text).not.toMatch(/^node_filesystem_readonly\{host="old"/m);
    expect(text).toMatch(/^node_filesystem_readonly\{host="new",[^}]*mountpoint="\/"[^}]*\} 0$/m);
    expect(text).toMatch(/^node_filesystem_readonly\{host="new",[^}]*mountpoint="\/ro"[^}]*\} 1$/m);
    expect(text).toMatch(/^node_filesystem_avail_bytes\{host="old",/m);
  });

  test('node_exporter names with host, device, mountpoint and fstype labels; escaped label values; up per host', () => {
    const text = renderProm([host('nas:9991', [fs('/srv "x"\\y', 1n, 9n), hung]), silent]);
    expect(text).toContain(`node_filesystem_avail_bytes{host="nas:9991",device="/dev/vda1",mountpoint="/srv \\"x\\"\\\\y",fstype="ext4"} ${9n * G}`);
    // Like node_exporter: no size figures for a filesystem that errored, but device_error 1.
    expect(text).not.toMatch(/node_filesystem_size_bytes\{[^}]*mountpoint="\/mnt\/nfs"/);
    expect(text).toMatch(/node_filesystem_device_error\{[^}]*mountpoint="\/mnt\/nfs"[^}]*\} 1/);
    expect(text).toMatch(/^netkit_disk_query_up\{host="dead"\} 0$/m);
    if (spawnSync('sh', ['-c', 'command -v promtool']).status === 0) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(check.stdout + check.stderr).toBe('');
      expect(check.status).toBe(0);
    }
  });

  test('a fleet of 200,000 filesystems renders (no spread of the lines into one call)', () => {
    const many = host('nas', Array.from({ length: 200_000 }, (_, i) => fs(`/m${i}`, 1n, 1n)));
    const text = renderProm([many]);
    expect(text.match(/^node_filesystem_avail_bytes\{/gm)).toHaveLength(200_000);
  });
});
