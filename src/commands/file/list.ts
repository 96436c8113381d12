// `netkit file list [PATH]`: what a netkit file server offers under PATH, as a table like `ls -l` or as JSON.
import type { CommandModule } from 'yargs';
import { parseDuration, parsePort } from '../../cli/args.js';
import { tokenFileOption } from '../secret-option.js';
import { discoverOption, discoverTimeoutOption } from '../discover/options.js';

interface ListArgs {
  path?: string;
  host?: string;
  port?: number;
  recursive: boolean;
  json: boolean;
  quiet: boolean;
  timeout: number;
  tls: boolean;
  'tls-fingerprint'?: string;
  'tls-ca'?: string;
  'token-file'?: string;
  discover: boolean;
  'discover-timeout': number;
}

export const listCommand: CommandModule<object, ListArgs> = {
  command: 'list [path]',
  describe: 'List the files and directories a file server offers',
  builder: (y) =>
    y
      .positional('path', { type: 'string', describe: 'directory to list, relative to the served directory (default: its root); or HOST:PATH, netkit://HOST[:PORT]/PATH' })
      .option('host', { alias: 'H', type: 'string', defaultDescription: 'localhost', describe: 'server: HOST, HOST:PORT, [IPv6] or [IPv6]:PORT, or a name announced over DNS-SD' })
      .option('port', { alias: 'p', type: 'string', number: true, defaultDescription: '8881', describe: 'server TCP port (1-65535)', coerce: (v: unknown) => parsePort(v, '--port', 1) })
      .option('recursive', { alias: 'r', type: 'boolean', default: false, describe: 'list the whole tree below PATH' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON array of entries on stdout' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no note about entries the server leaves out' })
      .option('timeout', { alias: 't', type: 'string', default: '10s', describe: 'give up connecting, or waiting for data, after this long', coerce: (v: unknown) => parseDuration(v, '--timeout', 3_600_000) })
      .option('tls', { type: 'boolean', default: false, describe: 'connect with TLS 1.3; without a pin or CA, trust on first use (~/.config/netkit/known_hosts)' })
      .option('tls-fingerprint', { type: 'string', describe: 'accept only this certificate (sha256:…); implies --tls' })
      .option('tls-ca', { type: 'string', describe: 'verify the server against the CA certificates in this PEM file; implies --tls' })
      .option('token-file', tokenFileOption)
      .option('discover', { ...discoverOption('file'), describe: 'list the one file server that announces itself on this network; with several, list them and stop' })
      .option('discover-timeout', discoverTimeoutOption)
      .example('$0 file list -H nas', 'what nas serves at its root')
      .example('$0 file list photos -r -H nas --json', 'the whole photos tree as one JSON array'),
  handler: async (argv) => {
    const { runFileList } = await import('./list-run.js');
    await runFileList({
      path: argv.path ?? '',
      host: argv.host,
      port: argv.port,
      recursive: argv.recursive,
      json: argv.json,
      quiet: argv.quiet,
      timeoutMs: argv.timeout,
      tls: argv.tls || argv['tls-fingerprint'] !== undefined || argv['tls-ca'] !== undefined,
      tlsFingerprint: argv['tls-fingerprint'],
      tlsCa: argv['tls-ca'],
      tokenFile: argv['token-file'],
      discover: argv.discover,
      discoverTimeoutMs: argv['discover-timeout'],
    });
  },
};
