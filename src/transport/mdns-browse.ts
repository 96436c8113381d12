// Browsing DNS-SD services: ask on every interface, again and again, and assemble PTR, SRV, TXT and addresses from whatever answers.
import { isIPv6 } from 'node:net';
import { NetkitError } from '../errors.js';
import { currentLinks, instanceDomain, openLink, typeDomain, type Link, type LinkInfo, type MdnsPacket, type MdnsQuestion, type MdnsRecord, type ServiceKind } from './mdns.js';

export interface FoundService {
  kind: ServiceKind;
  /** The instance name, as announced (peer text: print it sanitised). */
  instance: string;
  /** The SRV target, e.g. `nas.local`. */
  host: string;
  port: number;
  /** IPv4 first; IPv6 link-local addresses are left out (unusable without an interface). */
  addresses: string[];
  txt: Record<string, string>;
  /** Where the SRV record came from: an address the responder reached us from. */
  source: string;
  /** When it became complete, ms after browsing started. */
  foundMs: number;
}

export interface BrowseOptions {
  kinds: readonly ServiceKind[];
  /** Browse every instance of `kinds` (PTR questions); default true. */
  browse?: boolean;
  /** Also ask for these instances directly (SRV and TXT questions): resolving a name. */
  instances?: readonly { kind: ServiceKind; instance: string }[];
  onUp?: (service: FoundService) => void;
  /** A goodbye (TTL 0) for a service reported up. */
  onDown?: (kind: ServiceKind, instance: string) => void;
  onWarning?: (message: string) => void;
  /** Injected interface list (tests); by default the machine's. */
  links?: () => LinkInfo[];
}

export interface Browser {
  /** Complete services heard so far, in the order they completed. */
  services(): FoundService[];
  /** Interfaces asked on. */
  readonly interfaces: LinkInfo[];
  close(): Promise<void>;
}

/** Bounds on what the network can make us hold. */
const MAX_INSTANCES = 1024;
const MAX_ADDRESSES = 16;
const MAX_TXT_KEYS = 32;
/** Re-ask after 1 s, then 2, 4, 8… (RFC 6762 section 5.2), at most every minute. */
const FIRST_REQUERY_MS = 1000;
const MAX_REQUERY_MS = 60_000;
/** A missing SRV/TXT/address is asked for at most this often per name. */
const FOLLOW_UP_MS = 1000;

interface Instance {
  kind: ServiceKind;
  instance: string;
  srv?: { port: number; target: string; source: string };
  txt?: Record<string, string>;
  up?: FoundService;
  /** The PTR record's TTL and when it came, for the known-answer list. */
  ptr?: { ttl: number; at: number };
}

/** TXT strings `key=value` (RFC 6763 section 6): keys case-insensitive, a bare key means present with no value. */
export function decodeTxt(data: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const items = Array.isArray(data) ? data : data === undefined ? [] : [data];
  for (const item of items) {
    const s = Buffer.isBuffer(item) ? item.toString('utf8') : typeof item === 'string' ? item : '';
    if (s === '' || s.startsWith('=')) continue;
    const eq = s.indexOf('=');
    const key = (eq < 0 ? s : s.slice(0, eq)).toLowerCase();
    if (key in out) continue; // the first occurrence wins (RFC 6763 section 6.4)
    if (Object.keys(out).length >= MAX_TXT_KEYS) break;
    out[key] = eq < 0 ? '' : s.slice(eq + 1);
  }
  return out;
}

function sortAddresses(addrs: Iterable<string>): string[] {
  return [...addrs].sort((a, b) => Number(isIPv6(a)) - Number(isIPv6(b)));
}

/** Open a socket per interface and browse until close(). Throws when no interface can be used at all. */
export async function browse(opts: BrowseOptions): Promise<Browser> {
  const warn = opts.onWarning ?? ((): void => undefined);
  const infos = (opts.links ?? currentLinks)();
  if (infos.length === 0) {
    throw new NetkitError('UNREACHABLE', 'this machine has no network interface with an IPv4 address besides loopback: there is nowhere to ask', 'connect to a network, or name the server with -H HOST');
  }
  const opened = await Promise.allSettled(infos.map((i) => openLink(i, warn)));
  const links: Link[] = [];
  for (const r of opened) if (r.status === 'fulfilled') links.push(r.value);
  if (links.length === 0) {
    // Said once, as the error; a warning per interface as well would repeat it.
    const first = opened.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    throw first.reason;
  }
  for (const r of opened) if (r.status === 'rejected') warn(r.reason instanceof Error ? r.reason.message : String(r.reason));

  const started = Date.now();
  const kinds = new Map(opts.kinds.map((k) => [typeDomain(k).toLowerCase(), k] as const));
  const instances = new Map<string, Instance>(); // by lower-cased instance domain
  const hosts = new Map<string, Set<string>>(); // by lower-cased host name
  const asked = new Map<string, number>();
  const order: FoundService[] = [];
  let closed = false;

  for (const w of opts.instances ?? []) instances.set(instanceDomain(w.kind, w.instance).toLowerCase(), { kind: w.kind, instance: w.instance });

  const kindOf = (fqdn: string): { kind: ServiceKind; instance: string } | undefined => {
    const lower = fqdn.toLowerCase();
    for (const [domain, kind] of kinds) {
      if (lower.endsWith(`.${domain}`) && lower.length > domain.length + 1) return { kind, instance: fqdn.slice(0, fqdn.length - domain.length - 1) };
    }
    return undefined;
  };

  const sendAll = (packet: MdnsPacket): void => {
    if (closed) return;
    for (const l of links) l.query(packet).catch((err: Error) => warn(err.message));
  };

  const followUp = (key: string, questions: MdnsQuestion[]): void => {
    const now = Date.now();
    if (now - (asked.get(key) ?? -Infinity) < FOLLOW_UP_MS) return;
    asked.set(key, now);
    sendAll({ questions });
  };

  const drop = (key: string): void => {
    const inst = instances.get(key);
    if (!inst) return;
    instances.delete(key);
    if (inst.up) {
      order.splice(order.indexOf(inst.up), 1);
      opts.onDown?.(inst.kind, inst.instance);
    }
  };

  const settle = (key: string, inst: Instance): void => {
    if (!inst.srv) return followUp(key, [{ name: instanceDomain(inst.kind, inst.instance), type: 'SRV' }, { name: instanceDomain(inst.kind, inst.instance), type: 'TXT' }]);
    const addrs = hosts.get(inst.srv.target.toLowerCase());
    if (!addrs || addrs.size === 0) return followUp(`host:${inst.srv.target.toLowerCase()}`, [{ name: inst.srv.target, type: 'A' }, { name: inst.srv.target, type: 'AAAA' }]);
    if (!inst.txt) return followUp(key, [{ name: instanceDomain(inst.kind, inst.instance), type: 'TXT' }]);
    const service: FoundService = {
      kind: inst.kind,
      instance: inst.instance,
      host: inst.srv.target,
      port: inst.srv.port,
      addresses: sortAddresses(addrs),
      txt: inst.txt,
      source: inst.srv.source,
      foundMs: inst.up?.foundMs ?? Date.now() - started,
    };
    if (inst.up) {
      order[order.indexOf(inst.up)] = service;
      inst.up = service;
      return;
    }
    inst.up = service;
    order.push(service);
    opts.onUp?.(service);
  };

  const onPacket = (packet: MdnsPacket, from: string): void => {
    if (closed) return;
    const records: MdnsRecord[] = [...(packet.answers ?? []), ...(packet.additionals ?? [])].filter((r) => r && typeof r.name === 'string');
    const touched = new Set<string>();
    const bye = (r: MdnsRecord): boolean => (r.ttl ?? 0) === 0;
    if (opts.browse !== false) {
      for (const r of records) {
        if (r.type !== 'PTR' || !kinds.has(r.name.toLowerCase()) || typeof r.data !== 'string') continue;
        const parsed = kindOf(r.data);
        if (!parsed || parsed.kind !== kinds.get(r.name.toLowerCase())) continue;
        const key = r.data.toLowerCase();
        if (bye(r)) {
          drop(key);
          continue;
        }
        if (!instances.has(key) && instances.size < MAX_INSTANCES) instances.set(key, { ...parsed });
        const inst = instances.get(key);
        if (inst) inst.ptr = { ttl: r.ttl ?? 0, at: Date.now() };
        touched.add(key);
      }
    }
    for (const r of records) {
      const key = r.name.toLowerCase();
      const inst = instances.get(key);
      if (!inst) continue;
      if (r.type === 'SRV') {
        const d = r.data as { port?: unknown; target?: unknown } | undefined;
        if (bye(r)) drop(key);
        else if (typeof d?.port === 'number' && typeof d.target === 'string' && d.target !== '') {
          inst.srv = { port: d.port, target: d.target.replace(/\.$/, ''), source: from };
          inst.instance = kindOf(r.name)?.instance ?? inst.instance; // the owner's spelling, not the asker's
          touched.add(key);
        }
      } else if (r.type === 'TXT' && !bye(r)) {
        inst.txt = decodeTxt(r.data);
        touched.add(key);
      }
    }
    for (const r of records) {
      if ((r.type !== 'A' && r.type !== 'AAAA') || typeof r.data !== 'string') continue;
      const host = r.name.toLowerCase();
      const wanted = [...instances.values()].some((i) => i.srv?.target.toLowerCase() === host);
      if (!wanted) continue;
      let set = hosts.get(host);
      if (!set) hosts.set(host, (set = new Set()));
      if (bye(r)) set.delete(r.data);
      else if (!/^fe[89ab]/i.test(r.data) && set.size < MAX_ADDRESSES) set.add(r.data);
      for (const [key, i] of instances) if (i.srv?.target.toLowerCase() === host) touched.add(key);
    }
    for (const key of touched) {
      const inst = instances.get(key);
      if (inst) settle(key, inst);
    }
  };
  for (const l of links) l.onResponse(onPacket);

  const ask = (): void => {
    const questions: MdnsQuestion[] = [];
    if (opts.browse !== false) for (const k of opts.kinds) questions.push({ name: typeDomain(k), type: 'PTR' });
    for (const inst of instances.values()) {
      if (!inst.up && !inst.srv && opts.instances?.some((w) => w.kind === inst.kind && w.instance.toLowerCase() === inst.instance.toLowerCase())) {
        questions.push({ name: instanceDomain(inst.kind, inst.instance), type: 'SRV' }, { name: instanceDomain(inst.kind, inst.instance), type: 'TXT' });
      }
    }
    // Known answers (RFC 6762 section 7.1): servers already found stay quiet, which leaves room for the rest.
    const now = Date.now();
    const answers: MdnsRecord[] = [];
    for (const inst of instances.values()) {
      if (!inst.up || !inst.ptr) continue;
      const ttl = inst.ptr.ttl - Math.ceil((now - inst.ptr.at) / 1000);
      if (ttl > 0) answers.push({ name: typeDomain(inst.kind), type: 'PTR', ttl, data: instanceDomain(inst.kind, inst.instance) });
    }
    if (questions.length > 0) sendAll({ questions, answers });
  };
  let interval = FIRST_REQUERY_MS;
  let timer: NodeJS.Timeout | undefined;
  const again = (): void => {
    timer = setTimeout(() => {
      ask();
      interval = Math.min(interval * 2, MAX_REQUERY_MS);
      again();
    }, interval);
  };
  ask();
  again();

  return {
    services: () => [...order],
    interfaces: links.map((l) => l.info),
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      await Promise.all(links.map((l) => l.close()));
    },
  };
}
