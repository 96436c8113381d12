// Many UDP exchanges through a few shared sockets, replies matched by a key in the datagram (a request id) rather than by source address.
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { NetkitError, errnoOf } from '../errors.js';
import { formatHostPort, peerError, resolveHost, runExchange, type ExchangeOptions, type ExchangeResult } from './udp.js';

/**
 * The sockets, per address family, all bound to one local port with SO_REUSEADDR:
 * - one unconnected "catch-all" socket, which receives replies from any address (a server bound to
 *   every address, or a multi-homed host, answers from whichever address the kernel picks);
 * - one connected socket per peer address and port, which sends, so that the kernel reports ICMP
 *   errors (port unreachable) for that peer, and receives what that peer sends back.
 * The kernel hands a datagram to the connected socket whose peer sent it, else to the catch-all; every
 * socket passes what it reads to one dispatcher, which finds the exchange by key.
 *
 * Why one port for the whole session: sockets that each bind port 0 with SO_REUSEADDR may be given the
 * same ephemeral port by the kernel (it does not count other SO_REUSEADDR sockets as a conflict), and
 * then steal each other's replies, which costs a retry (a second or more).
 */
interface FamilySockets {
  catchAll: dgram.Socket;
  port: number;
}

interface Pending {
  /** `address|port` of the peer this exchange is talking to now. */
  peer: string;
  onMessage(msg: Buffer, from: string): void;
  onError(err: Error): void;
}

export interface UdpSessionOptions {
  /** The key a reply carries (e.g. the request id), or undefined for a datagram that is not a reply. */
  keyOf(msg: Buffer): number | undefined;
  /** Receive buffer asked for the catch-all socket, which may take every reply of a burst (best effort). */
  recvBufferSize?: number;
}

// Random keys from the CSPRNG, fetched 1,024 at a time: one call per key costs more than the rest of a
// request (a live view of 1,000 hosts asks for 1,000 keys a round).
const keyPool = new Uint32Array(1024);
let keyNext = keyPool.length;
function randomKey(): number {
  if (keyNext === keyPool.length) {
    randomFillSync(keyPool);
    keyNext = 0;
  }
  return keyPool[keyNext++]!;
}

export class UdpSession {
  private readonly families = new Map<4 | 6, Promise<FamilySockets>>();
  private readonly peers = new Map<string, Promise<dgram.Socket | undefined>>();
  private readonly sockets = new Set<dgram.Socket>();
  private readonly pending = new Map<number, Pending | null>();
  private closed = false;

  constructor(private readonly opts: UdpSessionOptions) {}

  /** A random 32-bit key that no exchange in flight uses; reserved until the exchange that takes it ends. */
  newKey(): number {
    for (;;) {
      const k = randomKey();
      if (!this.pending.has(k)) {
        this.pending.set(k, null);
        return k;
      }
    }
  }

  /**
   * Send opts.payload to host:port and wait for a reply carrying `key` that onReply accepts. Tries the
   * host's addresses in order, moving on when one is refused or unreachable; a timeout is final.
   */
  async exchange<T>(key: number, opts: ExchangeOptions<T>): Promise<ExchangeResult<T>> {
    if (this.closed) throw new NetkitError('INTERNAL', 'UDP session used after close');
    this.pending.set(key, null);
    const started = Date.now();
    try {
      const addresses = await resolveHost(opts.host);
      let firstError: unknown;
      for (const a of addresses) {
        try {
          return await this.exchangeAt(key, a.address, a.family, opts, started);
        } catch (err) {
          const code = err instanceof NetkitError ? err.code : undefined;
          if (code !== 'CONNECT_REFUSED' && code !== 'UNREACHABLE') throw err;
          firstError ??= err;
        }
      }
      throw firstError;
    } finally {
      this.pending.delete(key);
    }
  }

  /** Close every socket; exchanges still running fail at once (ECANCELED). */
  async close(): Promise<void> {
    this.closed = true;
    const cancelled = Object.assign(new Error('cancelled'), { code: 'ECANCELED' });
    for (const p of [...this.pending.values()]) p?.onError(cancelled);
    // Sockets still being set up are closed by whoever is creating them, once they see `closed`.
    await Promise.all([...this.families.values(), ...this.peers.values()].map((p) => p.catch(() => undefined)));
    await Promise.all([...this.sockets].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.sockets.clear();
  }

  private async exchangeAt<T>(key: number, address: string, family: 4 | 6, opts: ExchangeOptions<T>, started: number): Promise<ExchangeResult<T>> {
    const where = formatHostPort(opts.host, opts.port);
    let fam: FamilySockets;
    let peer: dgram.Socket | undefined;
    try {
      fam = await this.family(family);
      peer = await this.peer(fam, family, address, opts.port);
    } catch (err) {
      throw err instanceof NetkitError ? err : peerError(err, where, opts.service);
    }
    const peerKey = `${address}|${opts.port}`;
    return runExchange(
      {
        // Without a socket of its own (out of descriptors), the peer is reached through the catch-all:
        // it still gets its answer, only an ICMP refusal goes unnoticed (it then times out).
        send: (payload, cb) => (peer ? peer.send(payload, cb) : fam.catchAll.send(payload, opts.port, address, cb)),
        listen: (onMessage, onError) => this.pending.set(key, { peer: peerKey, onMessage, onError }),
        release: () => this.pending.set(key, null),
      },
      opts,
      started,
    );
  }

  private dispatch = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const key = this.opts.keyOf(msg);
    if (key === undefined) return;
    this.pending.get(key)?.onMessage(msg, rinfo.address);
  };

  private track(s: dgram.Socket): dgram.Socket {
    this.sockets.add(s);
    s.on('message', this.dispatch);
    return s;
  }

  private family(family: 4 | 6): Promise<FamilySockets> {
    let f = this.families.get(family);
    if (!f) {
      f = bindShared(family, 0).then((s) => {
        if (this.closed) {
          s.close();
          throw new NetkitError('INTERNAL', 'UDP session closed');
        }
        this.track(s);
        // Errors on the unconnected socket concern no one exchange (a send error comes to its callback).
        s.on('error', () => undefined);
        if (this.opts.recvBufferSize) {
          try {
            s.setRecvBufferSize(this.opts.recvBufferSize);
          } catch {
            // Capped by net.core.rmem_max; the default still works, a big burst may need a retry.
          }
        }
        return { catchAll: s, port: s.address().port };
      });
      this.families.set(family, f);
    }
    return f;
  }

  private peer(fam: FamilySockets, family: 4 | 6, address: string, port: number): Promise<dgram.Socket | undefined> {
    const peerKey = `${address}|${port}`;
    let p = this.peers.get(peerKey);
    if (!p) {
      p = this.connectPeer(fam, family, address, port, peerKey);
      this.peers.set(peerKey, p);
    }
    return p;
  }

  private async connectPeer(fam: FamilySockets, family: 4 | 6, address: string, port: number, peerKey: string): Promise<dgram.Socket | undefined> {
    let s: dgram.Socket;
    try {
      s = this.track(await bindShared(family, fam.port));
    } catch (err) {
      const errno = errnoOf(err);
      this.peers.delete(peerKey);
      if (errno === 'EMFILE' || errno === 'ENFILE' || errno === 'ENOBUFS') return undefined;
      throw err;
    }
    // An ICMP error for this peer: every exchange talking to it fails (and may try the host's next address).
    s.on('error', (err) => {
      for (const p of this.pending.values()) if (p?.peer === peerKey) p.onError(err);
    });
    const err = await new Promise<Error | undefined>((resolve) => {
      s.once('error', resolve);
      s.connect(port, address, () => {
        s.off('error', resolve);
        resolve(undefined);
      });
    });
    if (err) {
      // No route, for instance: not cached, so a later round tries again.
      this.peers.delete(peerKey);
      this.sockets.delete(s);
      s.close();
      throw err;
    }
    if (this.closed) {
      this.sockets.delete(s);
      s.close();
      throw new NetkitError('INTERNAL', 'UDP session closed');
    }
    return s;
  }
}

function bindShared(family: 4 | 6, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: true });
    s.once('error', (err) => {
      try {
        s.close();
      } catch {
        // never bound: nothing to close
      }
      reject(err);
    });
    s.bind(port, () => {
      s.removeAllListeners('error');
      resolve(s);
    });
  });
}
