// What each NAME of `file fetch` asks for (a file, a directory, a glob), where what it brings lands under --out, and the check every path from the server must pass.
import picomatch from 'picomatch';
import { NetkitError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import { STAGING_DIR } from './staging.js';

/** How a NAME is resolved. */
export type NameKind =
  /** A plain path: a file, or a directory once the server says so. */
  | 'plain'
  /** A directory for sure: it ends in `/`, or is `.` (the served directory itself). */
  | 'dir'
  /** Wildcards (`*`, `?`, `[`): matched on the client against a listing of its literal prefix. */
  | 'glob';

export interface NameSpec {
  /** As typed, for messages. */
  arg: string;
  kind: NameKind;
  /** Root-relative and normalised ('' is the served directory): the file or directory to ask for, or a glob's literal prefix. */
  remote: string;
  /** For a glob: the normalised pattern and its matcher; whether its listing must be recursive. */
  pattern?: string;
  matcher?: (path: string) => boolean;
  recursive: boolean;
  /** The local name that replaces the last segment of `remote` (`-o NEWNAME`). */
  rename?: string;
}

const GLOB_CHARS = /[*?[]/;

/** Split a user's NAME into segments the way the server does: empty and `.` segments go, `..` is refused. */
function segmentsOf(name: string, arg: string): string[] {
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new NetkitError('USAGE', `'${sanitize(arg)}' has a '..' segment`, 'names are relative to the served directory and cannot leave it');
  return segments;
}

/** Parse one NAME. `rename` is `-o NEWNAME` when it names the result of this NAME. */
export function parseName(arg: string, rename?: string): NameSpec {
  if (/[\u0000-\u001f\u007f]/.test(arg)) throw new NetkitError('USAGE', `the name '${sanitize(arg)}' contains control characters`);
  if (GLOB_CHARS.test(arg)) {
    const segments = segmentsOf(arg, arg);
    const first = segments.findIndex((s) => GLOB_CHARS.test(s));
    const prefix = segments.slice(0, first);
    const rest = segments.slice(first);
    const pattern = segments.join('/');
    const match = picomatch(pattern, { dot: false, nonegate: true });
    // One wildcard segment without `**` matches only direct children: list only the prefix itself.
    const recursive = rest.length > 1 || rest.some((s) => s.includes('**'));
    return { arg, kind: 'glob', remote: prefix.join('/'), pattern, matcher: (p) => match(p), recursive, rename };
  }
  const raw = arg.split('/').filter((s) => s !== '' && s !== '.');
  if (raw.includes('..') && !arg.endsWith('/')) {
    // The server is the judge of a file's name (and refuses this one): ask for it as typed.
    return { arg, kind: 'plain', remote: arg, recursive: true, rename };
  }
  const segments = segmentsOf(arg, arg);
  const dir = segments.length === 0 || arg.endsWith('/');
  return { arg, kind: dir ? 'dir' : 'plain', remote: segments.join('/'), recursive: true, rename };
}

/** The last segment of a root-relative path ('' for the root). */
export function lastSegment(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** The parent of a root-relative path ('' for a top-level name). */
export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

/**
 * Where a listed path lands, relative to --out: a directory NAME `a/b` keeps `b/…` (or NEWNAME/… with
 * `-o`), the served directory itself lands directly in OUT, and a glob keeps each match's path below
 * the parent of its literal prefix (`photos/**\/*.jpg` → `photos/2024/a.jpg`, `a/b/*.txt` → `b/x.txt`).
 */
export function targetOf(spec: NameSpec, listed: string): string {
  const anchor = spec.remote;
  if (spec.kind === 'glob') {
    const strip = anchor.includes('/') ? `${parentOf(anchor)}/` : '';
    return listed.slice(strip.length);
  }
  if (anchor === '') return spec.rename ? `${spec.rename}/${listed}` : listed;
  const below = listed.slice(anchor.length + 1);
  return `${spec.rename ?? lastSegment(anchor)}/${below}`;
}

/** The local target of a directory NAME itself (undefined for the served directory without -o: OUT itself). */
export function rootTargetOf(spec: NameSpec): string | undefined {
  if (spec.kind === 'glob') return undefined;
  if (spec.remote === '') return spec.rename;
  return spec.rename ?? lastSegment(spec.remote);
}

// C0 and C1 controls and DEL; the bidi embeddings, overrides and isolates: never part of a name netkit writes.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const BIDI_CHARS = /[\u202a-\u202e\u2066-\u2069]/;

/**
 * Why a path received from the server must not be used (zip-slip), or undefined when it is a plain
 * relative path: not empty, not absolute, no drive letter, no backslash, no control character or bidi override, no
 * empty, `.` or `..` segment, no segment longer than 255 bytes.
 */
export function unsafePath(p: string): string | undefined {
  if (p === '') return 'an empty name';
  if (p.startsWith('/')) return 'an absolute path';
  if (/^[A-Za-z]:/.test(p)) return 'a drive letter';
  if (p.includes('\\')) return 'a backslash';
  if (CONTROL_CHARS.test(p)) return 'a control character';
  const bidi = BIDI_CHARS.exec(p);
  if (bidi) return `a bidirectional formatting character, U+${bidi[0].codePointAt(0)!.toString(16).toUpperCase()}, which makes a name display in another order than it is stored`;
  for (const s of p.split('/')) {
    if (s === '' || s === '.') return 'an empty or "." segment';
    if (s === '..') return 'a ".." segment';
    if (Buffer.byteLength(s) > 255) return 'a segment longer than 255 bytes';
  }
  return undefined;
}

/**
 * Check a listed path against the directory that was listed (it must lie below it) and against
 * unsafePath; throws PROTOCOL naming the offending path. Returns the path.
 */
export function checkListed(listed: string, dir: string, target: string): string {
  const why = unsafePath(listed) ?? (dir !== '' && !listed.startsWith(`${dir}/`) ? `a path outside the listed directory '${sanitize(dir, 200)}'` : undefined);
  if (why !== undefined) throw new NetkitError('PROTOCOL', `the server sent the path '${sanitize(listed, 200)}' (${why}); refused, nothing written for it`);
  const local = unsafePath(target);
  if (local !== undefined) throw new NetkitError('PROTOCOL', `the server's path '${sanitize(listed, 200)}' would be saved as '${sanitize(target, 200)}' (${local}); refused`);
  // At any depth: OUT/d/.netkit is the staging directory of a later fetch with --out OUT/d, and a
  // netkit server never lists one.
  if (listed.split('/').includes(STAGING_DIR) || target.split('/').includes(STAGING_DIR)) {
    throw new NetkitError('PROTOCOL', `the server's path '${sanitize(listed, 200)}' would be saved in a ${STAGING_DIR} directory, where netkit keeps partial downloads; refused, nothing written for it`);
  }
  return listed;
}
