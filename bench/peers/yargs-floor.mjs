// The start-up floor for any yargs CLI: parse `disk query HOST --json` with the same options as netkit's
// command, bundled the way netkit is, and do nothing else (no socket, no output). netkit cannot start
// faster than this while yargs parses its command line.
import yargs from 'yargs';

export async function main(args) {
  await yargs(args)
    .scriptName('netkit')
    .command('disk <command>', 'disk', (y) =>
      y
        .command(
          'query [hosts..]',
          'query',
          (q) =>
            q
              .positional('hosts', { type: 'string', array: true, default: ['localhost'] })
              .option('port', { alias: 'p', type: 'string', default: '9991' })
              .option('timeout', { alias: 't', type: 'string', default: '1s' })
              .option('retries', { alias: 'r', type: 'string', default: '2' })
              .option('all', { alias: 'a', type: 'boolean', default: false })
              .option('json', { type: 'boolean', default: false })
              .option('classic', { type: 'boolean', default: false })
              .option('token-file', { type: 'string' }),
          () => undefined,
        )
        .demandCommand(1),
    )
    .demandCommand(1)
    .recommendCommands()
    .strict()
    .help()
    .version('0')
    .exitProcess(false)
    .parseAsync();
  return 0;
}
