// mDNS/DNS-SD adapter: one multicast socket per interface, built on bonjour-service (and its dns-packet); the libraries stay in this file.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import BonjourModule from 'bonjour-service';
import dnsPacket from 'dns-packet';
import { NetkitError, errnoOf } from '../errors.js';
import { MDNS_GROUP, MDNS_PORT, SERVICE_TYPES, answersFor, onSubnet, type LinkInfo, type MdnsPacket, type MdnsQuestion, type MdnsRecord, type ServiceSpec } from './mdns-records.js';

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
// - no unicast-response (QU) bit: dns-packet 5.6.1 cannot encode it (the class is a name) and decodes
//   it as class "UNKNOWN_32769". Here queries are encoded with the bit set by hand, and a QU question
//   whose answer was just multicast is answered directly to the asker (RFC 6762 section 5.4).
// - SRV answers without the target's addresses: here they come as additional records (RFC 6763 section 12.2).
// Probing, announcing, goodbyes and browsing are built on this file by mdns-announce.ts and
// mdns-browse.ts, which never touch the library.

export { MDNS_GROUP, MDNS_PORT, currentLinks, instanceDomain, onSubnet, serviceType, typeDomain } from './mdns-records.js';
export type { LinkInfo, MdnsPacket, MdnsQuestion, MdnsRecord, ServiceKind, ServiceSpec } from './mdns-records.js';

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
// One link: a socket bound to *:5353, in the group on one interface, sending out of that interface

type Rinfo = { address: string; port: number };

/** The multicast-dns instance bonjour-service creates, as far as this adapter uses it. */
interface MulticastDns {
  on(event: 'response' | 'query', fn: (packet: MdnsPacket, rinfo: Rinfo) => void): void;
  on(event: 'error' | 'warning', fn: (err: Error) => void): void;
  once(event: 'ready', fn: () => void): void;
  removeAllListeners(event: string): void;
  respond(packet: MdnsPacket, rinfo: Rinfo | null, cb: (err?: Error | null) => void): void;
}

export type PacketListener = (packet: MdnsPacket, from: string) => void;

export interface Link {
  readonly info: LinkInfo;
  /** Every mDNS response heard on this socket (from any interface: Linux delivers the group's traffic to every member socket). */
  onResponse(fn: PacketListener): () => void;
  /** Every mDNS query heard (probes of other responders among them), questions with their QU bit read. */
  onQuery(fn: PacketListener): () => void;
  /** Send a query out of this interface (known answers in `answers`, proposed records in `authorities`; `qu` questions ask for a direct answer). */
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
/**
 * Direct (unicast) copies for QU questions: one per asker and question a second, and this many a second
 * in all, so that forged QU queries cannot turn a server into a reflector aimed at a neighbour.
 */
const MAX_UNICAST_PER_S = 16;
/** dns-packet 5.6.1 decodes class IN with the QU bit (0x8001) as this name. */
const IN_QU = 'UNKNOWN_32769';

/** A query as bytes, with the QU bit set in the class of every question that asks for it. */
export function encodeQuery(packet: MdnsPacket): Buffer {
  const questions = (packet.questions ?? []).map(({ qu: _qu, ...q }) => ({ ...q, class: 'IN' }));
  const buf = dnsPacket.encode({ ...packet, type: 'query', id: 0, flags: 0, questions });
  let offset = 12; // the header; names are not compressed by dns-packet
  for (const q of packet.questions ?? []) {
    offset += dnsPacket.question.encodingLength(q);
    if (q.qu) buf.writeUInt16BE(buf.readUInt16BE(offset - 2) | 0x8000, offset - 2);
  }
  return buf;
}

/** A received question with its QU bit read back (see IN_QU). */
function readQuestion(q: MdnsQuestion): MdnsQuestion {
  return q.class === IN_QU ? { ...q, class: 'IN', qu: true } : q;
}

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
  // The socket is made here so that queries can be sent as bytes (encodeQuery); multicast-dns binds it,
  // joins the group on this interface and sets the multicast interface, TTL and loopback.
  const socket: Socket = createSocket({ type: 'udp4', reuseAddr: true });
  const opts = { socket, interface: info.address, bind: '0.0.0.0', port: MDNS_PORT, ttl: 255, loopback: true };
  const bonjour = new BonjourModule(opts as never);
  const mdns = (bonjour as unknown as { server?: { mdns?: MulticastDns } }).server?.mdns;
  if (!mdns || typeof mdns.respond !== 'function') {
    bonjour.destroy();
    throw new NetkitError('INTERNAL', 'bonjour-service changed: src/transport/mdns.ts needs a review');
  }
  // The library answers every query itself, at once; this adapter answers instead (see the 'query' listener).
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

  const responseListeners = new Set<PacketListener>();
  const queryListeners = new Set<PacketListener>();
  mdns.on('response', (packet, rinfo) => {
    for (const fn of responseListeners) fn(packet, rinfo.address);
  });

  let served: MdnsRecord[] = [];
  let owned = new Set<string>();
  const lastSent = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const unicast = { second: 0, count: 0, sent: new Map<string, number>() };
  const unicastAllowed = (key: string, now: number): boolean => {
    const second = Math.floor(now / 1000);
    if (second !== unicast.second) Object.assign(unicast, { second, count: 0, sent: new Map() });
    if (unicast.count >= MAX_UNICAST_PER_S || unicast.sent.has(key)) return false;
    unicast.count++;
    unicast.sent.set(key, now);
    return true;
  };

  const knownByAsker = (packet: MdnsPacket, q: MdnsQuestion): boolean => {
    // Known-answer suppression (RFC 6762 section 7.1): the asker holds our record with at least half its TTL.
    const mine = served.filter((r) => r.type === q.type && r.name.toLowerCase() === q.name.toLowerCase());
    if (mine.length === 0) return false;
    return mine.every((r) =>
      (packet.answers ?? []).some((k) => k.type === r.type && k.name.toLowerCase() === r.name.toLowerCase() && String(k.data).toLowerCase() === String(r.data).toLowerCase() && (k.ttl ?? 0) >= (r.ttl ?? 0) / 2),
    );
  };

  const answer = (q: MdnsQuestion, to: Rinfo | null): void => {
    if (closed) return;
    const { answers, additionals } = answersFor(served, q);
    if (answers.length === 0) return;
    mdns.respond({ answers, additionals }, to, (err) => {
      if (err && !closed) onWarning(`mDNS answer on ${info.iface} not sent: ${errnoOf(err) ?? String(err)}`);
    });
  };

  mdns.on('query', (raw, rinfo) => {
    if (closed) return;
    const packet: MdnsPacket = { ...raw, questions: (raw.questions ?? []).slice(0, MAX_QUESTIONS).filter((q) => q && typeof q.name === 'string').map(readQuestion) };
    for (const fn of queryListeners) fn(packet, rinfo.address);
    if (served.length === 0 || !onSubnet(info, rinfo.address)) return;
    const probe = (packet.authorities ?? []).length > 0;
    for (const q of packet.questions!) {
      if (!owned.has(q.name.toLowerCase())) continue;
      if (q.type === 'PTR' && knownByAsker(packet, q)) continue;
      const key = `${q.name.toLowerCase()}/${q.type}`;
      const now = Date.now();
      const recent = now - (lastSent.get(key) ?? -Infinity) < MIN_REPEAT_MS;
      if (recent && !probe) {
        // Multicast just now: a QU asker (a browser that has just started) gets its own copy, the rest wait.
        if (q.qu && unicastAllowed(`${rinfo.address}|${rinfo.port}|${key}`, now)) answer(q, { address: rinfo.address, port: rinfo.port });
        continue;
      }
      lastSent.set(key, now);
      const delay = q.type === 'PTR' && !probe ? SHARED_DELAY_MS[0] + Math.random() * (SHARED_DELAY_MS[1] - SHARED_DELAY_MS[0]) : 0;
      if (delay === 0) {
        answer(q, null);
        continue;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer(q, null);
      }, delay);
      timers.add(timer);
    }
  });

  const sendQuery = (packet: MdnsPacket): Promise<void> =>
    new Promise((resolve, reject) => {
      if (closed) return resolve();
      const bytes = encodeQuery(packet);
      socket.send(bytes, 0, bytes.length, MDNS_PORT, MDNS_GROUP, (err) => (err && !closed ? reject(socketError(err, info)) : resolve()));
    });
  const sendResponse = (packet: MdnsPacket): Promise<void> =>
    new Promise((resolve, reject) => {
      if (closed) return resolve();
      mdns.respond({ ...packet }, null, (err) => (err && !closed ? reject(socketError(err, info)) : resolve()));
    });

  return {
    info,
    onResponse(fn) {
      responseListeners.add(fn);
      return () => responseListeners.delete(fn);
    },
    onQuery(fn) {
      queryListeners.add(fn);
      return () => queryListeners.delete(fn);
    },
    query: sendQuery,
    respond: sendResponse,
    serve(records) {
      served = records ? [...records] : [];
      owned = new Set(served.map((r) => r.name.toLowerCase()));
      lastSent.clear();
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      responseListeners.clear();
      queryListeners.clear();
      await closeSocket();
    },
  };
}
