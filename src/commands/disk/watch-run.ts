// `disk query --watch`: redraw the table in place on a terminal (no flicker, terminal restored on Ctrl-C), or print one JSON object per round when piped.
import { formatBytes, formatDuration, safeJson } from '../../cli/output.js';
import { waitForShutdown } from '../../cli/signals.js';
import type { DiskQueryOptions, HostResult, QueryTarget } from '../../services/disk/query.js';
import { startWatch, type Trend, type WatchRound } from '../../services/disk/watch.js';
import { filterResults, painter, type QueryRunOptions } from './query-run.js';
import { jsonOf, renderTable } from './render.js';

export function formatTrend(t: Trend | undefined): string {
  if (!t) return '-';
  const rate = `${t.perHour < 0 ? '-' : '+'}${formatBytes(Math.abs(t.perHour))}/h`;
  if (t.hoursToFull === undefined || !Number.isFinite(t.hoursToFull)) return rate;
  const full = t.hoursToFull < 48 ? `${t.hoursToFull.toFixed(1)}h` : `${Math.round(t.hoursToFull / 24)}d`;
  return `${rate} full in ${full}`;
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
  const tty = out.isTTY === true;
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
    const table = renderTable(shown(r), paint, {
      inodes: o.inodes,
      thresholds: o.thresholds,
      extra: {
        head: ['AGE', 'ANS/TMO', 'TREND'],
        cells: (res, f) => {
          const i = indexOf.get(res.target) ?? 0;
          const s = r.stats[i]!;
          return [ageText(now, s.dataTime), `${s.answers}/${s.timeouts}`, f ? formatTrend(r.trend(i, f.mount)) : '-'];
        },
      },
    });
    const failed = r.results.filter((res) => !res.ok).length;
    const title = `every ${formatDuration(intervalMs)}: round ${r.round}, ${r.results.length - failed}/${r.results.length} hosts answered — Ctrl-C to quit`;
    // Home, then each line cleared to its end, then everything below: no blank frame between rounds.
    const lines = [title, ...table.trimEnd().split('\n')];
    out.write(`\u001b[H${lines.map((l) => `${l}\u001b[K`).join('\n')}\n\u001b[J`);
  };
  if (tty) out.write('\u001b[?1049h\u001b[?25l\u001b[H'); // the alternate screen, cursor hidden
  const restore = (): void => {
    if (tty) out.write('\u001b[?25h\u001b[?1049l');
  };
  process.once('exit', restore); // even on a second Ctrl-C, which exits at once
  const shutdown = waitForShutdown();
  const watch = startWatch(targets, opts, intervalMs, draw, (rs) => filterResults(rs, o.filter));
  await shutdown;
  await watch.stop();
  restore();
  process.off('exit', restore);
}
