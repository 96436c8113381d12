// TLS for the file service: the server's identity and the client's trust from options, and typed answers to plain clients.
import { readFileSync } from 'node:fs';
import { NetkitError, fsError } from '../errors.js';
import { CLASSIC_MISSING } from '../protocol/file-classic.js';
import { Status, encodeResponse } from '../protocol/file-v1.js';
import type { StreamSocket, StreamTransport } from '../transport/tcp.js';
import { NETKIT_V1_FIRST_BYTE, tlsTransport, type TlsConnection } from '../transport/tls.js';
import { loadOrCreateServerIdentity, loadServerIdentity, parseFingerprint, type ServerIdentity, type TrustPolicy } from '../transport/trust.js';
import { linger } from './file-stream.js';

/** How long a refused plain client gets to read our answer before the socket is cut. */
const PLAIN_ANSWER_LINGER_MS = 2_000;

export const TLS_REQUIRED_MESSAGE = 'this server requires TLS: fetch with --tls';

/**
 * A plain client reached the TLS server. A v1 client accepts a RESPONSE frame in place of the server
 * HELLO, so it gets a typed BAD_REQUEST saying to use --tls; a classic (seed) client gets the classic
 * "missing" answer, the only refusal it understands.
 */
export function answerPlainClient(socket: StreamSocket, firstBytes: Buffer): void {
  const answer =
    firstBytes[0] === NETKIT_V1_FIRST_BYTE
      ? encodeResponse({ status: Status.BAD_REQUEST, size: 0, offset: 0, validator: Buffer.alloc(0), message: TLS_REQUIRED_MESSAGE })
      : CLASSIC_MISSING;
  socket.on('error', () => undefined);
  socket.write(answer);
  void linger(socket, PLAIN_ANSWER_LINGER_MS);
}

export interface TlsServerSetup {
  /** `--tls-cert`; with `keyPath`. Without both, the stored self-signed identity is used (created on first use). */
  certPath?: string;
  keyPath?: string;
  /** Where the self-signed identity lives; default $XDG_CONFIG_HOME/netkit/tls. */
  identityDir?: string;
  /** Bound on first byte + handshake per connection. */
  handshakeTimeoutMs?: number;
  /** Connections that never became TLS sessions (plain clients, failed handshakes), for the server log. */
  onClientError?: (err: NetkitError, remote: string) => void;
}

/** The server side: its identity (print `identity.fingerprint` at start) and the transport to pass to startFileServer. */
export function tlsServerTransport(setup: TlsServerSetup = {}): { transport: StreamTransport; identity: ServerIdentity } {
  if ((setup.certPath === undefined) !== (setup.keyPath === undefined)) {
    throw new NetkitError('USAGE', '--tls-cert and --tls-key go together', 'give both, or neither to use the generated certificate');
  }
  const identity =
    setup.certPath !== undefined && setup.keyPath !== undefined
      ? loadServerIdentity(setup.certPath, setup.keyPath)
      : loadOrCreateServerIdentity({ dir: setup.identityDir });
  const transport = tlsTransport({
    identity,
    handshakeTimeoutMs: setup.handshakeTimeoutMs,
    onPlainClient: answerPlainClient,
    onClientError: setup.onClientError,
  });
  return { transport, identity };
}

export interface TlsClientSetup {
  /** `--tls-fingerprint sha256:…`: accept exactly this certificate. */
  fingerprint?: string;
  /** `--tls-ca FILE`: verify the chain and host name against these PEM certificates. */
  caFile?: string;
  /** Trust on first use otherwise; default $XDG_CONFIG_HOME/netkit/known_hosts. */
  knownHostsFile?: string;
  /** TOFU: a new server was recorded. Required: a new certificate is never accepted silently. */
  onFirstUse: (info: { host: string; fingerprint: string; file: string }) => void;
  /** The completed handshake, for --json or a verbose line. */
  onSecure?: (info: Omit<TlsConnection, 'socket'>) => void;
}

/** The client side: the trust policy from the options, as a transport for fetchFile. */
export function tlsClientTransport(setup: TlsClientSetup): StreamTransport {
  if (setup.fingerprint !== undefined && setup.caFile !== undefined) {
    throw new NetkitError('USAGE', '--tls-fingerprint and --tls-ca are alternatives', 'pin the certificate, or trust a CA, not both');
  }
  let trust: TrustPolicy;
  if (setup.fingerprint !== undefined) {
    trust = { kind: 'pin', fingerprint: parseFingerprint(setup.fingerprint) };
  } else if (setup.caFile !== undefined) {
    let ca: string;
    try {
      ca = readFileSync(setup.caFile, 'utf8');
    } catch (err) {
      throw fsError(err, `cannot read --tls-ca ${setup.caFile}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
      throw new NetkitError('USAGE', `--tls-ca ${setup.caFile} holds no PEM certificate`, 'give a PEM file with one or more CA certificates');
    }
    trust = { kind: 'ca', ca };
  } else {
    trust = { kind: 'tofu', knownHostsFile: setup.knownHostsFile, onFirstUse: setup.onFirstUse };
  }
  return tlsTransport({ trust, onSecure: setup.onSecure });
}
