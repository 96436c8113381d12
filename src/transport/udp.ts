// UDP transport: bind a server socket, and send a request with timeout, retries and backoff; errno -> NetkitError.
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { NetkitError, errnoOf } from '../errors.js';

export interface UdpAddress {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

/** `host:port`, with IPv6 literals in brackets. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

// ---------------------------------------------------------------------------------------------
// Server side

export interface BindOptions {
  /** Address or name to bind; undefined means every interface, IPv6 and IPv4 (dual stack). */
  host?: string;
  port: number;
  /** Ask the kernel for a bigger receive buffer so bursts are not dropped (best effort). */
  recvBufferSize?: number;
}

function bindError(err: unknown, host: string, port: number): NetkitError {
  const where = formatHostPort(host, port);
  switch (errnoOf(err)) {
    case 'EADDRINUSE':
      return new NetkitError('ADDRESS_IN_USE', `cannot listen on udp ${where}: port in use`, 'choose another --port, or 0 for any free port', { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new NetkitError('PERMISSION', `cannot listen on udp ${where}: permission denied`, 'ports below 1024 need privileges; choose a --port of 1024 or more', { cause: err });
    case 'EADDRNOTAVAIL':
      return new NetkitError('UNREACHABLE', `cannot listen on udp ${where}: no such local address`, 'use an address of this machine for --host, or leave it out to listen everywhere', { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NONAME':
      return new NetkitError('HOST_NOT_FOUND', `cannot resolve --host '${host}'`, 'use an address of this machine, such as 127.0.0.1 or ::', { cause: err });
    default:
      return new NetkitError('FAILED', `cannot listen on udp ${where}: ${errnoOf(err) ?? String(err)}`, undefined, { cause: err });
  }
}

/**
 * A server replies to the literal source address of each datagram. dgram would still pass it through
 * dns.lookup (a deferred callback per send); answering literals directly is worth ~5-10% of throughput.
 */
function literalLookup(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  const literal = isIP(address);
  if (literal !== 0) {
    callback(null, address, literal);
    return;
  }
  const wanted = typeof family === 'number' ? family : 0;
  void lookup(address, { family: wanted }).then(
    (r) => callback(null, r.address, r.family),
    (err: Error) => callback(err, '', 0),
  );
}

function bindSocket(type: 'udp4' | 'udp6', address: string, port: number, dualStack: boolean): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket({ type, ipv6Only: type === 'udp6' ? !dualStack : undefined, lookup: literalLookup as unknown as dgram.SocketOptions['lookup'] });
    } catch (err) {
      reject(err);
      return;
    }
    const onError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Bind a UDP socket. With no host, listen on `::` with IPv4-mapped addresses enabled (every
 * interface, both families), falling back to 0.0.0.0 when the machine has no IPv6.
 */
export async function bindUdp(opts: BindOptions): Promise<{ socket: dgram.Socket; address: UdpAddress }> {
  let socket: dgram.Socket;
  const host = opts.host ?? '::';
  try {
    if (opts.host === undefined) {
      try {
        socket = await bindSocket('udp6', '::', opts.port, true);
      } catch (err) {
        const errno = errnoOf(err);
        if (errno !== 'EAFNOSUPPORT' && errno !== 'EADDRNOTAVAIL' && errno !== 'EPROTONOSUPPORT') throw err;
        socket = await bindSocket('udp4', '0.0.0.0', opts.port, false);
      }
    } else {
      const family = isIP(host);
      const resolved = family !== 0 ? { address: host, family } : await lookup(host);
      socket = await bindSocket(resolved.family === 6 ? 'udp6' : 'udp4', resolved.address, opts.port, resolved.address === '::');
    }
  } catch (err) {
    throw bindError(err, host, opts.port);
  }
  if (opts.recvBufferSize) {
    try {
      socket.setRecvBufferSize(opts.recvBufferSize);
    } catch {
      // The kernel caps it (net.core.rmem_max); the default still works, only bursts suffer.
    }
  }
  const a = socket.address();
  return { socket, address: { address: a.address, port: a.port, family: a.family === 'IPv6' ? 'IPv6' : 'IPv4' } };
}

// ---------------------------------------------------------------------------------------------
// Client side

/**
 * What the caller decides about a datagram that arrived: ignore it and keep waiting (undefined),
 * accept it, or send a different request right away (e.g. a bigger one) and keep waiting.
 */
export type Verdict<T> = undefined | { accept: T } | { resend: Buffer };

export interface ExchangeOptions<T> {
  host: string;
  port: number;
  payload: Buffer;
  /** How long the first attempt waits; each retry waits twice as long as the one before. */
  timeoutMs: number;
  retries: number;
  onReply: (msg: Buffer) => Verdict<T>;
  /**
   * The datagram for a retransmission, given the last one sent (default: the same bytes). An
   * authenticated client seals a fresh nonce here, since a server drops a repeated nonce as a replay.
   */
  retryPayload?: (previous: Buffer) => Buffer;
  /** Names what should answer, as a phrase for "is … running there?", e.g. "`netkit disk serve`". */
  service?: string;
}

export interface ExchangeResult<T> {
  value: T;
  /** The address that answered. */
  address: string;
  attempts: number;
  elapsedMs: number;
}

/** Every address of a host name, in the resolver's order; literals are returned as is. */
export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }[]> {
  const literal = isIP(host);
  if (literal !== 0) return [{ address: host, family: literal as 4 | 6 }];
  try {
    const all = await lookup(host, { all: true });
    if (all.length === 0) throw Object.assign(new Error('no addresses'), { code: 'ENOTFOUND' });
    return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  } catch (err) {
    const errno = errnoOf(err);
    const hint = errno === 'EAI_AGAIN' ? 'the name server did not answer; check the network, or use an IP address' : 'check the spelling, or use an IP address';
    throw new NetkitError('HOST_NOT_FOUND', `cannot resolve host '${host}'`, hint, { cause: err });
  }
}

export function peerError(err: unknown, where: string, service: string | undefined): NetkitError {
  switch (errnoOf(err)) {
    case 'ECONNREFUSED':
      return new NetkitError('CONNECT_REFUSED', `${where} refused the query (ICMP port unreachable)`, service ? `is ${service} running there, on that port?` : 'nothing listens on that port', { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
      return new NetkitError('UNREACHABLE', `cannot reach ${where}: no route to the host`, 'check the address and the network', { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new NetkitError('UNREACHABLE', `cannot send to ${where}: not permitted`, 'a local firewall may block it, or it is a broadcast address', { cause: err });
    case 'EMSGSIZE':
      return new NetkitError('TOO_LARGE', `cannot send to ${where}: datagram too large for the path`, undefined, { cause: err });
    default:
      return new NetkitError('FAILED', `cannot query ${where}: ${errnoOf(err) ?? String(err)}`, undefined, { cause: err });
  }
}

/** Where an exchange sends and hears: a connected socket of its own, or a shared session's sockets. */
export interface ExchangeChannel {
  send(payload: Buffer, callback: (err: Error | null) => void): void;
  /** Start delivering datagrams (and the address they came from) and socket errors. */
  listen(onMessage: (msg: Buffer, from: string) => void, onError: (err: Error) => void): void;
  /** Stop delivering; called once, when the exchange settles. */
  release(): void;
}

/**
 * The request/retry state machine over a channel: send, wait with a doubling timeout, let onReply
 * accept, ignore or ask for a resend, and turn socket errors into NetkitErrors.
 */
export function runExchange<T>(channel: ExchangeChannel, opts: ExchangeOptions<T>, started: number): Promise<ExchangeResult<T>> {
  const where = formatHostPort(opts.host, opts.port);
  return new Promise((resolve, reject) => {
    let attempts = 0;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    let payload = opts.payload;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      channel.release();
      fn();
    };
    const send = (): void => {
      channel.send(payload, (err) => {
        if (err) finish(() => reject(peerError(err, where, opts.service)));
      });
    };
    const arm = (): void => {
      // Doubling wait per attempt (an RTO backoff); a late answer to an earlier attempt still counts.
      timer = setTimeout(onTimeout, opts.timeoutMs * 2 ** (attempts - 1));
    };
    const attempt = (): void => {
      attempts += 1;
      if (attempts > 1 && opts.retryPayload) payload = opts.retryPayload(payload);
      send();
      arm();
    };
    const onTimeout = (): void => {
      if (attempts <= opts.retries) {
        attempt();
        return;
      }
      const waited = Date.now() - started;
      finish(() =>
        reject(
          new NetkitError(
            'TIMEOUT',
            `no answer from ${where} after ${attempts} attempt${attempts === 1 ? '' : 's'} (waited ${seconds(waited)})`,
            `is the host up, ${opts.service ? `${opts.service} running there, ` : ''}and UDP port ${opts.port} open in its firewall? (--timeout, --retries)`,
          ),
        ),
      );
    };
    const onMessage = (msg: Buffer, from: string): void => {
      if (settled) return;
      let verdict: Verdict<T>;
      try {
        verdict = opts.onReply(msg);
      } catch (err) {
        finish(() => reject(err));
        return;
      }
      if (verdict === undefined) return;
      if ('resend' in verdict) {
        payload = verdict.resend;
        if (timer) clearTimeout(timer);
        send();
        arm();
        return;
      }
      const value = verdict.accept;
      finish(() => resolve({ value, address: from, attempts, elapsedMs: Date.now() - started }));
    };
    channel.listen(onMessage, (err) => finish(() => reject(peerError(err, where, opts.service))));
    attempt();
  });
}

/**
 * One address through a connected socket of its own, so the kernel reports ICMP errors (port
 * unreachable) and drops datagrams from anyone but that address.
 */
async function exchangeWith<T>(address: string, family: 4 | 6, opts: ExchangeOptions<T>, started: number): Promise<ExchangeResult<T>> {
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  const connected = new Promise<Error | undefined>((resolve) => {
    socket.once('error', resolve);
    socket.connect(opts.port, address, () => {
      socket.off('error', resolve);
      resolve(undefined);
    });
  });
  const err = await connected;
  if (err) {
    socket.close();
    throw peerError(err, formatHostPort(opts.host, opts.port), opts.service);
  }
  return runExchange(
    {
      send: (payload, cb) => socket.send(payload, cb),
      listen: (onMessage, onError) => {
        socket.on('message', (msg) => onMessage(msg, address));
        socket.on('error', onError);
      },
      release: () => socket.close(),
    },
    opts,
    started,
  );
}

/**
 * Send `payload` to host:port and wait for a reply that `onReply` accepts. Tries the host's
 * addresses in order, moving on when one is refused or unreachable (e.g. localhost as ::1 when
 * the server listens on 127.0.0.1 only); a timeout is final, so it is not multiplied by addresses.
 */
export async function udpExchange<T>(opts: ExchangeOptions<T>): Promise<ExchangeResult<T>> {
  const started = Date.now();
  const addresses = await resolveHost(opts.host);
  let firstError: unknown;
  for (const a of addresses) {
    try {
      return await exchangeWith(a.address, a.family, opts, started);
    } catch (err) {
      const code = err instanceof NetkitError ? err.code : undefined;
      if (code !== 'CONNECT_REFUSED' && code !== 'UNREACHABLE') throw err;
      firstError ??= err;
    }
  }
  throw firstError;
}
