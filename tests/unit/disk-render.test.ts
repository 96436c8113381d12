// Rendering disk query results: the df -h table (plain and coloured), use%, and JSON with exact integers.
import { describe, expect, test } from '@jest/globals';
import { renderJson, renderTable, usePercent, type Paint } from '../../src/commands/disk/render.js';
import { NetkitError } from '../../src/errors.js';
import { FsErrorCode } from '../../src/protocol/disk-v1.js';
import type { HostResult } from '../../src/services/disk/query.js';

const target = (label: string) => ({ label, host: label, port: 9991 });
const answer: HostResult = {
  ok: true,
  protocol: 'v1',
  target: target('nas'),
  address: '10.0.0.2',
  attempts: 1,
  elapsedMs: 3,
  answer: {
    host: 'nas\u001b[2J',
    time: 1_700_000_000_000,
    omitted: 0,
    filesystems: [
      { mount: '/', fstype: 'ext4', device: '/dev/sda1', total: 100n * 2n ** 30n, used: 95n * 2n ** 30n, available: 5n * 2n ** 30n, free: 5n * 2n ** 30n, served: true },
      { mount: '/big\u001b[31m', fstype: 'zfs', device: 'tank', total: 2n ** 63n + 5n, used: 1n, available: 2n ** 63n, free: 2n ** 63n + 4n, served: false },
    ],
  },
};
const failed: HostResult = { ok: false, target: target('dead'), elapsedMs: 7000, error: new NetkitError('TIMEOUT', 'no answer from dead:9991 after 3 attempts (waited 7.0s)') };
const classic: HostResult = { ok: true, protocol: 'classic', target: target('old'), address: '10.0.0.3', attempts: 1, elapsedMs: 1, text: 't', parsed: { serverName: 'old', totalGiB: 10.5, availableGiB: 2.25 } };

describe('disk query output', () => {
  test('usePercent is df\'s: rounded up, undefined for an empty filesystem', () => {
    expect(usePercent(0n, 100n)).toBe(0);
    expect(usePercent(1n, 1000n)).toBe(1);
    expect(usePercent(95n, 5n)).toBe(95);
    expect(usePercent(0n, 0n)).toBeUndefined();
  });

  test('plain table: aligned columns, peer text escaped, failed hosts absent, no ANSI', () => {
    const out = renderTable([answer, failed, classic]);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^HOST\s+MOUNT\s+TYPE\s+SIZE\s+USED\s+AVAIL\s+USE%$/);
    expect(lines[1]).toMatch(/^nas\s+\/\s+ext4\s+100G\s+95G\s+5\.0G\s+95%$/);
    expect(lines[2]).toContain('/big\\x1b[31m');
    expect(lines[3]).toMatch(/^old\s+-\s+classic\s+11G\s+-\s+2\.3G\s+-$/);
    expect(lines).toHaveLength(4);
    expect(out).not.toMatch(/\u001b/);
    // right-aligned numbers end in the same column
    expect(lines[1]!.indexOf('95%') + 3).toBe(lines[0]!.length);
  });

  test('a filesystem with an error and no figures at all (hung from the start) shows -, not 0B; one with stale figures keeps them', () => {
    const fsOf = (mount: string, n: bigint, message: string) => ({ mount, fstype: 'nfs4', device: 'srv:/x', total: n, used: 0n, available: n, free: n, served: false, error: { code: FsErrorCode.TIMEOUT, message } });
    const r: HostResult = { ...answer, answer: { host: 'nas', time: 1, omitted: 0, filesystems: [fsOf('/hung', 0n, 'statfs hung for 9.0s'), fsOf('/stale', 2n ** 30n, 'not refreshed for 3.0s')] } } as HostResult;
    const lines = renderTable([r]).trimEnd().split('\n');
    expect(lines[1]).toMatch(/^nas\s+\/hung\s+nfs4\s+-\s+-\s+-\s+-\s+timeout: statfs hung for 9\.0s$/);
    expect(lines[2]).toMatch(/^nas\s+\/stale\s+nfs4\s+1\.0G\s+0B\s+1\.0G\s+0%\s+timeout: not refreshed for 3\.0s$/);
  });

  test('coloured table: header painted, a 95% line marked bad', () => {
    const tag = (name: string) => (s: string) => `<${name}>${s}</${name}>`;
    const paint: Paint = { header: tag('h'), warn: tag('w'), bad: tag('b'), dim: tag('d') };
    const out = renderTable([answer], paint);
    expect(out).toMatch(/^<h>HOST/);
    // Only the status cells take the colour: USE% here.
    expect(out).toMatch(/^nas +\/ +ext4 +100G +95G +5\.0G +<b>95%<\/b>$/m);
  });

  test('JSON: exact integers above 2^53, failures with their code', () => {
    const text = renderJson([answer, failed]);
    expect(text).toContain(`"total": ${(2n ** 63n + 5n).toString()}`);
    const parsed = JSON.parse(text) as Array<Record<string, unknown>>;
    expect(parsed[0]).toMatchObject({ host: 'nas', ok: true, protocol: 'v1', serverHost: 'nas\u001b[2J', timeMs: 1_700_000_000_000 });
    expect(parsed[1]).toMatchObject({ host: 'dead', ok: false, error: { code: 'TIMEOUT' } });
    expect(text).not.toContain('\u001b'); // JSON escapes control characters
  });

  test('a table of 200,000 rows is aligned (no spread of the rows into one call)', () => {
    const many: HostResult[] = Array.from({ length: 200_000 }, (_, i) => ({ ...answer, target: target(`h${i}`), answer: { ...answer.answer, filesystems: [answer.answer.filesystems[0]!] } }) as HostResult);
    const lines = renderTable(many).trimEnd().split('\n');
    expect(lines).toHaveLength(200_001);
    expect(lines[1]).toMatch(/^h0 {7}\/ /);
    expect(lines[200_000]).toMatch(/^h199999 {2}\/ /);
  });
});
