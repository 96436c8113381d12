// Turning disk query results into a df -h style table or JSON with exact byte counts.
import { formatBytes, safeJson, sanitize } from '../../cli/output.js';
import type { HostResult } from '../../services/disk/query.js';
import { FS_ERROR_NAMES, type FsFigures } from '../../protocol/disk-v1.js';
import { Status, judge, hasThresholds, type Thresholds } from '../../services/disk/thresholds.js';
import { clip, ellipsize, fitColumns, pickRows, type FitStep } from './table-fit.js';

/** How the table is drawn: inode columns, thresholds that colour USE%, a filter on which filesystems show. */
export interface TableOptions {
  inodes?: boolean;
  thresholds?: Thresholds;
  /** Extra columns after the standard ones (the live view's AGE, TREND). */
  extra?: { head: string[]; cells: (r: HostResult, f: FsFigures | undefined) => string[] };
  /** A line for each host that failed, saying why (the live view); otherwise failures are left to stderr. */
  failures?: boolean;
  /**
   * Fit a terminal of this size: long mount points and host names are shortened in the middle, no line is
   * wider than `columns`, and at most `rows` lines are written (the lines that need attention first).
   */
  fit?: { columns: number; rows: number };
}

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
  status?: Status;
}

/** What a failed host's line says, briefly. */
function failureNote(code: string, message: string): string {
  switch (code) {
    case 'TIMEOUT':
      return 'no answer';
    case 'CONNECT_REFUSED':
      return 'refused';
    case 'HOST_NOT_FOUND':
      return 'unknown host';
    case 'UNAUTHORIZED':
      return 'answers without the secret';
    default:
      return sanitize(message, 60);
  }
}

const HEAD = ['HOST', 'MOUNT', 'TYPE', 'SIZE', 'USED', 'AVAIL', 'USE%'];
const INODE_HEAD = ['INODES', 'IFREE', 'IUSE%'];
const GIB = 1024 ** 3;

/** What the table's NOTE column says about a filesystem: read-only, an error. */
export function fsNote(f: FsFigures): string {
  const notes: string[] = [];
  if (f.error) notes.push(`${FS_ERROR_NAMES[f.error.code] ?? `error ${f.error.code}`}${f.error.message ? `: ${sanitize(f.error.message, 40)}` : ''}`);
  if (f.readonly) notes.push('read-only');
  return notes.join(', ');
}

function count(n: bigint | undefined): string {
  if (n === undefined) return '-';
  const v = Number(n);
  return v < 10_000 ? String(v) : formatBytes(v).replace(/B$/, '');
}

function rowsOf(r: HostResult, o: TableOptions): Row[] {
  const host = sanitize(r.target.label, 64);
  const extra = (f: FsFigures | undefined): string[] => (o.extra ? o.extra.cells(r, f) : []);
  const inodeBlank = o.inodes ? ['-', '-', '-'] : [];
  if (!r.ok) {
    if (!o.failures) return [];
    return [{ cells: [host, '-', '-', '-', '-', '-', '-', ...inodeBlank, ...extra(undefined), failureNote(r.error.code, r.error.message)], status: Status.CRITICAL }];
  }
  if (r.protocol === 'classic') {
    if (!r.parsed) return [{ cells: [host, '-', 'classic', '?', '-', '?', '-', ...inodeBlank, ...extra(undefined), ''] }];
    // The classic answer has only total and available (rounded GiB): used is unknown, since root-reserved
    // blocks are neither, so USED and USE% stay blank rather than guessed.
    return [{ cells: [host, '-', 'classic', formatBytes(r.parsed.totalGiB * GIB), '-', formatBytes(r.parsed.availableGiB * GIB), '-', ...inodeBlank, ...extra(undefined), ''] }];
  }
  return r.answer.filesystems.map((f) => {
    const pct = usePercent(f.used, f.available);
    const ipct = f.files !== undefined && f.filesFree !== undefined ? usePercent(f.files - f.filesFree, f.filesFree) : undefined;
    const inodes = o.inodes ? [count(f.files), count(f.filesFree), ipct === undefined ? '-' : `${ipct}%`] : [];
    const status = o.thresholds && hasThresholds(o.thresholds) ? judge(f, o.thresholds).status : f.readonly || f.error ? Status.WARNING : undefined;
    // A filesystem that could not be read and has no figures at all (a mount hung from the start): unknown, not 0B.
    const unknown = f.error !== undefined && f.total === 0n && f.used === 0n && f.available === 0n;
    const sizes = unknown ? ['-', '-', '-', '-'] : [formatBytes(Number(f.total)), formatBytes(Number(f.used)), formatBytes(Number(f.available)), pct === undefined ? '-' : `${pct}%`];
    return {
      cells: [host, sanitize(f.mount, 64), sanitize(f.fstype, 16) || '-', ...sizes, ...inodes, ...extra(f), fsNote(f)],
      pct,
      ...(status === undefined ? {} : { status }),
    };
  });
}

/**
 * How a table narrows to fit a terminal: long mount points and notes are shortened first, then the
 * columns that can be worked out from the others (or matter least) go; the host name, which tells the
 * lines apart, is shortened last.
 */
const NARROW: readonly FitStep[] = [
  ['shrink', 'MOUNT', 16],
  ['shrink', 'NOTE', 12],
  ['drop', 'INODES'],
  ['drop', 'IFREE'],
  ['drop', 'TYPE'],
  ['drop', 'USED'],
  ['drop', 'SIZE'],
  ['shrink', 'MOUNT', 10],
  ['shrink', 'TREND', 7],
  ['drop', 'ANS/TMO'],
  ['drop', 'AGE'],
  ['shrink', 'HOST', 12],
];

/**
 * An aligned table, one line per filesystem; colour only when `paint` is given. With thresholds, a
 * line's USE% (and IUSE%, NOTE) is coloured by its status (yellow WARNING, red CRITICAL); without, by
 * df-style USE% (75 %, 90 %).
 */
export function renderTable(results: readonly HostResult[], paint?: Paint, o: TableOptions = {}): string {
  const rows = results.flatMap((r) => rowsOf(r, o));
  const head = [...HEAD, ...(o.inodes ? INODE_HEAD : []), ...(o.extra?.head ?? []), 'NOTE'];
  const right = head.map((h, i) => i >= 3 && !['NOTE', 'TREND', 'AGE', 'FULL IN'].includes(h));
  // The NOTE column shows only when some line has something to say.
  const noteCol = head.length - 1;
  const withNote = rows.some((r) => r.cells[noteCol] !== '');
  const cols = withNote ? head.length : head.length - 1;
  const thresholds = o.thresholds !== undefined && hasThresholds(o.thresholds);
  const levelOf = (r: Row): Status =>
    thresholds || r.status !== undefined ? (r.status ?? Status.OK) : r.pct === undefined ? Status.OK : r.pct >= 90 ? Status.CRITICAL : r.pct >= 75 ? Status.WARNING : Status.OK;
  const omitted = results.reduce((n, r) => n + (r.ok && r.protocol === 'v1' ? r.answer.omitted : 0), 0);
  const trailer: string[] = [];
  if (omitted > 0) trailer.push(`(${omitted} more filesystem${omitted === 1 ? '' : 's'} did not fit in one answer)`);
  let shown = rows;
  if (o.fit) {
    // Room for the header and the trailer lines, and one line saying what was left out.
    const room = o.fit.rows - 1 - trailer.length;
    const pick = pickRows(rows, rows.length <= room ? room : room - 1, levelOf);
    shown = pick.shown;
    if (pick.hidden > 0) trailer.unshift(`… ${pick.hidden} more line${pick.hidden === 1 ? '' : 's'} not shown${pick.hiddenProblems > 0 ? `, ${pick.hiddenProblems} of them with problems` : ', all fine'} (a taller terminal shows more)`);
  }
  const natural = head.slice(0, cols).map((h, i) => shown.reduce((w, r) => Math.max(w, r.cells[i]!.length), h.length));
  const { keep, widths } = o.fit ? fitColumns(head.slice(0, cols), natural, o.fit.columns, NARROW) : { keep: natural.map((_, i) => i), widths: natural };
  const last = keep[keep.length - 1];
  const width = o.fit?.columns ?? Infinity;
  const laidOut = (cells: string[]): string[] =>
    keep.map((i) => {
      // A note reads from its start; a mount point or host name is recognised by both ends.
      const cell = i === noteCol ? clip(cells[i]!, widths[i]!) : ellipsize(cells[i]!, widths[i]!);
      return right[i] ? cell.padStart(widths[i]!) : i === last ? cell : cell.padEnd(widths[i]!);
    });
  const line = (cells: string[]): string => clip(laidOut(cells).join('  ').trimEnd(), width);
  // Only the cells that say how full or how well a filesystem is take the status colour (USE%, IUSE%,
  // NOTE), so the figures stay readable; a line that had to be cut is coloured whole instead.
  const marked = keep.map((i) => ['USE%', 'IUSE%', 'NOTE'].includes(head[i]!));
  const coloured = (cells: string[], colour: (s: string) => string): string => {
    const parts = laidOut(cells);
    const plain = parts.join('  ').trimEnd();
    if (plain.length > width) return colour(clip(plain, width));
    return parts.map((p, k) => (marked[k] && !['', '-'].includes(p.trim()) ? p.replace(/^(\s*)(.*?)(\s*)$/, (_, lead: string, text: string, tail: string) => `${lead}${colour(text)}${tail}`) : p)).join('  ').trimEnd();
  };
  const out: string[] = [paint ? paint.header(line(head)) : line(head)];
  for (const r of shown) {
    const level = levelOf(r);
    if (!paint || level === Status.OK) out.push(line(r.cells));
    else out.push(coloured(r.cells, level === Status.WARNING ? paint.warn : paint.bad));
  }
  for (const t of trailer) out.push(clip(t, width));
  return `${out.join('\n')}\n`;
}

// JSON has no bigint; exact figures are written as bare integer digits, which JSON allows at any size.
const BIG = '\u0000big:';

export function jsonOf(r: HostResult): unknown {
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
      ...(f.files !== undefined && f.filesFree !== undefined ? { files: BIG + f.files.toString(), filesFree: BIG + f.filesFree.toString() } : {}),
      ...(f.readonly !== undefined ? { readonly: f.readonly } : {}),
      ...(f.error ? { error: { code: FS_ERROR_NAMES[f.error.code] ?? String(f.error.code), message: f.error.message } } : {}),
    })),
    omitted: a.omitted,
  };
}

/** A JSON array, one object per host in the order asked; sizes are exact integers in bytes. */
export function renderJson(results: readonly HostResult[]): string {
  const text = safeJson(results.map(jsonOf), 2);
  return `${text.replace(/"\\u0000big:(\d+)"/g, '$1')}\n`;
}
