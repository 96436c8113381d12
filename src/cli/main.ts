// The netkit command line: one yargs parser, one failure path, one exit code.
import yargs from 'yargs';
import type { Argv } from 'yargs';
import { NetkitError, isNetkitError } from '../errors.js';
import { reportError } from './output.js';
import { version } from '../version.js';
import { runState } from './state.js';
import { diskCommand } from '../commands/disk/index.js';
import { fileCommand } from '../commands/file/index.js';
import { tokenCommand } from '../commands/token.js';

/** The words of argv that name a command, for pointing a usage error at the right --help. */
function commandPath(args: readonly string[]): string {
  const words: string[] = [];
  for (const a of args) {
    if (a.startsWith('-') || words.length === 2) break;
    words.push(a);
  }
  const known: Record<string, string[]> = { disk: ['serve', 'query'], file: ['serve', 'fetch'], token: [] };
  const [group, sub] = words;
  if (!group || !(group in known)) return 'netkit';
  return sub && known[group]!.includes(sub) ? `netkit ${group} ${sub}` : `netkit ${group}`;
}

export function buildParser(args: readonly string[]): Argv {
  return yargs([...args])
    .scriptName('netkit')
    .usage('netkit: disk-space queries and verified file transfer for small networks\n\nUsage: $0 <command> [options]')
    .command(diskCommand)
    .command(fileCommand)
    .command(tokenCommand)
    .demandCommand(1, 'choose a command: disk or file')
    .recommendCommands()
    .strict()
    .version(version())
    .help()
    .alias('h', 'help')
    .alias('V', 'version')
    .epilogue('Exit codes and every option are described in docs/cli.md.')
    .wrap(Math.min(100, process.stdout.columns || 80))
    .exitProcess(false)
    .fail((msg, err) => {
      if (isNetkitError(err)) throw err;
      // A coerce that throws arrives as a YError; anything else with a message is a usage error too.
      if (err && err.name !== 'YError') throw err;
      throw new NetkitError('USAGE', msg || err?.message || 'invalid usage', `run '${commandPath(args)} --help' for usage`);
    });
}

/** Run netkit with the given arguments (without `node` and the script path) and return its exit code. */
export async function main(args: readonly string[]): Promise<number> {
  try {
    await buildParser(args).parseAsync();
    return runState.exitCode;
  } catch (err) {
    return reportError(err, process.stderr);
  }
}
