// `disk query --watch`: redraw the table in place on a terminal (no flicker, terminal restored on Ctrl-C), or print one JSON object per round when piped.
import { formatBytes, formatDuration, safeJson } from '../../cli/output.js';
import { waitForShutdown } from '../../cli/signals.js';
import type { DiskQueryOptions, HostResult, QueryTarget } from '../../services/disk/query.js';
import { startWatch, type Trend, type WatchRound } from '../../services/disk/watch.js';
import { filterResults, painter, type QueryRunOptions } from './query-run.js';
import { jsonOf, renderTable } from './render.js';
import { clip } from './table-fit.js';

/** The TREND cell: the change in available space per hour since the watch began. */
export function formatTrend(t: Trend | undefined): string {
  if (!t) return '-';
  return `${t.perHour < 0 ? '-' : '+'}${formatBytes(Math.abs(t.perHour))}/h`;
}

/** The FULL IN cell: when space is falling, how long until none is left at this rate. */
export function formatFullIn(t: Trend | undefined): string {
  if (t?.hoursToFull === undefined || !Number.isFinite(t.hoursToFull)) return '-';
  const h = t.hoursToFull;
  if (h < 1 / 60) return `${Math.max(1, Math.round(h * 3600))}s`;
  if (h < 1) return `${Math.round(h * 60)}m`;
  return h < 48 ? `${h.toFixed(1)}h` : `${Math.round(h / 24)}d`;
}

function ageText(now: number, time: number | undefined): string {
  return time === undefined ? '-' : formatDuration(Math.max(0, now - time));
}

/** The results to show: a host that failed this round is shown from its last answer, if it had one. */
function shown(r: WatchRound): HostResult[] {
  return r.results.map((res, i) => (res.ok ? res : (r.stats[i]!.last ?? res)));
}

export async function runWatch(targets: readonly QueryTarget[], opts: DiskQueryOptions, o: QueryRunOptions, intervalMs: number): Promise<void> {
  const out = process.stdout;
  // The table on a terminal; NDJSON when piped, or when JSON was asked for.
  const tty = out.isTTY === true && o.format !== 'json';
  const paint = await painter();
  const indexOf = new Map<HostResult['target'], number>(targets.map((t, i) => [t, i]));
  const draw = (r: WatchRound): void => {
    const now = Date.now();
    if (!tty) {
      const hosts = r.results.map((res, i) => {
        const s = r.stats[i]!;
        const j = jsonOf(res) as Record<string, unknown>;
        const fs = res.ok && res.protocol === 'v1' ? res.answer.filesystems.map((f) => ({ mount: f.mount, trend: r.trend(i, f.mount) ?? null })) : [];
        return { ...j, answers: s.answers, timeouts: s.timeouts, failures: s.failures, ageMs: s.dataTime === undefined ? null : now - s.dataTime, trends: fs };
      });
      out.write(`${safeJson({ round: r.round, time: new Date(r.time).toISOString(), hosts }).replace(/"\\u0000big:(\d+)"/g, '$1')}\n`);
      return;
    }
    const columns = out.columns || 80;
    const rows = out.rows || 24;
    const table = renderTable(shown(r), paint, {
      inodes: o.inodes,
      thresholds: o.thresholds,
      failures: true,
      // One line for the title, and the last line left empty so the screen never scrolls.
      fit: { columns, rows: Math.max(3, rows - 2) },
      extra: {
        head: ['AGE', 'ANS/TMO', 'TREND', 'FULL IN'],
        cells: (res, f) => {
          const i = indexOf.get(res.target) ?? 0;
          const s = r.stats[i]!;
          const t = f ? r.trend(i, f.mount) : undefined;
          return [ageText(now, s.dataTime), `${s.answers}/${s.timeouts}`, f ? formatTrend(t) : '-', formatFullIn(t)];
        },
      },
    });
    const failed = r.results.filter((res) => !res.ok).length;
    const title = clip(`netkit disk query, every ${formatDuration(intervalMs)}: round ${r.round}, ${r.results.length - failed}/${r.results.length} hosts answered (Ctrl-C quits)`, columns);
    // Home, then each line cleared to its end, then everything below: no blank frame between rounds.
    const lines = [title, ...table.trimEnd().split('\n')];
    out.write(`\u001b[H${lines.map((l) => `${l}\u001b[K`).join('\n')}\n\u001b[J`);
  };
  let last: WatchRound | undefined;
  const drawRound = (r: WatchRound): void => {
    last = r;
    draw(r);
  };
  // A resized terminal is redrawn at once, not at the next round.
  const onResize = (): void => {
    if (last) draw(last);
  };
  if (tty) out.write('\u001b[?1049h\u001b[?25l\u001b[H'); // the alternate screen, cursor hidden
  const restore = (): void => {
    if (tty) out.write('\u001b[?25h\u001b[?1049l');
  };
  process.once('exit', restore); // even on a second Ctrl-C, which exits at once
  const shutdown = waitForShutdown();
  if (tty) out.on('resize', onResize);
  const watch = startWatch(targets, opts, intervalMs, drawRound, (rs) => filterResults(rs, o.filter));
  await shutdown;
  await watch.stop();
  out.off('resize', onResize);
  restore();
  process.off('exit', restore);
}
