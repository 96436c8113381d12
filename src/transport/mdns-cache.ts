// What a DNS-SD browser has heard, without sockets: PTR, SRV, TXT and addresses per instance and per responder, assembled into services.
import { isIPv6 } from 'node:net';
import { instanceDomain, typeDomain, validPort, type MdnsQuestion, type MdnsRecord, type MdnsPacket, type ServiceKind } from './mdns-records.js';

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
  /** The responder: the address its SRV record came from. Two responders are two services, whatever their names. */
  source: string;
  /** When it became complete (or the deadline came), ms after browsing started. */
  foundMs: number;
  /** Reported at the deadline without these: no address records (use `source`), no TXT record (flags unknown). */
  missing?: ('addresses' | 'txt')[];
}

/** Bounds on what the network can make us hold. */
export const LIMITS = { instances: 1024, respondersPerInstance: 8, sourcesPerHost: 16, addresses: 16, txtKeys: 32 };

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
    if (Object.keys(out).length >= LIMITS.txtKeys) break;
    out[key] = eq < 0 ? '' : s.slice(eq + 1);
  }
  return out;
}

function sortAddresses(addrs: Iterable<string>): string[] {
  return [...addrs].sort((a, b) => Number(isIPv6(a)) - Number(isIPv6(b)));
}

interface Responder {
  source: string;
  srv?: { port: number; target: string };
  txt?: Record<string, string>;
  up?: FoundService;
}

interface Instance {
  kind: ServiceKind;
  instance: string;
  responders: Map<string, Responder>;
  /** Asked for by name (`-H NAME`): kept even when nobody answers. */
  wanted: boolean;
  /** The PTR record's TTL and when it came, for the known-answer list. */
  ptr?: { ttl: number; at: number };
}

export interface CacheChanges {
  up: FoundService[];
  down: FoundService[];
  /** Instances heard of that still lack something (follow-up questions are due). */
  incomplete: string[];
}

/**
 * The browser's memory. Records are kept per responder (the source address of the packet): one
 * instance name answered by two responders is two services, never one with mixed-up addresses.
 */
export class ServiceCache {
  private readonly kinds: Map<string, ServiceKind>;
  private readonly instances = new Map<string, Instance>(); // by lower-cased instance domain
  private readonly hosts = new Map<string, Map<string, Set<string>>>(); // host -> source -> addresses

  constructor(
    kinds: readonly ServiceKind[],
    private readonly browseAll: boolean,
    wanted: readonly { kind: ServiceKind; instance: string }[],
    private readonly started: number,
  ) {
    this.kinds = new Map(kinds.map((k) => [typeDomain(k).toLowerCase(), k] as const));
    for (const w of wanted) this.instances.set(instanceDomain(w.kind, w.instance).toLowerCase(), { kind: w.kind, instance: w.instance, responders: new Map(), wanted: true });
  }

  private kindOf(fqdn: string): { kind: ServiceKind; instance: string } | undefined {
    const lower = fqdn.toLowerCase();
    for (const [domain, kind] of this.kinds) {
      if (lower.endsWith(`.${domain}`) && lower.length > domain.length + 1) return { kind, instance: fqdn.slice(0, fqdn.length - domain.length - 1) };
    }
    return undefined;
  }

  /** The addresses of `r`'s target: those its own responder sent, else those of a responder that does not also claim the instance. */
  private addressesOf(inst: Instance, r: Responder): Set<string> | undefined {
    const bySource = this.hosts.get(r.srv!.target.toLowerCase());
    if (!bySource) return undefined;
    const own = bySource.get(r.source);
    if (own?.size) return own;
    for (const [source, set] of bySource) if (set.size > 0 && !inst.responders.get(source)?.srv) return set;
    return undefined;
  }

  private service(inst: Instance, r: Responder, addrs: Iterable<string>, now: number, missing?: FoundService['missing']): FoundService {
    return {
      kind: inst.kind,
      instance: inst.instance,
      host: r.srv!.target,
      port: r.srv!.port,
      addresses: sortAddresses(addrs),
      txt: r.txt ?? {},
      source: r.source,
      foundMs: r.up?.foundMs ?? now - this.started,
      ...(missing?.length ? { missing } : {}),
    };
  }

  private responder(inst: Instance, source: string): Responder | undefined {
    let r = inst.responders.get(source);
    if (!r && inst.responders.size < LIMITS.respondersPerInstance) inst.responders.set(source, (r = { source }));
    return r;
  }

  private dropResponder(key: string, source: string, changes: CacheChanges): void {
    const inst = this.instances.get(key);
    const r = inst?.responders.get(source);
    if (!inst || !r) return;
    inst.responders.delete(source);
    if (r.up) changes.down.push(r.up);
    if (inst.responders.size === 0 && !inst.wanted) this.instances.delete(key);
  }

  /** Take in one packet from `from`; say what came up, what went away, and what still lacks something. */
  apply(packet: MdnsPacket, from: string, now: number): CacheChanges {
    const changes: CacheChanges = { up: [], down: [], incomplete: [] };
    const records: MdnsRecord[] = [...(packet.answers ?? []), ...(packet.additionals ?? [])].filter((r) => r && typeof r.name === 'string');
    const touched = new Set<string>();
    const bye = (r: MdnsRecord): boolean => (r.ttl ?? 0) === 0;
    if (this.browseAll) {
      for (const r of records) {
        if (r.type !== 'PTR' || !this.kinds.has(r.name.toLowerCase()) || typeof r.data !== 'string') continue;
        const parsed = this.kindOf(r.data);
        if (!parsed || parsed.kind !== this.kinds.get(r.name.toLowerCase())) continue;
        const key = r.data.toLowerCase();
        if (bye(r)) {
          this.dropResponder(key, from, changes);
          continue;
        }
        if (!this.instances.has(key) && this.instances.size < LIMITS.instances) this.instances.set(key, { ...parsed, responders: new Map(), wanted: false });
        const inst = this.instances.get(key);
        if (!inst) continue;
        inst.ptr = { ttl: r.ttl ?? 0, at: now };
        touched.add(key);
      }
    }
    for (const r of records) {
      const key = r.name.toLowerCase();
      const inst = this.instances.get(key);
      if (!inst || (r.type !== 'SRV' && r.type !== 'TXT')) continue;
      if (bye(r)) {
        if (r.type === 'SRV') this.dropResponder(key, from, changes);
        continue;
      }
      const d = r.data as { port?: unknown; target?: unknown } | undefined;
      // Ports from DNS-SD must be 1-65535: an SRV with port 0 (or no target) is malformed and ignored.
      if (r.type === 'SRV' && !(validPort(d?.port) && typeof d.target === 'string' && d.target !== '')) continue;
      const resp = this.responder(inst, from);
      if (!resp) continue;
      if (r.type === 'SRV') {
        resp.srv = { port: d!.port as number, target: (d!.target as string).replace(/\.$/, '') };
        inst.instance = this.kindOf(r.name)?.instance ?? inst.instance; // the owner's spelling, not the asker's
      } else {
        resp.txt = decodeTxt(r.data);
      }
      touched.add(key);
    }
    for (const r of records) {
      if ((r.type !== 'A' && r.type !== 'AAAA') || typeof r.data !== 'string') continue;
      const host = r.name.toLowerCase();
      const targets = [...this.instances].filter(([, i]) => [...i.responders.values()].some((x) => x.srv?.target.toLowerCase() === host));
      if (targets.length === 0) continue;
      let bySource = this.hosts.get(host);
      if (!bySource) this.hosts.set(host, (bySource = new Map()));
      let set = bySource.get(from);
      if (!set && bySource.size < LIMITS.sourcesPerHost) bySource.set(from, (set = new Set()));
      if (!set) continue;
      if (bye(r)) set.delete(r.data);
      else if (!/^fe[89ab]/i.test(r.data) && set.size < LIMITS.addresses) set.add(r.data);
      for (const [key] of targets) touched.add(key);
    }
    for (const key of touched) {
      const inst = this.instances.get(key);
      if (!inst) continue;
      let lacking = inst.responders.size === 0;
      for (const resp of inst.responders.values()) {
        const addrs = resp.srv ? this.addressesOf(inst, resp) : undefined;
        if (!resp.srv || !addrs || !resp.txt) {
          lacking = true;
          continue;
        }
        const s = this.service(inst, resp, addrs, now);
        const first = !resp.up;
        resp.up = s;
        if (first) changes.up.push(s);
      }
      if (lacking) changes.incomplete.push(key);
    }
    return changes;
  }

  /** What to ask about an instance that lacks something: its SRV and TXT, and its target's addresses. */
  followUp(key: string): MdnsQuestion[] {
    const inst = this.instances.get(key);
    if (!inst) return [];
    const name = instanceDomain(inst.kind, inst.instance);
    const responders = [...inst.responders.values()];
    const q: MdnsQuestion[] = [];
    if (!responders.some((r) => r.srv)) q.push({ name, type: 'SRV' });
    if (responders.length === 0 || responders.some((r) => !r.txt)) q.push({ name, type: 'TXT' });
    for (const target of new Set(responders.filter((r) => r.srv && !this.addressesOf(inst, r)).map((r) => r.srv!.target))) {
      q.push({ name: target, type: 'A' }, { name: target, type: 'AAAA' });
    }
    return q;
  }

  /** Instances asked for by name that nobody has answered with an SRV yet. */
  unanswered(): MdnsQuestion[] {
    const q: MdnsQuestion[] = [];
    for (const inst of this.instances.values()) {
      if (inst.wanted && ![...inst.responders.values()].some((r) => r.srv)) {
        const name = instanceDomain(inst.kind, inst.instance);
        q.push({ name, type: 'SRV' }, { name, type: 'TXT' });
      }
    }
    return q;
  }

  /** Known answers for a PTR query (RFC 6762 section 7.1): services already complete stay quiet. */
  knownAnswers(now: number): MdnsRecord[] {
    const answers: MdnsRecord[] = [];
    for (const inst of this.instances.values()) {
      if (!inst.ptr || ![...inst.responders.values()].some((r) => r.up)) continue;
      const ttl = inst.ptr.ttl - Math.ceil((now - inst.ptr.at) / 1000);
      if (ttl > 0) answers.push({ name: typeDomain(inst.kind), type: 'PTR', ttl, data: instanceDomain(inst.kind, inst.instance) });
    }
    return answers;
  }

  /**
   * At the deadline: every responder that gave its SRV but not everything else, reported as it is
   * (no addresses: the SRV's source is where to knock; no TXT: flags unknown). Marks them reported.
   */
  finish(now: number): FoundService[] {
    const late: FoundService[] = [];
    for (const inst of this.instances.values()) {
      for (const r of inst.responders.values()) {
        if (r.up || !r.srv) continue;
        const addrs = this.addressesOf(inst, r);
        const missing: ('addresses' | 'txt')[] = [];
        if (!addrs) missing.push('addresses');
        if (!r.txt) missing.push('txt');
        r.up = this.service(inst, r, addrs ?? [], now, missing);
        late.push(r.up);
      }
    }
    return late;
  }

  /** Every service reported so far, in the order found. */
  services(): FoundService[] {
    const all: FoundService[] = [];
    for (const inst of this.instances.values()) for (const r of inst.responders.values()) if (r.up) all.push(r.up);
    return all.sort((a, b) => a.foundMs - b.foundMs);
  }

  /** Instances heard of (a PTR) that no responder described with an SRV: found, but not where. */
  nameless(): { kind: ServiceKind; instance: string }[] {
    return [...this.instances.values()].filter((i) => i.ptr && ![...i.responders.values()].some((r) => r.srv)).map((i) => ({ kind: i.kind, instance: i.instance }));
  }
}
