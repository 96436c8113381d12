// The fetch progress bar: cli-progress on stderr, loaded only when stderr is a terminal, laid out anew for the terminal's width at every frame.
import { formatBytes, formatDuration, sanitize } from './output.js';

export interface Progress {
  /**
   * Report bytes present so far (including a resumed prefix) out of the total; for a set of files, also
   * the file being received and how many files have ended out of how many.
   */
  update(received: number, total: number, set?: { name: string; filesDone: number; filesTotal: number }): void;
  /** Erase the bar's line so a message can be printed; the next update draws it again. */
  clear(): void;
  /** Stop drawing, leaving the last state on its own line. */
  stop(): void;
}

interface TtyStream extends NodeJS.WritableStream {
  isTTY?: boolean;
  columns?: number;
}

export interface BarFields {
  name: string;
  /** 0..1 */
  progress: number;
  done: string;
  size: string;
  speed: string;
  eta: string;
  /** For a set of files: `12/100 files`, shown beside the byte counts. */
  files?: string;
}

/** `name` cut to `n` characters in the middle, so its start and its extension both stay visible. */
function shorten(name: string, n: number): string {
  if (name.length <= n) return name;
  if (n <= 1) return name.slice(0, n);
  const head = Math.ceil((n - 1) / 2);
  return `${name.slice(0, head)}…${name.slice(name.length - (n - 1 - head))}`;
}

/**
 * One line of at most `columns - 1` characters (the last column would make some terminals wrap).
 * The percentage, speed and ETA always stay; to make room, the name is shortened first, then the bar
 * narrows and goes, then the byte counts, then the separators, then the rest of the name.
 */
export function layoutBar(columns: number, f: BarFields): string {
  const width = Math.max(1, columns - 1);
  const pct = `${String(Math.floor(Math.min(1, Math.max(0, f.progress)) * 100)).padStart(3)}%`;
  const steps: Array<{ bar: number; name: number; sizes: boolean; sep: string }> = [
    { bar: 10, name: f.name.length, sizes: true, sep: ' | ' },
    { bar: 10, name: 8, sizes: true, sep: ' | ' },
    { bar: 4, name: 8, sizes: true, sep: ' | ' },
    { bar: 0, name: 8, sizes: true, sep: ' | ' },
    { bar: 0, name: 8, sizes: false, sep: ' | ' },
    { bar: 0, name: 8, sizes: false, sep: ' ' },
    { bar: 0, name: 1, sizes: false, sep: ' ' },
  ];
  const line = (name: string, bar: number, sizes: boolean, sep: string): string => {
    const filled = Math.round(bar * f.progress);
    const drawn = bar > 0 ? ` [${'='.repeat(filled)}${' '.repeat(bar - filled)}]` : '';
    const parts = [pct, ...(sizes ? [...(f.files ? [f.files] : []), `${f.done}/${f.size}`] : []), f.speed, `ETA ${f.eta}`];
    return `${name}${drawn}${name || drawn ? ' ' : ''}${parts.join(sep)}`;
  };
  for (const s of steps) {
    const fixed = line('', 0, s.sizes, s.sep).length + (s.bar > 0 ? 3 : 0) + 1; // ' [' + ']' and the space after the name
    const room = width - fixed;
    const wantName = Math.min(f.name.length, s.name);
    if (room < wantName + s.bar) continue;
    // The bar gets what the whole name leaves (at least this step's minimum, at most 30), the name the rest.
    const bar = s.bar > 0 ? Math.min(30, Math.max(s.bar, room - f.name.length)) : 0;
    const name = Math.min(f.name.length, room - bar);
    return line(shorten(f.name, name), bar, s.sizes, s.sep);
  }
  return line('', 0, false, ' ').slice(0, width);
}

/**
 * A progress bar for `label`, or undefined when `stream` is not a terminal (then there is no bar at
 * all: no carriage returns or escape codes end up in a pipe or a log file).
 * The bar shows percentage, bytes received/total, speed since the start of this transfer, and ETA.
 * The width is read at every frame, so the bar follows a resized terminal.
 */
export async function createProgressBar(stream: TtyStream, label: string): Promise<Progress | undefined> {
  if (stream.isTTY !== true) return undefined;
  const { default: cliProgress } = await import('cli-progress');
  let name = sanitize(label, 200);
  let files: string | undefined;
  const bar = new cliProgress.SingleBar(
    {
      stream: stream as NodeJS.WritableStream,
      format: (_options, params, payload: Record<string, string>) =>
        layoutBar(params.maxWidth, { name, progress: params.progress, done: payload.done ?? '', size: payload.size ?? '', speed: payload.speed ?? '-', eta: payload.left ?? '-', files }),
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      fps: 10,
      noTTYOutput: false,
    },
    cliProgress.Presets.legacy,
  );
  let started = false;
  let shownTotal = 0;
  let t0 = 0;
  let base = 0;
  const payload = (received: number, total: number): Record<string, string> => {
    const elapsed = (performance.now() - t0) / 1000;
    const rate = elapsed > 0.05 ? (received - base) / elapsed : 0;
    const eta = rate > 0 ? formatDuration(((total - received) / rate) * 1000) : '-';
    return { done: formatBytes(received), size: formatBytes(total), speed: rate > 0 ? `${formatBytes(rate)}/s` : '-', left: eta };
  };
  return {
    update(received, total, set) {
      if (set) {
        name = sanitize(set.name, 200);
        files = `${set.filesDone}/${set.filesTotal} files`;
      }
      if (total <= 0) return;
      if (!started) {
        started = true;
        t0 = performance.now();
        base = received;
        shownTotal = total;
        bar.start(total, received, payload(received, total));
        return;
      }
      // A set's total grows as its listings arrive.
      if (total !== shownTotal) {
        shownTotal = total;
        bar.setTotal(total);
      }
      bar.update(received, payload(received, total));
    },
    clear() {
      if (started) stream.write('\r\u001b[K');
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
