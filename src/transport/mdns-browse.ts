// Browsing DNS-SD services and resolving `.local` host names: ask on every interface, again and again, and take in whatever answers.
import { NetkitError } from '../errors.js';
import { currentLinks, openLink, typeDomain, type Link, type LinkInfo, type MdnsPacket, type MdnsQuestion, type ServiceKind } from './mdns.js';
import { ServiceCache, type FoundService } from './mdns-cache.js';

export { decodeTxt, type FoundService } from './mdns-cache.js';

export interface BrowseOptions {
  kinds: readonly ServiceKind[];
  /** Browse every instance of `kinds` (PTR questions); default true. */
  browse?: boolean;
  /** Also ask for these instances directly (SRV and TXT questions): resolving a name. */
  instances?: readonly { kind: ServiceKind; instance: string }[];
  onUp?: (service: FoundService) => void;
  /** A goodbye (TTL 0) for a service reported up. */
  onDown?: (service: FoundService) => void;
  onWarning?: (message: string) => void;
  /** Injected interface list (tests); by default the machine's. */
  links?: () => LinkInfo[];
}

export interface Browser {
  /** Services reported so far (complete ones, and those finish() reported), in the order found. */
  services(): FoundService[];
  /** Interfaces asked on. */
  readonly interfaces: LinkInfo[];
  /**
   * The deadline has come: report (through onUp too) every responder that sent its SRV but not yet
   * everything else, with what is missing, instead of leaving it out.
   */
  finish(): FoundService[];
  /** Instances that answered the browse (PTR) but never said where they are (no SRV). */
  nameless(): { kind: ServiceKind; instance: string }[];
  close(): Promise<void>;
}

/** Re-ask after 1 s, then 2, 4, 8… (RFC 6762 section 5.2), at most every minute. */
const FIRST_REQUERY_MS = 1000;
const MAX_REQUERY_MS = 60_000;
/** A follow-up question (SRV, TXT, A, AAAA of one name) is asked at most this often. */
const FOLLOW_UP_MS = 1000;

/** Why there is nowhere to ask: no interface besides loopback. */
export function noInterface(): NetkitError {
  return new NetkitError('UNREACHABLE', 'this machine has no network interface with an IPv4 address besides loopback: there is nowhere to ask', 'connect to a network, or name the server with -H HOST');
}

/** A socket per interface; the first error when none opens (the others are warnings). */
async function openLinks(infos: LinkInfo[], warn: (m: string) => void): Promise<Link[]> {
  if (infos.length === 0) throw noInterface();
  const opened = await Promise.allSettled(infos.map((i) => openLink(i, warn)));
  const links: Link[] = [];
  for (const r of opened) if (r.status === 'fulfilled') links.push(r.value);
  if (links.length === 0) {
    // Said once, as the error; a warning per interface as well would repeat it.
    const first = opened.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    throw first.reason;
  }
  for (const r of opened) if (r.status === 'rejected') warn(r.reason instanceof Error ? r.reason.message : String(r.reason));
  return links;
}

/** Sends questions on every link; a question asked for the first time carries the QU bit (RFC 6762 section 5.4). */
function asker(links: readonly Link[], warn: (m: string) => void): (questions: MdnsQuestion[], extra?: Omit<MdnsPacket, 'questions'>, limited?: boolean) => void {
  const asked = new Map<string, number>();
  return (questions, extra = {}, limited = true) => {
    const now = Date.now();
    const due = questions.filter((q) => !limited || now - (asked.get(`${q.name.toLowerCase()}/${q.type}`) ?? -Infinity) >= FOLLOW_UP_MS);
    if (due.length === 0) return;
    const packet: MdnsPacket = {
      ...extra,
      questions: due.map((q) => {
        const key = `${q.name.toLowerCase()}/${q.type}`;
        const first = !asked.has(key);
        asked.set(key, now);
        return first ? { ...q, qu: true } : q;
      }),
    };
    for (const l of links) l.query(packet).catch((err: Error) => warn(err.message));
  };
}

/** Open a socket per interface and browse until close(). Throws when no interface can be used at all. */
export async function browse(opts: BrowseOptions): Promise<Browser> {
  const warn = opts.onWarning ?? ((): void => undefined);
  const links = await openLinks((opts.links ?? currentLinks)(), warn);
  const started = Date.now();
  const cache = new ServiceCache(opts.kinds, opts.browse !== false, opts.instances ?? [], started);
  const ask = asker(links, warn);
  let closed = false;

  const onPacket = (packet: MdnsPacket, from: string): void => {
    if (closed) return;
    const changes = cache.apply(packet, from, Date.now());
    for (const s of changes.down) opts.onDown?.(s);
    for (const s of changes.up) opts.onUp?.(s);
    // Everything an instance still lacks, asked in one packet: SRV, TXT and the target's A and AAAA.
    const questions = changes.incomplete.flatMap((key) => cache.followUp(key));
    if (questions.length > 0) ask(questions);
  };
  for (const l of links) l.onResponse(onPacket);

  const browseQuestions = (): MdnsQuestion[] => (opts.browse !== false ? opts.kinds.map((k) => ({ name: typeDomain(k), type: 'PTR' })) : []);
  // Known answers (RFC 6762 section 7.1): servers already found stay quiet, which leaves room for the rest.
  const again = (): void => ask([...browseQuestions(), ...cache.unanswered()], { answers: cache.knownAnswers(Date.now()) }, false);
  let interval = FIRST_REQUERY_MS;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    timer = setTimeout(() => {
      again();
      interval = Math.min(interval * 2, MAX_REQUERY_MS);
      schedule();
    }, interval);
  };
  again();
  schedule();

  return {
    services: () => cache.services(),
    interfaces: links.map((l) => l.info),
    finish() {
      const late = cache.finish(Date.now());
      for (const s of late) opts.onUp?.(s);
      return late;
    },
    nameless: () => cache.nameless(),
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      await Promise.all(links.map((l) => l.close()));
    },
  };
}

export interface LocalHostOptions {
  timeoutMs: number;
  onWarning?: (message: string) => void;
  links?: () => LinkInfo[];
}

/**
 * The addresses of `name` (e.g. `nas.local`) from multicast DNS A and AAAA answers, as the first
 * responder gives them; [] when nobody answers within the time. Throws when no interface can be used.
 */
export async function resolveLocalHost(name: string, o: LocalHostOptions): Promise<string[]> {
  const warn = o.onWarning ?? ((): void => undefined);
  const links = await openLinks((o.links ?? currentLinks)(), warn);
  const ask = asker(links, warn);
  const wanted = name.replace(/\.$/, '').toLowerCase();
  let done: (addrs: string[]) => void = () => undefined;
  const answered = new Promise<string[]>((resolve) => (done = resolve));
  for (const l of links) {
    l.onResponse((packet) => {
      const addrs = [...(packet.answers ?? []), ...(packet.additionals ?? [])]
        .filter((r) => (r.type === 'A' || r.type === 'AAAA') && typeof r.data === 'string' && typeof r.name === 'string' && r.name.toLowerCase() === wanted && (r.ttl ?? 0) > 0)
        .map((r) => r.data as string)
        .filter((a) => !/^fe[89ab]/i.test(a));
      if (addrs.length > 0) done([...new Set(addrs)].sort((a, b) => Number(a.includes(':')) - Number(b.includes(':'))));
    });
  }
  const questions: MdnsQuestion[] = [{ name: wanted, type: 'A' }, { name: wanted, type: 'AAAA' }];
  ask(questions, {}, false);
  const requery = setInterval(() => ask(questions, {}, false), FIRST_REQUERY_MS);
  let timer: NodeJS.Timeout | undefined;
  const addrs = await Promise.race([answered, new Promise<string[]>((resolve) => (timer = setTimeout(() => resolve([]), o.timeoutMs)))]);
  clearTimeout(timer);
  clearInterval(requery);
  await Promise.all(links.map((l) => l.close()));
  return addrs;
}
