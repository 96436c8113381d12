// `netkit disk query [HOST...]`: ask one or many disk servers and print a df -h style table, JSON, a Nagios line or Prometheus text; or watch them live.
import type { CommandModule } from 'yargs';
import { parseCount, parseDuration, parseList, parsePort } from '../../cli/args.js';
import { tokenFileOption } from '../secret-option.js';
import { NetkitError } from '../../errors.js';
import { parseThreshold, type Thresholds } from '../../services/disk/thresholds.js';
import type { QueryFormat } from './query-run.js';
import { discoverOption, discoverTimeoutOption } from '../discover/options.js';

interface QueryArgs {
  hosts?: string[];
  'hosts-file'?: string[];
  host?: string[];
  port: number;
  timeout: number;
  retries: number;
  all: boolean;
  json: boolean;
  format?: string;
  inodes: boolean;
  classic: boolean;
  warn?: string;
  crit?: string;
  'inodes-warn'?: string;
  'inodes-crit'?: string;
  watch?: number;
  'fs-include': string[];
  'fs-exclude': string[];
  'mount-include': string[];
  'mount-exclude': string[];
  'token-file'?: string;
  discover: boolean;
  'discover-timeout': number;
}

/** The live view's interval: a duration of at least MIN_WATCH_MS (a faster redraw only floods the servers and the terminal). */
export const MIN_WATCH_MS = 100;
function watchInterval(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const ms = parseDuration(v === '' ? '2s' : v, '--watch', 3600_000);
  if (ms < MIN_WATCH_MS) throw new NetkitError('USAGE', `invalid --watch '${String(v)}': the interval must be at least ${MIN_WATCH_MS}ms`, 'for example --watch 1s');
  return ms;
}

const threshold = (option: string, inodes = false) => (v: unknown) => (v === undefined ? undefined : (parseThreshold(String(v), option, inodes), String(v)));

export const queryCommand: CommandModule<object, QueryArgs> = {
  command: 'query [hosts..]',
  describe: 'Ask disk servers how much space they have',
  builder: (y) =>
    y
      .positional('hosts', { type: 'string', array: true, describe: 'HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; several are asked at once [default: localhost, unless --discover or --hosts-file]' })
      .option('host', { alias: 'H', type: 'string', array: true, describe: 'a host to ask, as for HOSTS (repeatable; adds to them)' })
      .option('hosts-file', { type: 'string', describe: 'read more hosts from FILE, one per line (# starts a comment); repeatable', coerce: (v: unknown) => (v === undefined ? undefined : [v].flat().map(String)) })
      .option('port', { alias: 'p', type: 'string', number: true, default: 9991, describe: 'UDP port for hosts given without one (1-65535)', coerce: (v: unknown) => parsePort(v, '--port', 1) })
      .option('timeout', { alias: 't', type: 'string', default: '1s', describe: 'wait for the first attempt; each retry waits twice as long', coerce: (v: unknown) => parseDuration(v, '--timeout', 60_000) })
      .option('retries', { alias: 'r', type: 'string', number: true, default: 2, describe: 'attempts after the first', coerce: (v: unknown) => parseCount(v, '--retries', 0, 10) })
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'every reported filesystem, not only the served one' })
      .option('inodes', { alias: 'i', type: 'boolean', default: false, describe: 'add inode columns to the table' })
      .option('format', { type: 'string', choices: ['table', 'json', 'nagios', 'prom'], describe: 'output: table, json, nagios (one status line, exit 0-3) or prom (Prometheus text) [default: table]' })
      .option('json', { type: 'boolean', default: false, describe: 'the same as --format json: exact byte counts' })
      .option('warn', { type: 'string', describe: 'warn when available space is below SPEC: 10%, 50G, or 10%,50G (both)', coerce: threshold('--warn') })
      .option('crit', { type: 'string', describe: 'critical when available space is below SPEC', coerce: threshold('--crit') })
      .option('inodes-warn', { type: 'string', describe: 'warn when free inodes are below SPEC (10%, 100000, or both)', coerce: threshold('--inodes-warn', true) })
      .option('inodes-crit', { type: 'string', describe: 'critical when free inodes are below SPEC', coerce: threshold('--inodes-crit', true) })
      .option('watch', { alias: 'w', type: 'string', describe: 'refresh every INTERVAL (default 2s, at least 100ms) until Ctrl-C', coerce: watchInterval })
      .option('fs-include', { type: 'string', array: true, default: [], describe: 'show only these filesystem types (globs)', coerce: parseList })
      .option('fs-exclude', { type: 'string', array: true, default: [], describe: 'hide these filesystem types (globs)', coerce: parseList })
      .option('mount-include', { type: 'string', array: true, default: [], describe: 'show only these mount points (globs)', coerce: parseList })
      .option('mount-exclude', { type: 'string', array: true, default: [], describe: 'hide these mount points (globs)', coerce: parseList })
      .option('classic', { type: 'boolean', default: false, describe: 'ask a seed (classic protocol) server instead' })
      .option('token-file', tokenFileOption)
      .option('discover', discoverOption('disk'))
      .option('discover-timeout', discoverTimeoutOption)
      .example('$0 disk query', 'the disk of the server on this machine')
      .example('$0 disk query nas backup:9000 [::1]:9991 --all', 'several hosts at once, every filesystem')
      .example('$0 disk query --hosts-file fleet.txt --all --warn 10%,50G --crit 5%', 'thresholds as check_disk has them')
      .example('$0 disk query nas --all --format nagios --warn 10% --crit 5%', 'a Nagios check')
      .example('$0 disk query --hosts-file fleet.txt --all --watch', 'a live view')
      .example('$0 disk query --discover', 'every disk server that announces itself on this network'),
  handler: async (argv) => {
    const { runDiskQuery } = await import('./query-run.js');
    const t = (v: string | undefined, option: string, inodes = false) => (v === undefined ? undefined : parseThreshold(v, option, inodes));
    const thresholds: Thresholds = {};
    const warn = t(argv.warn, '--warn');
    const crit = t(argv.crit, '--crit');
    const iwarn = t(argv['inodes-warn'], '--inodes-warn', true);
    const icrit = t(argv['inodes-crit'], '--inodes-crit', true);
    if (warn) thresholds.warn = warn;
    if (crit) thresholds.crit = crit;
    if (iwarn) thresholds.inodesWarn = iwarn;
    if (icrit) thresholds.inodesCrit = icrit;
    await runDiskQuery({
      hosts: [...(argv.hosts ?? []), ...(argv.host ?? [])].map(String),
      hostsFile: argv['hosts-file']?.map(String),
      port: argv.port,
      timeoutMs: argv.timeout,
      retries: argv.retries,
      all: argv.all,
      format: (argv.format as QueryFormat | undefined) ?? (argv.json ? 'json' : 'table'),
      inodes: argv.inodes,
      classic: argv.classic,
      thresholds,
      filter: { fsInclude: argv['fs-include'], fsExclude: argv['fs-exclude'], mountInclude: argv['mount-include'], mountExclude: argv['mount-exclude'] },
      watchMs: argv.watch,
      tokenFile: argv['token-file'],
      discover: argv.discover,
      discoverTimeoutMs: argv['discover-timeout'],
    });
  },
};
