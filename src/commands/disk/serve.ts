// `netkit disk serve`: answer disk-space queries for this machine until SIGINT/SIGTERM.
import type { CommandModule } from 'yargs';
import { parseCount, parseDuration, parseList, parseListen, parsePort } from '../../cli/args.js';
import { tokenFileOption } from '../secret-option.js';
import { announceOption, nameOption } from '../announce-option.js';

interface ServeArgs {
  port: number;
  host?: string;
  path: string;
  classic: boolean;
  quiet: boolean;
  'rate-limit': number;
  'exempt-loopback': boolean;
  'token-file'?: string;
  metrics?: { host: string; port: number };
  'mount-timeout': number;
  'fs-include': string[];
  'fs-exclude': string[];
  'mount-include': string[];
  'mount-exclude': string[];
  announce: boolean;
  name?: string;
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Answer disk-space queries about this machine (UDP)',
  builder: (y) =>
    y
      .option('port', { alias: 'p', type: 'string', number: true, default: 9991, describe: 'UDP port; 0 picks a free one', coerce: (v: unknown) => parsePort(v) })
      .option('host', { type: 'string', describe: 'address to listen on [default: every interface, IPv6 and IPv4]' })
      .option('path', { type: 'string', default: '.', describe: 'report the filesystem that holds this path' })
      .option('classic', { type: 'boolean', default: false, describe: 'also answer the seed programs\' "y" queries (their replies are bigger than the request)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'do not log each query on stderr' })
      .option('rate-limit', { type: 'string', number: true, default: 1000, describe: 'queries per second allowed per source address; 0 = no limit', coerce: (v: unknown) => parseCount(v, '--rate-limit') })
      .option('exempt-loopback', { type: 'boolean', default: true, describe: 'do not rate-limit senders on this machine (--no-exempt-loopback to limit them too)' })
      .option('token-file', tokenFileOption)
      .option('metrics', { type: 'string', describe: 'also serve Prometheus metrics at http://[HOST:]PORT/metrics (HOST defaults to 127.0.0.1)', coerce: (v: unknown) => (v === undefined ? undefined : parseListen(v, '--metrics')) })
      .option('mount-timeout', { type: 'string', default: '2s', describe: 'report a filesystem whose statfs has not returned after this long as timed out', coerce: (v: unknown) => parseDuration(v, '--mount-timeout', 60_000) })
      .option('fs-include', { type: 'string', array: true, default: [], describe: 'report only these filesystem types (globs), even ones excluded by default', coerce: parseList })
      .option('fs-exclude', { type: 'string', array: true, default: [], describe: 'filesystem types to leave out (globs)', coerce: parseList })
      .option('mount-include', { type: 'string', array: true, default: [], describe: 'report only these mount points (globs), even ones excluded by default', coerce: parseList })
      .option('mount-exclude', { type: 'string', array: true, default: [], describe: 'mount points to leave out (globs)', coerce: parseList })
      .option('announce', announceOption)
      .option('name', nameOption)
      .example('$0 disk serve', 'serve the current directory\'s disk on port 9991')
      .example('$0 disk serve --path /srv --classic', 'report /srv\'s disk, and answer seed clients too')
      .example('$0 disk serve --token-file ~/.netkit-token', 'answer only clients that hold the same secret')
      .example('$0 disk serve --metrics 9100', 'also serve Prometheus metrics on 127.0.0.1:9100'),
  handler: async (argv) => {
    const { runDiskServe } = await import('./serve-run.js');
    await runDiskServe({
      port: argv.port,
      host: argv.host,
      path: argv.path,
      classic: argv.classic,
      quiet: argv.quiet,
      rateLimit: argv['rate-limit'],
      exemptLoopback: argv['exempt-loopback'],
      tokenFile: argv['token-file'],
      metrics: argv.metrics,
      mountTimeoutMs: argv['mount-timeout'],
      filter: { fsInclude: argv['fs-include'], fsExclude: argv['fs-exclude'], mountInclude: argv['mount-include'], mountExclude: argv['mount-exclude'] },
      announce: argv.announce,
      name: argv.name,
    });
  },
};
