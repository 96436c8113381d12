// Finding netkit servers with DNS-SD, and what their announced fingerprints say against known_hosts; results in, never printed here.
import { NetkitError } from '../errors.js';
import { sanitize } from '../cli/output.js';
import { hostKey, knownHostsPath, parseFingerprint, readKnownHosts } from '../transport/trust.js';
import type { FoundService } from '../transport/mdns-browse.js';
import type { LinkInfo, ServiceKind } from '../transport/mdns.js';

export type { ServiceKind };

/** `netkit discover --timeout` and `--discover-timeout` default. */
export const DEFAULT_DISCOVER_MS = 2000;

/** What known_hosts says about an announced fingerprint. A hint: only the TLS handshake proves anything. */
export type FingerprintTrust =
  | { status: 'known'; key: string }
  | { status: 'new' }
  | { status: 'changed'; key: string; expected: string; line: number; file: string }
  | { status: 'unreadable'; message: string };

export interface DiscoveredServer {
  kind: ServiceKind;
  /** The announced instance name (peer text). */
  name: string;
  /** The SRV target, e.g. `nas.local`. */
  host: string;
  port: number;
  addresses: string[];
  /** The address to use: the one the answer came from when it is announced (or when none was), else the first IPv4. */
  address: string;
  /** Reported at the deadline without its address records (`address` is where its SRV answer came from) or its TXT record. */
  missing?: ('addresses' | 'txt')[];
  /** TXT v, auth, tls (undefined when absent or not understood). */
  version?: number;
  auth?: boolean;
  tls?: boolean;
  /** TXT fp in canonical form, when it parses. */
  fingerprint?: string;
  /** TXT fp as sent, when it does not parse. */
  badFingerprint?: string;
  trust?: FingerprintTrust;
  /** When it was found, ms after discovery started. */
  elapsedMs: number;
  /** The responder: where its SRV answer came from. */
  source: string;
}

export interface DiscoverOptions {
  kinds: readonly ServiceKind[];
  timeoutMs?: number;
  /** known_hosts to compare fingerprints with (default ~/.config/netkit/known_hosts). */
  knownHostsFile?: string;
  /** Each server as soon as it is complete. */
  onFound?: (server: DiscoveredServer) => void;
  /** A server reported by onFound said goodbye (it is left out of the result). */
  onGone?: (server: DiscoveredServer) => void;
  onWarning?: (message: string) => void;
  /** Injected interface list (tests); by default the machine's. */
  links?: () => LinkInfo[];
}

export interface DiscoverResult {
  servers: DiscoveredServer[];
  /** Interface names asked on. */
  interfaces: string[];
  timeoutMs: number;
}

const flag = (v: string | undefined): boolean | undefined => (v === '1' ? true : v === '0' ? false : undefined);

/** Compare `fingerprint` with every known_hosts line for this server's names and addresses. */
export function fingerprintTrust(fingerprint: string, names: readonly string[], port: number, file = knownHostsPath()): FingerprintTrust {
  let entries;
  try {
    entries = readKnownHosts(file);
  } catch (err) {
    return { status: 'unreadable', message: err instanceof Error ? err.message : String(err) };
  }
  const keys = [...new Set(names.map((n) => hostKey(n, port)))];
  const matching = entries.filter((e) => keys.includes(e.host));
  const same = matching.find((e) => e.fingerprint === fingerprint);
  if (same) return { status: 'known', key: same.host };
  const other = matching[0];
  if (other) return { status: 'changed', key: other.host, expected: other.fingerprint, line: other.line, file };
  return { status: 'new' };
}

/** The names a client may have recorded this server under: instance, host (with and without .local), addresses. */
function trustNames(s: FoundService, address: string): string[] {
  return [s.instance, s.host, s.host.replace(/\.local$/i, ''), ...s.addresses, address];
}

export function toDiscovered(s: FoundService, knownHostsFile?: string): DiscoveredServer {
  const version = /^\d{1,5}$/.test(s.txt.v ?? '') ? Number(s.txt.v) : undefined;
  const d: DiscoveredServer = {
    kind: s.kind,
    name: s.instance,
    host: s.host,
    port: s.port,
    addresses: s.addresses,
    address: s.addresses.includes(s.source) ? s.source : (s.addresses[0] ?? s.source),
    elapsedMs: s.foundMs,
    source: s.source,
  };
  if (s.missing?.length) d.missing = [...s.missing];
  if (version !== undefined) d.version = version;
  const auth = flag(s.txt.auth);
  const tls = flag(s.txt.tls);
  if (auth !== undefined) d.auth = auth;
  if (tls !== undefined) d.tls = tls;
  if (s.txt.fp !== undefined) {
    try {
      d.fingerprint = parseFingerprint(s.txt.fp);
      d.trust = fingerprintTrust(d.fingerprint, trustNames(s, d.address), s.port, knownHostsFile);
    } catch {
      d.badFingerprint = s.txt.fp.slice(0, 100);
    }
  }
  return d;
}

/** The same service twice: one responder's report and a later one. */
function sameService(a: DiscoveredServer, s: FoundService): boolean {
  return a.kind === s.kind && a.name === s.instance && a.source === s.source;
}

/**
 * Listen for `timeoutMs` (asking again meanwhile) and return every server that answered, in the order
 * found. One name answered by two responders is two servers. At the deadline, a server that sent its
 * SRV but not its addresses or TXT is reported with what it lacks; one that never sent its SRV is a warning.
 */
export async function discoverServers(opts: DiscoverOptions): Promise<DiscoverResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DISCOVER_MS;
  const { browse } = await import('../transport/mdns-browse.js');
  const servers: DiscoveredServer[] = [];
  const browser = await browse({
    kinds: opts.kinds,
    onUp: (s) => {
      const d = toDiscovered(s, opts.knownHostsFile);
      servers.push(d);
      opts.onFound?.(d);
    },
    onDown: (s) => {
      const i = servers.findIndex((d) => sameService(d, s));
      if (i >= 0) opts.onGone?.(servers.splice(i, 1)[0]!);
    },
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    ...(opts.links ? { links: opts.links } : {}),
  });
  await new Promise((resolve) => setTimeout(resolve, timeoutMs));
  browser.finish();
  for (const n of browser.nameless()) {
    opts.onWarning?.(`"${sanitize(n.instance, 64)}" (${n.kind}) answered, but did not say where it listens (no SRV record) within ${(timeoutMs / 1000).toFixed(1)}s`);
  }
  await browser.close();
  return { servers, interfaces: browser.interfaces.map((l) => l.iface), timeoutMs };
}

const KIND_NAMES: Record<ServiceKind, string> = { disk: 'disk', file: 'file' };

/** `netkit file server`, `netkit disk server`, or `netkit server` for both. */
export function what(kinds: readonly ServiceKind[]): string {
  return kinds.length === 1 ? `netkit ${KIND_NAMES[kinds[0]!]} server` : 'netkit server';
}

/** Why nothing answered, and what to do instead: discovery always has a manual fallback. */
export function nothingFound(kinds: readonly ServiceKind[], result: Pick<DiscoverResult, 'interfaces' | 'timeoutMs'>): NetkitError {
  const on = result.interfaces.length > 0 ? ` on ${result.interfaces.join(', ')}` : '';
  return new NetkitError(
    'NOT_FOUND',
    `no ${what(kinds)} announced itself${on} within ${(result.timeoutMs / 1000).toFixed(1)}s`,
    'discovery uses multicast DNS (UDP 5353), which stays on the local link: it does not cross a VPN or a router, ' +
      'Wi-Fi client isolation and firewalls block it, and a server started with --no-announce stays silent. ' +
      'Name the server instead: -H HOST (disk query: HOST arguments or --hosts-file FILE)',
  );
}

/** `name (address:port)`, printable. */
export function describeServer(s: DiscoveredServer): string {
  const at = s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;
  return `"${sanitize(s.name, 64)}" (${at})`;
}

/** Several servers where one was needed: list them all, and say how to choose (by name, or by address where names repeat). */
export function ambiguous(servers: readonly DiscoveredServer[], summary: string): NetkitError {
  const list = servers.map((s) => `\n  ${describeServer(s)}`).join('');
  const names = new Set(servers.map((s) => s.name));
  const first = servers[0]!;
  const hint =
    names.size < servers.length
      ? `the same name is announced by different machines; name one by address, e.g. -H ${first.address.includes(':') ? `[${first.address}]` : first.address}:${first.port}`
      : `name it with -H, e.g. -H '${sanitize(first.name, 64).replace(/'/g, "'\\''")}'`;
  return new NetkitError('AMBIGUOUS', `${servers.length} ${summary}; choose one:${list}`, hint);
}

/**
 * The one server of `kind` on the link. None: NOT_FOUND with the fallback; several (two names, or one
 * name answered by two machines): AMBIGUOUS listing them, so the caller never picks one at random.
 */
export async function discoverOne(kind: ServiceKind, opts: Omit<DiscoverOptions, 'kinds'> = {}): Promise<DiscoveredServer> {
  const result = await discoverServers({ ...opts, kinds: [kind] });
  if (result.servers.length === 0) throw nothingFound([kind], result);
  if (result.servers.length > 1) throw ambiguous(result.servers, `${what([kind])}s announced themselves`);
  return result.servers[0]!;
}
