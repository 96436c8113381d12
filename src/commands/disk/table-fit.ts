// Fitting a table to a terminal: long cells shortened in the middle, lines never wider than the screen, the lines that need attention kept when not all fit.

/** Shorten `s` to at most `n` characters by cutting its middle: `/srv/backup/…/daily`. */
export function ellipsize(s: string, n: number): string {
  if (s.length <= n) return s;
  if (n <= 1) return n === 1 ? '…' : '';
  const keep = n - 1;
  const head = Math.ceil(keep / 2);
  return `${s.slice(0, head)}…${s.slice(s.length - (keep - head))}`;
}

/** Cut a line at `n` characters, marking the cut. */
export function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`;
}

/** One step of fitting: shorten a column down to a width, or drop it. */
export type FitStep = ['shrink', string, number] | ['drop', string];

/**
 * Which columns to keep, and their widths, so that a line (cells joined by two spaces) fits `columns`:
 * the steps are applied in order until it fits. Whatever still does not fit is clipped by the caller.
 */
export function fitColumns(head: readonly string[], widths: readonly number[], columns: number, steps: readonly FitStep[]): { keep: number[]; widths: number[] } {
  const w = [...widths];
  const keep = head.map((_, i) => i);
  const total = (): number => keep.reduce((a, i) => a + w[i]!, 0) + 2 * (keep.length - 1);
  for (const step of steps) {
    const excess = total() - columns;
    if (excess <= 0) break;
    const i = head.indexOf(step[1]);
    if (i < 0 || !keep.includes(i)) continue;
    if (step[0] === 'drop') keep.splice(keep.indexOf(i), 1);
    else w[i] = w[i]! - Math.min(excess, Math.max(0, w[i]! - Math.max(step[2], step[1].length)));
  }
  return { keep, widths: w };
}

/**
 * At most `max` of `items` (keeping their order), preferring those with the highest `level` (the
 * lines that need attention), and how many were left out, with how many of those had a level above 0.
 */
export function pickRows<T>(items: readonly T[], max: number, level: (t: T) => number): { shown: T[]; hidden: number; hiddenProblems: number } {
  if (items.length <= max) return { shown: [...items], hidden: 0, hiddenProblems: 0 };
  const take = Math.max(0, max);
  const order = items.map((t, i) => ({ i, l: level(t) })).sort((a, b) => b.l - a.l || a.i - b.i);
  const chosen = new Set(order.slice(0, take).map((x) => x.i));
  const hiddenProblems = order.slice(take).filter((x) => x.l > 0).length;
  return { shown: items.filter((_, i) => chosen.has(i)), hidden: items.length - take, hiddenProblems };
}
