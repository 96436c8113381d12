// Fitting the disk table to a terminal: middle ellipsis, clipping, columns that narrow or go, and the lines kept when not all fit.
import { describe, expect, test } from '@jest/globals';
import { clip, ellipsize, fitColumns, pickRows } from '../../src/commands/disk/table-fit.js';
import { renderTable } from '../../src/commands/disk/render.js';
import { NetkitError } from '../../src/errors.js';
import type { HostResult } from '../../src/services/disk/query.js';
import type { FsFigures } from '../../src/protocol/disk-v1.js';

const G = 2n ** 30n;
const fs = (mount: string, usedG: bigint, availG: bigint): FsFigures => ({ mount, fstype: 'ext4', device: '/dev/x', total: (usedG + availG) * G, used: usedG * G, available: availG * G, free: availG * G, served: false });
const host = (label: string, filesystems: FsFigures[]): HostResult => ({
  ok: true,
  protocol: 'v1',
  target: { label, host: label, port: 9991 },
  address: '10.0.0.1',
  attempts: 1,
  elapsedMs: 1,
  answer: { host: label, time: 1, omitted: 0, filesystems },
});

describe('table fitting', () => {
  test.each([
    ['/srv/backup/daily', 9, '/srv…aily'],
    ['/srv/backup/daily', 17, '/srv/backup/daily'],
    ['abc', 1, '…'],
    ['abc', 0, ''],
  ])('ellipsize(%p, %p) = %p', (s, n, want) => {
    expect(ellipsize(s, n)).toBe(want);
    expect(ellipsize(s, n).length).toBeLessThanOrEqual(n);
  });

  test('clip cuts the end and marks it', () => {
    expect(clip('read-only, timeout', 9)).toBe('read-onl…');
    expect(clip('short', 9)).toBe('short');
  });

  test('fitColumns applies its steps only until the line fits', () => {
    const head = ['HOST', 'MOUNT', 'TYPE', 'AVAIL'];
    // 10 + 30 + 5 + 5 + 3 separators of 2 = 56
    expect(fitColumns(head, [10, 30, 5, 5], 56, [['shrink', 'MOUNT', 10]])).toEqual({ keep: [0, 1, 2, 3], widths: [10, 30, 5, 5] });
    expect(fitColumns(head, [10, 30, 5, 5], 40, [['shrink', 'MOUNT', 10], ['drop', 'TYPE']])).toEqual({ keep: [0, 1, 2, 3], widths: [10, 14, 5, 5] });
    expect(fitColumns(head, [10, 30, 5, 5], 30, [['shrink', 'MOUNT', 10], ['drop', 'TYPE'], ['shrink', 'HOST', 6]])).toEqual({ keep: [0, 1, 3], widths: [10, 10, 5, 5] });
  });

  test('pickRows keeps the order, prefers lines with problems, and counts what it left out', () => {
    const rows = ['a0', 'b2', 'c0', 'd1', 'e0'];
    const level = (s: string): number => Number(s[1]);
    expect(pickRows(rows, 5, level)).toEqual({ shown: rows, hidden: 0, hiddenProblems: 0 });
    expect(pickRows(rows, 3, level)).toEqual({ shown: ['a0', 'b2', 'd1'], hidden: 2, hiddenProblems: 0 });
    expect(pickRows(rows, 1, level)).toEqual({ shown: ['b2'], hidden: 4, hiddenProblems: 1 });
  });

  test('renderTable with fit: no line wider than the terminal, at most its height, a failed host shown with why', () => {
    const results: HostResult[] = [
      ...Array.from({ length: 30 }, (_, i) => host(`web${i}.example.org`, [fs(`/srv/data/projects/archive-${i}/current`, 1n, 9n)])),
      host('db.example.org', [fs('/var/lib/postgresql', 95n, 5n)]),
      { ok: false, target: { label: 'dead.example.org', host: 'dead.example.org', port: 9991 }, elapsedMs: 7000, error: new NetkitError('TIMEOUT', 'no answer from dead.example.org:9991') },
    ];
    for (const columns of [40, 80, 120]) {
      const lines = renderTable(results, undefined, { failures: true, fit: { columns, rows: 10 } }).trimEnd().split('\n');
      expect(lines.length).toBeLessThanOrEqual(10);
      for (const l of lines) expect(l.length).toBeLessThanOrEqual(columns);
      // The lines that need attention are kept: the 95 % one and the silent host.
      expect(lines.some((l) => l.startsWith('db.') && l.includes('95%'))).toBe(true);
      expect(lines.some((l) => l.startsWith('dead.'))).toBe(true);
      // From 80 columns on, the names are whole and the note says why.
      expect(lines.some((l) => l.startsWith('dead.example.org ') && l.endsWith('no answer'))).toBe(columns >= 80);
      expect(lines[lines.length - 1]).toMatch(/^… 24 more lines not shown, all fine/);
    }
    // Without failures: true (the one-shot table), failed hosts are left to stderr.
    expect(renderTable(results)).not.toContain('dead.example.org');
  });
});
