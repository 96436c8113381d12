// Threshold checks on disk figures, as check_disk does them: a SPEC is about available space (10%, 50G, or both: below 10% AND below 50G).
import { NetkitError } from '../../errors.js';
import type { FsFigures } from '../../protocol/disk-v1.js';

/** A threshold on what is left: fires when available is below every part given. */
export interface ThresholdSpec {
  text: string;
  /** Fires below this percentage of the total (0-100). */
  percent?: number;
  /** Fires below this many bytes (or inodes). */
  absolute?: bigint;
}

export const Status = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;
export type Status = (typeof Status)[keyof typeof Status];
export const STATUS_NAMES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

const UNITS: Record<string, bigint> = { '': 1n, B: 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n, P: 1n << 50n, E: 1n << 60n };

/** Parse `10%`, `50G`, `1.5T`, `100000` or `10%,50G` (both must hold for the alert to fire). Sizes are powers of 1024, like the table. */
export function parseThreshold(text: string, option: string, inodes = false): ThresholdSpec {
  const usage = (): NetkitError =>
    new NetkitError('USAGE', `invalid ${option} '${text}': expected a percentage (10%), ${inodes ? 'a count (100000, 1.5M)' : 'a size (50G)'}, or both joined by a comma (10%,50G)`);
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.length > 2) throw usage();
  const spec: ThresholdSpec = { text };
  for (const p of parts) {
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(p);
    if (pct) {
      const v = Number(pct[1]);
      if (spec.percent !== undefined || v > 100) throw usage();
      spec.percent = v;
      continue;
    }
    const size = /^(\d+(?:\.\d+)?)([KMGTPE]?)(?:i?B)?$/i.exec(p);
    if (!size || spec.absolute !== undefined) throw usage();
    const unit = UNITS[size[2]!.toUpperCase()]!;
    const [whole, frac = ''] = size[1]!.split('.') as [string, string?];
    // Exact for any size: whole * unit + frac * unit / 10^digits, in integers.
    spec.absolute = BigInt(whole) * unit + (BigInt(frac || '0') * unit) / 10n ** BigInt(frac.length);
  }
  return spec;
}

/** Does `spec` fire for `left` of `total`? Every part given must hold. */
export function fires(spec: ThresholdSpec, left: bigint, total: bigint): boolean {
  if (spec.percent !== undefined && !(Number(left) * 100 < spec.percent * Number(total))) return false;
  if (spec.absolute !== undefined && !(left < spec.absolute)) return false;
  return spec.percent !== undefined || spec.absolute !== undefined;
}

/** The most a filesystem may hold before `spec` fires, for perfdata (check_disk's warn/crit in used units). */
export function usedLimit(spec: ThresholdSpec, total: bigint): bigint {
  let left = -1n;
  if (spec.percent !== undefined) left = BigInt(Math.floor((spec.percent * Number(total)) / 100));
  if (spec.absolute !== undefined) left = left < 0n ? spec.absolute : left < spec.absolute ? left : spec.absolute;
  return total > left ? total - left : 0n;
}

export interface Thresholds {
  warn?: ThresholdSpec;
  crit?: ThresholdSpec;
  inodesWarn?: ThresholdSpec;
  inodesCrit?: ThresholdSpec;
}

export interface FsVerdict {
  status: Status;
  /** Why, for the status line: "avail 3% < 10%", "read-only", "timeout". */
  reasons: string[];
}

/** The status of one filesystem: the worst threshold it crosses; read-only or errored is at least WARNING. */
export function judge(fs: FsFigures, t: Thresholds): FsVerdict {
  let status: Status = Status.OK;
  const reasons: string[] = [];
  const raise = (s: Status, why: string): void => {
    if (s > status) status = s;
    reasons.push(why);
  };
  const space = fs.used + fs.available; // df's denominator: what non-root users can ever use
  if (!fs.error) {
    if (t.crit && fires(t.crit, fs.available, space)) raise(Status.CRITICAL, `available below ${t.crit.text}`);
    else if (t.warn && fires(t.warn, fs.available, space)) raise(Status.WARNING, `available below ${t.warn.text}`);
    if (fs.files !== undefined && fs.filesFree !== undefined && fs.files > 0n) {
      if (t.inodesCrit && fires(t.inodesCrit, fs.filesFree, fs.files)) raise(Status.CRITICAL, `free inodes below ${t.inodesCrit.text}`);
      else if (t.inodesWarn && fires(t.inodesWarn, fs.filesFree, fs.files)) raise(Status.WARNING, `free inodes below ${t.inodesWarn.text}`);
    }
  }
  if (fs.readonly) raise(Status.WARNING, 'read-only');
  if (fs.error) raise(Status.WARNING, fs.error.code === 1 ? 'statfs timed out' : 'statfs failed');
  return { status, reasons };
}

export function hasThresholds(t: Thresholds): boolean {
  return t.warn !== undefined || t.crit !== undefined || t.inodesWarn !== undefined || t.inodesCrit !== undefined;
}
