// Where `file fetch` connects: -H as given, an announced name behind -H, or the one server --discover finds; notices on stderr.
import { sanitize } from '../../cli/output.js';
import type { DiscoveredServer } from '../../services/discover.js';
import { fingerprintWarning, incompleteNote } from './render.js';

export interface LocateOptions {
  host: string;
  port: number;
  /** `host` can only be an announced instance name (it has a space, say): DNS-SD alone is asked. */
  instance?: boolean;
  discover?: boolean;
  discoverTimeoutMs?: number;
  quiet: boolean;
}

export interface Located {
  host: string;
  port: number;
  /** What the server announced, when it was found through DNS-SD (a hint, never trust). */
  announced?: DiscoveredServer;
}

/**
 * The system resolver is asked first (not for a name only DNS-SD can know), so a name it knows costs one lookup and no multicast. An
 * announced fingerprint that differs from known_hosts is warned about here, before connecting.
 */
export async function locateFileServer(o: LocateOptions): Promise<Located> {
  const { discoverOne, describeServer } = await import('../../services/discover.js');
  const { resolveTarget } = await import('../../services/resolve-name.js');
  const onWarning = (m: string): void => void process.stderr.write(`netkit: warning: ${sanitize(m)}\n`);
  let located: Located;
  if (o.discover) {
    const s = await discoverOne('file', { timeoutMs: o.discoverTimeoutMs, onWarning });
    located = { host: s.address, port: s.port, announced: s };
  } else {
    const t = await resolveTarget(o.host, 'file', { timeoutMs: o.discoverTimeoutMs, onWarning, instanceOnly: o.instance === true });
    // A `.local` name answered over mDNS comes back as an address; a name the resolver knows, as it is.
    located = t.server ? { host: t.host, port: t.port ?? o.port, announced: t.server } : { host: t.host, port: o.port };
  }
  const a = located.announced;
  if (a) {
    if (!o.quiet) process.stderr.write(`netkit: fetching from ${describeServer(a)}, found through DNS-SD\n`);
    const warning = fingerprintWarning(a);
    if (warning) process.stderr.write(warning);
    const note = o.quiet ? undefined : incompleteNote(a, o.discoverTimeoutMs ?? 2000);
    if (note) process.stderr.write(note);
  }
  return located;
}
