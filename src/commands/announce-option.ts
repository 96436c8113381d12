// The --announce/--no-announce and --name options of both servers, and how announcing is reported on stderr.
import { sanitize } from '../cli/output.js';
import { NetkitError } from '../errors.js';
import type { AnnounceEvent, AnnounceServerOptions, Announcer } from '../services/announce.js';

export const announceOption = {
  type: 'boolean',
  default: true,
  describe: 'announce this server over mDNS/DNS-SD so `netkit discover` finds it (--no-announce: stay silent)',
} as const;

export const nameOption = {
  type: 'string',
  describe: 'the name to announce [default: this host name]',
  coerce: (v: unknown) => parseInstanceName(v),
} as const;

/** An instance name: one DNS label (1-63 bytes of UTF-8), no dots, no control characters. */
export function parseInstanceName(value: unknown): string {
  const text = String(value);
  const bad = (why: string): NetkitError => new NetkitError('USAGE', `invalid --name ${JSON.stringify(text.slice(0, 80))}: ${why}`, 'for example --name nas or --name "Office NAS"');
  if (text.trim() === '') throw bad('empty');
  if (text.includes('.')) throw bad('a DNS-SD name cannot contain a dot');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) throw bad('control characters are not allowed');
  if (Buffer.byteLength(text) > 63) throw bad('longer than 63 bytes');
  return text;
}

function where(links: readonly { iface: string; address: string }[]): string {
  return links.map((l) => `${l.iface} ${l.address}`).join(', ');
}

/** stderr lines for announcing. Problems are always shown; progress only without --quiet. */
export function announceReporter(write: (line: string) => void, quiet: boolean, type: string): (e: AnnounceEvent) => void {
  const note = (text: string): void => {
    if (!quiet) write(`netkit: ${text}\n`);
  };
  return (e) => {
    switch (e.type) {
      case 'announced':
        return note(`announcing "${sanitize(e.instance)}" (${type}) on ${where(e.interfaces)}`);
      case 'renamed':
        return write(`netkit: the name "${sanitize(e.from)}" is taken on the network; announcing as "${sanitize(e.to)}"\n`);
      case 'host-renamed':
        return write(`netkit: the host name "${sanitize(e.from)}" is taken on the network (${sanitize(e.by)} answers for it); announcing this machine as "${sanitize(e.to)}"\n`);
      case 'interface-up':
        return note(`${e.link.iface} came up: announcing there too (${e.link.address})`);
      case 'interface-down':
        return note(`${e.link.iface} went away (${e.link.address}): no longer announcing there`);
      case 'no-interface':
        return note('not announcing yet: no network interface with an IPv4 address besides loopback (announcing starts when one comes up)');
      case 'conflict':
        return write(`netkit: warning: ${sanitize(e.from)} also claims "${sanitize(e.name)}"; probing again (the loser takes another name)\n`);
      case 'warning':
        return write(`netkit: warning: ${sanitize(e.message)}\n`);
    }
  };
}

/**
 * Start announcing as the servers do after their "listening" line (nothing at all with --no-announce,
 * and only a note for a server bound to loopback). A failure to announce never stops the server.
 */
export async function startServerAnnouncement(
  announce: boolean,
  o: Omit<AnnounceServerOptions, 'onEvent'>,
  write: (line: string) => void,
  quiet: boolean,
): Promise<Announcer | undefined> {
  if (!announce) return undefined;
  const { startAnnouncing } = await import('../services/announce.js');
  const type = o.kind === 'disk' ? '_netkit-disk._udp' : '_netkit-file._tcp';
  try {
    const announcer = await startAnnouncing({ ...o, onEvent: announceReporter(write, quiet, type) });
    if (!announcer && !quiet) write('netkit: not announcing: listening on loopback only\n');
    return announcer;
  } catch (err) {
    write(`netkit: warning: cannot announce: ${sanitize(err instanceof Error ? err.message : String(err))}\n`);
    return undefined;
  }
}
