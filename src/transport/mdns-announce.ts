// Announcing one DNS-SD service on every suitable interface: probe the name, announce, follow interface changes, say goodbye.
import { isIP } from 'node:net';
import { currentLinks, instanceDomain, openLink, serviceRecords, type Link, type LinkInfo, type MdnsPacket, type MdnsRecord, type ServiceSpec } from './mdns.js';

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
  | { type: 'announced'; instance: string; interfaces: LinkInfo[] }
  | { type: 'renamed'; from: string; to: string }
  | { type: 'interface-up'; link: LinkInfo }
  | { type: 'interface-down'; link: LinkInfo }
  | { type: 'no-interface' }
  | { type: 'conflict'; instance: string; from: string }
  | { type: 'warning'; message: string };

export interface Announcer {
  /** The instance name in use (after any renaming). */
  readonly instance: string;
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

function sameSrv(rr: MdnsRecord, port: number, target: string): boolean {
  const d = rr.data as { port?: number; target?: string } | undefined;
  return d?.port === port && typeof d.target === 'string' && d.target.toLowerCase() === target.toLowerCase();
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

/**
 * Start announcing. Resolves once the sockets are open; probing and the announcements go on in the
 * background and are reported through `onEvent`. Problems never stop the server: they are warnings.
 */
export async function announce(opts: AnnounceOptions): Promise<Announcer> {
  const listLinks = opts.links ?? currentLinks;
  const emit = opts.onEvent ?? ((): void => undefined);
  const target = `${opts.host}.local`;
  const timers = new Set<() => void>();
  const active = new Map<string, { link: Link; addresses: string[]; records?: MdnsRecord[] }>();
  let instance = opts.instance;
  let closed = false;
  let announced = false;
  let conflictReported = false;

  const spec = (): ServiceSpec => ({ kind: opts.kind, instance, host: opts.host, port: opts.port, txt: opts.txt });
  const fqdn = (): string => instanceDomain(opts.kind, instance).toLowerCase();

  const watchConflicts = (link: Link): void => {
    // Someone else claiming our name after we announced: say so once (renaming then would confuse clients).
    link.onResponse((packet, from) => {
      if (!announced || conflictReported) return;
      for (const rr of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
        if (rr.type === 'SRV' && (rr.ttl ?? 0) > 0 && rr.name.toLowerCase() === fqdn() && !sameSrv(rr, opts.port, target)) {
          conflictReported = true;
          emit({ type: 'conflict', instance, from });
        }
      }
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

  /** Probe `name` on every open link: true when another responder owns it. */
  const probe = async (): Promise<boolean> => {
    const links = [...active.values()];
    if (links.length === 0) return false;
    let conflict = false;
    const name = fqdn();
    const offs = links.map(({ link }) =>
      link.onResponse((packet) => {
        for (const rr of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
          if (rr.type === 'SRV' && rr.name.toLowerCase() === name && (rr.ttl ?? 0) > 0 && !sameSrv(rr, opts.port, target)) conflict = true;
        }
      }),
    );
    try {
      await wait(Math.random() * PROBE_INTERVAL_MS, timers);
      for (let i = 0; i < PROBES && !conflict && !closed; i++) {
        await Promise.all(
          links.map(({ link, addresses }) => {
            const records = serviceRecords(spec(), addresses).filter((r) => r.name.toLowerCase() === name);
            const packet: MdnsPacket = { questions: [{ name: instanceDomain(opts.kind, instance), type: 'ANY' }], authorities: records };
            return link.query(packet).catch((err: Error) => emit({ type: 'warning', message: err.message }));
          }),
        );
        await wait(PROBE_INTERVAL_MS, timers);
      }
    } finally {
      for (const off of offs) off();
    }
    return conflict;
  };

  const announceOn = async (entry: { link: Link; addresses: string[]; records?: MdnsRecord[] }): Promise<void> => {
    entry.records = serviceRecords(spec(), entry.addresses);
    entry.link.serve(entry.records);
    for (let i = 0; i < ANNOUNCE_DELAYS_MS.length && !closed; i++) {
      if (i > 0) await wait(ANNOUNCE_DELAYS_MS[i]! - ANNOUNCE_DELAYS_MS[i - 1]!, timers);
      if (closed || !entry.records) return;
      await entry.link.respond({ answers: entry.records }).catch((err: Error) => emit({ type: 'warning', message: err.message }));
    }
  };

  const goodbye = async (entry: { link: Link; records?: MdnsRecord[] }): Promise<void> => {
    const records = entry.records;
    entry.records = undefined;
    entry.link.serve(undefined);
    if (!records) return;
    // Only the records that are ours alone: the host's addresses and the type enumeration are shared
    // with other services of this machine, and a goodbye for them would hide those too.
    const name = fqdn();
    const mine = records.filter((r) => r.name.toLowerCase() === name || (r.type === 'PTR' && String(r.data).toLowerCase() === name));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      entry.link.respond({ answers: mine.map((r) => ({ ...r, ttl: 0 })) }).catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, GOODBYE_WAIT_MS))),
    ]);
    clearTimeout(timer);
  };

  const initial = eligibleLinks(listLinks(), opts.boundAddress);
  await open(initial);
  if (initial.length === 0) emit({ type: 'no-interface' });

  const start = async (): Promise<void> => {
    for (let n = 2; !closed; n++) {
      if (!(await probe())) break;
      if (n > MAX_RENAMES + 1) {
        emit({ type: 'warning', message: `every name from "${opts.instance}" to "${instance}" is taken on the network; not announcing` });
        return;
      }
      const from = instance;
      instance = renamed(opts.instance, n);
      emit({ type: 'renamed', from, to: instance });
    }
    if (closed) return;
    const entries = [...active.values()];
    announced = true;
    if (entries.length > 0) emit({ type: 'announced', instance, interfaces: entries.map((e) => e.link.info) });
    await Promise.all(entries.map(announceOn));
  };
  const started = start();

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
        if (!entry || closed) continue;
        emit({ type: 'interface-up', link: e.link });
        void announceOn(entry);
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
    interfaces: () => [...active.values()].map((e) => e.link.info),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(poll);
      for (const wake of [...timers]) wake();
      const entries = [...active.values()];
      active.clear();
      await Promise.all(entries.map(async (e) => {
        await goodbye(e);
        await e.link.close();
      }));
      await started.catch(() => undefined);
    },
  };
}
