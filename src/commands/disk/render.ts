// Turning disk query results into a df -h style table or JSON with exact byte counts.
import { formatBytes, safeJson, sanitize } from '../../cli/output.js';
import type { HostResult } from '../../services/disk-query.js';

/** Colours for a terminal; absent when output is plain. */
export interface Paint {
  header(s: string): string;
  warn(s: string): string;
  bad(s: string): string;
  dim(s: string): string;
}

/** df's Use%: used / (used + available), rounded up, so 0% only when nothing is used. */
export function usePercent(used: bigint, available: bigint): number | undefined {
  const denom = used + available;
  if (denom === 0n) return undefined;
  return Number((used * 100n + denom - 1n) / denom);
}

interface Row {
  cells: string[];
  pct?: number;
}

const HEAD = ['HOST', 'MOUNT', 'TYPE', 'SIZE', 'USED', 'AVAIL', 'USE%'];
const RIGHT = [false, false, false, true, true, true, true];
const GIB = 1024 ** 3;

function rowsOf(r: HostResult): Row[] {
  if (!r.ok) return [];
  const host = sanitize(r.target.label, 64);
  if (r.protocol === 'classic') {
    if (!r.parsed) return [{ cells: [host, '-', 'classic', '?', '-', '?', '-'] }];
    // The classic answer has only total and available (rounded GiB): used is unknown, since root-reserved
    // blocks are neither, so USED and USE% stay blank rather than guessed.
    return [{ cells: [host, '-', 'classic', formatBytes(r.parsed.totalGiB * GIB), '-', formatBytes(r.parsed.availableGiB * GIB), '-'] }];
  }
  return r.answer.filesystems.map((f) => {
    const pct = usePercent(f.used, f.available);
    return {
      cells: [host, sanitize(f.mount, 64), sanitize(f.fstype, 16) || '-', formatBytes(Number(f.total)), formatBytes(Number(f.used)), formatBytes(Number(f.available)), pct === undefined ? '-' : `${pct}%`],
      pct,
    };
  });
}

/** An aligned table, one line per filesystem; colour only when `paint` is given. */
export function renderTable(results: readonly HostResult[], paint?: Paint): string {
  const rows = results.flatMap(rowsOf);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (RIGHT[i] ? c.padStart(widths[i]!) : i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out: string[] = [paint ? paint.header(line(HEAD)) : line(HEAD)];
  for (const r of rows) {
    const text = line(r.cells);
    if (!paint || r.pct === undefined) out.push(text);
    else if (r.pct >= 90) out.push(paint.bad(text));
    else if (r.pct >= 75) out.push(paint.warn(text));
    else out.push(text);
  }
  const omitted = results.reduce((n, r) => n + (r.ok && r.protocol === 'v1' ? r.answer.omitted : 0), 0);
  if (omitted > 0) out.push(`(${omitted} more filesystem${omitted === 1 ? '' : 's'} did not fit in one answer)`);
  return `${out.join('\n')}\n`;
}

// JSON has no bigint; exact figures are written as bare integer digits, which JSON allows at any size.
const BIG = '\u0000big:';

function jsonOf(r: HostResult): unknown {
  const base = { host: r.target.label, port: r.target.port, ok: r.ok, elapsedMs: r.elapsedMs };
  if (!r.ok) return { ...base, error: { code: r.error.code, message: r.error.message, ...(r.error.hint ? { hint: r.error.hint } : {}) } };
  if (r.protocol === 'classic') {
    return {
      ...base,
      protocol: 'classic',
      address: r.address,
      attempts: r.attempts,
      text: r.text,
      ...(r.parsed ? { serverName: r.parsed.serverName, totalGiB: r.parsed.totalGiB, availableGiB: r.parsed.availableGiB } : {}),
    };
  }
  const a = r.answer;
  return {
    ...base,
    protocol: 'v1',
    address: r.address,
    attempts: r.attempts,
    serverHost: a.host,
    time: new Date(a.time).toISOString(),
    timeMs: a.time,
    filesystems: a.filesystems.map((f) => ({
      mount: f.mount,
      fstype: f.fstype,
      device: f.device,
      served: f.served,
      total: BIG + f.total.toString(),
      used: BIG + f.used.toString(),
      available: BIG + f.available.toString(),
      free: BIG + f.free.toString(),
    })),
    omitted: a.omitted,
  };
}

/** A JSON array, one object per host in the order asked; sizes are exact integers in bytes. */
export function renderJson(results: readonly HostResult[]): string {
  const text = safeJson(results.map(jsonOf), 2);
  return `${text.replace(/"\\u0000big:(\d+)"/g, '$1')}\n`;
}
