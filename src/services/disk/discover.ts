// `disk query` with DNS-SD: ask the named hosts and every announced disk server; a name the system resolver does not know is tried as an announced name.
import { isIP } from 'node:net';
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
  /** With --discover and named hosts: nothing announced itself (worth a note, not a failure). */
  nothingDiscovered?: Error;
}

/** A one-label name the system resolver did not know: is it an announced instance name? (A dotted name is a DNS name.) */
function unresolvedName(r: HostResult): boolean {
  return !r.ok && r.error.code === 'HOST_NOT_FOUND' && isIP(r.target.host) === 0 && !/[.:]/.test(r.target.host);
}

export async function queryWithDiscovery(targets: readonly QueryTarget[], o: DiscoveringQueryOptions): Promise<DiscoveringQueryResult> {
  const discovered: Promise<HostResult>[] = [];
  const named = queryDisks(targets, o);
  // The discovery code (and the trust store it compares fingerprints with) loads only when needed, so a
  // plain `disk query HOST` starts as fast as before.
  const load = (): Promise<typeof import('../discover.js')> => import('../discover.js');
  const literal = new Set(targets.filter((t) => isIP(t.host) !== 0).map((t) => `${t.host}|${t.port}`));
  const discovery = o.discover
    ? (await load()).discoverServers({
        kinds: ['disk'],
        timeoutMs: o.discoverTimeoutMs,
        onFound: (s) => {
          o.onDiscovered?.(s);
          if (literal.has(`${s.address}|${s.port}`)) return; // already asked by address
          discovered.push(queryDisk({ label: s.name, host: s.address, port: s.port }, o));
        },
        ...(o.onWarning ? { onWarning: o.onWarning } : {}),
      })
    : undefined;

  const results = await named;
  const resolveServiceName = results.some(unresolvedName) ? (await load()).resolveServiceName : undefined;
  await Promise.all(
    results.map(async (r, i) => {
      if (!unresolvedName(r) || !resolveServiceName) return;
      const server = await resolveServiceName(r.target.host, 'disk', { timeoutMs: o.discoverTimeoutMs, ...(o.onWarning ? { onWarning: o.onWarning } : {}) }).catch(() => undefined);
      if (!server) return;
      // NAME:PORT keeps its port; a bare name takes the announced one.
      const port = r.target.label.includes(':') ? r.target.port : server.port;
      results[i] = await queryDisk({ label: r.target.label, host: server.address, port }, o);
    }),
  );
  if (!discovery) return { results };
  const found = await discovery;
  const extra = await Promise.all(discovered);
  if (found.servers.length === 0) {
    const none = (await load()).nothingFound(['disk'], found);
    if (targets.length === 0) throw none;
    return { results, nothingDiscovered: none };
  }
  return { results: [...results, ...extra] };
}
