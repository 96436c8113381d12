// Naming a server and a file on it, one way for every command: HOST, HOST:PORT, [IPv6], [IPv6]:PORT, and for fetch HOST:NAME and netkit://HOST[:PORT]/NAME.
import { NetkitError } from '../errors.js';
import { sanitize } from '../cli/output.js';

export interface Target {
  /** As the user wrote it (for messages). */
  label: string;
  /** Name or address, IPv6 without brackets. */
  host: string;
  port: number;
  /** True when the text carried the port (HOST:PORT), false when it came from the default. */
  portGiven?: boolean;
  /** The text cannot be a DNS host name (it has a space, say): only an announced DNS-SD instance name can match it. */
  instance?: boolean;
}

const HINT = 'write HOST, HOST:PORT, [IPv6] or [IPv6]:PORT, with a port from 1 to 65535';

export interface ParseTargetOptions {
  /**
   * Text that cannot be a host name (a space, a slash…) is an announced instance name such as
   * `Office NAS` (or `Office NAS:PORT`), for commands that look names up through DNS-SD.
   */
  instanceNames?: boolean;
}

/**
 * Parse HOST, HOST:PORT, [V6], [V6]:PORT or a bare IPv6 literal. Throws a USAGE NetkitError for a bad
 * port or an empty name, so an invalid port gets its own message, distinct from an unknown host.
 */
export function parseTarget(text: string, defaultPort: number, opts: ParseTargetOptions = {}): Target {
  const usage = (msg: string): NetkitError => new NetkitError('USAGE', msg, HINT);
  const checkPort = (p: string): number => {
    if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw usage(`invalid port '${p}' in '${text}'`);
    return Number(p);
  };
  const t = text.trim();
  if (t === '') throw usage('empty host name');
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(t);
  if (bracket) {
    const given = bracket[2] !== undefined;
    return { label: text, host: bracket[1]!, port: given ? checkPort(bracket[2]!) : defaultPort, portGiven: given };
  }
  // An instance name is one DNS label of printable text (as `--name` accepts it); '[' starts an IPv6 address.
  const instance = (name: string, port: number, portGiven: boolean): Target => {
    if (!opts.instanceNames || t.startsWith('[') || /[\u0000-\u001f\u007f-\u009f]/.test(name) || Buffer.byteLength(name) > 63) throw usage(`invalid host '${text}'`);
    return { label: text, host: name, port, portGiven, instance: true };
  };
  const colons = t.split(':').length - 1;
  if (colons === 1) {
    const [h, p] = t.split(':') as [string, string];
    if (h === '') throw usage(`missing host name in '${text}'`);
    if (/[\s/]/.test(t)) return /^\d*$/.test(p) ? instance(h.trim(), checkPort(p), true) : instance(t, defaultPort, false);
    return { label: text, host: h, port: checkPort(p), portGiven: true };
  }
  // No colon: a name or IPv4; several: a bare IPv6 literal (its port comes from the default).
  if (/[\s/[\]]/.test(t)) return instance(t, defaultPort, false);
  return { label: text, host: t, port: defaultPort, portGiven: false };
}

export interface FetchSource {
  host: string;
  port: number;
  name: string;
  /** -H named an announced instance name that cannot be a host name (see Target.instance). */
  instance?: boolean;
}

/**
 * Where `file fetch NAME` fetches from. `--host` (HOST[:PORT], or an announced instance name) and
 * `--port` as given (undefined when absent). NAME may carry the server itself, as
 * `netkit://HOST[:PORT]/NAME`, or scp's `HOST:NAME` when no --host is given (a name with a colon from
 * the default server: `-H localhost NAME`). With `discover` (--discover finds the server), naming one
 * as well is a usage error, and NAME is only a file name.
 */
export function parseFetchSource(name: string, host: string | undefined, port: number | undefined, defaults: { host: string; port: number }, opts: { discover?: boolean } = {}): FetchSource {
  const by = host !== undefined ? '-H/--host' : opts.discover ? '--discover' : '--port';
  const twice = (how: string, other = by): NetkitError =>
    new NetkitError('USAGE', `the server is given twice: ${how} and with ${other}`, opts.discover ? 'give either --discover or the server (-H HOST[:PORT], netkit://HOST[:PORT]/NAME), not both' : 'name the server once: -H HOST[:PORT] NAME, or netkit://HOST[:PORT]/NAME');
  // A URL of another scheme is never a file name (nor scp's HOST:NAME, `http` being no host).
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(name)?.[1];
  if (scheme !== undefined && scheme.toLowerCase() !== 'netkit') {
    const why = /^https?$/i.test(scheme) ? `only \`file fetch\` takes an ${scheme.toLowerCase()}:// URL (as its one NAME)` : 'netkit fetches netkit://, http:// and https:// URLs';
    throw new NetkitError('USAGE', `cannot use '${sanitize(name, 200)}': ${why}`, 'name a file on a netkit server: -H HOST NAME, or netkit://HOST[:PORT]/NAME');
  }
  // The scheme is case-insensitive, as in any URL (NETKIT://nas/x).
  const url = /^netkit:\/\/([^/]*)\/(.*)$/is.exec(name);
  if (url || /^netkit:/i.test(name)) {
    if (!url || url[2] === '') throw new NetkitError('USAGE', `cannot read '${name}' as netkit://HOST[:PORT]/NAME`, 'for example netkit://nas:8881/movies/big.iso, or -H nas movies/big.iso');
    if (host !== undefined || port !== undefined || opts.discover) throw twice(`in '${name}'`);
    const t = parseTarget(url[1]!, defaults.port);
    return { host: t.host, port: t.port, name: url[2]! };
  }
  if (opts.discover) {
    if (host !== undefined) throw twice(`with -H ${/\s/.test(host) ? `'${host}'` : host}`, '--discover');
    if (port !== undefined) throw new NetkitError('USAGE', '--port does not go with --discover: the port is the one the server announces', 'leave out --port, or name the server with -H HOST:PORT');
    return { ...defaults, name };
  }
  if (host === undefined) {
    // scp's HOST:NAME (HOST without a slash; [IPv6]:NAME too). Not a bare IPv6 address, not a drive letter.
    const scp = /^(\[[^\]]+\]|[^/:[\]]{2,}):(.+)$/s.exec(name);
    if (scp) {
      const t = parseTarget(scp[1]!, port ?? defaults.port);
      return { host: t.host, port: t.port, name: scp[2]! };
    }
  }
  const t = parseTarget(host ?? defaults.host, port ?? defaults.port, { instanceNames: host !== undefined });
  if (t.portGiven && port !== undefined && port !== t.port) {
    throw new NetkitError('USAGE', `-H ${host} and --port ${port} name two different ports`, 'give the port once');
  }
  return { host: t.host, port: t.port, name, ...(t.instance ? { instance: true } : {}) };
}

/** `file fetch http(s)://HOST[:PORT]/PATH`: where to connect, what to send, and the name the file is saved under. */
export interface HttpUrlSource {
  /** As given, for messages and the result. */
  url: string;
  scheme: 'http' | 'https';
  /** Name or address, IPv6 without brackets. */
  host: string;
  port: number;
  /** The request-target: the URL's path and query as they are sent (percent-encoded). */
  target: string;
  /** The path percent-decoded, without its leading '/': the local name is its last segment. */
  name: string;
}

/** Read an http:// or https:// URL; undefined for anything else (a NAME, HOST:NAME, netkit://...). */
export function parseHttpUrl(text: string): HttpUrlSource | undefined {
  if (!/^https?:\/\//i.test(text)) return undefined;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new NetkitError('USAGE', `cannot read '${text}' as a URL`, 'for example http://nas:8881/movies/big.iso');
  }
  if (u.username !== '' || u.password !== '') {
    throw new NetkitError('USAGE', 'a URL with a user name or password is not fetched: netkit sends no credentials in clear', 'over https://, give the secret with --token-file or NETKIT_TOKEN');
  }
  const scheme = u.protocol === 'https:' ? 'https' : 'http';
  let name: string;
  try {
    name = decodeURIComponent(u.pathname);
  } catch {
    name = u.pathname;
  }
  return {
    url: text,
    scheme,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port),
    target: `${u.pathname}${u.search}`,
    name: name.replace(/^\/+/, ''),
  };
}
