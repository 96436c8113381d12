// Telling an HTTP/1.x request from a classic file name by the first bytes on the port: a whole request line, nothing less.

/** Longest method token looked at (the longest registered method, VERSION-CONTROL, has 15 characters). */
const METHOD_MAX = 20;
/** Longest request line that is taken for HTTP; anything longer is a classic name (or garbage). */
export const HTTP_REQUEST_LINE_MAX = 8 * 1024;

const SUFFIX = Buffer.from(' HTTP/1.');

const isUpper = (b: number): boolean => b >= 0x41 && b <= 0x5a;
/** Target bytes: visible ASCII, and bytes of raw UTF-8 (a client that does not percent-encode). */
const isTargetByte = (b: number): boolean => (b > 0x20 && b < 0x7f) || b >= 0x80;

/**
 * Whether `first` begins an HTTP/1.0 or HTTP/1.1 request line, `METHOD SP request-target SP
 * HTTP/1.x CRLF`: true once the whole line with its CRLF is there, false as soon as the bytes cannot
 * be one, undefined while they still could. METHOD is upper-case letters and '-', starting with a
 * letter; the target is one or more visible characters (or raw UTF-8 bytes); the version is HTTP/1.0
 * or HTTP/1.1. A classic name that happens to be such a line is taken for HTTP (docs/protocol.md 6.1).
 */
export function httpRequestLine(first: Buffer): boolean | undefined {
  let i = 0;
  // METHOD
  while (i < first.length && first[i] !== 0x20) {
    const b = first[i]!;
    if (!(isUpper(b) || (i > 0 && b === 0x2d))) return false;
    i += 1;
    if (i > METHOD_MAX) return false;
  }
  if (i === first.length) return undefined;
  if (i === 0) return false;
  i += 1;
  // request-target: up to the last space before "HTTP/1." (a target has no spaces)
  const targetStart = i;
  while (i < first.length && first[i] !== 0x20) {
    if (!isTargetByte(first[i]!)) return false;
    i += 1;
    if (i > HTTP_REQUEST_LINE_MAX) return false;
  }
  if (i === first.length) return undefined;
  if (i === targetStart) return false;
  // " HTTP/1." then 0 or 1, then CRLF
  for (let k = 0; k < SUFFIX.length; k += 1, i += 1) {
    if (i === first.length) return undefined;
    if (first[i] !== SUFFIX[k]) return false;
  }
  if (i === first.length) return undefined;
  if (first[i] !== 0x30 && first[i] !== 0x31) return false;
  i += 1;
  if (i === first.length) return undefined;
  if (first[i] !== 0x0d) return false;
  i += 1;
  if (i === first.length) return undefined;
  return first[i] === 0x0a;
}
