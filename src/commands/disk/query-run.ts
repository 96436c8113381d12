// Running `netkit disk query`: parse the hosts, ask them, print the table or JSON, report the ones that failed.
import { parseTarget, queryDisks, type HostResult } from '../../services/disk-query.js';
import { sanitize, useColor } from '../../cli/output.js';
import { setExitCode } from '../../cli/state.js';
import { renderJson, renderTable, type Paint } from './render.js';
import { loadCliSecret } from '../secret-option.js';
import { NetkitError } from '../../errors.js';

export interface QueryRunOptions {
  hosts: string[];
  port: number;
  timeoutMs: number;
  retries: number;
  all: boolean;
  json: boolean;
  classic: boolean;
  tokenFile?: string | undefined;
}

async function painter(): Promise<Paint | undefined> {
  if (!useColor(process.stdout)) return undefined;
  const { default: chalk } = await import('chalk');
  return { header: (s) => chalk.bold(s), warn: (s) => chalk.yellow(s), bad: (s) => chalk.red(s), dim: (s) => chalk.dim(s) };
}

export async function runDiskQuery(o: QueryRunOptions): Promise<void> {
  // Bad ports and empty names are usage errors (exit 2) before anything is sent.
  const targets = (o.hosts.length > 0 ? o.hosts : ['localhost']).map((h) => parseTarget(h, o.port));
  const secret = await loadCliSecret(o.tokenFile);
  if (secret && o.classic) {
    throw new NetkitError('USAGE', `--classic cannot be used with a secret (${secret.source}): the classic protocol cannot authenticate`, 'unset NETKIT_TOKEN for a seed server, or leave out --classic');
  }
  const results: HostResult[] = await queryDisks(targets, { timeoutMs: o.timeoutMs, retries: o.retries, all: o.all, classic: o.classic, secret: secret?.key('disk') });
  if (o.json) {
    process.stdout.write(renderJson(results));
  } else if (results.some((r) => r.ok)) {
    process.stdout.write(renderTable(results, await painter()));
  }
  for (const r of results) {
    if (r.ok) continue;
    // The message may quote the peer (a typed error's text): never let it drive the terminal.
    process.stderr.write(`netkit: ${sanitize(r.error.message)}\n`);
    if (r.error.hint) process.stderr.write(`hint: ${r.error.hint}\n`);
    setExitCode(r.error.exitCode);
  }
}
