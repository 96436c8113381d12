// Announcing a running disk or file server over DNS-SD: its TXT record, its name, where it is announced; reports through a callback.
import { hostname } from 'node:os';
import { VERSION as DISK_VERSION } from '../protocol/disk-v1.js';
import { VERSION as FILE_VERSION } from '../protocol/file-v1.js';
import type { AnnounceEvent, Announcer } from '../transport/mdns-announce.js';
import type { LinkInfo, ServiceKind } from '../transport/mdns.js';

export type { AnnounceEvent, Announcer };

export interface AnnounceServerOptions {
  kind: ServiceKind;
  /** `--name`; default the host name. */
  name?: string;
  port: number;
  /** The address the server is bound to (`::` for every interface). */
  boundAddress: string;
  /** A shared secret is required (TXT auth=1). The secret itself never goes anywhere near TXT. */
  auth: boolean;
  tls: boolean;
  /** The TLS certificate's fingerprint (TXT fp), with tls. */
  fingerprint?: string;
  onEvent: (event: AnnounceEvent) => void;
  /** Injected interface list and poll period (tests). */
  links?: () => LinkInfo[];
  pollMs?: number;
}

/**
 * The TXT keys (docs/protocol.md, "Discovery"): v (protocol version), auth (0/1), tls (0/1) and, with
 * TLS, fp (the certificate's SHA-256 fingerprint). Nothing secret: everyone on the link reads them.
 */
export function serverTxt(o: Pick<AnnounceServerOptions, 'kind' | 'auth' | 'tls' | 'fingerprint'>): Record<string, string> {
  const txt: Record<string, string> = { v: String(o.kind === 'disk' ? DISK_VERSION : FILE_VERSION), auth: o.auth ? '1' : '0', tls: o.tls ? '1' : '0' };
  if (o.tls && o.fingerprint) txt.fp = o.fingerprint;
  return txt;
}

/** This machine's name as one DNS label (the SRV target is `<label>.local`). */
export function hostLabel(name = hostname()): string {
  const first = name.split('.')[0] ?? '';
  const label = first.replace(/[^A-Za-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return label || 'netkit';
}

/** The default instance name: the host name's first label, as the machine spells it. */
export function defaultInstanceName(name = hostname()): string {
  const first = (name.split('.')[0] ?? '').replace(/[\u0000-\u001f\u007f]/g, '');
  return Buffer.byteLength(first) >= 1 && Buffer.byteLength(first) <= 63 ? first : hostLabel(name);
}

export function isLoopback(address: string): boolean {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || a.startsWith('127.');
}

/**
 * Start announcing, or return undefined when there is nothing to announce: a server bound to loopback
 * is not reachable from the network. The mDNS code is loaded only here, so a server started with
 * --no-announce never loads it.
 */
export async function startAnnouncing(o: AnnounceServerOptions): Promise<Announcer | undefined> {
  if (isLoopback(o.boundAddress)) return undefined;
  const { announce } = await import('../transport/mdns-announce.js');
  return announce({
    kind: o.kind,
    instance: o.name ?? defaultInstanceName(),
    host: hostLabel(),
    port: o.port,
    txt: serverTxt(o),
    boundAddress: o.boundAddress,
    onEvent: o.onEvent,
    ...(o.links ? { links: o.links } : {}),
    ...(o.pollMs ? { pollMs: o.pollMs } : {}),
  });
}
