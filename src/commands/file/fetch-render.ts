// What `file fetch` prints: the one-file summary line, the retry line, and for a set of files the summary, the list of failures and the JSON object.
import type { FetchResult, RetryNotice } from '../../services/file/fetch/context.js';
import type { SetResult } from '../../services/file/fetch/set-types.js';
import { formatBytes, formatDuration, formatRate, sanitize } from '../../cli/output.js';
import type { NetkitError } from '../../errors.js';

/** `saved big.iso (1.0G, sha256 … verified, 603M/s, resumed at 200M, 2 retries)`, or why nothing was written. */
export function singleSummary(r: FetchResult): string {
  const where = sanitize(r.path);
  if (r.skipped !== undefined) return `skipped ${where}: already there (${r.skipped} as the server's copy)\n`;
  const rate = formatRate(r.received, r.durationMs);
  const resumed = r.resumedFrom > 0 ? `, resumed at ${formatBytes(r.resumedFrom)}` : '';
  const retried = r.retries > 0 ? `, ${r.retries} ${r.retries === 1 ? 'retry' : 'retries'}` : '';
  if (!r.verified) {
    const why = r.protocol === 'http' ? 'the server sent no digest (Repr-Digest or Digest)' : 'the classic protocol has no checksum';
    return `saved ${where} (${formatBytes(r.size)}, UNVERIFIED: ${why}; sha256 of what arrived ${r.sha256}, ${rate}${resumed}${retried})\n`;
  }
  return `saved ${where} (${formatBytes(r.size)}, sha256 ${r.sha256} verified, ${rate}${resumed}${retried})\n`;
}

/** `connection lost after 16M of 64M; retrying in 4s (2/5)`; for a set, `… after 120/10000 files (16M of 64M) …`. */
export function retryLine(r: RetryNotice): string {
  const bytes = r.size === undefined ? (r.have > 0 ? formatBytes(r.have) : '') : `${formatBytes(r.have)} of ${formatBytes(r.size)}`;
  const where = r.files ? ` after ${r.files.done}/${r.files.total} files (${bytes})` : bytes ? ` after ${bytes}` : '';
  const dropped = r.discarded > 0 ? `; discarding the ${formatBytes(r.discarded)} received` : '';
  return `${r.reason}${dropped ? '' : where}${dropped}; retrying in ${formatDuration(r.delayMs).replace(/\.0s$/, 's')} (${r.attempt}/${r.of})`;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** `10000 files: 9986 fetched (39M, verified), 12 skipped, 2 failed, 1 resumed; 12M/s in 3.4s, 1 retry`. */
export function setSummary(r: SetResult): string {
  const total = r.fetched + r.skipped + r.failed;
  const parts = [`${r.fetched} fetched (${formatBytes(r.bytes)}, every one verified)`];
  if (r.skipped > 0) parts.push(`${r.skipped} skipped (already there)`);
  if (r.failed > 0) parts.push(`${r.failed} failed`);
  if (r.resumed > 0) parts.push(`${r.resumed} resumed`);
  const retried = r.retries > 0 ? `, ${plural(r.retries, 'retry', 'retries')}` : '';
  return `${plural(total, 'file')}${r.dirs > 0 ? ` in ${plural(r.dirs, 'directory', 'directories')}` : ''}: ${parts.join(', ')}; ${formatRate(r.received, r.durationMs)} in ${formatDuration(r.durationMs)}${retried}\n`;
}

/** One line per failed file, for stderr: `  photos/a.jpg: HOST has no file …`. */
export function failureLines(r: SetResult): string {
  return r.files
    .filter((f) => f.status === 'failed')
    .map((f) => `  ${sanitize(f.name, 300)}: ${sanitize(f.error?.message ?? 'failed', 600)}\n`)
    .join('');
}

/** The --json object of a set. */
export function setJson(r: SetResult, fatal: NetkitError | undefined): Record<string, unknown> {
  const { files, durationMs, ...counts } = r;
  return {
    ok: r.failed === 0 && fatal === undefined,
    ...counts,
    durationMs: Math.round(durationMs),
    files,
    failures: files.filter((f) => f.status === 'failed').map((f) => ({ name: f.name, path: f.path, ...f.error })),
    ...(fatal ? { error: { code: fatal.code, exitCode: fatal.exitCode, message: fatal.message } } : {}),
  };
}
