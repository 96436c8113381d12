// `netkit file fetch NAME...`: download files, globs and directories from a netkit (or, with --classic, a seed) file server.
import type { CommandModule } from 'yargs';
import { parseCount, parseDuration, parsePort } from '../../cli/args.js';
import { tokenFileOption } from '../secret-option.js';
import { discoverOption, discoverTimeoutOption } from '../discover/options.js';

interface FetchArgs {
  name: string[];
  host?: string;
  port?: number;
  out?: string;
  retries: number;
  force: boolean;
  checksum: boolean;
  preserve: boolean;
  json: boolean;
  quiet: boolean;
  timeout: number;
  classic: boolean;
  fsync: boolean;
  tls: boolean;
  'tls-fingerprint'?: string;
  'tls-ca'?: string;
  'token-file'?: string;
  discover: boolean;
  'discover-timeout': number;
}

export const fetchCommand: CommandModule<object, FetchArgs> = {
  command: 'fetch <name..>',
  describe: 'Download files, globs or whole directories, verified and resumable',
  builder: (y) =>
    y
      .positional('name', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: "paths relative to the served directory: files, directories (fetched whole), quoted globs ('*.iso', 'photos/**/*.jpg'); the first may be HOST:NAME or netkit://HOST[:PORT]/NAME; or one http:// or https:// URL of any web server",
      })
      // No yargs defaults on options that take a value: `-H` with nothing after it must be an error, not localhost.
      .option('host', { alias: 'H', type: 'string', defaultDescription: 'localhost', describe: 'server to fetch from: HOST, HOST:PORT, [IPv6] or [IPv6]:PORT, or a name announced over DNS-SD' })
      .option('port', { alias: 'p', type: 'string', number: true, defaultDescription: '8881', describe: 'server TCP port (1-65535)', coerce: (v: unknown) => parsePort(v, '--port', 1) })
      .option('out', { alias: 'o', type: 'string', defaultDescription: '.', describe: 'directory to write into; for one NAME, a new name for it; - writes one file to stdout' })
      .option('retries', { type: 'string', number: true, default: 5, describe: 'reconnect and resume this many times after a lost, stalled or refused connection (0: never)', coerce: (v: unknown) => parseCount(v, '--retries', 0, 100) })
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'overwrite an existing file that differs from the server\'s' })
      .option('checksum', { alias: 'c', type: 'boolean', default: false, describe: 'compare an existing file by SHA-256 instead of size and time' })
      .option('preserve', { type: 'boolean', default: true, describe: 'keep the modification time and permission bits (less your umask; never setuid, setgid or sticky) (--no-preserve: the time of the fetch, the default mode)' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON result object on stdout' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress bar and no summary line' })
      .option('timeout', { alias: 't', type: 'string', default: '10s', describe: 'give up connecting, or waiting for the handshake and first answer, or for data, after this long (less than 1 KiB/s over it is a stall)', coerce: (v: unknown) => parseDuration(v, '--timeout', 3_600_000) })
      .option('classic', { type: 'boolean', default: false, describe: 'fetch from a seed (classic protocol) server: no verification, no resume' })
      .option('fsync', { type: 'boolean', default: true, describe: 'flush the file to disk before giving it its final name (--no-fsync: faster, but a power failure may damage it)' })
      .option('tls', { type: 'boolean', default: false, describe: 'connect with TLS 1.3; without a pin or CA, trust on first use (~/.config/netkit/known_hosts)' })
      .option('tls-fingerprint', { type: 'string', describe: 'accept only this certificate (sha256:… as printed by `file serve --tls`); implies --tls' })
      .option('tls-ca', { type: 'string', describe: 'verify the server against the CA certificates in this PEM file; implies --tls' })
      .option('token-file', tokenFileOption)
      .option('discover', discoverOption('file'))
      .option('discover-timeout', discoverTimeoutOption)
      .example('$0 file fetch movies/big.iso --host nas', 'download into the current directory; run it again to resume')
      .example("$0 file fetch photos 'docs/*.pdf' -H nas -o ~/in", 'a whole directory and a glob, into ~/in/photos/… and ~/in/docs/…')
      .example('$0 file fetch notes.txt -o - | less', 'to stdout')
      .example('$0 file fetch nas:movies/big.iso', 'the same, scp style (or netkit://nas/movies/big.iso)')
      .example('$0 file fetch notes.txt -o /tmp --json', 'machine-readable result')
      .example('$0 file fetch notes.txt --tls-fingerprint sha256:…', 'encrypted, and only from the server with that certificate')
      .example('$0 file fetch notes.txt --token-file ~/.netkit-token', 'from a server that requires that secret (or set NETKIT_TOKEN)')
      .example('$0 file fetch http://nas:8881/movies/big.iso', 'over HTTP from any web server: resumed with Range, verified when it sends a digest')
      .example('$0 file fetch notes.txt --discover', 'from the one file server that announces itself on this network'),
  handler: async (argv) => {
    const { runFileFetch } = await import('./fetch-run.js');
    await runFileFetch({
      names: argv.name,
      host: argv.host,
      port: argv.port,
      out: argv.out,
      retries: argv.retries,
      force: argv.force,
      checksum: argv.checksum,
      preserve: argv.preserve,
      json: argv.json,
      quiet: argv.quiet,
      timeoutMs: argv.timeout,
      classic: argv.classic,
      fsync: argv.fsync,
      tls: argv.tls || argv['tls-fingerprint'] !== undefined || argv['tls-ca'] !== undefined,
      tlsFingerprint: argv['tls-fingerprint'],
      tlsCa: argv['tls-ca'],
      tokenFile: argv['token-file'],
      discover: argv.discover,
      discoverTimeoutMs: argv['discover-timeout'],
    });
  },
};
