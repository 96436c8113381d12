// The jail: turn a requested name into an open regular file inside the served directory, or a typed refusal.
import { constants as fsc, promises as fsp, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { NetkitError, errnoOf } from '../../../errors.js';

export interface JailedFile {
  handle: fsp.FileHandle;
  /** fstat of the open descriptor: the size and validator come from here, never from a path. */
  stat: BigIntStats;
  /** The name as normalised (segments joined by '/'), for logs. */
  name: string;
}

/** Why a name is refused. `code` is the NetkitError code; the message is safe to log and to send. */
function refuse(code: 'FORBIDDEN' | 'BAD_REQUEST' | 'NOT_FOUND', message: string): NetkitError {
  return new NetkitError(code, message);
}

/**
 * The name of the directory where `netkit file fetch` keeps partial downloads (its staging directory).
 * A served directory may hold one (someone fetched into it); it is never listed or served: its files
 * are another fetch's unfinished work, and a client that saved them would adopt them as its own.
 */
export const STAGING_NAME = '.netkit';

// C0 and C1 controls, DEL, and bidi overrides (they make a logged name lie about itself).
const FORBIDDEN_CHARS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/**
 * Check a requested name and split it into path segments. Pure: no file-system access.
 * Rules: relative, '/'-separated; no '..' segment; '.' and empty segments are dropped; no backslash,
 * no drive letter, no control characters, no `.netkit` segment. No percent-decoding or Unicode folding happens: the name is
 * matched byte for byte, so "%2e%2e" is a literal file name and stays inside the jail.
 */
export function normaliseName(name: string): string[] {
  if (name.length === 0) throw refuse('BAD_REQUEST', 'empty name');
  const segments = normaliseDir(name);
  if (segments.length === 0) throw refuse('FORBIDDEN', 'the name is the served directory itself');
  return segments;
}

/**
 * The same rules for a directory to list, where the empty name (or '.', './') is the served directory
 * itself: returns [] for it.
 */
export function normaliseDir(name: string): string[] {
  if (FORBIDDEN_CHARS.test(name)) {
    throw refuse('BAD_REQUEST', /[\u202a-\u202e\u2066-\u2069]/u.test(name) ? 'name contains a bidirectional formatting character (it would display in another order than it is stored)' : 'name contains control characters');
  }
  if (name.includes('\\')) throw refuse('FORBIDDEN', 'name contains a backslash');
  if (/^[A-Za-z]:/.test(name)) throw refuse('FORBIDDEN', 'name starts with a drive letter');
  if (name.startsWith('/')) throw refuse('FORBIDDEN', 'absolute paths are not served');
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) throw refuse('FORBIDDEN', "'..' segments are not allowed");
  if (segments.some((s) => s === STAGING_NAME)) throw refuse('FORBIDDEN', `${STAGING_NAME} holds netkit's partial downloads and is not served`);
  return segments;
}

/** Whether `segments`, joined by '/', is a name normaliseName accepts as exactly these segments. */
export function isRequestableName(segments: readonly string[]): boolean {
  const name = segments.join('/');
  try {
    return normaliseName(name).length === segments.length;
  } catch {
    return false;
  }
}

/** The refusal's message when a REQUEST names a directory (a session client gets IS_DIRECTORY for it). */
export const IS_A_DIRECTORY = 'is a directory';

/** Whether a jail refusal was for a directory. */
export function isDirectoryRefusal(err: NetkitError): boolean {
  return err.code === 'FORBIDDEN' && err.message === IS_A_DIRECTORY;
}

/**
 * Whether the resolved path `candidate` is served from `root`: inside it, and not in a `.netkit`
 * directory below it (a fetch's staging directory is not served however it is reached, a symbolic
 * link into it included).
 */
export function inside(root: string, candidate: string): boolean {
  if (candidate === root) return true;
  const base = root.endsWith(path.sep) ? root : root + path.sep;
  if (!candidate.startsWith(base)) return false;
  const rest = `${path.sep}${candidate.slice(base.length)}${path.sep}`;
  return !rest.includes(`${path.sep}${STAGING_NAME}${path.sep}`);
}

export interface JailOptions {
  /**
   * Refuse a file whose link count is above 1. A hard link is the same file under a second name, and
   * the jail judges names: a link made inside the directory to a file elsewhere on the same file system
   * is served unless this is set (docs/security.md section 3).
   */
  refuseHardLinks?: boolean;
}

/**
 * The jail's verdicts that do not come from a name alone, shared by openInJail and the reader threads
 * (reader-pool.ts), which run the same steps synchronously and report which step failed how.
 */
export type JailStep =
  /** realpath failed with `errno`. */
  | { step: 'realpath'; errno: string | undefined }
  /** open failed with `errno`. */
  | { step: 'open'; errno: string | undefined }
  /** The resolved path, or the opened descriptor's, lies outside the root. */
  | { step: 'outside' }
  | { step: 'directory' }
  | { step: 'not-regular' }
  | { step: 'hard-links'; nlink: bigint | number };

/** The refusal for a failed jail step, or undefined for an errno the jail does not expect (a server problem). */
export function jailRefusal(r: JailStep): NetkitError | undefined {
  switch (r.step) {
    case 'realpath':
      if (r.errno === 'ENOENT' || r.errno === 'ENOTDIR') return refuse('NOT_FOUND', 'no such file');
      if (r.errno === 'ELOOP') return refuse('FORBIDDEN', 'too many levels of symbolic links');
      if (r.errno === 'EACCES') return refuse('FORBIDDEN', 'permission denied');
      if (r.errno === 'ENAMETOOLONG') return refuse('BAD_REQUEST', 'name too long');
      return undefined;
    case 'open':
      if (r.errno === 'ENOENT' || r.errno === 'ENOTDIR') return refuse('NOT_FOUND', 'no such file');
      if (r.errno === 'ELOOP' || r.errno === 'EMLINK') return refuse('FORBIDDEN', 'the name changed into a symbolic link');
      if (r.errno === 'EACCES' || r.errno === 'EPERM') return refuse('FORBIDDEN', 'permission denied');
      if (r.errno === 'EISDIR') return refuse('FORBIDDEN', IS_A_DIRECTORY);
      if (r.errno === 'ENXIO' || r.errno === 'ENODEV') return refuse('FORBIDDEN', 'not a regular file');
      return undefined;
    case 'outside':
      return refuse('FORBIDDEN', 'the name resolves outside the served directory');
    case 'directory':
      return refuse('FORBIDDEN', IS_A_DIRECTORY);
    case 'not-regular':
      return refuse('FORBIDDEN', 'not a regular file');
    case 'hard-links':
      return refuse('FORBIDDEN', `the file has ${r.nlink} hard links, and this server refuses hard-linked files`);
  }
}

/** The flags every served file is opened with: never follow a last-component link, never block on a FIFO. */
export const OPEN_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;

/**
 * Open `name` inside `root` (which must already be a realpath). The file is opened once, with
 * O_NOFOLLOW (the last component was resolved by realpath, so a symlink there now means a swap) and
 * O_NONBLOCK (a FIFO must not block the open); everything after that is checked on the descriptor.
 * On Linux the descriptor's own path (/proc/self/fd) is checked against the root too, which closes
 * the race of a directory being swapped for a symlink between realpath and open.
 */
export async function openInJail(root: string, name: string, opts: JailOptions = {}): Promise<JailedFile> {
  const segments = normaliseName(name);
  const joined = path.join(root, ...segments);
  const fail = (r: JailStep, err?: unknown): never => {
    throw jailRefusal(r) ?? err;
  };
  let real: string;
  try {
    real = await fsp.realpath(joined);
  } catch (err) {
    return fail({ step: 'realpath', errno: errnoOf(err) }, err);
  }
  if (!inside(root, real)) fail({ step: 'outside' });
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(real, OPEN_FLAGS);
  } catch (err) {
    return fail({ step: 'open', errno: errnoOf(err) }, err);
  }
  try {
    const stat = await handle.stat({ bigint: true });
    if (stat.isDirectory()) fail({ step: 'directory' });
    if (!stat.isFile()) fail({ step: 'not-regular' });
    if (opts.refuseHardLinks && stat.nlink > 1n) fail({ step: 'hard-links', nlink: stat.nlink });
    if (process.platform === 'linux') {
      let opened: string | undefined;
      try {
        opened = await fsp.readlink(`/proc/self/fd/${handle.fd}`);
      } catch {
        opened = undefined; // no /proc: the realpath check above stands alone
      }
      if (opened !== undefined && !inside(root, opened)) fail({ step: 'outside' });
    }
    return { handle, stat, name: segments.join('/') };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}
