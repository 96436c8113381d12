// The netkit command line: one yargs parser, one failure path, one exit code.
import yargs from 'yargs';
import type { Argv } from 'yargs';
import { NetkitError, isNetkitError } from '../errors.js';
import { coercionError } from './args.js';
import { reportError } from './output.js';
import { version } from '../version.js';
import { runState } from './state.js';
import { guardStdio, stdoutFailure } from './stdio.js';
import { diskCommand } from '../commands/disk/index.js';
import { fileCommand } from '../commands/file/index.js';
import { tokenCommand } from '../commands/token.js';
import { discoverCommand } from '../commands/discover/index.js';

const COMMANDS: Record<string, readonly string[]> = { disk: ['serve', 'query'], file: ['serve', 'fetch', 'list'], discover: [], token: [] };

/**
 * Where argv stands in the command tree: the command path it names (for pointing a usage error at the
 * right --help) and the first word that names no command there (for "unknown command" messages).
 */
function locate(args: readonly string[]): { path: string; unknown?: string } {
  const words = args.filter((a) => !a.startsWith('-'));
  const [group, sub] = words;
  if (group === undefined) return { path: 'netkit' };
  const subs = COMMANDS[group];
  if (subs === undefined) return { path: 'netkit', unknown: group };
  if (sub === undefined || subs.length === 0) return { path: `netkit ${group}` };
  return subs.includes(sub) ? { path: `netkit ${group} ${sub}` } : { path: `netkit ${group}`, unknown: sub };
}

/** yargs' own wording, made to say what went wrong in netkit's terms. */
function usageMessage(msg: string, args: readonly string[]): string {
  const where = locate(args);
  if (msg.startsWith('Did you mean') && where.unknown !== undefined) return `unknown command '${where.unknown}'. ${msg}`;
  const unknown = /^Unknown arguments?: (.*)$/.exec(msg);
  if (unknown) {
    const names = unknown[1]!.split(', ');
    const isOption = (n: string): boolean => args.some((a) => a === `--${n}` || a === `-${n}` || a.startsWith(`--${n}=`));
    const options = names.filter(isOption).map((n) => (n.length === 1 ? `-${n}` : `--${n}`));
    const extra = names.filter((n) => !isOption(n));
    if (options.includes('--token')) return 'unknown option --token: a secret on the command line is visible to every user of the machine; use --token-file FILE or NETKIT_TOKEN';
    if (options.length > 0) return `unknown option${options.length > 1 ? 's' : ''} ${options.join(', ')}`;
    return `unexpected argument${extra.length > 1 ? 's' : ''} '${extra.join("', '")}'`;
  }
  if (msg.startsWith('Not enough non-option arguments')) return `'${where.path}' is missing a required argument`;
  return msg;
}

export function buildParser(args: readonly string[]): Argv {
  return yargs([...args])
    .scriptName('netkit')
    .usage('netkit: disk-space queries and verified file transfer for small networks\n\nUsage: $0 <command> [options]')
    .command(diskCommand)
    .command(fileCommand)
    .command(discoverCommand)
    .command(tokenCommand)
    .demandCommand(1, 'choose a command: disk, file, discover or token')
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
      const help = `run '${locate(args).path} --help' for usage`;
      // A coercion's own hint (e.g. that a client needs the server's port) says more than --help does.
      const coerced = coercionError(err?.message);
      if (coerced) throw new NetkitError('USAGE', coerced.message, coerced.hint ?? help);
      throw new NetkitError('USAGE', usageMessage(msg || err?.message || 'invalid usage', args), help);
    });
}

/** Options whose value may be left out (`disk query --watch` means every 2 s). */
const OPTIONAL_VALUE: ReadonlySet<string> = new Set(['watch', 'w']);

/** The key a user typed for an option, as they would write it: `--host` or `-H`. */
function flagName(key: string): string {
  return key.length === 1 ? `-${key}` : `--${key}`;
}

/**
 * An option given an empty value is a usage error, never its default: `-H "$HOST"` with HOST unset
 * must not quietly mean localhost. yargs turns `-H` with nothing after it into the default (options
 * that take a value have no yargs default for this reason) or into '', so look at both the raw words
 * and the parsed values.
 */
function rejectEmptyValues(args: readonly string[], argv: Record<string, unknown>): void {
  const optional = (key: string): boolean => OPTIONAL_VALUE.has(key);
  const end = args.indexOf('--');
  const words = end < 0 ? args : args.slice(0, end);
  words.forEach((word, i) => {
    const m = /^(?:--([^=]+)|-([A-Za-z]+))$/.exec(word);
    if (!m) return;
    const key = m[1] ?? m[2]!.slice(-1);
    const value = argv[key];
    if (value === undefined || typeof value === 'boolean' || optional(key)) return; // a flag, an optional value, or not an option of this command
    const next = words[i + 1];
    if (next === undefined || (next.startsWith('-') && next !== '-' && !/^-\d/.test(next))) {
      throw new NetkitError('USAGE', `option ${flagName(key)} needs a value`, `run '${locate(args).path} --help' for usage`);
    }
  });
  for (const [key, value] of Object.entries(argv)) {
    if (key === '_' || key === '$0' || optional(key) || /[A-Z]/.test(key.slice(1))) continue; // camelCase copies of kebab keys
    if (value === '' || (Array.isArray(value) && value.includes(''))) {
      const positional = !args.some((a) => a === flagName(key) || a.startsWith(`${flagName(key)}=`));
      throw new NetkitError('USAGE', positional ? `an empty ${key.toUpperCase()} is not allowed` : `option ${flagName(key)} needs a value, not an empty one`, `run '${locate(args).path} --help' for usage`);
    }
  }
}

/** Run netkit with the given arguments (without `node` and the script path) and return its exit code. */
export async function main(args: readonly string[]): Promise<number> {
  guardStdio();
  let code: number;
  try {
    let output = '';
    // With a callback, yargs hands --help and --version text to us instead of console.log, which would
    // swallow a write error (`netkit --help > /dev/full` must not exit 0).
    await buildParser(args)
      .middleware((argv) => rejectEmptyValues(args, argv as Record<string, unknown>), true)
      .parseAsync([...args], {}, (_err, _argv, text) => {
        output = text;
      });
    if (output) process.stdout.write(`${output}\n`);
    code = runState.exitCode;
  } catch (err) {
    // Stopped because stdout failed: the stdout failure below is the one message.
    const stdoutToo = isNetkitError(err) && err.code === 'OUTPUT' ? await stdoutFailure() : undefined;
    code = stdoutToo ? stdoutToo.exitCode : reportError(err, process.stderr);
    // A monitoring plugin reports a bad option, or anything else that stops the check, as UNKNOWN (3).
    if (wantsNagios(args)) {
      process.stdout.write(`DISK UNKNOWN - ${err instanceof Error ? err.message.split('\n')[0] : 'the check could not run'}\n`);
      code = 3;
    }
  }
  const lost = await stdoutFailure();
  if (lost) {
    const failedToo = reportError(lost, process.stderr);
    return code === 0 ? failedToo : code;
  }
  return code;
}

/** `--format nagios` (or `--format=nagios`) among the arguments. */
function wantsNagios(args: readonly string[]): boolean {
  return args.some((a, i) => a === '--format=nagios' || (a === '--format' && args[i + 1] === 'nagios'));
}
