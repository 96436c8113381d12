// HTTP semantics the file server applies to a file, as pure functions: the Range header, entity tags, HTTP dates, conditional requests and Repr-Digest.

/** The part of the file a GET answers with. `end` is inclusive, as in Content-Range. */
export type RangeChoice = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

const DIGITS = /^\d+$/;

/**
 * Read a Range header against a file of `size` bytes (RFC 9110 14.2). One range is served:
 * `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes), b clamped to the end of the file. A range
 * that starts at or past the end, or asks for the last 0 bytes, is unsatisfiable (416). Anything this
 * server does not do (another unit, several ranges) or that is malformed is ignored, which the RFC
 * allows: the whole file is sent with 200.
 */
export function parseRange(header: string | undefined, size: number): RangeChoice {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(.*?)\s*$/i.exec(header);
  if (!m) return { kind: 'full' };
  const spec = m[1]!;
  if (spec.includes(',')) return { kind: 'full' };
  const dash = spec.indexOf('-');
  if (dash === -1) return { kind: 'full' };
  const first = spec.slice(0, dash).trim();
  const last = spec.slice(dash + 1).trim();
  if (first === '') {
    if (!DIGITS.test(last)) return { kind: 'full' };
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  if (!DIGITS.test(first) || (last !== '' && !DIGITS.test(last))) return { kind: 'full' };
  const start = Number(first);
  const end = last === '' ? Infinity : Number(last);
  if (end < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

/** The strong entity tag of a file: its resume validator in hex, quoted. */
export function entityTag(validator: Buffer): string {
  return `"${validator.toString('hex')}"`;
}

/** The entity tags in an If-None-Match / If-Match / If-Range value; '*' stands alone. */
function tagsIn(header: string): string[] {
  return header.split(',').map((t) => t.trim()).filter((t) => t !== '');
}

/**
 * If-None-Match (RFC 9110 13.1.2) uses the weak comparison: `W/"x"` matches `"x"`. True when the
 * client's copy is current (`*` always is, since the file exists).
 */
export function noneMatchHit(header: string, etag: string): boolean {
  return tagsIn(header).some((t) => t === '*' || t.replace(/^W\//, '') === etag);
}

/** An IMF-fixdate, the only form sent (RFC 9110 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`. */
export function httpDate(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toUTCString();
}

/** Milliseconds since the epoch of an HTTP date in any of its three forms, or undefined. */
export function parseHttpDate(text: string): number | undefined {
  const t = text.trim();
  // Date.parse reads IMF-fixdate, RFC 850 and asctime; a plain number or ISO string is not an HTTP date.
  if (!/^[A-Za-z]{3}/.test(t)) return undefined;
  const ms = Date.parse(/GMT$/.test(t) ? t : `${t} GMT`);
  return Number.isNaN(ms) ? undefined : ms;
}

export interface Validators {
  etag: string;
  /** Modification time in milliseconds; HTTP dates carry whole seconds. */
  mtimeMs: number;
}

/**
 * Whether a GET or HEAD gets 304 (RFC 9110 13.2.2): If-None-Match when present decides alone;
 * otherwise If-Modified-Since, true when the file was not modified after that date (to the second).
 */
export function notModified(headers: { ifNoneMatch?: string; ifModifiedSince?: string }, v: Validators): boolean {
  if (headers.ifNoneMatch !== undefined) return noneMatchHit(headers.ifNoneMatch, v.etag);
  if (headers.ifModifiedSince === undefined) return false;
  const since = parseHttpDate(headers.ifModifiedSince);
  return since !== undefined && Math.floor(v.mtimeMs / 1000) * 1000 <= since;
}

/**
 * Whether a Range may be honoured under If-Range (RFC 9110 13.1.5): an entity tag must match ours
 * exactly (strong comparison; a weak tag never matches); a date must equal our Last-Modified. No
 * If-Range at all allows it.
 */
export function ifRangeAllows(header: string | undefined, v: Validators): boolean {
  if (header === undefined) return true;
  const h = header.trim();
  if (h.startsWith('"') || h.startsWith('W/')) return h === v.etag;
  const date = parseHttpDate(h);
  return date !== undefined && date === Math.floor(v.mtimeMs / 1000) * 1000;
}

/** A Repr-Digest (RFC 9530) field value for a SHA-256 digest: `sha-256=:<base64>:`. */
export function reprDigest(sha256: Buffer): string {
  return `sha-256=:${sha256.toString('base64')}:`;
}

/**
 * The SHA-256 in a Repr-Digest value (`sha-256=:<base64>:`, among other algorithms), or in a legacy
 * `Digest: SHA-256=<base64>` (RFC 3230) value; undefined when neither carries one.
 */
export function sha256FromDigestField(value: string, legacy = false): Buffer | undefined {
  for (const part of value.split(',')) {
    const m = legacy ? /^\s*sha-256\s*=\s*([A-Za-z0-9+/=]+)\s*$/i.exec(part) : /^\s*sha-256\s*=\s*:([A-Za-z0-9+/=]*):\s*(;.*)?$/i.exec(part);
    if (!m) continue;
    const bytes = Buffer.from(m[1]!, 'base64');
    if (bytes.length === 32) return bytes;
  }
  return undefined;
}

/** Content-Range for a partial body, or for a 416: `bytes`, an asterisk, then `/size`. */
export function contentRange(size: number, range?: { start: number; end: number }): string {
  return range ? `bytes ${range.start}-${range.end}/${size}` : `bytes */${size}`;
}
