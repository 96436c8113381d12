// Disk query results for monitoring systems: a Nagios plugin status line with perfdata, and the Prometheus text exposition with a host label.
import { formatBytes, sanitize } from '../../cli/output.js';
import type { HostResult } from '../../services/disk/query.js';
import type { FsFigures } from '../../protocol/disk-v1.js';
import { STATUS_NAMES, Status, judge, usedLimit, type ThresholdSpec, type Thresholds } from '../../services/disk/thresholds.js';

/** The worst status over every host and filesystem: a host that did not answer is UNKNOWN. */
export function overallStatus(results: readonly HostResult[], t: Thresholds): Status {
  let worst: Status = Status.OK;
  for (const r of results) {
    if (!r.ok) {
      worst = worst === Status.CRITICAL ? worst : Status.UNKNOWN;
      continue;
    }
    if (r.protocol !== 'v1') continue;
    for (const f of r.answer.filesystems) {
      const s = judge(f, t).status;
      // CRITICAL outranks UNKNOWN, as in monitoring plugins' state order.
      if (s === Status.CRITICAL || (s > worst && worst !== Status.UNKNOWN)) worst = s;
    }
  }
  return worst;
}

function perfLabel(host: string, mount: string, many: boolean): string {
  // Nagios perfdata: a quoted label may not hold a quote or '='.
  return `'${sanitize(many ? `${host}:${mount}` : mount, 80).replace(/['=]/g, '_')}'`;
}

/**
 * One line, as monitoring plugins print it: `DISK OK - all filesystems fine | '/'=used B;warn;crit;0;size`.
 * Perfdata is in used bytes, with warn and crit as the used amount at which each threshold fires.
 */
export function renderNagios(results: readonly HostResult[], t: Thresholds): { line: string; status: Status } {
  const status = overallStatus(results, t);
  const many = results.length > 1;
  const problems: string[] = [];
  const perf: string[] = [];
  for (const r of results) {
    const host = sanitize(r.target.label, 64);
    if (!r.ok) {
      // Most errors already begin with the host ("127.0.0.1:1 refused the query"): name it once.
      const message = sanitize(r.error.message, 120);
      problems.push(r.error.message.startsWith(r.target.label) ? message : `${host}: ${message}`);
      continue;
    }
    if (r.protocol !== 'v1') continue;
    for (const f of r.answer.filesystems) {
      const v = judge(f, t);
      if (v.status !== Status.OK) problems.push(`${many ? `${host}:` : ''}${sanitize(f.mount, 64)} ${v.reasons.join(', ')}`);
      // A filesystem whose figures could not be read has no value: the plugin guidelines' 'U'.
      if (f.error) {
        perf.push(`${perfLabel(host, f.mount, many)}=U`);
        continue;
      }
      const size = f.used + f.available;
      const w = t.warn ? usedLimit(t.warn, size).toString() : '';
      const c = t.crit ? usedLimit(t.crit, size).toString() : '';
      perf.push(`${perfLabel(host, f.mount, many)}=${f.used}B;${w};${c};0;${size}`);
    }
  }
  const fsCount = results.reduce((n, r) => n + (r.ok && r.protocol === 'v1' ? r.answer.filesystems.length : 0), 0);
  const summary = problems.length > 0 ? problems.join('; ') : `${fsCount} filesystem${fsCount === 1 ? '' : 's'} on ${results.length} host${results.length === 1 ? '' : 's'} fine`;
  return { line: `DISK ${STATUS_NAMES[status]} - ${summary}${perf.length > 0 ? ` | ${perf.join(' ')}` : ''}\n`, status };
}

/** `8%` (one decimal below 10 %), rounded down so it never reads as the threshold it is below. */
function percentOf(left: bigint, total: bigint): string {
  const p = Math.floor((Number(left) * 1000) / Number(total)) / 10;
  return `${p >= 10 ? Math.floor(p) : p}%`;
}

/** `available 8% (below 10%)`, `free inodes 3% (below 5%,1000)`: the figure next to the threshold it crossed. */
function crossed(what: string, spec: ThresholdSpec, left: bigint, total: bigint): string {
  const figure = spec.absolute !== undefined ? `${what === 'available' ? formatBytes(Number(left)) : left.toString()}, ${percentOf(left, total)}` : percentOf(left, total);
  return `${what} ${figure} (below ${spec.text})`;
}

/**
 * One line per filesystem past a threshold, for the table's stderr: `WARNING: host:/mount available 8% (below 10%)`.
 * The table marks them only by colour; these say it in words, piped or not.
 */
export function alertLines(results: readonly HostResult[], t: Thresholds): string[] {
  const lines: string[] = [];
  for (const r of results) {
    if (!r.ok || r.protocol !== 'v1') continue;
    for (const f of r.answer.filesystems) {
      const v = judge(f, t);
      if (v.status === Status.OK) continue;
      const space = f.used + f.available;
      const why = v.reasons.map((reason) => {
        const spec = reason.startsWith('available below ') ? (t.crit && reason === `available below ${t.crit.text}` ? t.crit : t.warn) : undefined;
        if (spec && space > 0n) return crossed('available', spec, f.available, space);
        const ispec = reason.startsWith('free inodes below ') ? (t.inodesCrit && reason === `free inodes below ${t.inodesCrit.text}` ? t.inodesCrit : t.inodesWarn) : undefined;
        if (ispec && f.files && f.filesFree !== undefined) return crossed('free inodes', ispec, f.filesFree, f.files);
        return reason;
      });
      lines.push(`${STATUS_NAMES[v.status]}: ${sanitize(r.target.label, 64)}:${sanitize(f.mount, 64)} ${why.join(', ')}`);
    }
  }
  return lines;
}

const FS_METRICS: Array<[string, string, (f: FsFigures) => bigint | boolean | undefined]> = [
  ['node_filesystem_size_bytes', 'Filesystem size in bytes.', (f) => (f.error ? undefined : f.total)],
  ['node_filesystem_free_bytes', 'Filesystem free space in bytes.', (f) => (f.error ? undefined : f.free)],
  ['node_filesystem_avail_bytes', 'Filesystem space available to non-root users in bytes.', (f) => (f.error ? undefined : f.available)],
  ['node_filesystem_files', 'Filesystem total file nodes.', (f) => (f.error ? undefined : f.files)],
  ['node_filesystem_files_free', 'Filesystem total free file nodes.', (f) => (f.error ? undefined : f.filesFree)],
  // An older server does not say: unknown, so no sample (0 would claim read-write).
  ['node_filesystem_readonly', 'Filesystem read-only status.', (f) => f.readonly],
  ['node_filesystem_device_error', 'Whether an error occurred while getting statistics for the given device.', (f) => f.error !== undefined],
];

/** A label value in the text exposition: backslash, quote and newline escaped. */
function lv(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * The fleet in the Prometheus text format, node_exporter's names with a `host` label (the host as
 * asked), plus netkit_disk_query_up per host. For node_exporter's textfile collector.
 */
export function renderProm(results: readonly HostResult[]): string {
  const out: string[] = [];
  for (const [name, help, value] of FS_METRICS) {
    const lines: string[] = [];
    for (const r of results) {
      if (!r.ok || r.protocol !== 'v1') continue;
      for (const f of r.answer.filesystems) {
        const v = value(f);
        if (v === undefined) continue;
        lines.push(`${name}{host="${lv(r.target.label)}",device="${lv(f.device)}",mountpoint="${lv(f.mount)}",fstype="${lv(f.fstype)}"} ${typeof v === 'boolean' ? (v ? 1 : 0) : v.toString()}`);
      }
    }
    if (lines.length === 0) continue;
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const line of lines) out.push(line);
  }
  out.push('# HELP netkit_disk_query_up Whether the host answered the disk query (1) or not (0).', '# TYPE netkit_disk_query_up gauge');
  for (const r of results) out.push(`netkit_disk_query_up{host="${lv(r.target.label)}"} ${r.ok ? 1 : 0}`);
  return `${out.join('\n')}\n`;
}
