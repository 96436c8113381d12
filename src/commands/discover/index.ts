// `netkit discover [--type disk|file] [--timeout 2s] [--json]`: list the netkit servers that announce themselves on this network.
import type { CommandModule } from 'yargs';
import { parseDuration } from '../../cli/args.js';
import { NetkitError } from '../../errors.js';

interface DiscoverArgs {
  type?: 'disk' | 'file';
  timeout: number;
  json: boolean;
}

/** --type: disk or file. */
export function parseKind(value: unknown): 'disk' | 'file' {
  const text = String(value).trim().toLowerCase();
  if (text === 'disk' || text === 'file') return text;
  throw new NetkitError('USAGE', `invalid --type '${String(value)}': expected disk or file`);
}

export const discoverCommand: CommandModule<object, DiscoverArgs> = {
  command: 'discover',
  describe: 'List the netkit servers that announce themselves on this network (mDNS/DNS-SD)',
  builder: (y) =>
    y
      .option('type', { type: 'string', describe: 'only disk or only file servers [default: both]', coerce: (v: unknown) => (v === undefined ? undefined : parseKind(v)) })
      .option('timeout', { alias: 't', type: 'string', default: '2s', describe: 'listen this long (asking again meanwhile)', coerce: (v: unknown) => parseDuration(v, '--timeout', 600_000) })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON array on stdout when the time is up' })
      .example('$0 discover', 'every netkit server on this network, as they answer')
      .example('$0 discover --type file --json | jq', 'file servers only, for scripts'),
  handler: async (argv) => {
    const { runDiscover } = await import('./run.js');
    await runDiscover({ kinds: argv.type ? [argv.type] : ['disk', 'file'], timeoutMs: argv.timeout, json: argv.json });
  },
};
