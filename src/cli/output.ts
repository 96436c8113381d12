// Output policy: what goes to stdout vs stderr, when to colour, and how errors become messages.
import { NetkitError, isNetkitError, EXIT_CODES } from '../errors.js';

export interface OutStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

/** Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org) or TERM=dumb. */
export function useColor(stream: OutStream, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false') return true;
  if (env.TERM === 'dumb') return false;
  return stream.isTTY === true;
}

// C0 and C1 controls, DEL, and the Unicode bidi overrides that can reorder what a terminal shows.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Make text that came from a peer (names, messages, host names) safe to print: control characters,
 * including ESC, become visible \xNN escapes so a peer cannot move the cursor or recolour the terminal.
 */
export function sanitize(text: string, maxLength = 512): string {
  const clean = text.replace(UNSAFE, (c) => {
    const code = c.codePointAt(0) ?? 0;
    return code > 0xff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\x${code.toString(16).padStart(2, '0')}`;
  });
  return clean.length > maxLength ? `${clean.slice(0, maxLength)}…` : clean;
}

// What JSON.stringify leaves raw but a terminal (or a naive log viewer) would act on: DEL, C1 controls,
// bidi overrides and isolates, and the line/paragraph separators.
const JSON_UNSAFE = /[\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/** JSON.stringify, with the characters above escaped as \uXXXX as well (still valid, equal JSON). */
export function safeJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One JSON object on one line, safe to print (see safeJson). */
export function jsonLine(value: unknown): string {
  return `${safeJson(value)}\n`;
}

const UNITS = ['B', 'K', 'M', 'G', 'T', 'P', 'E'];

/** Human size in powers of 1024, like `df -h`: 0B, 512B, 1.5K, 23M, 1.8T. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)}B`; // a rate under 1 KiB/s is fractional
  return `${value < 10 ? value.toFixed(1) : Math.round(value).toString()}${UNITS[unit]}`;
}

/** Human duration: 850ms, 1.2s, 3m04s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** Human rate: bytes per second in powers of 1024. */
export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) return '-';
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

/**
 * The one place errors become text and exit codes. Expected errors (NetkitError) print
 * `netkit: <message>` and an optional `hint:` line; anything else is a bug and prints its stack.
 */
export function reportError(err: unknown, stderr: OutStream): number {
  if (isNetkitError(err)) {
    stderr.write(`netkit: ${err.message}\n`);
    if (err.hint) stderr.write(`hint: ${err.hint}\n`);
    return err.exitCode;
  }
  const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
  stderr.write(`netkit: internal error (this is a bug, please report it)\n${stack}\n`);
  return EXIT_CODES.INTERNAL;
}

export function usageError(message: string, hint?: string): NetkitError {
  return new NetkitError('USAGE', message, hint ?? "run 'netkit --help' for usage");
}
