// Coercions for command-line values: each throws a usage error that names the option.
import { NetkitError } from '../errors.js';

/**
 * Numeric options are declared `type: 'string', number: true`: yargs then hands the coercions below the
 * text exactly as typed (`0x10`, `1e3` and an empty value are refused, not read as numbers), and --help
 * still shows them as `[number]` with a numeric default.
 */

/** The last usage error a coercion threw: yargs passes on only its message, so main() finds its hint here. */
let lastCoerceError: NetkitError | undefined;

function usage(message: string, hint?: string): NetkitError {
  lastCoerceError = new NetkitError('USAGE', message, hint);
  return lastCoerceError;
}

/** The usage error (with its hint) that a coercion threw with this message, if one did. */
export function coercionError(message: string | undefined): NetkitError | undefined {
  return message !== undefined && lastCoerceError?.message === message ? lastCoerceError : undefined;
}

/** A TCP/UDP port: an integer min..65535 written in decimal. 0 (for a server) means "any free port". */
export function parsePort(value: unknown, option = '--port', min = 0): number {
  const text = String(value).trim();
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535 || Number(text) < min) {
    throw usage(`invalid ${option} '${String(value)}': expected a number from ${min} to 65535`, min > 0 ? 'a client needs the port the server listens on' : undefined);
  }
  return Number(text);
}

/** A positive count (e.g. --max-connections). */
export function parseCount(value: unknown, option: string, min = 0, max = 1_000_000): number {
  const text = String(value).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw usage(`invalid ${option} '${String(value)}': expected a whole number from ${min} to ${max}`);
  }
  return n;
}

/**
 * A duration in milliseconds. Accepts "1500ms", "1.5s", "2m", or a bare number of seconds ("1", "0.25").
 */
export function parseDuration(value: unknown, option: string, maxMs = 24 * 3600_000): number {
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!m) throw usage(`invalid ${option} '${String(value)}': expected a duration such as 1s, 500ms or 0.5`);
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (!(ms > 0) || ms > maxMs) throw usage(`invalid ${option} '${String(value)}': must be more than 0 and at most ${maxMs / 1000}s`);
  return Math.round(ms);
}

/**
 * A listening address for an extra endpoint: PORT (on 127.0.0.1: loopback unless told otherwise),
 * HOST:PORT or [IPv6]:PORT. Port 0 picks a free one.
 */
export function parseListen(value: unknown, option: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const text = String(value).trim();
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]*):)?(\d{1,5})$/.exec(text);
  if (!m || Number(m[3]) > 65535) throw usage(`invalid ${option} '${String(value)}': expected PORT, HOST:PORT or [IPv6]:PORT`, `for example ${option} 9100, or ${option} 0.0.0.0:9100 to allow remote scrapes`);
  const host = m[1] ?? (m[2] === undefined || m[2] === '' ? defaultHost : m[2]);
  return { host, port: Number(m[3]) };
}

/** Values of an option that may be given several times or comma-separated (globs: a comma is never part of one here). */
export function parseList(value: unknown): string[] {
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter((v) => v !== '');
}
