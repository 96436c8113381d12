// mDNS/DNS-SD names, records and interfaces, without sockets: what is answered to a question, and which of two claims to a name wins.
import { networkInterfaces } from 'node:os';

export const MDNS_PORT = 5353;
export const MDNS_GROUP = '224.0.0.251';

export type ServiceKind = 'disk' | 'file';

export const SERVICE_TYPES: Record<ServiceKind, { name: string; protocol: 'udp' | 'tcp' }> = {
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
  /** The unicast-response bit (RFC 6762 section 5.4): "QU", answer me directly. */
  qu?: boolean;
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

/** An SRV port as DNS-SD allows it: 1 to 65535 (0 and anything else is a malformed record). */
export function validPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/**
 * What a responder holding `served` answers to `q`: the matching records, and as additional records
 * the SRV and TXT of a PTR's instance and the addresses of an SRV's target (RFC 6763 section 12).
 */
export function answersFor(served: readonly MdnsRecord[], q: MdnsQuestion): { answers: MdnsRecord[]; additionals: MdnsRecord[] } {
  const answers = served.filter((r) => same(r.name, q.name) && (q.type === 'ANY' || r.type === q.type));
  const additionals: MdnsRecord[] = [];
  const add = (r: MdnsRecord): void => {
    if (!answers.includes(r) && !additionals.includes(r)) additionals.push(r);
  };
  for (const a of answers) {
    if (a.type === 'PTR' && typeof a.data === 'string') for (const r of served) if (same(r.name, a.data) && (r.type === 'SRV' || r.type === 'TXT')) add(r);
  }
  for (const s of [...answers, ...additionals].filter((r) => r.type === 'SRV')) {
    const target = (s.data as { target?: unknown } | undefined)?.target;
    if (typeof target === 'string') for (const r of served) if (same(r.name, target) && (r.type === 'A' || r.type === 'AAAA')) add(r);
  }
  return { answers, additionals };
}

// ---------------------------------------------------------------------------------------------
// Simultaneous probes (RFC 6762 section 8.2): the lexicographically later set of records wins

const TYPE_NUMBERS: Record<string, number> = { A: 1, PTR: 12, TXT: 16, AAAA: 28, SRV: 33 };

/** The bytes a record's data is compared by: IPv4/IPv6 octets, SRV fields then target, TXT strings length-prefixed. */
function rdataBytes(r: MdnsRecord): Buffer {
  const d = r.data;
  if (r.type === 'A' && typeof d === 'string') return Buffer.from(d.split('.').map(Number));
  if (r.type === 'AAAA' && typeof d === 'string') {
    const [head = '', tail = ''] = d.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = d.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
    return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]));
  }
  if (r.type === 'SRV' && d && typeof d === 'object') {
    const s = d as { priority?: number; weight?: number; port?: number; target?: string };
    const head = Buffer.alloc(6);
    head.writeUInt16BE(s.priority ?? 0, 0);
    head.writeUInt16BE(s.weight ?? 0, 2);
    head.writeUInt16BE(s.port ?? 0, 4);
    return Buffer.concat([head, ...(s.target ?? '').split('.').map((l) => Buffer.concat([Buffer.from([Buffer.byteLength(l)]), Buffer.from(l)]))]);
  }
  const items = Array.isArray(d) ? d : [d];
  return Buffer.concat(items.map((i) => (Buffer.isBuffer(i) ? i : Buffer.from(String(i ?? '')))).map((b) => Buffer.concat([Buffer.from([b.length & 255]), b])));
}

function compareRecord(a: MdnsRecord, b: MdnsRecord): number {
  const t = (TYPE_NUMBERS[a.type] ?? 0) - (TYPE_NUMBERS[b.type] ?? 0);
  return t !== 0 ? Math.sign(t) : Buffer.compare(rdataBytes(a), rdataBytes(b));
}

/**
 * RFC 6762 section 8.2: sort each prober's records for one name, compare them pairwise; the first
 * difference decides, and a set that runs out first loses. Positive: `ours` wins; negative: it loses.
 */
export function compareClaims(ours: readonly MdnsRecord[], theirs: readonly MdnsRecord[]): number {
  const a = [...ours].sort(compareRecord);
  const b = [...theirs].sort(compareRecord);
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareRecord(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return Math.sign(a.length - b.length);
}

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

/** Every address of this machine, lower-cased: records holding one of them are this machine's own. */
export function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) out.add(a.address.toLowerCase());
  return out;
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
