// Names in the output directory: the staging directory's, each target's key in it, the check every local target path passes, and whether a name is taken.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { NetkitError, errnoOf, fsError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';

/** The staging directory's name inside the output directory. */
export const STAGING_DIR = '.netkit';

/**
 * A relative target path under OUT, `/`-separated: every segment a plain name (no `.`, `..`, empty
 * segment, control character or backslash). Returns the segments.
 */
export function targetSegments(target: string): string[] {
  const segments = target.split('/');
  for (const s of segments) {
    if (Buffer.byteLength(s) > 255) {
      throw new NetkitError('USAGE', `cannot save to '${sanitize(target, 80)}': a name of ${Buffer.byteLength(s)} bytes, more than the 255 a file system allows`, 'save it under a shorter name with -o NEWNAME');
    }
    if (s === '' || s === '.' || s === '..' || /[\u0000-\u001f\u007f\\]/.test(s)) {
      throw new NetkitError('USAGE', `cannot save to '${target.replace(/[\u0000-\u001f\u007f]/g, '?')}': not a plain relative path`, 'each segment must be a plain file or directory name');
    }
  }
  if (segments[0] === STAGING_DIR) {
    throw new NetkitError('USAGE', `cannot save to '${target}': ${STAGING_DIR} in the output directory is where netkit keeps partial downloads`, 'choose another --out, or fetch it under another name');
  }
  return segments;
}

/** True when something (anything, even a dangling link or a FIFO) has the name `p`; never opens it. */
export async function nameTaken(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return false;
    throw fsError(err, `cannot check ${p}`);
  }
}

/**
 * The file-name stem of `target`'s entries in staging: its last segment (made portable, shortened) and
 * 16 hex digits of its SHA-256, so any target maps to a short, fixed, unique name with no subdirectory.
 */
export function stagingKey(target: string): string {
  const segments = targetSegments(target);
  const base = segments[segments.length - 1]!.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 48);
  return `${base}.${createHash('sha256').update(target).digest('hex').slice(0, 16)}`;
}

/** --out must not be a staging directory itself (partial downloads and finished files would mix). */
export function checkOutDir(outDir: string): void {
  if (path.basename(path.resolve(outDir)) === STAGING_DIR) {
    throw new NetkitError('USAGE', `--out ${outDir}: ${STAGING_DIR} is the name of netkit's staging directory, where it keeps partial downloads`, 'choose another --out');
  }
}
