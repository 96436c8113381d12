// `netkit file serve [DIR]`: serve the regular files under DIR to v1, HTTP and classic clients until SIGINT/SIGTERM.
import type { CommandModule } from 'yargs';
import { parseCount, parseDuration, parsePort } from '../../cli/args.js';
import { tokenFileOption } from '../secret-option.js';
import { announceOption, nameOption } from '../announce-option.js';

interface ServeArgs {
  dir: string;
  port: number;
  host?: string;
  'max-connections': number;
  'max-per-source': number;
  'header-timeout': number;
  'idle-timeout': number;
  grace: number;
  'refuse-hard-links': boolean;
  http: boolean;
  quiet: boolean;
  tls: boolean;
  'tls-cert'?: string;
  'tls-key'?: string;
  'token-file'?: string;
  announce: boolean;
  name?: string;
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve [dir]',
  describe: 'Serve the files under DIR (TCP: netkit, HTTP and classic clients on one port)',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', default: '.', describe: 'directory to serve; nothing outside it is reachable' })
      .option('port', { alias: 'p', type: 'string', number: true, default: 8881, describe: 'TCP port; 0 picks a free one', coerce: (v: unknown) => parsePort(v) })
      .option('host', { type: 'string', describe: 'address to listen on [default: every interface, IPv6 and IPv4]' })
      .option('max-connections', { type: 'string', number: true, default: 64, describe: 'connections served at once; more get a "busy" answer', coerce: (v: unknown) => parseCount(v, '--max-connections', 1, 100_000) })
      .option('max-per-source', { type: 'string', number: true, default: 32, describe: 'connections at once from one address (an IPv6 /64 counts as one); more get a "busy" answer', coerce: (v: unknown) => parseCount(v, '--max-per-source', 1, 100_000) })
      .option('header-timeout', { type: 'string', default: '10s', describe: 'drop a client that has not sent its whole request by then', coerce: (v: unknown) => parseDuration(v, '--header-timeout', 600_000) })
      .option('idle-timeout', { type: 'string', default: '30s', describe: 'drop a client that reads nothing for this long', coerce: (v: unknown) => parseDuration(v, '--idle-timeout', 3_600_000) })
      .option('grace', { type: 'string', default: '10s', describe: 'on SIGINT/SIGTERM, let running transfers finish for this long', coerce: (v: unknown) => parseDuration(v, '--grace', 3_600_000) })
      .option('refuse-hard-links', { type: 'boolean', default: false, describe: 'refuse files with more than one hard link (a link into DIR from elsewhere on the same file system)' })
      .option('http', { type: 'boolean', default: true, describe: 'also answer HTTP/1.1 on the port (browsers, curl, wget; HTTPS with --tls); --no-http turns it off' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'do not log each transfer on stderr' })
      .option('tls', { type: 'boolean', default: false, describe: 'encrypt with TLS 1.3; prints the certificate fingerprint clients pin' })
      .option('tls-cert', { type: 'string', describe: 'PEM certificate for --tls [default: a self-signed one generated once and kept in ~/.config/netkit/tls]' })
      .option('tls-key', { type: 'string', describe: 'PEM private key for --tls-cert' })
      .option('token-file', tokenFileOption)
      .option('announce', announceOption)
      .option('name', nameOption)
      .example('$0 file serve ~/share', 'serve ~/share on port 8881')
      .example('$0 file serve . --port 0 --host 127.0.0.1', 'this machine only, any free port')
      .example('$0 file serve ~/share --tls', 'encrypted; clients fetch with --tls')
      .example('$0 file serve ~/share --token-file ~/.netkit-token', 'only clients that hold the same secret (or set NETKIT_TOKEN)'),
  handler: async (argv) => {
    const { runFileServe } = await import('./serve-run.js');
    await runFileServe({
      dir: argv.dir,
      port: argv.port,
      host: argv.host,
      maxConnections: argv['max-connections'],
      maxPerSource: argv['max-per-source'],
      headerTimeoutMs: argv['header-timeout'],
      idleTimeoutMs: argv['idle-timeout'],
      graceMs: argv.grace,
      refuseHardLinks: argv['refuse-hard-links'],
      http: argv.http,
      quiet: argv.quiet,
      tls: argv.tls || argv['tls-cert'] !== undefined || argv['tls-key'] !== undefined,
      tlsCert: argv['tls-cert'],
      tlsKey: argv['tls-key'],
      tokenFile: argv['token-file'],
      announce: argv.announce,
      name: argv.name,
    });
  },
};
