// `netkit disk query [HOST...]`: ask one or many disk servers and print a df -h style table or JSON.
import type { CommandModule } from 'yargs';
import { parseCount, parseDuration, parsePort } from '../../cli/args.js';
import { tokenFileOption } from '../secret-option.js';

interface QueryArgs {
  hosts?: string[];
  host?: string[];
  port: number;
  timeout: number;
  retries: number;
  all: boolean;
  json: boolean;
  classic: boolean;
  'token-file'?: string;
}

export const queryCommand: CommandModule<object, QueryArgs> = {
  command: 'query [hosts..]',
  describe: 'Ask disk servers how much space they have',
  builder: (y) =>
    y
      .positional('hosts', { type: 'string', array: true, defaultDescription: 'localhost', describe: 'HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; several are asked at once' })
      .option('host', { alias: 'H', type: 'string', array: true, describe: 'a host to ask, as for HOSTS (repeatable; adds to them)' })
      .option('port', { alias: 'p', type: 'string', default: 9991, describe: 'UDP port for hosts given without one', coerce: (v: unknown) => parsePort(v) })
      .option('timeout', { alias: 't', type: 'string', default: '1s', describe: 'wait for the first attempt; each retry waits twice as long', coerce: (v: unknown) => parseDuration(v, '--timeout', 60_000) })
      .option('retries', { alias: 'r', type: 'string', default: 2, describe: 'attempts after the first', coerce: (v: unknown) => parseCount(v, '--retries', 0, 10) })
      .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'every real filesystem, not only the served one' })
      .option('json', { type: 'boolean', default: false, describe: 'machine output with exact byte counts' })
      .option('classic', { type: 'boolean', default: false, describe: 'ask a seed (classic protocol) server instead' })
      .option('token-file', tokenFileOption)
      .example('$0 disk query', 'the disk of the server on this machine')
      .example('$0 disk query nas backup:9000 [::1]:9991 --all', 'several hosts at once, every filesystem')
      .example('$0 disk query --json host1 | jq', 'exact bytes for scripts'),
  handler: async (argv) => {
    const { runDiskQuery } = await import('./query-run.js');
    await runDiskQuery({
      hosts: [...(argv.hosts ?? []), ...(argv.host ?? [])].map(String),
      port: argv.port,
      timeoutMs: argv.timeout,
      retries: argv.retries,
      all: argv.all,
      json: argv.json,
      classic: argv.classic,
      tokenFile: argv['token-file'],
    });
  },
};
