// `disk query` with DNS-SD: ask the named hosts and every announced disk server; a name the system resolver does not know is looked up on the link.
import { isIP } from 'node:net';
import { NetkitError } from '../../errors.js';
import { queryDisk, queryDisks, type DiskQueryOptions, type HostResult, type QueryTarget } from './query.js';
import type { DiscoveredServer } from '../discover.js';

export interface DiscoveringQueryOptions extends DiskQueryOptions {
  /** Also ask every disk server that announces itself (`--discover`). */
  discover?: boolean;
  discoverTimeoutMs?: number;
  /** Each server as discovery finds it (it is asked at once, while discovery goes on). */
  onDiscovered?: (server: DiscoveredServer) => void;
  onWarning?: (message: string) => void;
}

export interface DiscoveringQueryResult {
  /** Named hosts first, in the order given, then discovered servers in the order they answered. */
  results: HostResult[];
  /**
   * With --discover and named hosts: nothing announced itself, or discovery could not run at all (UDP
   * 5353 held, no interface). Worth a note, not a failure: the named hosts were asked.
   */
  nothingDiscovered?: NetkitError;
}

/**
 * A target to look up on the link: an instance name that cannot be a host name (asked through DNS-SD
 * only), or a name the system resolver did not know that has no dots (an instance name) or ends in
 * `.local` (a host name, asked over mDNS). Any other dotted name is a DNS name.
 */
function onLink(r: HostResult): boolean {
  if (r.ok) return false;
  if (r.target.instance) return true;
  const h = r.target.host;
  return r.error.code === 'HOST_NOT_FOUND' && isIP(h) === 0 && !h.includes(':') && (!h.includes('.') || /\.local\.?$/i.test(h));
}

const load = (): Promise<[typeof import('../discover.js'), typeof import('../resolve-name.js')]> => Promise.all([import('../discover.js'), import('../resolve-name.js')]);

export async function queryWithDiscovery(targets: readonly QueryTarget[], o: DiscoveringQueryOptions): Promise<DiscoveringQueryResult> {
  const discovered: Promise<HostResult>[] = [];
  // Instance names go straight to DNS-SD: the system resolver cannot know `Office NAS`.
  const unresolvable = (t: QueryTarget): HostResult => ({ target: t, ok: false, elapsedMs: 0, error: new NetkitError('HOST_NOT_FOUND', `cannot resolve host '${t.label}'`) });
  const named = queryDisks(targets.filter((t) => !t.instance), o);
  // The discovery code (and the trust store it compares fingerprints with) loads only when needed, so a
  // plain `disk query HOST` starts as fast as before.
  const literal = new Set(targets.filter((t) => isIP(t.host) !== 0).map((t) => `${t.host}|${t.port}`));
  const discovery = o.discover
    ? load()
        .then(([d]) =>
          d.discoverServers({
            kinds: ['disk'],
            timeoutMs: o.discoverTimeoutMs,
            onFound: (s) => {
              o.onDiscovered?.(s);
              if (literal.has(`${s.address}|${s.port}`)) return; // already asked by address
              discovered.push(queryDisk({ label: s.name, host: s.address, port: s.port }, o));
            },
            ...(o.onWarning ? { onWarning: o.onWarning } : {}),
          }),
        )
        // Held here, so that a discovery that cannot start is never an unhandled rejection meanwhile.
        .then((found) => ({ found }), (error: unknown) => ({ error }))
    : undefined;

  const asked = await named;
  const results = targets.map((t) => (t.instance ? unresolvable(t) : asked.shift()!));
  if (results.some(onLink)) {
    const [, { resolveOnLink }] = await load();
    await Promise.all(
      results.map(async (r, i) => {
        if (r.ok || !onLink(r)) return;
        const t = r.target;
        try {
          const found = await resolveOnLink(t.host, 'disk', { timeoutMs: o.discoverTimeoutMs, instanceOnly: t.instance === true, ...(o.onWarning ? { onWarning: o.onWarning } : {}) }, t.instance ? undefined : r.error);
          // NAME:PORT keeps its port; a bare instance name takes the announced one.
          results[i] = await queryDisk({ label: t.label, host: found.host, port: t.portGiven ? t.port : (found.port ?? t.port) }, o);
        } catch (err) {
          results[i] = { target: t, ok: false, elapsedMs: r.elapsedMs, error: err instanceof NetkitError ? err : new NetkitError('FAILED', String(err)) };
        }
      }),
    );
  }
  if (!discovery) return { results };
  const outcome = await discovery;
  const extra = await Promise.all(discovered);
  if ('error' in outcome) {
    if (targets.length === 0 || !(outcome.error instanceof NetkitError)) throw outcome.error;
    const e = outcome.error;
    return { results, nothingDiscovered: new NetkitError(e.code, `--discover: ${e.message}; only the named hosts were asked`, e.hint, { cause: e }) };
  }
  if (outcome.found.servers.length === 0) {
    const none = (await load())[0].nothingFound(['disk'], outcome.found);
    if (targets.length === 0) throw none;
    return { results, nothingDiscovered: none };
  }
  return { results: [...results, ...extra] };
}
