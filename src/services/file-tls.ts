// TLS for the file service: the server's identity and the client's trust from options.
import { readFileSync } from 'node:fs';
import { NetkitError, fsError } from '../errors.js';
import type { StreamTransport } from '../transport/tcp.js';
import { tlsTransport, type TlsConnection } from '../transport/tls.js';
import { loadOrCreateServerIdentity, loadServerIdentity, parseFingerprint, systemCaCertificates, type ServerIdentity, type TrustPolicy } from '../transport/trust.js';

/** What a plain v1 client on a TLS server is told (a BAD_REQUEST RESPONSE in place of the HELLO). */
export const TLS_REQUIRED_MESSAGE = 'this server requires TLS: fetch with --tls';

export interface TlsServerSetup {
  /** `--tls-cert`; with `keyPath`. Without both, the stored self-signed identity is used (created on first use). */
  certPath?: string;
  keyPath?: string;
  /** Where the self-signed identity lives; default $XDG_CONFIG_HOME/netkit/tls. */
  identityDir?: string;
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
  // The file server runs the handshake itself (transport.layer), under its own limits and deadlines,
  // and answers plain clients in their own protocol.
  return { transport: tlsTransport({ identity }), identity };
}

export interface TlsClientSetup {
  /** `--tls-fingerprint sha256:…`: accept exactly this certificate. */
  fingerprint?: string;
  /** `--tls-ca FILE`: verify the chain and host name against these PEM certificates. */
  caFile?: string;
  /** Trust on first use otherwise; default $XDG_CONFIG_HOME/netkit/known_hosts. */
  knownHostsFile?: string;
  /** Without a pin or CA file: verify against the system's CA certificates (an https:// URL) instead of TOFU. */
  systemCa?: boolean;
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
  } else if (setup.systemCa) {
    trust = { kind: 'ca', ca: systemCaCertificates() };
  } else {
    trust = { kind: 'tofu', knownHostsFile: setup.knownHostsFile, onFirstUse: setup.onFirstUse };
  }
  return tlsTransport({ trust, onSecure: setup.onSecure });
}
