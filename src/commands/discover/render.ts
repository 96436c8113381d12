// Showing discovered servers: a line per server as it answers, JSON at the end, and the loud fingerprint warning.
import { sanitize } from '../../cli/output.js';
import type { DiscoveredServer } from '../../services/discover.js';

export interface Paint {
  header(s: string): string;
  bad(s: string): string;
}

const COLUMNS: readonly [string, number][] = [
  ['TYPE', 4],
  ['NAME', 16],
  ['HOST', 18],
  ['PORT', 5],
  ['ADDRESSES', 22],
  ['AUTH', 4],
  ['TLS', 3],
  ['FINGERPRINT', 0],
];

const yesNo = (v: boolean | undefined): string => (v === undefined ? '?' : v ? 'yes' : 'no');

/** What the announced fingerprint is worth against known_hosts, in words. */
export function trustWords(s: DiscoveredServer): string {
  if (s.badFingerprint !== undefined) return `invalid ${sanitize(s.badFingerprint, 80)}`;
  if (!s.fingerprint) return '-';
  switch (s.trust?.status) {
    case 'known':
      return `${s.fingerprint} matches known_hosts`;
    case 'changed':
      return `${s.fingerprint} CHANGED`;
    case 'unreadable':
      return `${s.fingerprint} (known_hosts unreadable)`;
    default:
      return `${s.fingerprint} new`;
  }
}

function line(cells: string[]): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(COLUMNS[i]![1])))
    .join('  ')
    .trimEnd();
}

export function headerLine(paint?: Paint): string {
  const text = line(COLUMNS.map(([h]) => h));
  return `${paint ? paint.header(text) : text}\n`;
}

/** One server, columns padded to fixed widths so lines printed as servers answer still line up. */
export function serverLine(s: DiscoveredServer, paint?: Paint): string {
  const text = line([s.kind, sanitize(s.name, 64), sanitize(s.host, 64), String(s.port), s.addresses.join(',') || '-', yesNo(s.auth), yesNo(s.tls), trustWords(s)]);
  return `${paint && s.trust?.status === 'changed' ? paint.bad(text) : text}\n`;
}

/** What a server reported at the deadline lacked, and what netkit does instead; undefined when it lacked nothing. */
export function incompleteNote(s: DiscoveredServer, timeoutMs: number): string | undefined {
  if (!s.missing?.length) return undefined;
  const within = `within ${(timeoutMs / 1000).toFixed(1)}s`;
  const parts: string[] = [];
  if (s.missing.includes('addresses')) parts.push(`no address records for ${sanitize(s.host, 64)} ${within}: using ${s.address}, where its answer came from`);
  if (s.missing.includes('txt')) parts.push(`no TXT record ${within}: whether it needs a secret or TLS is unknown`);
  return `netkit: "${sanitize(s.name, 64)}" (${s.kind}) sent ${parts.join('; and ')}\n`;
}

/** The loud warning for a fingerprint that differs from known_hosts; undefined when there is nothing to say. */
export function fingerprintWarning(s: DiscoveredServer): string | undefined {
  if (s.trust?.status !== 'changed') return undefined;
  const t = s.trust;
  return (
    `netkit: WARNING: "${sanitize(s.name, 64)}" announces the TLS certificate ${s.fingerprint}, but ${t.file} line ${t.line} (${t.key}) holds ${t.expected}. ` +
    'Someone may be impersonating it, or its certificate was replaced.\n' +
    'netkit: discovery is only a hint: `file fetch --tls` checks the certificate itself and refuses a mismatch (exit 11); ' +
    `if the certificate was replaced on purpose, delete line ${t.line} of ${t.file}.\n`
  );
}

export function serverJson(s: DiscoveredServer): unknown {
  return {
    type: s.kind,
    name: s.name,
    host: s.host,
    port: s.port,
    addresses: s.addresses,
    address: s.address,
    version: s.version ?? null,
    auth: s.auth ?? null,
    tls: s.tls ?? null,
    fingerprint: s.fingerprint ?? s.badFingerprint ?? null,
    ...(s.missing?.length ? { missing: s.missing } : {}),
    fingerprintStatus: s.badFingerprint !== undefined ? 'invalid' : s.fingerprint ? (s.trust?.status ?? 'new') : null,
    ...(s.trust?.status === 'changed' ? { knownHosts: { file: s.trust.file, line: s.trust.line, fingerprint: s.trust.expected } } : {}),
    elapsedMs: s.elapsedMs,
  };
}
