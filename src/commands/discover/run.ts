// Running `netkit discover`: print each server as it answers (or JSON at the end), warn about fingerprints, explain an empty result.
import { discoverServers, nothingFound, type ServiceKind } from '../../services/discover.js';
import { safeJson, sanitize, useColor } from '../../cli/output.js';
import { fingerprintWarning, headerLine, incompleteNote, serverJson, serverLine, type Paint } from './render.js';

export interface DiscoverRunOptions {
  kinds: ServiceKind[];
  timeoutMs: number;
  json: boolean;
}

async function painter(): Promise<Paint | undefined> {
  if (!useColor(process.stdout)) return undefined;
  const { default: chalk } = await import('chalk');
  return { header: (s) => chalk.bold(s), bad: (s) => chalk.red.bold(s) };
}

export async function runDiscover(o: DiscoverRunOptions): Promise<void> {
  const paint = o.json ? undefined : await painter();
  let shown = 0;
  const result = await discoverServers({
    kinds: o.kinds,
    timeoutMs: o.timeoutMs,
    onFound: (s) => {
      const warning = fingerprintWarning(s);
      if (warning) process.stderr.write(warning);
      const note = incompleteNote(s, o.timeoutMs);
      if (note) process.stderr.write(note);
      if (o.json) return;
      if (shown++ === 0) process.stdout.write(headerLine(paint));
      process.stdout.write(serverLine(s, paint));
    },
    onGone: (s) => void process.stderr.write(`netkit: "${sanitize(s.name, 64)}" (${s.kind}) said goodbye: it is no longer there\n`),
    onWarning: (m) => void process.stderr.write(`netkit: warning: ${sanitize(m)}\n`),
  });
  if (o.json) process.stdout.write(`${safeJson(result.servers.map(serverJson), 2)}\n`);
  if (result.servers.length === 0) throw nothingFound(o.kinds, result);
  const n = result.servers.length;
  process.stderr.write(`netkit: ${n} server${n === 1 ? '' : 's'} answered within ${(o.timeoutMs / 1000).toFixed(1)}s (asked on ${result.interfaces.join(', ')})\n`);
}
