// `-H NAME` and disk query's HOST: the system resolver first, then the link (an announced instance name, or a `.local` host name over mDNS).
import { isIP } from 'node:net';
import { NetkitError } from '../errors.js';
import { sanitize } from '../cli/output.js';
import { resolveHost } from '../transport/udp.js';
import { ambiguous, toDiscovered, what, DEFAULT_DISCOVER_MS, type DiscoveredServer, type DiscoverOptions, type ServiceKind } from './discover.js';
import type { FoundService } from '../transport/mdns-browse.js';

type LookupOptions = Omit<DiscoverOptions, 'kinds' | 'onFound' | 'onGone'>;

/**
 * After the first complete answer, listen this much longer for another responder with the same name:
 * responders answer a direct SRV question at once (RFC 6762 section 6), so a second one is heard by then.
 */
const SECOND_ANSWER_MS = 250;

/**
 * Look one instance name up through DNS-SD (SRV, TXT, addresses). Undefined when nothing answers in
 * time; AMBIGUOUS when two responders answer for it. At the deadline, an SRV whose addresses never
 * came counts, with the address it came from.
 */
export async function resolveServiceName(name: string, kind: ServiceKind, opts: LookupOptions = {}): Promise<DiscoveredServer | undefined> {
  const { browse } = await import('../transport/mdns-browse.js');
  const found: FoundService[] = [];
  let settle: () => void = () => undefined;
  let over = false;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  let grace: NodeJS.Timeout | undefined;
  const browser = await browse({
    kinds: [kind],
    browse: false,
    instances: [{ kind, instance: name }],
    onUp: (s) => {
      found.push(s);
      if (!over) grace ??= setTimeout(settle, SECOND_ANSWER_MS);
    },
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    ...(opts.links ? { links: opts.links } : {}),
  });
  const deadline = setTimeout(settle, opts.timeoutMs ?? DEFAULT_DISCOVER_MS);
  await settled;
  over = true;
  clearTimeout(deadline);
  clearTimeout(grace);
  if (found.length === 0) browser.finish();
  await browser.close();
  const servers = found.map((s) => toDiscovered(s, opts.knownHostsFile));
  if (servers.length > 1) throw ambiguous(servers, `${what([kind])}s announce the name "${sanitize(name, 64)}"`);
  return servers[0];
}

export interface ResolvedTarget {
  /** What to connect to: the name as given (the system resolver knows it) or an address learned on the link. */
  host: string;
  /** The announced port, when the name was an instance name. */
  port?: number;
  /** The announcement, when the name was resolved through DNS-SD. */
  server?: DiscoveredServer;
}

export interface ResolveOptions extends LookupOptions {
  /** The text cannot be a DNS host name (a space, say): only DNS-SD is asked, as an instance name. */
  instanceOnly?: boolean;
}

const NOT_FOUND_HINT = 'check the spelling, use an IP address, or list what announces itself with `netkit discover`';

function unknown(host: string, resolverAsked: boolean, why: string, cause?: unknown, hint = NOT_FOUND_HINT): NetkitError {
  const first = resolverAsked ? 'the system resolver does not know it, and ' : '';
  return new NetkitError('HOST_NOT_FOUND', `cannot resolve host '${sanitize(host, 200)}': ${first}${why}`, hint, cause === undefined ? undefined : { cause });
}

/**
 * Look a name up on the local link, after the system resolver did not know it (`resolverError`) or
 * without it (`instanceOnly`): `<host>.local` through mDNS A/AAAA questions, a name without dots as a
 * DNS-SD instance name of `kind`. Every failure is HOST_NOT_FOUND saying what was asked and, when
 * multicast DNS could not be used at all (no interface, UDP 5353 held), why it was not.
 */
export async function resolveOnLink(host: string, kind: ServiceKind, opts: ResolveOptions, resolverError?: unknown): Promise<ResolvedTarget> {
  const asked = resolverError !== undefined;
  const local = /\.local\.?$/i.test(host);
  if (!local && host.includes('.') && !opts.instanceOnly) throw resolverError;
  const cannotAsk = (err: unknown, what: string): NetkitError => {
    if (err instanceof NetkitError && err.code === 'AMBIGUOUS') return err;
    const reason = err instanceof Error ? err.message : String(err);
    const hint = err instanceof NetkitError && err.hint ? err.hint : 'use an IP address';
    return unknown(host, asked, `${what} could not be asked: ${reason}`, err, hint);
  };
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DISCOVER_MS;
  if (local) {
    const { resolveLocalHost } = await import('../transport/mdns-browse.js');
    let addrs: string[];
    try {
      addrs = await resolveLocalHost(host, { timeoutMs, ...(opts.onWarning ? { onWarning: opts.onWarning } : {}), ...(opts.links ? { links: opts.links } : {}) });
    } catch (err) {
      throw cannotAsk(err, 'multicast DNS');
    }
    if (addrs.length === 0) throw unknown(host, asked, `no host answered for it over multicast DNS within ${(timeoutMs / 1000).toFixed(1)}s`, resolverError);
    return { host: addrs[0]! };
  }
  let server: DiscoveredServer | undefined;
  try {
    server = await resolveServiceName(host, kind, opts);
  } catch (err) {
    throw cannotAsk(err, 'DNS-SD');
  }
  if (!server) throw unknown(host, asked, `no ${what([kind])} announces that name`, resolverError);
  return { host: server.address, port: server.port, server };
}

/**
 * `-H NAME`: an address as it is; a name the system resolver knows as it is (one lookup, no multicast);
 * otherwise the link is asked (resolveOnLink). A dotted name other than `.local` is a DNS name only.
 */
export async function resolveTarget(host: string, kind: ServiceKind, opts: ResolveOptions = {}): Promise<ResolvedTarget> {
  if (isIP(host) !== 0) return { host };
  if (opts.instanceOnly) return resolveOnLink(host, kind, opts);
  try {
    await resolveHost(host);
    return { host };
  } catch (err) {
    if (!(err instanceof NetkitError) || err.code !== 'HOST_NOT_FOUND') throw err;
    return resolveOnLink(host, kind, opts, err);
  }
}
