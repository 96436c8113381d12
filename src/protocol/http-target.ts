// An HTTP request-target as the file server reads it: origin or absolute form, the path percent-decoded exactly once into UTF-8, and the query.
import { NetkitError } from '../errors.js';

export interface Target {
  /** The decoded path, starting with '/': `/photos/a b.jpg` for `/photos/a%20b.jpg`. */
  path: string;
  /** The query string after '?', undecoded ('' when there is none). */
  query: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function bad(message: string): NetkitError {
  return new NetkitError('BAD_REQUEST', message);
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

/**
 * Decode %XX escapes once (so `%252e` becomes the three characters `%2e`, never `.`), then read the
 * bytes as UTF-8. A '%' without two hex digits after it, or bytes that are not UTF-8, are refused.
 * `raw` is the target as Node hands it over: one character per byte (latin1), as sent.
 */
export function percentDecode(raw: string): string {
  const bytes = Buffer.from(raw, 'latin1');
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i += 1) {
    const b = bytes[i]!;
    if (b !== 0x25) {
      out[n++] = b;
      continue;
    }
    const hi = hexValue(bytes[i + 1] ?? -1);
    const lo = hexValue(bytes[i + 2] ?? -1);
    if (hi < 0 || lo < 0) throw bad('malformed percent-encoding in the path');
    out[n++] = (hi << 4) | lo;
    i += 2;
  }
  try {
    return utf8.decode(out.subarray(0, n));
  } catch {
    throw bad('the path is not UTF-8 once percent-decoded');
  }
}

/**
 * Read a request-target. Origin form (`/a/b?q`) and absolute form (`http://host:port/a/b?q`, also
 * https, whose authority is ignored: this server has one site) are accepted; anything else (`*`,
 * authority form, other schemes) is refused. No dot-segment removal or other URL normalisation happens here: the decoded path goes
 * to the jail as it is, which judges `..` and the rest exactly as for file protocol v1.
 */
export function parseTarget(target: string): Target {
  let rest = target;
  if (!rest.startsWith('/')) {
    const m = /^https?:\/\/[^/?#]*/i.exec(rest);
    if (!m) throw bad('the request target is neither a path nor an absolute URI');
    rest = rest.slice(m[0].length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  if (rest.includes('#')) throw bad('a request target cannot carry a fragment');
  const q = rest.indexOf('?');
  const rawPath = q === -1 ? rest : rest.slice(0, q);
  return { path: percentDecode(rawPath), query: q === -1 ? '' : rest.slice(q + 1) };
}

/**
 * A root-relative name, or a directory's path, as a URL path: each segment percent-encoded (so `?`,
 * `#`, `%`, `:` and non-ASCII never escape their segment), joined by '/'.
 */
export function encodePath(segments: readonly string[]): string {
  return segments.map((s) => encodeURIComponent(s)).join('/');
}
