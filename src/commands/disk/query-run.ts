// Running `netkit disk query`: read the hosts, ask them, print a table, JSON, a Nagios line or Prometheus text, and set the exit status.
import { open } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { parseTarget, type HostResult, type QueryTarget } from '../../services/disk/query.js';
import { queryWithDiscovery } from '../../services/disk/discover.js';
import { sanitize, useColor } from '../../cli/output.js';
import { setExitCode } from '../../cli/state.js';
import { renderJson, renderTable, type Paint } from './render.js';
import { alertLines, renderNagios, renderProm } from './render-monitor.js';
import { loadCliSecret } from '../secret-option.js';
import { EXIT_CODES, NetkitError, fsError } from '../../errors.js';
import { mountFilter, type MountFilterOptions } from '../../services/disk/mounts.js';
import { Status, hasThresholds, judge, type Thresholds } from '../../services/disk/thresholds.js';

export type QueryFormat = 'table' | 'json' | 'nagios' | 'prom';

export interface QueryRunOptions {
  hosts: string[];
  /** Files of hosts (--hosts-file, repeatable). */
  hostsFile?: string[] | undefined;
  port: number;
  timeoutMs: number;
  retries: number;
  all: boolean;
  format: QueryFormat;
  classic: boolean;
  inodes: boolean;
  thresholds: Thresholds;
  filter: MountFilterOptions;
  /** Refresh every this many ms until Ctrl-C (the live view). */
  watchMs?: number | undefined;
  tokenFile?: string | undefined;
  /** Also ask every disk server that announces itself, listening this long. */
  discover?: boolean;
  discoverTimeoutMs?: number;
}

export async function painter(): Promise<Paint | undefined> {
  if (!useColor(process.stdout)) return undefined;
  const { default: chalk } = await import('chalk');
  return { header: (s) => chalk.bold(s), warn: (s) => chalk.yellow(s), bad: (s) => chalk.red(s), dim: (s) => chalk.dim(s) };
}

const MAX_HOSTS_FILE = 1 << 20;

/** At most MAX_HOSTS_FILE bytes of `path` and one more (so an endless file, such as a device, is never read to its end). */
async function readCapped(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_HOSTS_FILE + 1);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await handle.close();
  }
}

/** A host named in a --hosts-file, with where: `FILE:LINE`. */
export interface HostLine {
  host: string;
  where: string;
}

/** Hosts from a file: one per line, `#` starts a comment, blank lines ignored. Bounded to 1 MiB. */
export async function readHostsFile(path: string): Promise<HostLine[]> {
  let text: string;
  try {
    const buf = await readCapped(path);
    if (buf.length > MAX_HOSTS_FILE) throw new NetkitError('USAGE', `--hosts-file ${path} is larger than 1 MiB`);
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof NetkitError) throw err;
    const e = fsError(err, `cannot read --hosts-file ${path}`, 'check the path: --hosts-file names a file with one host (HOST or HOST:PORT) per line');
    if (e.code === 'LOCAL_IO' && (err as NodeJS.ErrnoException).code === 'EISDIR') throw new NetkitError('USAGE', `--hosts-file ${path} is a directory`, 'give a file with one host per line');
    if (e.code === 'PERMISSION') throw new NetkitError('PERMISSION', e.message, 'check the file\'s permissions', { cause: err });
    throw e;
  }
  return text
    .split(/\r?\n/)
    .map((l, i) => ({ host: l.replace(/#.*$/, '').trim(), where: `${path}:${i + 1}` }))
    .filter((l) => l.host !== '');
}

/** An IPv4 address in a short, octal or hex spelling (`127.1`, `0x7f.0.0.1`), as the resolver reads it. */
const IPV4_SPELLING = /^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$/;

/** The same server however it was written: `nas`, `NAS:9991`, `[::1]` and `0:0::1`, `127.0.0.1` and `127.1` each count once. */
function targetKey(t: QueryTarget): string {
  let host = t.host.toLowerCase();
  if (isIPv6(host)) host = new URL(`http://[${host}]/`).hostname;
  else if (!isIPv4(host) && IPV4_SPELLING.test(host)) {
    try {
      const parsed = new URL(`http://${host}/`).hostname;
      if (isIPv4(parsed)) host = parsed;
    } catch {
      // Not an address after all (a number too large): kept as written.
    }
  }
  return `${t.instance ? 'instance' : 'host'} ${host} ${t.port}`;
}

export async function resolveTargets(o: Pick<QueryRunOptions, 'hosts' | 'hostsFile' | 'port' | 'discover'>): Promise<QueryTarget[]> {
  const files = o.hostsFile ?? [];
  const fromFile: HostLine[] = [];
  for (const f of files) fromFile.push(...(await readHostsFile(f)));
  if (files.length > 0 && fromFile.length === 0 && o.hosts.length === 0) throw new NetkitError('USAGE', `--hosts-file ${files.join(', ')} ${files.length > 1 ? 'name' : 'names'} no host`);
  const hosts: HostLine[] = [...o.hosts.map((host) => ({ host, where: '' })), ...fromFile];
  // Bad ports and empty names are usage errors (exit 2) before anything is sent; `disk one` is an announced name.
  // A bad line in a file is named by FILE:LINE.
  const targets = (hosts.length > 0 || o.discover ? hosts : [{ host: 'localhost', where: '' }]).map(({ host, where }) => {
    try {
      return parseTarget(host, o.port, { instanceNames: true });
    } catch (err) {
      if (!where || !(err instanceof NetkitError)) throw err;
      throw new NetkitError(err.code, `${sanitize(where)}: ${err.message}`, err.hint, { cause: err });
    }
  });
  // A host named twice (on the command line, in a file, in two files) is asked and shown once, where it was first named.
  const seen = new Set<string>();
  return targets.filter((t) => {
    const k = targetKey(t);
    return !seen.has(k) && (seen.add(k), true);
  });
}

/** Keep only the filesystems the client-side filters select (the server already left out its exclusions). */
export function filterResults(results: HostResult[], filter: MountFilterOptions): HostResult[] {
  const given = [filter.fsInclude, filter.fsExclude, filter.mountInclude, filter.mountExclude].some((l) => (l?.length ?? 0) > 0);
  if (!given) return results;
  const keep = mountFilter({ ...filter, noDefaults: true });
  return results.map((r) => (r.ok && r.protocol === 'v1' ? { ...r, answer: { ...r.answer, filesystems: r.answer.filesystems.filter(keep) } } : r));
}

/** The threshold status of a table or JSON run, as an exit code (0 when nothing fires). */
function thresholdExit(results: readonly HostResult[], t: Thresholds): number {
  let worst: Status = Status.OK;
  for (const r of results) if (r.ok && r.protocol === 'v1') for (const f of r.answer.filesystems) worst = Math.max(worst, judge(f, t).status) as Status;
  if (worst === Status.CRITICAL) return EXIT_CODES.THRESHOLD_CRITICAL;
  if (worst === Status.WARNING) return EXIT_CODES.THRESHOLD_WARNING;
  return 0;
}

export function reportFailures(results: readonly HostResult[]): void {
  for (const r of results) {
    if (r.ok) continue;
    // The message may quote the peer (a typed error's text): never let it drive the terminal.
    process.stderr.write(`netkit: ${sanitize(r.error.message)}\n`);
    if (r.error.hint) process.stderr.write(`hint: ${r.error.hint}\n`);
    setExitCode(r.error.exitCode);
  }
}

export async function runDiskQuery(o: QueryRunOptions): Promise<void> {
  const targets = await resolveTargets(o);
  const secret = await loadCliSecret(o.tokenFile);
  if (secret && o.classic) {
    throw new NetkitError('USAGE', `--classic cannot be used with a secret (${secret.source}): the classic protocol cannot authenticate`, 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  const queryOpts = { timeoutMs: o.timeoutMs, retries: o.retries, all: o.all, classic: o.classic, secret: secret?.key('disk'), concurrency: 256 };
  if (o.watchMs !== undefined && (o.format === 'nagios' || o.format === 'prom')) {
    const why = o.format === 'nagios' ? 'a check reports once and exits' : 'a textfile for Prometheus is written once';
    throw new NetkitError('USAGE', `--watch cannot be used with --format ${o.format}: ${why}`, 'leave out --watch, and let your monitoring system or cron run the query');
  }
  if (o.watchMs !== undefined) {
    // The live view asks the same addresses every round; it does not look anything up on the link.
    const spaced = targets.find((t) => t.instance);
    if (o.discover || spaced) {
      const what = o.discover ? '--discover' : `an announced name ('${sanitize(spaced!.label, 64)}')`;
      throw new NetkitError('USAGE', `--watch cannot be used with ${what}: the live view does not look servers up through DNS-SD`, 'find them first with `netkit discover`, then watch them by address or host name');
    }
    const { runWatch } = await import('./watch-run.js');
    await runWatch(targets, queryOpts, o, o.watchMs);
    return;
  }
  const { results: all, nothingDiscovered } = await queryWithDiscovery(targets, {
    ...queryOpts,
    discover: o.discover,
    discoverTimeoutMs: o.discoverTimeoutMs,
    onWarning: (m) => void process.stderr.write(`netkit: warning: ${sanitize(m)}\n`),
  });
  const results = filterResults(all, o.filter);
  if (nothingDiscovered) process.stderr.write(`netkit: ${sanitize(nothingDiscovered.message)}\n`);
  if (o.format === 'nagios') {
    const r = renderNagios(results, o.thresholds);
    process.stdout.write(r.line);
    setExitCode(r.status);
    return;
  }
  if (o.format === 'prom') process.stdout.write(renderProm(results));
  else if (o.format === 'json') process.stdout.write(renderJson(results));
  else if (results.some((r) => r.ok)) process.stdout.write(renderTable(results, await painter(), { inodes: o.inodes, thresholds: o.thresholds }));
  // The table marks alerts only by colour: say which filesystem crossed which threshold (JSON carries it already).
  if (o.format === 'table' && hasThresholds(o.thresholds)) for (const line of alertLines(results, o.thresholds)) process.stderr.write(`netkit: ${line}\n`);
  reportFailures(results);
  if (hasThresholds(o.thresholds)) setExitCode(thresholdExit(results, o.thresholds));
}
