// Who to trust over TLS: certificate fingerprints, pins, the known_hosts file (TOFU) and the server's own identity.
import { createHash, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, closeSync, constants as fsc, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { rootCertificates } from 'node:tls';
import { dirname, join } from 'node:path';
import { NetkitError, errnoOf, fsError } from '../errors.js';
import { generateSelfSigned, type SelfSignedOptions } from './cert.js';

// ---------------------------------------------------------------------------------------------
// Fingerprints

/** `sha256:<64 lowercase hex>` of a certificate's DER bytes: the one form netkit prints and stores. */
export function fingerprintOf(certDer: Buffer | Uint8Array): string {
  return `sha256:${createHash('sha256').update(certDer).digest('hex')}`;
}

/** The fingerprint of a PEM (or DER) certificate. */
export function fingerprintOfCert(cert: string | Buffer): string {
  return fingerprintOf(new X509Certificate(cert).raw);
}

/**
 * Accept what people paste: `sha256:` followed by 64 hex digits (colons allowed, any case, the way
 * openssl prints them) or by unpadded/padded base64 (the way ssh prints them). Returns the canonical form.
 */
export function parseFingerprint(text: string): string {
  const m = /^sha256:(.+)$/i.exec(text.trim());
  const bad = (): NetkitError =>
    new NetkitError(
      'USAGE',
      `not a SHA-256 fingerprint: ${JSON.stringify(text.slice(0, 120))}`,
      'expected sha256:<64 hex digits> or sha256:<base64>, as printed by `netkit file serve --tls`',
    );
  if (!m) throw bad();
  const body = m[1]!;
  const hex = body.replace(/:/g, '');
  if (/^[0-9a-f]{64}$/i.test(hex)) return `sha256:${hex.toLowerCase()}`;
  if (/^[A-Za-z0-9+/]{43}=?$/.test(body)) {
    const bytes = Buffer.from(body, 'base64');
    if (bytes.length === 32) return `sha256:${bytes.toString('hex')}`;
  }
  throw bad();
}

export function fingerprintsEqual(a: string, b: string): boolean {
  return parseFingerprint(a) === parseFingerprint(b);
}

/** The CA certificates Node trusts by default (its bundled roots), as one PEM text: what an https:// URL is checked against. */
export function systemCaCertificates(): string {
  return rootCertificates.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Paths

/** $XDG_CONFIG_HOME/netkit, or ~/.config/netkit (XDG says to ignore a relative XDG_CONFIG_HOME). */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && xdg.startsWith('/') ? xdg : join(env.HOME || homedir(), '.config');
  return join(base, 'netkit');
}

export function knownHostsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'known_hosts');
}

export function serverIdentityDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'tls');
}

/** The known_hosts key for a peer: `host:port`, with IPv6 literals bracketed, host lower-cased. */
export function hostKey(host: string, port: number): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}

/**
 * One spelling per server address, so that every way of typing it reaches the same known_hosts entry:
 * IPv4 in any inet_aton form (`127.1`, `0x7f000001`) becomes dotted decimal, IPv6 its compressed
 * lower-case form, an IPv4-mapped IPv6 address the IPv4 one; a name is lower-cased.
 */
export function canonicalHost(host: string): string {
  let h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h.startsWith('::ffff:') && isIPv4(h.slice(7))) h = h.slice(7);
  try {
    if (isIPv6(h)) return new URL(`http://[${h}]/`).hostname.slice(1, -1);
    // The WHATWG URL parser reads IPv4 numbers as inet_aton does (and as getaddrinfo resolves them).
    if (/^[0-9a-fx.]+$/.test(h)) {
      const v4 = new URL(`http://${h}/`).hostname;
      if (isIPv4(v4)) return v4;
    }
  } catch {
    // not an address after all
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// Atomic writes: a temp file in the same directory, fsync, rename. Readers see the old or the new file.

function writeFileAtomic(path: string, data: string, mode: number): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', mode);
    writeSync(fd, data);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw fsError(err, `cannot write ${path}`);
  }
}

// ---------------------------------------------------------------------------------------------
// known_hosts: one `host:port sha256:<hex>` per line; blank lines and `#` comments are kept as they are.

export interface KnownHostEntry {
  host: string;
  fingerprint: string;
  /** 1-based line number, for the message that tells people which line to delete. */
  line: number;
}

/** Largest known_hosts read (a few thousand servers). */
const MAX_KNOWN_HOSTS_BYTES = 1024 * 1024;

/**
 * The text of a known_hosts file ('' when there is none). It decides whom we trust, so it must be a
 * regular file (a FIFO is refused without waiting on it: O_NONBLOCK), owned by us or root, and
 * writable by nobody else; otherwise anyone who can write it could make us trust their certificate.
 */
function readKnownHostsFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | (fsc.O_NONBLOCK ?? 0) | (fsc.O_NOCTTY ?? 0));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return '';
    throw fsError(err, `cannot read ${path}`);
  }
  try {
    const st = fstatSync(fd);
    const me = process.getuid?.();
    if (!st.isFile()) throw new NetkitError('TLS_TRUST', `${path} is not a regular file`, `make ${path} a regular file (or remove it)`);
    if (me !== undefined && st.uid !== me && st.uid !== 0) {
      throw new NetkitError('TLS_TRUST', `${path} belongs to another user (uid ${st.uid}): refusing to trust what it says`, `remove it, or take it over: chown $(id -u) ${path}`);
    }
    if (me !== undefined && (st.mode & 0o022) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
      throw new NetkitError('TLS_TRUST', `${path} is writable by other users (mode ${mode}): refusing to trust what it says`, `make it private: chmod 600 ${path}`);
    }
    if (st.size > MAX_KNOWN_HOSTS_BYTES) throw new NetkitError('TLS_TRUST', `${path} is larger than ${MAX_KNOWN_HOSTS_BYTES} bytes`, 'remove the lines you no longer need');
    const buf = Buffer.alloc(Math.min(st.size + 1, MAX_KNOWN_HOSTS_BYTES + 1));
    let got = 0;
    for (let n = 1; n > 0 && got < buf.length; got += n) n = readSync(fd, buf, got, buf.length - got, got);
    return buf.subarray(0, got).toString('utf8');
  } catch (err) {
    throw err instanceof NetkitError ? err : fsError(err, `cannot read ${path}`);
  } finally {
    closeSync(fd);
  }
}

export function readKnownHosts(path: string): KnownHostEntry[] {
  const text = readKnownHostsFile(path);
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const [host, fp, ...rest] = line.split(/\s+/);
    let fingerprint: string | undefined;
    try {
      fingerprint = rest.length === 0 && fp ? parseFingerprint(fp) : undefined;
    } catch {
      fingerprint = undefined;
    }
    if (!host || !fingerprint) {
      throw new NetkitError('TLS_TRUST', `${path} line ${i + 1} is not "host:port sha256:<hex>"`, `fix or delete line ${i + 1} of ${path}`);
    }
    entries.push({ host: host.toLowerCase(), fingerprint, line: i + 1 });
  });
  return entries;
}

export type KnownHostCheck = { status: 'known'; entry: KnownHostEntry } | { status: 'unknown' };

/**
 * Look `host` (a hostKey) up. A recorded fingerprint that differs is a hard TLS_TRUST error naming the
 * file and line to remove; it is never "updated" automatically, since that is exactly what an attacker wants.
 */
export function checkKnownHost(path: string, host: string, fingerprint: string, typed = host): KnownHostCheck {
  const fp = parseFingerprint(fingerprint);
  const entry = readKnownHosts(path).find((e) => e.host === host.toLowerCase());
  if (!entry) return { status: 'unknown' };
  if (entry.fingerprint === fp) return { status: 'known', entry };
  const as = entry.host === typed.toLowerCase() ? '' : ` (recorded as ${entry.host})`;
  throw new NetkitError(
    'TLS_TRUST',
    `the TLS certificate of ${typed} has CHANGED: ${path} line ${entry.line}${as} expects ${entry.fingerprint}, the server presented ${fp}. ` +
      'Someone may be intercepting the connection, or the server got a new certificate.',
    `if you know the server's certificate was replaced, delete line ${entry.line} of ${path} (or pass --tls-fingerprint ${fp}) and try again`,
  );
}

/** Record `host` -> `fingerprint`, keeping every other line; the file is replaced atomically (mode 0600). */
export function addKnownHost(path: string, host: string, fingerprint: string): void {
  const fp = parseFingerprint(fingerprint);
  const key = host.toLowerCase();
  if (/\s/.test(key) || key.length === 0) throw new NetkitError('USAGE', `bad host for known_hosts: ${JSON.stringify(host)}`);
  let text = readKnownHostsFile(path);
  // Re-check under the read we are about to replace: a concurrent first use may have recorded it already.
  const existing = parseKnownHostsText(text).find((e) => e.host === key);
  if (existing) {
    if (existing.fingerprint === fp) return;
    checkKnownHost(path, key, fp); // throws the mismatch error with the line number
  }
  if (text && !text.endsWith('\n')) text += '\n';
  writeFileAtomic(path, `${text}${key} ${fp}\n`, 0o600);
}

function parseKnownHostsText(text: string): { host: string; fingerprint: string }[] {
  const out: { host: string; fingerprint: string }[] = [];
  for (const raw of text.split('\n')) {
    const [host, fp] = raw.trim().split(/\s+/);
    if (!host || host.startsWith('#') || !fp) continue;
    try {
      out.push({ host: host.toLowerCase(), fingerprint: parseFingerprint(fp) });
    } catch {
      // a malformed line is reported by readKnownHosts; here it just is not a match
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Client trust policy and the one verification step the TLS client runs before any application data.

export type TrustPolicy =
  /** Accept exactly this certificate (`--tls-fingerprint`). */
  | { kind: 'pin'; fingerprint: string }
  /** Normal CA verification against these PEM certificates (`--tls-ca FILE`), host name included. */
  | { kind: 'ca'; ca: string | Buffer }
  /**
   * Trust on first use. `onFirstUse` is required so that a new certificate is never accepted silently:
   * the CLI prints the fingerprint and where it was recorded.
   */
  | { kind: 'tofu'; knownHostsFile?: string; onFirstUse: (info: { host: string; fingerprint: string; file: string }) => void };

export interface TrustDecision {
  fingerprint: string;
  /** How the certificate was accepted: pinned, CA-verified, already known, or recorded just now. */
  how: 'pin' | 'ca' | 'known' | 'first-use';
}

/**
 * Decide about a peer certificate already received in the handshake (pin and TOFU; CA verification is
 * done by OpenSSL itself). Throws TLS_TRUST on refusal.
 */
export function verifyPeerFingerprint(policy: Exclude<TrustPolicy, { kind: 'ca' }>, host: string, port: number, certDer: Buffer, address?: string): TrustDecision {
  const fingerprint = fingerprintOf(certDer);
  const key = hostKey(host, port);
  if (policy.kind === 'pin') {
    const want = parseFingerprint(policy.fingerprint);
    if (want !== fingerprint) {
      throw new NetkitError(
        'TLS_TRUST',
        `the TLS certificate of ${key} does not match the pinned fingerprint: expected ${want}, got ${fingerprint}`,
        'check the fingerprint the server printed when it started (`netkit file serve --tls`)',
      );
    }
    return { fingerprint, how: 'pin' };
  }
  const file = policy.knownHostsFile ?? knownHostsPath();
  // Like ssh's CheckHostIP: the server is recorded under the name typed and under the address reached,
  // each in one canonical spelling; a certificate that differs from either entry is refused.
  const keys = [...new Set([hostKey(canonicalHost(host), port), ...(address ? [hostKey(canonicalHost(address), port)] : [])])];
  let known = 0;
  for (const k of keys) {
    if (checkKnownHost(file, k, fingerprint, key).status === 'known') known += 1;
  }
  for (const k of keys) addKnownHost(file, k, fingerprint);
  if (known > 0) return { fingerprint, how: 'known' };
  policy.onFirstUse({ host: keys.join(' and '), fingerprint, file });
  return { fingerprint, how: 'first-use' };
}

// ---------------------------------------------------------------------------------------------
// The server's own certificate and key

export interface ServerIdentity {
  certPem: string;
  keyPem: string;
  fingerprint: string;
  certPath?: string;
  keyPath?: string;
  /** True when this call generated the pair (the CLI may say so). */
  created: boolean;
}

function checkPair(certPem: string, keyPem: string, certPath: string, keyPath: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new NetkitError('TLS_TRUST', `${certPath} is not a PEM certificate`, 'pass a PEM file with --tls-cert', { cause: err });
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new NetkitError('TLS_TRUST', `${keyPath} is not an unencrypted PEM private key`, 'pass a PEM key without a passphrase with --tls-key', { cause: err });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new NetkitError('TLS_TRUST', `the key ${keyPath} does not belong to the certificate ${certPath}`, 'pass the matching --tls-key, or delete both files to have netkit generate a new pair');
  }
  return fingerprintOf(cert.raw);
}

/** A certificate and key given on the command line (`--tls-cert`, `--tls-key`). */
export function loadServerIdentity(certPath: string, keyPath: string): ServerIdentity {
  let certPem: string;
  let keyPem: string;
  try {
    certPem = readFileSync(certPath, 'utf8');
  } catch (err) {
    throw fsError(err, `cannot read ${certPath}`);
  }
  try {
    keyPem = readFileSync(keyPath, 'utf8');
  } catch (err) {
    throw fsError(err, `cannot read ${keyPath}`);
  }
  return { certPem, keyPem, fingerprint: checkPair(certPem, keyPem, certPath, keyPath), certPath, keyPath, created: false };
}

/**
 * The server's self-signed identity in `dir` (default $XDG_CONFIG_HOME/netkit/tls): cert.pem and key.pem
 * (mode 0600, directory 0700), generated on first use. A key readable by others is tightened, not refused,
 * because we created it; a pair that does not match is refused with a hint to delete it.
 */
export function loadOrCreateServerIdentity(opts: { dir?: string; cert?: SelfSignedOptions } = {}): ServerIdentity {
  const dir = opts.dir ?? serverIdentityDir();
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  let haveKey = true;
  try {
    const st = statSync(keyPath);
    if ((st.mode & 0o077) !== 0) chmodSync(keyPath, 0o600);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw fsError(err, `cannot read ${keyPath}`);
    haveKey = false;
  }
  if (haveKey) {
    const id = loadServerIdentity(certPath, keyPath);
    return { ...id, created: false };
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(err, `cannot create ${dir}`);
  }
  const fresh = generateSelfSigned(opts.cert);
  // The certificate goes in first: a key without its certificate would be "loaded" and fail; a certificate
  // without its key is simply regenerated over. Two servers racing here end with one matching pair or a
  // clear mismatch error, never a silently wrong one (checkPair runs on every load).
  writeFileAtomic(certPath, fresh.certPem, 0o644);
  writeFileAtomic(keyPath, fresh.keyPem, 0o600);
  return { certPem: fresh.certPem, keyPem: fresh.keyPem, fingerprint: fingerprintOf(fresh.der), certPath, keyPath, created: true };
}
