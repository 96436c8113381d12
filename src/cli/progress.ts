// The fetch progress bar: cli-progress on stderr, loaded only when stderr is a terminal, laid out anew for the terminal's width at every frame, in terminal columns (wide and combining characters counted as the terminal shows them).
import stringWidth from 'string-width';
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

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Terminal columns `text` takes: East Asian wide characters and emoji count 2, combining marks 0. */
export function displayWidth(text: string): number {
  return stringWidth(text);
}

/** The longest run of whole graphemes from the start (or, `fromEnd`, from the end) of `text` at most `n` columns wide. */
function take(text: string, n: number, fromEnd = false): string {
  const parts = [...graphemes.segment(text)].map((g) => g.segment);
  if (fromEnd) parts.reverse();
  let out = '';
  let used = 0;
  for (const g of parts) {
    const w = stringWidth(g);
    if (used + w > n) break;
    used += w;
    out = fromEnd ? g + out : out + g;
  }
  return out;
}

/**
 * `name` in at most `n` columns, cut in the middle when it is wider, so its start and its extension
 * both stay visible; whole graphemes only (never half a surrogate pair, an emoji sequence or a letter
 * without its accent). `pad`: filled with spaces to exactly `n` columns.
 */
export function fitName(name: string, n: number, pad = false): string {
  let out = name;
  if (stringWidth(name) > n) {
    if (n <= 1) out = take(name, n);
    else {
      const head = Math.ceil((n - 1) / 2);
      out = `${take(name, head)}…${take(name, n - 1 - head, true)}`;
    }
  }
  return pad ? out + ' '.repeat(Math.max(0, n - stringWidth(out))) : out;
}

/** For a set of files the name changes at every file: it gets up to this many columns, always the same. */
const SET_NAME = 32;

/**
 * One line of at most `columns - 1` columns (the last column would make some terminals wrap), measured
 * in terminal columns, not characters. The percentage, speed and ETA always stay; to make room, the name
 * is shortened first, then the bar narrows and goes, then the byte counts, then the separators, then
 * the rest of the name. For a set of files (`files`) the name has a fixed width, so the bar does not
 * move from one file to the next.
 */
export function layoutBar(columns: number, f: BarFields): string {
  const width = Math.max(1, columns - 1);
  const pct = `${String(Math.floor(Math.min(1, Math.max(0, f.progress)) * 100)).padStart(3)}%`;
  const nameWidth = stringWidth(f.name);
  const set = f.files !== undefined;
  const steps: Array<{ bar: number; name: number; sizes: boolean; sep: string }> = [
    { bar: 10, name: nameWidth, sizes: true, sep: ' | ' },
    { bar: 10, name: 8, sizes: true, sep: ' | ' },
    { bar: 4, name: 8, sizes: true, sep: ' | ' },
    { bar: 0, name: 8, sizes: true, sep: ' | ' },
    { bar: 0, name: 8, sizes: false, sep: ' | ' },
    { bar: 0, name: 8, sizes: false, sep: ' ' },
    { bar: 0, name: 1, sizes: false, sep: ' ' },
  ];
  const line = (name: string, bar: number, sizes: boolean, sep: string): string => {
    const filled = Math.round(bar * Math.min(1, Math.max(0, f.progress)));
    const drawn = bar > 0 ? ` [${'='.repeat(filled)}${' '.repeat(bar - filled)}]` : '';
    const parts = [pct, ...(sizes ? [...(f.files ? [f.files] : []), `${f.done}/${f.size}`] : []), f.speed, `ETA ${f.eta}`];
    return `${name}${drawn}${name || drawn ? ' ' : ''}${parts.join(sep)}`;
  };
  for (const s of steps) {
    const fixed = stringWidth(line('', 0, s.sizes, s.sep)) + (s.bar > 0 ? 3 : 0) + 1; // ' [' + ']' and the space after the name
    const room = width - fixed;
    const wantName = Math.min(nameWidth, s.name);
    if (room < wantName + s.bar) continue;
    if (set) {
      // The bar gets what a name of SET_NAME columns leaves (at most 30), the name exactly the rest.
      const bar = s.bar > 0 ? Math.min(30, Math.max(s.bar, room - SET_NAME)) : 0;
      return line(fitName(f.name, room - bar, true), bar, s.sizes, s.sep);
    }
    // The bar gets what the whole name leaves (at least this step's minimum, at most 30), the name the rest.
    const bar = s.bar > 0 ? Math.min(30, Math.max(s.bar, room - nameWidth)) : 0;
    return line(fitName(f.name, Math.min(nameWidth, room - bar)), bar, s.sizes, s.sep);
  }
  return line('', 0, false, ' ').slice(0, width);
}

/** The time left in at most 6 columns: 850ms, 59.9s, 59m59s, 2h03m, 99h59m, then >99h. */
export function etaText(ms: number): string {
  if (ms < 6_000_000) return formatDuration(ms);
  const minutes = Math.round(ms / 60_000);
  if (minutes >= 100 * 60) return '>99h';
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/**
 * Pads a field to the widest it has been so far (at least `min`), so the parts of the line keep their
 * places from one frame to the next instead of jumping as numbers change length.
 */
function steady(): (key: string, text: string, min: number, end?: boolean) => string {
  const widths = new Map<string, number>();
  return (key, text, min, end = false) => {
    const w = Math.max(min, widths.get(key) ?? 0, text.length);
    widths.set(key, w);
    return end ? text.padEnd(w) : text.padStart(w);
  };
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
  const pad = steady();
  const payload = (received: number, total: number): Record<string, string> => {
    const elapsed = (performance.now() - t0) / 1000;
    const rate = elapsed > 0.05 ? (received - base) / elapsed : 0;
    const eta = rate > 0 ? etaText(((total - received) / rate) * 1000) : '-';
    // The widest each field can be: 1023M, 1023M/s, 59m59s (ETA).
    return {
      done: pad('done', formatBytes(received), 5),
      size: pad('size', formatBytes(total), 0, true),
      speed: pad('speed', rate > 0 ? `${formatBytes(rate)}/s` : '-', 7),
      left: pad('eta', eta, 6),
    };
  };
  return {
    update(received, total, set) {
      if (set) {
        name = sanitize(set.name, 200);
        files = `${pad('files', String(set.filesDone), String(set.filesTotal).length)}/${set.filesTotal} files`;
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
