// The plain TCP stream adapter: listen and connect, with every Node errno translated once into a NetkitError.
import net from 'node:net';
import { NetkitError, errnoOf, isNetkitError } from '../errors.js';

/**
 * What the file services need from a byte stream. A node:net Socket is one; so is a node:tls
 * TLSSocket (it extends net.Socket), which is what lets TLS be a second adapter with no service change.
 */
export type StreamSocket = net.Socket;

export interface ListenOptions {
  /** Host to bind; undefined means every interface (IPv6 dual-stack when available, else IPv4). */
  host?: string;
  port: number;
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** Give up on the TCP (and, for TLS, the handshake) after this many milliseconds. */
  timeoutMs: number;
  /**
   * Deliver received bytes into buffers the caller chooses instead of 'data' events. The TCP adapter
   * reads straight into them (node:net `onread`: no allocation per read, no copy); an adapter that
   * cannot do that may ignore it, and the caller then uses feedSink() (see sinkAttached()).
   */
  sink?: ReadSink;
}

/** A consumer that picks where each read lands: what makes a 1 GiB download cheap in CPU and memory. */
export interface ReadSink {
  /** Where the next read should land (at least one byte long). */
  buffer(): Buffer;
  /** `n` bytes arrived at the start of the buffer last returned by buffer(). Return false to pause the socket. */
  received(n: number, buf: Buffer): boolean;
}

const SINK_ATTACHED = Symbol('netkit.sinkAttached');

/** True when the adapter already routes this socket's bytes into the sink given to connect(). */
export function sinkAttached(socket: StreamSocket): boolean {
  return (socket as unknown as Record<symbol, unknown>)[SINK_ATTACHED] === true;
}

/**
 * node:net `onread` options that read straight into the sink's buffers (no allocation, no copy per
 * read); node:tls accepts the same for decrypted data. Mark the socket with markSinkAttached().
 */
export function sinkReadOptions(sink: ReadSink): { onread: { buffer: () => Buffer; callback: (n: number, buf: Uint8Array) => boolean } } {
  return { onread: { buffer: () => sink.buffer(), callback: (n, buf) => sink.received(n, buf as Buffer) } };
}

/** Record that an adapter routes this socket's bytes into the sink given to connect(). */
export function markSinkAttached(socket: StreamSocket): void {
  (socket as unknown as Record<symbol, unknown>)[SINK_ATTACHED] = true;
}

/** The portable way to feed a sink: copy each 'data' chunk into the sink's buffers. */
export function feedSink(socket: StreamSocket, sink: ReadSink): void {
  markSinkAttached(socket);
  socket.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      const dst = sink.buffer();
      const n = Math.min(dst.length, chunk.length - at);
      chunk.copy(dst, 0, at, at + n);
      at += n;
      if (!sink.received(n, dst)) socket.pause();
    }
  });
}

export interface StreamListener {
  /** The address actually bound (port 0 resolved). */
  readonly host: string;
  readonly port: number;
  /** Stop accepting new connections; existing ones are untouched. Resolves once the listening socket is closed. */
  close(): Promise<void>;
}

/**
 * A transport adapter. The file services receive one of these and never import node:net or node:tls.
 * `name` appears in the server's `listening <name> host:port` line.
 */
export interface StreamTransport {
  readonly name: string;
  /** Hand onConnection each connection once it is ready for the application (for TLS: after the handshake). */
  listen(opts: ListenOptions, onConnection: (socket: StreamSocket) => void): Promise<StreamListener>;
  connect(opts: ConnectOptions): Promise<StreamSocket>;
  /**
   * Present when the transport layers a handshake over TCP (TLS). A server that accounts for every
   * connection from the moment it is accepted (limits, deadlines) listens through the layer and runs
   * the handshake itself, so a connection that never completes one still counts and still times out.
   */
  readonly layer?: ServerLayer;
}

/** The server side of a handshake layered over TCP, applied by the server itself after accept. */
export interface ServerLayer {
  /** Listen for raw TCP connections: onConnection gets each one at accept, before any byte is read. */
  listen(opts: ListenOptions, onConnection: (socket: StreamSocket) => void): Promise<StreamListener>;
  /** Whether a connection's first bytes begin this layer's handshake; undefined while one more byte is needed. */
  starts(firstBytes: Buffer): boolean | undefined;
  /**
   * Complete the handshake on an accepted socket whose first bytes were read and unshifted back.
   * Resolves with the secure stream; rejects with a NetkitError (both sockets destroyed) when the
   * handshake fails or the peer leaves. It sets no deadline of its own: the caller's deadline
   * destroys the socket, which ends the handshake.
   */
  handshake(socket: StreamSocket): Promise<StreamSocket>;
}

/** `host:port`, with IPv6 literals in brackets, for messages and the listening line. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The one place Node's socket errors become NetkitErrors. `phase` says whether the error happened
 * while connecting or listening (ECONNREFUSED means "nobody there") or mid-exchange (ECONNRESET
 * means "the peer vanished").
 */
export function socketError(err: unknown, where: { host: string; port: number; phase: 'connect' | 'listen' | 'transfer' }): NetkitError {
  if (isNetkitError(err)) return err;
  const target = formatHostPort(where.host, where.port);
  const errno = errnoOf(err);
  const opts = { cause: err };
  switch (errno) {
    case 'ECONNREFUSED':
      return new NetkitError('CONNECT_REFUSED', `cannot connect to ${target}: connection refused`, 'is `netkit file serve` running there?', opts);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      return new NetkitError('HOST_NOT_FOUND', `cannot resolve host '${where.host}'`, 'check the --host name, or use an IP address', opts);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENETDOWN':
    case 'EHOSTDOWN':
      return new NetkitError('UNREACHABLE', `cannot reach ${target}: ${errno}`, 'check the network and the --host address', opts);
    case 'ETIMEDOUT':
      return where.phase === 'connect'
        ? new NetkitError('TIMEOUT', `cannot connect to ${target}: timed out`, 'is the host up, and is a firewall dropping the port?', opts)
        : new NetkitError('TIMEOUT', `the connection to ${target} timed out`, undefined, opts);
    case 'EADDRINUSE':
      return new NetkitError('ADDRESS_IN_USE', `cannot listen on ${target}: port in use`, 'choose another --port, or 0', opts);
    case 'EADDRNOTAVAIL':
      return new NetkitError('ADDRESS_IN_USE', `cannot listen on ${target}: address not available on this machine`, 'choose another --host', opts);
    case 'EACCES':
    case 'EPERM':
      return where.phase === 'listen'
        ? new NetkitError('PERMISSION', `cannot listen on ${target}: permission denied`, 'ports below 1024 need privileges; choose another --port', opts)
        : new NetkitError('UNREACHABLE', `cannot connect to ${target}: not permitted`, undefined, opts);
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return where.phase === 'connect'
        ? new NetkitError('CONNECT_REFUSED', `cannot connect to ${target}: connection reset`, 'is `netkit file serve` running there?', opts)
        : new NetkitError('PEER_CLOSED', `the connection to ${target} was reset by the peer`, undefined, opts);
    default:
      return new NetkitError(
        where.phase === 'transfer' ? 'PEER_CLOSED' : 'FAILED',
        `${where.phase === 'listen' ? 'cannot listen on' : 'connection to'} ${target} failed: ${errno ?? (err instanceof Error ? err.message : String(err))}`,
        undefined,
        opts,
      );
  }
}

function listenOn(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, ipv6Only: false });
  });
}

/** The plain TCP adapter. */
export const tcpTransport: StreamTransport = {
  name: 'tcp',

  async listen(opts, onConnection) {
    // allowHalfOpen: a classic client such as `nc -N` shuts down its sending side right after the
    // name; the answer must still be sendable after that.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, onConnection);
    // A listening socket error after start-up (rare: EMFILE on accept) must not crash the server.
    server.on('error', () => undefined);
    let host = opts.host;
    try {
      if (host === undefined) {
        try {
          host = '::';
          await listenOn(server, host, opts.port);
        } catch (err) {
          // No IPv6 on this machine: all IPv4 interfaces instead.
          const errno = errnoOf(err);
          if (errno !== 'EAFNOSUPPORT' && errno !== 'EADDRNOTAVAIL') throw err;
          host = '0.0.0.0';
          await listenOn(server, host, opts.port);
        }
      } else {
        await listenOn(server, host, opts.port);
      }
    } catch (err) {
      throw socketError(err, { host: host ?? '::', port: opts.port, phase: 'listen' });
    }
    const addr = server.address() as net.AddressInfo;
    return {
      host: addr.address,
      port: addr.port,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  },

  connect(opts) {
    return new Promise<StreamSocket>((resolve, reject) => {
      const sink = opts.sink;
      const socket = net.connect({
        host: opts.host,
        port: opts.port,
        allowHalfOpen: true,
        ...(sink ? sinkReadOptions(sink) : {}),
      });
      if (sink) markSinkAttached(socket);
      const where = { host: opts.host, port: opts.port, phase: 'connect' as const };
      const timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(new NetkitError('TIMEOUT', `cannot connect to ${formatHostPort(opts.host, opts.port)}: no answer within ${opts.timeoutMs / 1000}s`, 'is the host up, and is a firewall dropping the port?'));
      }, opts.timeoutMs);
      const onError = (err: Error): void => {
        cleanup();
        socket.destroy();
        reject(socketError(err, where));
      };
      const onConnect = (): void => {
        cleanup();
        socket.setNoDelay(true);
        resolve(socket);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('connect', onConnect);
      };
      socket.once('error', onError);
      socket.once('connect', onConnect);
    });
  },
};
