// The addresses to open in a browser: one URL per address the server is reachable on from elsewhere.
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { isIPv6 } from 'node:net';
import { isLoopback } from '../../limits.js';

function url(scheme: string, address: string, port: number): string {
  return `${scheme}://${isIPv6(address) ? `[${address}]` : address}:${port}/`;
}

/** Link-local IPv6 needs a zone id, which browsers do not take in a URL. */
const linkLocal = (a: string): boolean => /^fe[89ab]/i.test(a);

/**
 * The URLs a person can open: for a server bound to every interface (`::` or `0.0.0.0`), one per
 * non-loopback address of this machine (IPv4 only for `0.0.0.0`; no link-local IPv6), or the
 * loopback one when there is no other; for a server bound to one address, that address.
 */
export function serverUrls(host: string, port: number, scheme: 'http' | 'https', interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  const bare = host.replace(/^::ffff:/i, '');
  if (bare !== '::' && bare !== '0.0.0.0') return [url(scheme, bare, port)];
  const urls: string[] = [];
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) {
      if (info.internal || isLoopback(info.address) || linkLocal(info.address)) continue;
      if (bare === '0.0.0.0' && info.family !== 'IPv4') continue;
      urls.push(url(scheme, info.address, port));
    }
  }
  return urls.length > 0 ? [...new Set(urls)] : [url(scheme, bare === '::' ? '::1' : '127.0.0.1', port)];
}
