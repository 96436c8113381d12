// mDNS/DNS-SD adapter: one multicast socket per interface, built on bonjour-service; the library stays in this file.
import { networkInterfaces } from 'node:os';
import { isIPv6 } from 'node:net';
import BonjourModule from 'bonjour-service';
import { NetkitError, errnoOf } from '../errors.js';

// bonjour-service 1.4.4 works around nothing of the following, so this adapter does (each is tested):
// - one socket whose multicast interface is "0.0.0.0": the kernel picks one interface by route, so a
//   multi-homed host answers on one link only, and a host without a default route sends nothing at all
//   (ENETUNREACH, swallowed). Here: one socket per interface, each with its own IP_MULTICAST_IF.
// - address records for every interface in every answer (RFC 6762 section 14 forbids it): here only
//   the addresses of the link the answer goes out on.
// - an SRV target without ".local", which other resolvers do not look up: here `<host>.local`.
// - answers to every query at once, with no known-answer suppression and no rate limit: here the rules
//   of RFC 6762 sections 6 and 7.1 (a 20-120 ms delay for shared records, at most one multicast of a
//   record per second per link, no answer the asker already holds).
// - no 'error' listener on the socket (EADDRINUSE on 5353 would crash the process): here it becomes
//   a NetkitError.
// Probing, announcing, goodbyes and browsing are built on this file by mdns-announce.ts and
// mdns-browse.ts, which never touch the library.

export const MDNS_PORT = 5353;
export const MDNS_GROUP = '224.0.0.251';

export type ServiceKind = 'disk' | 'file';

const SERVICE_TYPES: Record<ServiceKind, { name: string; protocol: 'udp' | 'tcp' }> = {
  disk: { name: 'netkit-disk', protocol: 'udp' },
  file: { name: 'netkit-file', protocol: 'tcp' },
};

/** `_netkit-disk._udp` or `_netkit-file._tcp`. */
export function serviceType(kind: ServiceKind): string {
  const t = SERVICE_TYPES[kind];
  return `_${t.name}._${t.protocol}`;
}

/** `_netkit-file._tcp.local`: the name browsers ask PTR records of. */
export function typeDomain(kind: ServiceKind): string {
  return `${serviceType(kind)}.local`;
}

/** `<instance>._netkit-file._tcp.local`. */
export function instanceDomain(kind: ServiceKind, instance: string): string {
  return `${instance}.${typeDomain(kind)}`;
}

// ---------------------------------------------------------------------------------------------
// Records and packets, as dns-packet (under multicast-dns) encodes and decodes them

export interface MdnsRecord {
  name: string;
  type: string;
  ttl?: number;
  class?: string;
  /** The cache-flush bit: this record set is unique to its owner (RFC 6762 section 10.2). */
  flush?: boolean;
  data?: unknown;
}

export interface MdnsQuestion {
  name: string;
  type: string;
  class?: string;
}

export interface MdnsPacket {
  type?: 'query' | 'response';
  questions?: MdnsQuestion[];
  answers?: MdnsRecord[];
  authorities?: MdnsRecord[];
  additionals?: MdnsRecord[];
}

export interface ServiceSpec {
  kind: ServiceKind;
  instance: string;
  /** The host's name without ".local" (the SRV target is `<host>.local`). */
  host: string;
  port: number;
  txt: Record<string, string>;
}

/**
 * The records announcing `spec` on one link: PTR (type -> instance), SRV, TXT, the DNS-SD type
 * enumeration PTR, and one A/AAAA per address given (the link's own). bonjour-service's Service builds
 * the first four and encodes the TXT; its own address records (every interface's) are replaced.
 */
export function serviceRecords(spec: ServiceSpec, addresses: readonly string[]): MdnsRecord[] {
  const t = SERVICE_TYPES[spec.kind];
  const host = `${spec.host}.local`;
  const service = new BonjourModule.Service({ name: spec.instance, type: t.name, protocol: t.protocol, port: spec.port, host, txt: spec.txt, disableIPv6: true }, noop, noop);
  const unique = new Set(['SRV', 'TXT']);
  const records: MdnsRecord[] = service
    .records()
    .filter((r) => r.type !== 'A' && r.type !== 'AAAA')
    .map((r) => (unique.has(r.type) ? { ...r, flush: true } : { ...r }));
  for (const a of addresses) records.push({ name: host, type: isIPv6(a) ? 'AAAA' : 'A', ttl: 120, flush: true, data: a });
  return records;
}

function noop(): void {}

// ---------------------------------------------------------------------------------------------
// Interfaces

export interface LinkInfo {
  /** Interface name, e.g. eth0. */
  iface: string;
  /** Its first IPv4 address: mDNS is spoken over IPv4 (224.0.0.251) on this interface. */
  address: string;
  netmask: string;
  /** Its IPv6 addresses other than link-local ones (announced as AAAA records). */
  v6: string[];
}

/** Up, non-loopback interfaces that have an IPv4 address, in the order the system lists them. */
export function currentLinks(): LinkInfo[] {
  const links: LinkInfo[] = [];
  for (const [iface, addrs] of Object.entries(networkInterfaces())) {
    const v4 = addrs?.find((a) => a.family === 'IPv4' && !a.internal);
    if (!v4) continue;
    const v6 = (addrs ?? []).filter((a) => a.family === 'IPv6' && !a.internal && !/^fe[89ab]/i.test(a.address)).map((a) => a.address);
    links.push({ iface, address: v4.address, netmask: v4.netmask, v6 });
  }
  return links;
}

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0);
}

/** Whether an IPv4 source address is on the link's subnet (or IPv4 link-local): only such peers are answered. */
export function onSubnet(info: LinkInfo, source: string): boolean {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(source)) return false;
  if (source.startsWith('169.254.')) return true;
  const mask = ipv4ToInt(info.netmask);
  return (ipv4ToInt(source) & mask) === (ipv4ToInt(info.address) & mask);
}

// ---------------------------------------------------------------------------------------------
// One link: a socket bound to *:5353, in the group on one interface, sending out of that interface

/** The multicast-dns instance bonjour-service creates, as far as this adapter uses it. */
interface MulticastDns {
  on(event: 'response' | 'query', fn: (packet: MdnsPacket, rinfo: { address: string; port: number }) => void): void;
  on(event: 'ready', fn: () => void): void;
  on(event: 'error' | 'warning', fn: (err: Error) => void): void;
  once(event: 'ready', fn: () => void): void;
  once(event: 'error', fn: (err: Error) => void): void;
  off(event: string, fn: (...args: never[]) => void): void;
  removeAllListeners(event: string): void;
  query(packet: MdnsPacket, cb: (err?: Error | null) => void): void;
  respond(packet: MdnsPacket, cb: (err?: Error | null) => void): void;
}

interface BonjourServer {
  mdns: MulticastDns;
  register(records: MdnsRecord[]): void;
  unregister(records: MdnsRecord[]): void;
  respondToQuery(query: MdnsPacket): void;
}

export type PacketListener = (packet: MdnsPacket, from: string) => void;

export interface Link {
  readonly info: LinkInfo;
  /** Every mDNS response heard on this socket (from any interface: Linux delivers the group's traffic to every member socket). */
  onResponse(fn: PacketListener): () => void;
  /** Send a query out of this interface (known answers in `answers`, proposed records in `authorities`). */
  query(packet: MdnsPacket): Promise<void>;
  /** Send an unsolicited response (an announcement or a goodbye) out of this interface. */
  respond(packet: MdnsPacket): Promise<void>;
  /** Answer queries from this link's subnet about `records` (replacing what was served before), or stop answering. */
  serve(records: readonly MdnsRecord[] | undefined): void;
  /** Leave the group and close the socket; pending delayed answers are dropped. */
  close(): Promise<void>;
}

/** RFC 6762 section 6: a shared record's answer waits 20-120 ms, so many responders do not collide. */
const SHARED_DELAY_MS = [20, 120] as const;
/** RFC 6762 section 6: a record is multicast at most once a second per link (answers to probes excepted). */
const MIN_REPEAT_MS = 1000;
/** Questions looked at in one query: a hostile packet cannot make us do more. */
const MAX_QUESTIONS = 16;

function socketError(err: unknown, info: LinkInfo): NetkitError {
  const where = `the mDNS port (UDP ${MDNS_PORT}) on ${info.iface} (${info.address})`;
  switch (errnoOf(err)) {
    case 'EADDRINUSE':
      return new NetkitError('ADDRESS_IN_USE', `cannot use ${where}: another program holds it without sharing it`, 'stop that program, or name servers with -H instead of discovering them', { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new NetkitError('PERMISSION', `cannot use ${where}: permission denied`, 'a security policy forbids it; name servers with -H instead', { cause: err });
    default:
      return new NetkitError('FAILED', `cannot use ${where}: ${errnoOf(err) ?? (err instanceof Error ? err.message : String(err))}`, undefined, { cause: err });
  }
}

/**
 * Open the mDNS socket for one interface. `onWarning` hears problems that do not close it (a group
 * membership refused, a send that failed); malformed packets from the network are ignored silently.
 */
export async function openLink(info: LinkInfo, onWarning: (message: string) => void = noop): Promise<Link> {
  const opts = { interface: info.address, bind: '0.0.0.0', port: MDNS_PORT, ttl: 255, loopback: true, reuseAddr: true };
  const bonjour = new BonjourModule(opts as never, (err: unknown) => onWarning(`mDNS answer on ${info.iface} not sent: ${errnoOf(err) ?? String(err)}`));
  const server = (bonjour as unknown as { server?: BonjourServer }).server;
  if (!server?.mdns || typeof server.respondToQuery !== 'function' || typeof server.register !== 'function') {
    bonjour.destroy();
    throw new NetkitError('INTERNAL', 'bonjour-service changed: src/transport/mdns.ts needs a review');
  }
  const mdns = server.mdns;
  // The library answers every query itself, at once; this adapter answers instead (see handleQuery).
  mdns.removeAllListeners('query');
  let closed = false;
  let ready = false;
  const closeSocket = (): Promise<void> => new Promise((resolve) => bonjour.destroy(() => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      mdns.once('ready', () => {
        ready = true;
        resolve();
      });
      // One listener for the socket's whole life: multicast-dns emits a failed bind twice (once from the
      // socket, once from its bind callback), and an 'error' with no listener would end the process.
      mdns.on('error', (err) => {
        if (!ready) reject(err);
        else if (!closed) onWarning(socketError(err, info).message);
      });
    });
  } catch (err) {
    closed = true;
    await closeSocket();
    throw socketError(err, info);
  }
  mdns.on('warning', (err) => {
    // Group membership and send problems have a syscall; a packet that does not decode is just noise.
    if ((err as { syscall?: string }).syscall) onWarning(`mDNS on ${info.iface}: ${(err as { syscall?: string }).syscall} ${errnoOf(err) ?? err.message}`);
  });

  const listeners = new Set<PacketListener>();
  mdns.on('response', (packet, rinfo) => {
    for (const fn of listeners) fn(packet, rinfo.address);
  });

  let served: MdnsRecord[] = [];
  let owned = new Set<string>();
  const lastSent = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();

  const knownByAsker = (packet: MdnsPacket, q: MdnsQuestion): boolean => {
    // Known-answer suppression (RFC 6762 section 7.1): the asker holds our record with at least half its TTL.
    const mine = served.filter((r) => r.type === q.type && r.name.toLowerCase() === q.name.toLowerCase());
    if (mine.length === 0) return false;
    return mine.every((r) =>
      (packet.answers ?? []).some((k) => k.type === r.type && k.name.toLowerCase() === r.name.toLowerCase() && String(k.data).toLowerCase() === String(r.data).toLowerCase() && (k.ttl ?? 0) >= (r.ttl ?? 0) / 2),
    );
  };

  mdns.on('query', (packet, rinfo) => {
    if (closed || served.length === 0 || !onSubnet(info, rinfo.address)) return;
    const probe = (packet.authorities ?? []).length > 0;
    for (const q of (packet.questions ?? []).slice(0, MAX_QUESTIONS)) {
      if (typeof q.name !== 'string' || !owned.has(q.name.toLowerCase())) continue;
      if (q.type === 'PTR' && knownByAsker(packet, q)) continue;
      const key = `${q.name.toLowerCase()}/${q.type}`;
      const now = Date.now();
      if (!probe && now - (lastSent.get(key) ?? -Infinity) < MIN_REPEAT_MS) continue;
      lastSent.set(key, now);
      const delay = q.type === 'PTR' ? SHARED_DELAY_MS[0] + Math.random() * (SHARED_DELAY_MS[1] - SHARED_DELAY_MS[0]) : 0;
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!closed) server.respondToQuery({ questions: [q] });
      }, delay);
      timers.add(timer);
    }
  });

  const send = (how: 'query' | 'respond', packet: MdnsPacket): Promise<void> =>
    new Promise((resolve, reject) => {
      if (closed) return resolve();
      mdns[how]({ ...packet }, (err) => (err ? reject(socketError(err, info)) : resolve()));
    });

  return {
    info,
    onResponse(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    query: (packet) => send('query', packet),
    respond: (packet) => send('respond', packet),
    serve(records) {
      if (served.length > 0) server.unregister(served);
      served = records ? [...records] : [];
      owned = new Set(served.map((r) => r.name.toLowerCase()));
      lastSent.clear();
      if (served.length > 0) server.register(served);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      listeners.clear();
      await closeSocket();
    },
  };
}
