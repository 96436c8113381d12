// The TLS stream adapter (node:tls, TLS 1.3 only): accept and connect with pin/TOFU/CA trust; first-byte sniffing is in tls-sniff.ts.
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { NetkitError, errnoOf } from '../errors.js';
import { formatHostPort, markSinkAttached, sinkReadOptions, socketError, tcpTransport, type ReadSink, type ServerLayer, type StreamTransport } from './tcp.js';
import { NETKIT_V1_FIRST_BYTE, classifyFirstBytes, closeGently } from './tls-sniff.js';
import { fingerprintOf, hostKey, verifyPeerFingerprint, type TrustDecision, type TrustPolicy } from './trust.js';

/**
 * TLS 1.3 only. Its cipher suites are all AEADs with forward secrecy (ECDHE key exchange is the only kind
 * TLS 1.3 has); AES-128-GCM comes first because it is the fastest with AES-NI, then AES-256-GCM, then
 * ChaCha20-Poly1305 for CPUs without AES instructions. Nothing older than 1.3 is negotiated.
 */
export const TLS_MIN_VERSION = 'TLSv1.3' as const;
export const TLS_CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
/** Bound on connect + handshake (client) and on first byte + handshake (server) when the caller gives none. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Server side

export interface TlsIdentity {
  certPem: string;
  keyPem: string;
}

/** One secure context per server, shared by every connection (building one parses the key). */
export function createServerContext(identity: TlsIdentity): tls.SecureContext {
  try {
    return tls.createSecureContext({
      cert: identity.certPem,
      key: identity.keyPem,
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS_CIPHERSUITES,
    });
  } catch (err) {
    throw new NetkitError('TLS_TRUST', `cannot use the TLS certificate and key: ${(err as Error).message}`, 'check --tls-cert and --tls-key', { cause: err });
  }
}

export interface AcceptTlsOptions {
  context: tls.SecureContext;
  /** Bound on waiting for the first byte plus the handshake. */
  timeoutMs?: number;
  /**
   * Called instead of the handshake when the client's first bytes are not TLS (a plain netkit v1 client
   * starts with 0x89). The socket is paused with those bytes unshifted back, so the file service can read
   * the plain request and answer it with a typed "this server requires TLS" error, then end the socket
   * (closeGently); the socket is destroyed anyway once `timeoutMs` has passed.
   * Without a handler the socket is simply ended. acceptTls() then rejects with code PROTOCOL.
   */
  onPlainClient?: (socket: net.Socket, firstBytes: Buffer) => void;
}

/** Wait for the first bytes on `socket`, without consuming them. Rejects on timeout, close or error. */
function peekFirstBytes(socket: net.Socket, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      if (seen.length) socket.unshift(seen);
      if (err) reject(err);
      else resolve(seen);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) seen = Buffer.concat([seen, chunk]);
      // One byte decides unless it is 0x16 (then the second does): a one-letter classic name must not wait.
      if (classifyFirstBytes(seen) !== 'incomplete') done(null);
    };
    const onEnd = (): void => done(new NetkitError('PEER_CLOSED', 'the client closed the connection before the TLS handshake'));
    const onError = (err: Error): void => done(new NetkitError('PEER_CLOSED', `the client connection failed before the TLS handshake: ${errnoOf(err) ?? err.message}`, undefined, { cause: err }));
    const timer = setTimeout(
      () => done(new NetkitError('TIMEOUT', `the client sent nothing for ${timeoutMs} ms (no TLS handshake)`)),
      timeoutMs,
    );
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    onReadable();
  });
}

/**
 * Turn an accepted TCP socket into a server-side TLS socket, once the handshake has completed.
 * The file service calls this per connection when serving with --tls; everything after it is the same
 * code as over plain TCP (the TLSSocket is a Duplex with the same events and backpressure).
 */
export async function acceptTls(socket: net.Socket, opts: AcceptTlsOptions): Promise<tls.TLSSocket> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const started = Date.now();
  let first: Buffer;
  try {
    first = await peekFirstBytes(socket, timeoutMs);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  if (classifyFirstBytes(first) !== 'tls') {
    socket.pause();
    if (opts.onPlainClient) {
      // Whatever the handler does, the connection ends within the handshake bound.
      const guard = setTimeout(() => socket.destroy(), timeoutMs);
      guard.unref();
      socket.once('close', () => clearTimeout(guard));
      opts.onPlainClient(socket, first);
    } else {
      closeGently(socket);
    }
    throw new NetkitError(
      'PROTOCOL',
      first[0] === NETKIT_V1_FIRST_BYTE ? 'a plain (non-TLS) netkit client connected to the TLS server' : 'a client that does not speak TLS connected to the TLS server',
      'the client should use --tls',
    );
  }
  const remaining = Math.max(1, timeoutMs - (Date.now() - started));
  let timer: NodeJS.Timeout | undefined;
  const bounded = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new NetkitError('TIMEOUT', `the TLS handshake did not finish within ${timeoutMs} ms`));
      socket.destroy();
    }, remaining);
  });
  bounded.catch(() => undefined);
  try {
    return await Promise.race([serverHandshake(socket, opts.context), bounded]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The server side of the TLS handshake on an accepted socket whose first bytes were read and
 * unshifted back (TLSSocket feeds a wrapped socket's buffered data to OpenSSL first). Resolves with the
 * secure socket on 'secure'; on a failed handshake or a peer that leaves, destroys both sockets and
 * rejects with a NetkitError. No deadline of its own: destroying `socket` ends a stalled handshake.
 */
export async function serverHandshake(socket: net.Socket, context: tls.SecureContext): Promise<tls.TLSSocket> {
  const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context, requestCert: false });
  let onError!: (err: Error) => void;
  let onClose!: () => void;
  try {
    await new Promise<void>((resolve, reject) => {
      onError = (err) => reject(new NetkitError('PROTOCOL', `TLS handshake with the client failed: ${tlsErrorText(err)}`, undefined, { cause: err }));
      onClose = () => reject(new NetkitError('PEER_CLOSED', 'the client closed the connection during the TLS handshake'));
      secure.once('secure', () => resolve());
      secure.on('error', onError);
      secure.once('close', onClose);
      // The listening socket allows half-open connections, so a client that gives up mid-handshake
      // may only show up as 'end', never 'close'.
      secure.once('end', onClose);
      // A socket destroyed before we wrapped it (a deadline) never emits on the TLSSocket.
      if (socket.destroyed) onClose();
      else socket.once('close', onClose);
    });
    return secure;
  } catch (err) {
    // Keep a listener: a late error on a socket we are discarding must not crash the server.
    secure.on('error', () => undefined);
    secure.destroy();
    socket.destroy();
    throw err;
  } finally {
    secure.off('error', onError);
    secure.off('close', onClose);
    secure.off('end', onClose);
    socket.off('close', onClose);
  }
}

// ---------------------------------------------------------------------------------------------
// Client side

export interface ConnectTlsOptions {
  host: string;
  port: number;
  trust: TrustPolicy;
  /** Bound on TCP connect + TLS handshake + trust decision. */
  timeoutMs?: number;
  /** Where decrypted data goes, read straight into the sink's buffers (as the plain adapter does). */
  sink?: ReadSink;
}

export interface TlsConnection {
  socket: tls.TLSSocket;
  trust: TrustDecision;
  /** e.g. TLSv1.3 / TLS_AES_128_GCM_SHA256, for --verbose or a JSON result. */
  protocol: string;
  cipher: string;
}

function tlsErrorText(err: unknown): string {
  const code = errnoOf(err);
  const msg = err instanceof Error ? err.message : String(err);
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

/** Node/OpenSSL errors before 'secureConnect' -> what the person at the keyboard should hear. */
function handshakeError(err: unknown, host: string, port: number, tcpConnected: boolean): NetkitError {
  if (err instanceof NetkitError) return err;
  const where = formatHostPort(host, port);
  const code = errnoOf(err) ?? '';
  const notTls = 'is the server running with --tls? drop --tls if it is a plain netkit server';
  // Before the TCP connection exists, errors are the plain adapter's (refused, unknown host, ...).
  if (!tcpConnected || ['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(code)) {
    return socketError(err, { host, port, phase: 'connect' });
  }
  switch (code) {
    case 'ECONNRESET':
    case 'EPIPE':
      // A plain netkit server recognises our ClientHello and closes (refuseTlsClient); so do other non-TLS servers.
      return new NetkitError('PROTOCOL', `${where} closed the connection during the TLS handshake: it does not seem to speak TLS`, notTls, { cause: err });
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
    case 'ERR_SSL_RECORD_LAYER_FAILURE':
    case 'ERR_SSL_HTTP_REQUEST':
      return new NetkitError('PROTOCOL', `${where} answered with something that is not TLS`, notTls, { cause: err });
    case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION':
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_NO_PROTOCOLS_AVAILABLE':
      return new NetkitError('PROTOCOL', `${where} does not accept TLS 1.3, the only version netkit uses`, 'upgrade the server, or use a netkit server', { cause: err });
    default:
      break;
  }
  // CA mode: certificate verification errors from OpenSSL (chain, expiry, self-signed, host name).
  if (/CERT|SELF_SIGNED|UNABLE_TO_|HOSTNAME|ALTNAME/.test(code)) {
    return new NetkitError('TLS_TRUST', `the TLS certificate of ${where} is not trusted: ${tlsErrorText(err)}`, 'check --tls-ca, or pin the server with --tls-fingerprint', { cause: err });
  }
  return new NetkitError('PROTOCOL', `TLS handshake with ${where} failed: ${tlsErrorText(err)}`, undefined, { cause: err });
}

/**
 * Connect, complete the TLS 1.3 handshake, and decide trust before the caller can write a byte.
 * Pin and TOFU run with rejectUnauthorized:false (the certificate is self-signed) and check the exact
 * certificate on 'secureConnect', destroying the socket on a mismatch; --tls-ca uses OpenSSL's normal
 * chain and host-name verification. The returned socket has not been read from or written to.
 */
export function connectTls(opts: ConnectTlsOptions): Promise<TlsConnection> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const where = hostKey(opts.host, opts.port);
  const bare = opts.host.replace(/^\[|\]$/g, '');
  const isIp = net.isIP(bare) !== 0;
  const base: tls.ConnectionOptions = {
    host: bare,
    port: opts.port,
    // Like the plain adapter: a client may end its side after the request and still read the answer.
    // tls.connect passes allowHalfOpen to the TLSSocket; @types/node leaves it out of ConnectionOptions.
    ...({ allowHalfOpen: true } as object),
    minVersion: TLS_MIN_VERSION,
    ciphers: TLS_CIPHERSUITES,
    // SNI must be a DNS name (RFC 6066 3); an empty string turns it off for IP literals.
    servername: isIp ? '' : bare,
    // Decrypted records go straight into the caller's buffers: ~15% less receive time than 'data' events.
    ...(opts.sink ? sinkReadOptions(opts.sink) : {}),
  };
  const options: tls.ConnectionOptions =
    opts.trust.kind === 'ca'
      ? {
          ...base,
          ca: opts.trust.ca,
          rejectUnauthorized: true,
          // Node skips host-name checks when servername is empty; check the IP literal against the SAN.
          checkServerIdentity: (_name, cert) => tls.checkServerIdentity(bare, cert),
        }
      : { ...base, rejectUnauthorized: false };

  return new Promise<TlsConnection>((resolve, reject) => {
    const socket = tls.connect(options);
    if (opts.sink) markSinkAttached(socket);
    let settled = false;
    const fail = (err: NetkitError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new NetkitError(
            'TIMEOUT',
            socket.connecting ? `connecting to ${where} timed out after ${timeoutMs} ms` : `no TLS handshake from ${where} within ${timeoutMs} ms`,
            socket.connecting ? undefined : 'is the server running with --tls? a plain server does not answer a TLS client',
          ),
        ),
      timeoutMs,
    );
    let tcpConnected = false;
    socket.once('connect', () => (tcpConnected = true));
    const onError = (err: Error): void => fail(handshakeError(err, bare, opts.port, tcpConnected));
    const onClose = (): void =>
      fail(new NetkitError('PROTOCOL', `${where} closed the connection during the TLS handshake: it does not seem to speak TLS`, 'is the server running with --tls? drop --tls if it is a plain netkit server'));
    socket.on('error', onError);
    socket.once('close', onClose);
    socket.once('secureConnect', () => {
      if (settled) return;
      let decision: TrustDecision;
      try {
        const cert = socket.getPeerCertificate(true);
        if (!cert || !cert.raw) throw new NetkitError('TLS_TRUST', `${where} presented no certificate`);
        const der = cert.raw;
        if (opts.trust.kind === 'ca') {
          // OpenSSL already refused anything unverified (rejectUnauthorized), so reaching here means trusted.
          decision = { fingerprint: fingerprintOf(der), how: 'ca' };
        } else {
          decision = verifyPeerFingerprint(opts.trust, opts.host, opts.port, der, socket.remoteAddress);
        }
      } catch (err) {
        fail(err instanceof NetkitError ? err : new NetkitError('TLS_TRUST', `cannot verify ${where}: ${String(err)}`, undefined, { cause: err }));
        return;
      }
      settled = true;
      clearTimeout(timer);
      // From here the caller owns the socket and must attach its own 'error' listener.
      socket.off('error', onError);
      socket.off('close', onClose);
      const cipher = socket.getCipher();
      resolve({ socket, trust: decision, protocol: socket.getProtocol() ?? 'unknown', cipher: cipher.standardName ?? cipher.name });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The adapter: the same StreamTransport the file services get for plain TCP.

export interface TlsTransportOptions {
  /** Server side: the certificate and key (loadServerIdentity / loadOrCreateServerIdentity). Needed by listen(). */
  identity?: TlsIdentity;
  /** Client side: how the server's certificate is trusted. Needed by connect(). */
  trust?: TrustPolicy;
  /** Server side: bound on first byte + handshake per connection. Default DEFAULT_HANDSHAKE_TIMEOUT_MS. */
  handshakeTimeoutMs?: number;
  /** Server side: see AcceptTlsOptions.onPlainClient. */
  onPlainClient?: (socket: net.Socket, firstBytes: Buffer) => void;
  /** Server side: a connection that never became a TLS session (plain client, bad handshake, timeout). */
  onClientError?: (err: NetkitError, remote: string) => void;
  /** Client side: the completed handshake (protocol, cipher, how the certificate was trusted). */
  onSecure?: (info: Omit<TlsConnection, 'socket'>) => void;
}

/**
 * The TLS adapter. listen() binds exactly like the plain adapter (same host defaults, same errors) and
 * hands onConnection a TLSSocket only after a completed handshake; connect() resolves only after the
 * handshake and the trust decision, so a refused certificate never sees a byte of the request.
 */
export function tlsTransport(opts: TlsTransportOptions): StreamTransport {
  let context: tls.SecureContext | undefined;
  const layer: ServerLayer | undefined = opts.identity
    ? {
        async listen(listenOpts, onConnection) {
          // Built before binding, so a bad certificate or key fails the start, not the first client.
          context ??= createServerContext(opts.identity!);
          return tcpTransport.listen(listenOpts, onConnection);
        },
        starts: (first) => {
          const kind = classifyFirstBytes(first);
          return kind === 'incomplete' ? undefined : kind === 'tls';
        },
        handshake: (socket) => {
          context ??= createServerContext(opts.identity!);
          return serverHandshake(socket, context);
        },
      }
    : undefined;
  return {
    name: 'tls',
    layer,
    async listen(listenOpts, onConnection) {
      if (!opts.identity) throw new NetkitError('INTERNAL', 'tlsTransport.listen needs an identity');
      context ??= createServerContext(opts.identity);
      const ctx = context;
      return tcpTransport.listen(listenOpts, (socket) => {
        const remote = formatHostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
        // The raw socket's own errors surface on the TLSSocket (or in acceptTls); never crash on them.
        socket.on('error', () => undefined);
        acceptTls(socket, { context: ctx, timeoutMs: opts.handshakeTimeoutMs, onPlainClient: opts.onPlainClient }).then(
          (secure) => onConnection(secure),
          (err: unknown) => {
            // acceptTls has already destroyed the socket, or handed it to onPlainClient to answer.
            opts.onClientError?.(err instanceof NetkitError ? err : new NetkitError('PROTOCOL', String(err), undefined, { cause: err }), remote);
          },
        );
      });
    },
    async connect(connectOpts) {
      if (!opts.trust) throw new NetkitError('INTERNAL', 'tlsTransport.connect needs a trust policy');
      const conn = await connectTls({ host: connectOpts.host, port: connectOpts.port, trust: opts.trust, timeoutMs: connectOpts.timeoutMs, sink: connectOpts.sink });
      conn.socket.setNoDelay(true);
      opts.onSecure?.({ trust: conn.trust, protocol: conn.protocol, cipher: conn.cipher });
      return conn.socket;
    },
  };
}
