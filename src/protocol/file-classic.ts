// The seed programs' classic file protocol (docs/protocol.md section 3): a bare name in, a size and raw bytes out.
import { NetkitError } from '../errors.js';

/** The seed client reads the size with recv(8), so netkit's answer is always exactly 8 bytes. */
export const CLASSIC_SIZE_FIELD = 8;
/** The largest size that fits in 8 ASCII digits. Bigger files would be silently corrupted by the seed client. */
export const CLASSIC_MAX_SIZE = 99_999_999;
/** The seed server reads the name with one recv(1024). */
export const CLASSIC_NAME_MAX = 1024;
/** "-1" padded: the seed's "not found" (netkit also uses it for every refusal: the protocol has no other word). */
export const CLASSIC_MISSING = Buffer.from('-1'.padEnd(CLASSIC_SIZE_FIELD, ' '), 'ascii');

/** The 8-byte size field: decimal digits, space padded on the right (Python's int() ignores the spaces). */
export function encodeClassicSize(size: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 0 || size > CLASSIC_MAX_SIZE) {
    throw new NetkitError('TOO_LARGE', `a classic size field cannot carry ${size}`);
  }
  return Buffer.from(String(size).padEnd(CLASSIC_SIZE_FIELD, ' '), 'ascii');
}

/** True once a classic request is certainly complete: a newline (nc users) or the seed's 1024-byte read. */
export function classicNameComplete(bytes: Buffer): boolean {
  return bytes.length >= CLASSIC_NAME_MAX || bytes.includes(0x0a);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The name in a classic request. The seed sends the bare name; people using `echo name | nc` add a
 * newline, so one trailing "\n" or "\r\n" is dropped. Anything after a newline is malformed.
 */
export function decodeClassicName(bytes: Buffer): string {
  let end = bytes.length;
  const nl = bytes.indexOf(0x0a);
  if (nl !== -1) {
    if (nl !== bytes.length - 1) throw new NetkitError('PROTOCOL', 'classic request has bytes after its newline');
    end = nl > 0 && bytes[nl - 1] === 0x0d ? nl - 1 : nl;
  }
  if (end > CLASSIC_NAME_MAX) throw new NetkitError('PROTOCOL', `classic request longer than ${CLASSIC_NAME_MAX} bytes`);
  try {
    return utf8.decode(bytes.subarray(0, end));
  } catch {
    throw new NetkitError('PROTOCOL', 'classic request is not valid UTF-8');
  }
}

/** What the start of a classic answer says. */
export type ClassicHead =
  | { kind: 'missing' }
  | { kind: 'size'; size: number; headerLength: number };

const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39;
/** More digits than this cannot be a real size (10^15 bytes), so the data must have begun already. */
const MAX_SIZE_DIGITS = 15;

function ambiguous(digits: string, why: string, hint?: string): NetkitError {
  return new NetkitError(
    'PROTOCOL',
    `cannot tell the classic size field from the file's data (${why}, after '${digits}'); nothing was saved as final`,
    hint ?? 'the classic protocol has no terminator after the size; fetch from a netkit server without --classic for a verified transfer',
  );
}

/**
 * Decide where the size ends in the start of a classic answer, or return undefined when more bytes
 * are needed. `ended` says the peer closed its side. The rule never accepts a split that could be wrong:
 *
 * - `-1` means missing.
 * - The size is the maximal run D of leading ASCII digits, and the data starts at the first byte after
 *   it, which must be neither a digit (that byte would belong to D) nor a space (netkit's own padded
 *   answer "123     " and a seed file starting with spaces look alike).
 * - A file whose first byte is a digit makes D too long; the announced size is then larger than what
 *   arrives, which the caller detects at the end of the stream (see explainShortClassic) — it never
 *   produces a wrong file.
 * - "0" alone, or "0" padded with spaces to 8 bytes, is an empty file (sizes never have leading zeros).
 */
export function parseClassicHead(prefix: Buffer, ended: boolean): ClassicHead | undefined {
  if (prefix.length === 0) {
    if (ended) throw new NetkitError('PEER_CLOSED', 'the classic server closed the connection without answering');
    return undefined;
  }
  if (prefix[0] === 0x2d) {
    // "-1": the seed's only refusal.
    if (prefix.length < 2) {
      if (ended) throw new NetkitError('PROTOCOL', "the classic server's answer is '-' alone");
      return undefined;
    }
    if (prefix[1] === 0x31 && !isDigit(prefix[2])) return { kind: 'missing' };
    throw new NetkitError('PROTOCOL', 'the classic server answered with a negative size other than -1');
  }
  let n = 0;
  while (n < prefix.length && isDigit(prefix[n])) n += 1;
  const digits = prefix.subarray(0, Math.min(n, 20)).toString('ascii');
  if (n === 0) throw new NetkitError('PROTOCOL', 'the classic server did not answer with a size', 'is that a file server on that port?');
  if (digits[0] === '0') {
    if (n > 1) throw new NetkitError('PROTOCOL', 'the classic server announced size 0 and then sent data');
    // "0", then end of stream or space padding to 8 bytes.
    const rest = prefix.subarray(1);
    if (rest.some((b) => b !== 0x20) || rest.length > CLASSIC_SIZE_FIELD - 1) {
      throw new NetkitError('PROTOCOL', 'the classic server announced size 0 and then sent data');
    }
    if (rest.length === CLASSIC_SIZE_FIELD - 1) return { kind: 'size', size: 0, headerLength: CLASSIC_SIZE_FIELD };
    if (ended) return { kind: 'size', size: 0, headerLength: prefix.length };
    return undefined;
  }
  if (n > MAX_SIZE_DIGITS) throw ambiguous(digits, 'the file starts with digits');
  if (n === prefix.length) {
    if (!ended) return undefined;
    throw new NetkitError(
      'PEER_CLOSED',
      `the classic server closed the connection right after '${digits}': the transfer was cut short, or the file starts with digits, which the classic protocol cannot tell apart from the size`,
    );
  }
  if (prefix[n] === 0x20) {
    if (n < CLASSIC_SIZE_FIELD && prefix.length < CLASSIC_SIZE_FIELD && !ended) return undefined;
    const padded = n < CLASSIC_SIZE_FIELD && prefix.subarray(n, CLASSIC_SIZE_FIELD).every((b) => b === 0x20);
    if (padded) {
      throw ambiguous(
        digits,
        'the size is followed by a space: a netkit server\'s padded answer, or a file that starts with spaces',
        'a netkit server pads the classic size with spaces; fetch from it without --classic (verified and resumable)',
      );
    }
    throw ambiguous(digits, 'the size is followed by a space: the file starts with white space, or with digits and then a space');
  }
  return { kind: 'size', size: Number(digits), headerLength: n };
}

/**
 * Why a classic stream ended early. When a shorter digit prefix would have matched the bytes that
 * arrived, the file most likely starts with digits: say so rather than just "cut short".
 */
export function explainShortClassic(digits: string, received: number, expected: number, totalStreamBytes: number): string {
  for (let k = 1; k < digits.length; k += 1) {
    if (k + Number(digits.slice(0, k)) === totalStreamBytes) {
      return (
        `the classic server sent ${totalStreamBytes} bytes in all, which fits a size of ${digits.slice(0, k)} followed by a file that starts with digits; ` +
        'the classic protocol cannot tell the size from such data, so nothing was saved as final'
      );
    }
  }
  return `the classic server closed the connection after ${received} of ${expected} bytes`;
}
