// Self-signed X.509 v3 certificates from node:crypto alone: a tiny DER writer, an ECDSA P-256 key, PEM out.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';

// ---------------------------------------------------------------------------------------------
// DER: only the handful of types a certificate needs. Lengths use the definite form (X.690 8.1.3).

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV: `tag` is the full identifier octet (class, constructed bit and number < 31). */
export function derTLV(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

export const der = {
  sequence: (...items: Buffer[]): Buffer => derTLV(0x30, Buffer.concat(items)),
  set: (...items: Buffer[]): Buffer => derTLV(0x31, Buffer.concat(items)),
  boolean: (v: boolean): Buffer => derTLV(0x01, Buffer.from([v ? 0xff : 0x00])),
  /** A non-negative INTEGER from its big-endian magnitude: minimal, with a 0x00 pad if the top bit is set. */
  unsignedInteger(magnitude: Buffer): Buffer {
    let i = 0;
    while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
    let body = magnitude.subarray(i);
    if (body.length === 0) body = Buffer.from([0]);
    if (body[0]! & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
    return derTLV(0x02, body);
  },
  smallInteger: (n: number): Buffer => der.unsignedInteger(Buffer.from([n])),
  oid(dotted: string): Buffer {
    const parts = dotted.split('.').map(Number);
    if (parts.length < 2 || parts.some((p) => !Number.isSafeInteger(p) || p < 0)) throw new Error(`bad OID ${dotted}`);
    const out: number[] = [parts[0]! * 40 + parts[1]!];
    for (const p of parts.slice(2)) {
      const chunk: number[] = [p & 0x7f];
      for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
      out.push(...chunk);
    }
    return derTLV(0x06, Buffer.from(out));
  },
  utf8String: (s: string): Buffer => derTLV(0x0c, Buffer.from(s, 'utf8')),
  octetString: (b: Buffer): Buffer => derTLV(0x04, b),
  /** BIT STRING with no unused bits (keys and signatures are whole bytes). */
  bitString: (b: Buffer): Buffer => derTLV(0x03, Buffer.concat([Buffer.from([0]), b])),
  /** RFC 5280 4.1.2.5: UTCTime for 1950..2049, GeneralizedTime otherwise; always UTC, whole seconds. */
  time(d: Date): Buffer {
    const y = d.getUTCFullYear();
    const p2 = (n: number): string => String(n).padStart(2, '0');
    const rest = `${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}Z`;
    if (y >= 1950 && y < 2050) return derTLV(0x17, Buffer.from(`${p2(y % 100)}${rest}`, 'ascii'));
    return derTLV(0x18, Buffer.from(`${String(y).padStart(4, '0')}${rest}`, 'ascii'));
  },
  /** [n] EXPLICIT: a constructed context-specific wrapper. */
  explicit: (n: number, inner: Buffer): Buffer => derTLV(0xa0 | n, inner),
  /** [n] IMPLICIT primitive: the content of a primitive type under a context-specific tag. */
  implicitPrimitive: (n: number, content: Buffer): Buffer => derTLV(0x80 | n, content),
};

const OID = {
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** The 4 or 16 address bytes of an IP literal, for a subjectAltName iPAddress entry. */
function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // Expand `::` and any embedded IPv4 tail, then pack eight 16-bit groups.
  let s = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function name(cn: string): Buffer {
  return der.sequence(der.set(der.sequence(der.oid(OID.commonName), der.utf8String(cn))));
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return der.sequence(der.oid(oid), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

export interface SelfSignedOptions {
  /** Subject and issuer CN. Default `netkit`. */
  commonName?: string;
  /** Names and IP literals for subjectAltName. Default: this host's name, localhost, 127.0.0.1, ::1. */
  hosts?: readonly string[];
  /** Validity in days from `now`. Default 3650: pinning and TOFU, not expiry, are what protect the client. */
  days?: number;
  /** The clock, for tests. notBefore is one hour earlier to tolerate skew between machines. */
  now?: Date;
}

export interface SelfSigned {
  certPem: string;
  keyPem: string;
  /** The certificate's DER bytes (what a fingerprint is computed over). */
  der: Buffer;
}

export function defaultCertHosts(): string[] {
  const hosts = ['localhost', '127.0.0.1', '::1'];
  const h = osHostname();
  if (h && !hosts.includes(h) && /^[A-Za-z0-9.-]{1,253}$/.test(h)) hosts.unshift(h);
  return hosts;
}

/**
 * Build and sign an X.509 v3 certificate for `key` (an EC P-256 private key).
 * ECDSA P-256 rather than Ed25519: every TLS 1.3 stack accepts it for server authentication,
 * including OpenSSL builds and clients that still lack Ed25519 signature schemes.
 */
export function buildSelfSignedCertificate(key: KeyObject, opts: SelfSignedOptions = {}): Buffer {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('buildSelfSignedCertificate needs an EC P-256 private key');
  }
  const now = opts.now ?? new Date();
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - 3600_000);
  const notAfter = new Date(notBefore.getTime() + 3600_000 + (opts.days ?? 3650) * 86_400_000);
  const cn = opts.commonName ?? 'netkit';
  const hosts = opts.hosts ?? defaultCertHosts();

  // RFC 5280 4.1.2.2: positive, at most 20 octets; 16 random bytes with the top bit clear and a nonzero lead.
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;

  const spki = createPublicKeyDer(key);
  const sigAlg = der.sequence(der.oid(OID.ecdsaWithSHA256));
  const san = der.sequence(
    ...hosts.map((h) => (isIP(h.replace(/^\[|\]$/g, '')) ? der.implicitPrimitive(7, ipBytes(h)) : der.implicitPrimitive(2, Buffer.from(h, 'ascii')))),
  );
  // subjectKeyIdentifier: SHA-1 of the public key bits is RFC 5280's method 1; any stable value works.
  const ski = der.octetString(sha1(spkiPublicKeyBits(spki)));

  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)), // version v3
    der.unsignedInteger(serial),
    sigAlg,
    name(cn), // issuer = subject: self-signed
    der.sequence(der.time(notBefore), der.time(notAfter)),
    name(cn),
    spki,
    der.explicit(
      3,
      der.sequence(
        // cA FALSE (the DEFAULT, so the SEQUENCE is empty): this key signs handshakes, never certificates.
        extension(OID.basicConstraints, true, der.sequence()),
        extension(OID.subjectAltName, false, san),
        extension(OID.extKeyUsage, false, der.sequence(der.oid(OID.serverAuth))),
        extension(OID.subjectKeyIdentifier, false, ski),
      ),
    ),
  );
  const signature = sign('sha256', tbs, { key, dsaEncoding: 'der' });
  return der.sequence(tbs, sigAlg, der.bitString(signature));
}

function createPublicKeyDer(key: KeyObject): Buffer {
  // The SubjectPublicKeyInfo node:crypto writes is exactly the DER the certificate embeds;
  // createPublicKey of a private key derives its public half.
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}

function sha1(b: Buffer): Buffer {
  return createHash('sha1').update(b).digest();
}

/** The subjectPublicKey BIT STRING contents (minus the unused-bits octet) of a SubjectPublicKeyInfo. */
function spkiPublicKeyBits(spki: Buffer): Buffer {
  // SPKI = SEQUENCE { AlgorithmIdentifier, BIT STRING }: the key is the final BIT STRING's content.
  const readLen = (buf: Buffer, at: number): [number, number] => {
    const first = buf[at]!;
    if (first < 0x80) return [first, at + 1];
    const n = first & 0x7f;
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[at + 1 + i]!;
    return [len, at + 1 + n];
  };
  const [, seqBody] = readLen(spki, 1);
  const [algLen, algBody] = readLen(spki, seqBody + 1);
  const bitAt = algBody + algLen;
  const [bitLen, bitBody] = readLen(spki, bitAt + 1);
  return spki.subarray(bitBody + 1, bitBody + bitLen);
}

export function pemEncode(label: string, body: Buffer): string {
  const b64 = body.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** A fresh P-256 key and a self-signed certificate for it, both PEM (the key as PKCS#8). */
export function generateSelfSigned(opts: SelfSignedOptions = {}): SelfSigned {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const certDer = buildSelfSignedCertificate(privateKey, opts);
  const certPem = pemEncode('CERTIFICATE', certDer);
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // Parse what we wrote: a DER slip should fail here, loudly, not in a peer's handshake.
  const parsed = new X509Certificate(certPem);
  if (!parsed.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('generated certificate does not match its key');
  return { certPem, keyPem, der: certDer };
}
