// Announcing one DNS-SD service on every suitable interface: probe the instance and host names, announce, defend, follow interface changes, say goodbye.
import { isIP } from 'node:net';
import { currentLinks, instanceDomain, openLink, serviceRecords, type Link, type LinkInfo, type MdnsPacket, type MdnsRecord, type ServiceSpec } from './mdns.js';
import { compareClaims, ownAddresses } from './mdns-records.js';

export interface AnnounceOptions extends Omit<ServiceSpec, 'instance'> {
  /** The instance name wanted; a taken one becomes "name (2)", "name (3)"… */
  instance: string;
  /**
   * The address the server listens on: undefined, `::` or `0.0.0.0` for every interface; otherwise
   * only the interface holding that address is announced on, with that address alone.
   */
  boundAddress?: string;
  /** How often interfaces are looked at for changes (default 5 s; one getifaddrs call). */
  pollMs?: number;
  onEvent?: (event: AnnounceEvent) => void;
  /** Injected interface list (tests); by default the machine's. */
  links?: () => LinkInfo[];
}

export type AnnounceEvent =
  | { type: 'announced'; instance: string; host: string; interfaces: LinkInfo[] }
  | { type: 'renamed'; from: string; to: string }
  | { type: 'host-renamed'; from: string; to: string; by: string }
  | { type: 'interface-up'; link: LinkInfo }
  | { type: 'interface-down'; link: LinkInfo }
  | { type: 'no-interface' }
  | { type: 'conflict'; name: string; from: string }
  | { type: 'warning'; message: string };

export interface Announcer {
  /** The instance name in use (after any renaming). */
  readonly instance: string;
  /** The host name in use, without `.local` (after any renaming). */
  readonly host: string;
  /** Interfaces announced on right now. */
  interfaces(): LinkInfo[];
  /** Send goodbyes (TTL 0) on every interface, then close every socket. */
  close(): Promise<void>;
}

/** RFC 6762 section 8.1: three probes 250 ms apart. */
const PROBES = 3;
const PROBE_INTERVAL_MS = 250;
/** Announcements at 0, 1 and 3 s (section 8.3 asks for at least two, the interval doubling). */
const ANNOUNCE_DELAYS_MS = [0, 1000, 3000];
const MAX_RENAMES = 20;
/** Section 9: after 15 conflicts within 10 s, wait 5 s before each further probe. */
const CONFLICT_BURST = 15;
const CONFLICT_WINDOW_MS = 10_000;
const CONFLICT_BACKOFF_MS = 5000;
/** A goodbye still unsent after this is given up (an interface that vanished). */
const GOODBYE_WAIT_MS = 500;
/** DNS labels are at most 63 bytes. */
const MAX_LABEL_BYTES = 63;

function linkKey(l: LinkInfo): string {
  return `${l.iface}|${l.address}|${l.netmask}|${l.v6.join(',')}`;
}

/** The links to announce on for a server bound to `bound`, each with the addresses to announce there. */
export function eligibleLinks(all: readonly LinkInfo[], bound: string | undefined): { link: LinkInfo; addresses: string[] }[] {
  const b = bound?.startsWith('::ffff:') ? bound.slice(7) : bound;
  if (b === undefined || b === '::') return all.map((link) => ({ link, addresses: [link.address, ...link.v6] }));
  if (b === '0.0.0.0') return all.map((link) => ({ link, addresses: [link.address] }));
  if (isIP(b) === 4) return all.filter((l) => l.address === b).map((link) => ({ link, addresses: [b] }));
  return all.filter((l) => l.v6.some((a) => a.toLowerCase() === b.toLowerCase())).map((link) => ({ link, addresses: [b] }));
}

/** `base (n)`, cut so it stays one DNS label. */
export function renamed(base: string, n: number): string {
  const suffix = ` (${n})`;
  let b = base;
  while (Buffer.byteLength(b + suffix) > MAX_LABEL_BYTES) b = [...b].slice(0, -1).join('');
  return b + suffix;
}

/** `host-n`, cut so it stays one DNS label (host names are ASCII letters, digits and '-'). */
export function renamedHost(base: string, n: number): string {
  const suffix = `-${n}`;
  return base.slice(0, MAX_LABEL_BYTES - suffix.length) + suffix;
}

/**
 * What in `packet` (from `from`) contradicts our claim to `instanceName` (an SRV with another port or
 * target) or to `hostName` (an address record with an address that is not this machine's).
 */
export function conflicts(packet: MdnsPacket, from: string, claim: { instanceName: string; hostName: string; port: number }, own: () => Set<string>): { instance: boolean; host: boolean } {
  const out = { instance: false, host: false };
  const target = claim.hostName.toLowerCase();
  for (const rr of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
    if (!rr || typeof rr.name !== 'string' || (rr.ttl ?? 0) === 0) continue;
    const name = rr.name.toLowerCase();
    if (rr.type === 'SRV' && name === claim.instanceName.toLowerCase()) {
      const d = rr.data as { port?: number; target?: string } | undefined;
      if (!(d?.port === claim.port && typeof d.target === 'string' && d.target.toLowerCase() === target)) out.instance = true;
    }
    // The same host name from this machine (another netkit server here) is shared, not a conflict.
    if ((rr.type === 'A' || rr.type === 'AAAA') && name === target && typeof rr.data === 'string') {
      const mine = own();
      if (!mine.has(from.toLowerCase()) && !mine.has(rr.data.toLowerCase())) out.host = true;
    }
  }
  return out;
}

/** Sleep `ms`; every sleeper in `sleepers` can be woken at once (on close). */
function wait(ms: number, sleepers: Set<() => void>): Promise<void> {
  return new Promise((resolve) => {
    const wake = (): void => {
      clearTimeout(t);
      sleepers.delete(wake);
      resolve();
    };
    const t = setTimeout(wake, ms);
    sleepers.add(wake);
  });
}

interface Entry {
  link: Link;
  addresses: string[];
  records?: MdnsRecord[];
}

/**
 * Start announcing. Resolves once the sockets are open; probing and the announcements go on in the
 * background and are reported through `onEvent`. Problems never stop the server: they are warnings.
 */
export async function announce(opts: AnnounceOptions): Promise<Announcer> {
  const listLinks = opts.links ?? currentLinks;
  const emit = opts.onEvent ?? ((): void => undefined);
  const sleepers = new Set<() => void>();
  const active = new Map<string, Entry>();
  let instance = opts.instance;
  let host = opts.host;
  let instanceRenames = 1;
  let hostRenames = 1;
  let closed = false;
  let announced = false;
  /** Bumped when announcing starts over (a conflict): older announcement loops stop. */
  let generation = 0;
  const conflictTimes: number[] = [];

  const spec = (): ServiceSpec => ({ kind: opts.kind, instance, host, port: opts.port, txt: opts.txt });
  const claim = (): { instanceName: string; hostName: string; port: number } => ({ instanceName: instanceDomain(opts.kind, instance), hostName: `${host}.local`, port: opts.port });
  let ownCache: { at: number; set: Set<string> } | undefined;
  const own = (): Set<string> => {
    if (!ownCache || Date.now() - ownCache.at > 1000) ownCache = { at: Date.now(), set: ownAddresses() };
    return ownCache.set;
  };

  /** Section 9: a conflicting answer after announcing starts probing over (renaming if the other side holds on). */
  const watchConflicts = (link: Link): void => {
    link.onResponse((packet, from) => {
      if (!announced || closed) return;
      const c = conflicts(packet, from, claim(), own);
      if (!c.instance && !c.host) return;
      emit({ type: 'conflict', name: c.instance ? instance : `${host}.local`, from });
      restart();
    });
  };

  const open = async (entries: { link: LinkInfo; addresses: string[] }[]): Promise<void> => {
    await Promise.all(
      entries.map(async ({ link: info, addresses }) => {
        try {
          const link = await openLink(info, (message) => emit({ type: 'warning', message }));
          if (closed) return void (await link.close());
          watchConflicts(link);
          active.set(linkKey(info), { link, addresses });
        } catch (err) {
          emit({ type: 'warning', message: err instanceof Error ? err.message : String(err) });
        }
      }),
    );
  };

  /**
   * Probe the instance name and the host name on every open link (section 8.1). `instance`/`host`:
   * another responder owns that name, or claims it in a probe of its own at the same time and wins the
   * tie-break (8.2). Section 8.2 has the loser wait a second and probe again; here it renames at once,
   * since two servers that each win one of the two names would otherwise wait for each other forever.
   */
  const probe = async (): Promise<{ instance: boolean; host: boolean; by?: string }> => {
    const entries = [...active.values()];
    const out: { instance: boolean; host: boolean; by?: string } = { instance: false, host: false };
    if (entries.length === 0) return out;
    const { instanceName, hostName } = claim();
    const names = [instanceName.toLowerCase(), hostName.toLowerCase()];
    const proposed = (e: Entry): MdnsRecord[] => serviceRecords(spec(), e.addresses).filter((r) => names.includes(r.name.toLowerCase()));
    const offs = entries.flatMap((e) => [
      e.link.onResponse((packet, from) => {
        const c = conflicts(packet, from, claim(), own);
        out.instance ||= c.instance;
        if (c.host && !out.host) Object.assign(out, { host: true, by: from });
      }),
      e.link.onQuery((packet, from) => {
        // Another probe for one of our names (a query with proposed records): the later set of records wins.
        // Our own probes come back identical (a tie); this machine's other servers share the host name.
        for (const [i, name] of names.entries()) {
          const theirs = (packet.authorities ?? []).filter((r) => r && typeof r.name === 'string' && r.name.toLowerCase() === name);
          if (theirs.length === 0 || (i === 1 && own().has(from.toLowerCase()))) continue;
          if (compareClaims(proposed(e).filter((r) => r.name.toLowerCase() === name), theirs) >= 0) continue;
          if (i === 0) out.instance = true;
          else if (!out.host) Object.assign(out, { host: true, by: from });
        }
      }),
    ]);
    try {
      await wait(Math.random() * PROBE_INTERVAL_MS, sleepers);
      for (let i = 0; i < PROBES && !out.instance && !out.host && !closed; i++) {
        await Promise.all(
          entries.map((e) => {
            const packet: MdnsPacket = {
              // The first probe asks for a direct answer (section 8.1).
              questions: [
                { name: instanceName, type: 'ANY', qu: i === 0 },
                { name: hostName, type: 'ANY', qu: i === 0 },
              ],
              authorities: proposed(e),
            };
            return e.link.query(packet).catch((err: Error) => emit({ type: 'warning', message: err.message }));
          }),
        );
        await wait(PROBE_INTERVAL_MS, sleepers);
      }
    } finally {
      for (const off of offs) off();
    }
    return out;
  };

  const announceOn = async (entry: Entry, gen: number): Promise<void> => {
    entry.records = serviceRecords(spec(), entry.addresses);
    entry.link.serve(entry.records);
    for (let i = 0; i < ANNOUNCE_DELAYS_MS.length; i++) {
      if (i > 0) await wait(ANNOUNCE_DELAYS_MS[i]! - ANNOUNCE_DELAYS_MS[i - 1]!, sleepers);
      if (closed || gen !== generation || !entry.records) return;
      await entry.link.respond({ answers: entry.records }).catch((err: Error) => emit({ type: 'warning', message: err.message }));
    }
  };

  const goodbye = async (entry: Entry): Promise<void> => {
    const records = entry.records;
    entry.records = undefined;
    entry.link.serve(undefined);
    if (!records) return;
    // Only the records that are ours alone: the host's addresses and the type enumeration are shared
    // with other services of this machine, and a goodbye for them would hide those too.
    const name = instanceDomain(opts.kind, instance).toLowerCase();
    const mine = records.filter((r) => r.name.toLowerCase() === name || (r.type === 'PTR' && String(r.data).toLowerCase() === name));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      entry.link.respond({ answers: mine.map((r) => ({ ...r, ttl: 0 })) }).catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, GOODBYE_WAIT_MS))),
    ]);
    clearTimeout(timer);
  };

  /** Probe (renaming what another responder owns or wins), then announce. */
  const start = async (gen: number): Promise<void> => {
    for (;;) {
      if (closed || gen !== generation) return;
      const r = await probe();
      if (closed || gen !== generation) return;
      if (!r.instance && !r.host) break;
      if (instanceRenames + hostRenames - 2 >= MAX_RENAMES) {
        emit({ type: 'warning', message: `every name from "${opts.instance}" to "${instance}" (host ${host}.local) is taken on the network; not announcing` });
        return;
      }
      if (r.host) {
        const from = host;
        host = renamedHost(opts.host, ++hostRenames);
        emit({ type: 'host-renamed', from: `${from}.local`, to: `${host}.local`, by: r.by ?? '?' });
      }
      if (r.instance) {
        const from = instance;
        instance = renamed(opts.instance, ++instanceRenames);
        emit({ type: 'renamed', from, to: instance });
      }
    }
    const entries = [...active.values()];
    announced = true;
    if (entries.length > 0) emit({ type: 'announced', instance, host, interfaces: entries.map((e) => e.link.info) });
    await Promise.all(entries.map((e) => announceOn(e, gen)));
  };

  const restart = (): void => {
    announced = false;
    const gen = ++generation;
    for (const e of active.values()) {
      e.records = undefined;
      e.link.serve(undefined);
    }
    const now = Date.now();
    conflictTimes.push(now);
    while (conflictTimes.length > 0 && now - conflictTimes[0]! > CONFLICT_WINDOW_MS) conflictTimes.shift();
    const pause = conflictTimes.length >= CONFLICT_BURST ? CONFLICT_BACKOFF_MS : 0;
    running = wait(pause, sleepers).then(() => start(gen));
  };

  const initial = eligibleLinks(listLinks(), opts.boundAddress);
  await open(initial);
  if (initial.length === 0) emit({ type: 'no-interface' });
  let running = start(generation);

  // Interfaces come and go (Wi-Fi, VPN, DHCP): every pollMs, compare and follow.
  let polling = false;
  const poll = setInterval(() => {
    if (polling || closed || !announced) return;
    polling = true;
    void (async () => {
      const wanted = new Map(eligibleLinks(listLinks(), opts.boundAddress).map((e) => [linkKey(e.link), e]));
      for (const [key, entry] of [...active]) {
        if (wanted.has(key)) continue;
        active.delete(key);
        emit({ type: 'interface-down', link: entry.link.info });
        await goodbye(entry); // fails quietly when the address is already gone
        await entry.link.close();
      }
      const added = [...wanted].filter(([key]) => !active.has(key)).map(([, e]) => e);
      await open(added);
      for (const e of added) {
        const entry = active.get(linkKey(e.link));
        if (!entry || closed || !announced) continue;
        emit({ type: 'interface-up', link: e.link });
        void announceOn(entry, generation);
      }
    })()
      .catch((err: unknown) => emit({ type: 'warning', message: `following interface changes: ${err instanceof Error ? err.message : String(err)}` }))
      .finally(() => (polling = false));
  }, opts.pollMs ?? 5000);
  poll.unref();

  return {
    get instance() {
      return instance;
    },
    get host() {
      return host;
    },
    interfaces: () => [...active.values()].map((e) => e.link.info),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(poll);
      for (const wake of [...sleepers]) wake();
      const entries = [...active.values()];
      active.clear();
      await Promise.all(
        entries.map(async (e) => {
          await goodbye(e);
          await e.link.close();
        }),
      );
      await running.catch(() => undefined);
    },
  };
}
