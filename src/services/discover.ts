// Finding netkit servers with DNS-SD, and what their announced fingerprints say against known_hosts; results in, never printed here.
import { isIP } from 'node:net';
import { NetkitError } from '../errors.js';
import { sanitize } from '../cli/output.js';
import { resolveHost } from '../transport/udp.js';
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
  /** The address to use: the one the answer came from when it is announced, else the first IPv4. */
  address: string;
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
function trustNames(s: FoundService): string[] {
  return [s.instance, s.host, s.host.replace(/\.local$/i, ''), ...s.addresses];
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
  };
  if (version !== undefined) d.version = version;
  const auth = flag(s.txt.auth);
  const tls = flag(s.txt.tls);
  if (auth !== undefined) d.auth = auth;
  if (tls !== undefined) d.tls = tls;
  if (s.txt.fp !== undefined) {
    try {
      d.fingerprint = parseFingerprint(s.txt.fp);
      d.trust = fingerprintTrust(d.fingerprint, trustNames(s), s.port, knownHostsFile);
    } catch {
      d.badFingerprint = s.txt.fp.slice(0, 100);
    }
  }
  return d;
}

/** Listen for `timeoutMs` (asking again meanwhile) and return every server that answered, in the order found. */
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
    onDown: (kind, name) => {
      const i = servers.findIndex((s) => s.kind === kind && s.name === name);
      if (i >= 0) opts.onGone?.(servers.splice(i, 1)[0]!);
    },
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    ...(opts.links ? { links: opts.links } : {}),
  });
  await new Promise((resolve) => setTimeout(resolve, timeoutMs));
  await browser.close();
  return { servers, interfaces: browser.interfaces.map((l) => l.iface), timeoutMs };
}

const KIND_NAMES: Record<ServiceKind, string> = { disk: 'disk', file: 'file' };

function what(kinds: readonly ServiceKind[]): string {
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

/**
 * The one server of `kind` on the link. None: NOT_FOUND with the fallback; several: AMBIGUOUS listing
 * them, so the caller never picks one at random.
 */
export async function discoverOne(kind: ServiceKind, opts: Omit<DiscoverOptions, 'kinds'> = {}): Promise<DiscoveredServer> {
  const result = await discoverServers({ ...opts, kinds: [kind] });
  if (result.servers.length === 0) throw nothingFound([kind], result);
  if (result.servers.length > 1) {
    const list = result.servers.map((s) => `\n  ${describeServer(s)}`).join('');
    const first = sanitize(result.servers[0]!.name, 64);
    throw new NetkitError('AMBIGUOUS', `${result.servers.length} ${what([kind])}s announced themselves; choose one:${list}`, `name it with -H, e.g. -H '${first.replace(/'/g, "'\\''")}'`);
  }
  return result.servers[0]!;
}

/** Look one instance name up through DNS-SD (SRV, TXT, addresses); undefined when nothing answers in time. */
export async function resolveServiceName(name: string, kind: ServiceKind, opts: Omit<DiscoverOptions, 'kinds' | 'onFound'> = {}): Promise<DiscoveredServer | undefined> {
  const { browse } = await import('../transport/mdns-browse.js');
  let found: FoundService | undefined;
  let done: () => void = () => undefined;
  const answered = new Promise<void>((resolve) => (done = resolve));
  const browser = await browse({
    kinds: [kind],
    browse: false,
    instances: [{ kind, instance: name }],
    onUp: (s) => {
      found ??= s;
      done();
    },
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    ...(opts.links ? { links: opts.links } : {}),
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([answered, new Promise<void>((resolve) => (timer = setTimeout(resolve, opts.timeoutMs ?? DEFAULT_DISCOVER_MS)))]);
  clearTimeout(timer);
  await browser.close();
  return found ? toDiscovered(found, opts.knownHostsFile) : undefined;
}

export interface ResolvedTarget {
  /** What to connect to: the name as given (the system resolver knows it) or an announced address. */
  host: string;
  /** The announced port, when the name was an instance name. */
  port?: number;
  /** The announcement, when the name was resolved through DNS-SD. */
  server?: DiscoveredServer;
}

/**
 * `-H NAME`: the system resolver first; a one-label name it does not know is looked up as a DNS-SD
 * instance of `kind`. An unknown name stays HOST_NOT_FOUND, saying both were asked.
 */
export async function resolveTarget(host: string, kind: ServiceKind, opts: Omit<DiscoverOptions, 'kinds' | 'onFound'> = {}): Promise<ResolvedTarget> {
  if (isIP(host) !== 0) return { host };
  try {
    await resolveHost(host);
    return { host };
  } catch (err) {
    // Only a one-label name can be an announced instance name here (netkit's names have no dots); a dotted
    // name is a DNS name, and asking the link about it would only add a wait.
    if (!(err instanceof NetkitError) || err.code !== 'HOST_NOT_FOUND' || host.includes('.')) throw err;
    let server: DiscoveredServer | undefined;
    try {
      server = await resolveServiceName(host, kind, opts);
    } catch (mdnsErr) {
      opts.onWarning?.(`cannot ask DNS-SD for '${sanitize(host, 64)}': ${mdnsErr instanceof Error ? mdnsErr.message : String(mdnsErr)}`);
    }
    if (!server) {
      throw new NetkitError('HOST_NOT_FOUND', `cannot resolve host '${sanitize(host, 200)}': the system resolver does not know it, and no ${what([kind])} announces that name`, 'check the spelling, use an IP address, or list what announces itself with `netkit discover`', { cause: err });
    }
    return { host: server.address, port: server.port, server };
  }
}
