// The self-signed certificate: DER building blocks, fields as X509Certificate reads them, and use in a real TLS handshake.
import { describe, test, expect } from '@jest/globals';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import tls from 'node:tls';
import { buildSelfSignedCertificate, der, generateSelfSigned, pemEncode } from '../../src/transport/cert.js';

describe('DER writer', () => {
  test.each([
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'],
    ['2.5.29.17', '0603551d11'],
    ['1.3.6.1.5.5.7.3.1', '06082b06010505070301'],
  ])('OID %s', (oid, hex) => {
    expect(der.oid(oid).toString('hex')).toBe(hex);
  });

  test.each([
    ['00', '020100'],
    ['7f', '02017f'],
    ['80', '02020080'],
    ['0000ff', '020200ff'],
    ['0102', '02020102'],
  ])('unsigned INTEGER %s', (mag, hex) => {
    expect(der.unsignedInteger(Buffer.from(mag, 'hex')).toString('hex')).toBe(hex);
  });

  test('long-form lengths', () => {
    const body = Buffer.alloc(300, 1);
    const tlv = der.octetString(body);
    expect(tlv.subarray(0, 4).toString('hex')).toBe('0482012c');
    expect(tlv.length).toBe(304);
    expect(der.octetString(Buffer.alloc(200)).subarray(0, 3).toString('hex')).toBe('0481c8');
  });

  test('UTCTime before 2050, GeneralizedTime from 2050', () => {
    expect(der.time(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))).toString('hex')).toBe('170d' + Buffer.from('260102030405Z').toString('hex'));
    expect(der.time(new Date(Date.UTC(2050, 11, 31, 23, 59, 59))).toString('hex')).toBe('180f' + Buffer.from('20501231235959Z').toString('hex'));
  });

  test('PEM lines are 64 characters', () => {
    const pem = pemEncode('CERTIFICATE', Buffer.alloc(100, 0xab));
    const lines = pem.trim().split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-1)).toBe('-----END CERTIFICATE-----');
    expect(lines[1]!.length).toBe(64);
    expect(Buffer.from(lines.slice(1, -1).join(''), 'base64')).toEqual(Buffer.alloc(100, 0xab));
  });
});

describe('generateSelfSigned', () => {
  test('X509Certificate parses it and its fields are right', () => {
    const now = new Date(Date.UTC(2030, 5, 15, 12, 0, 0));
    const { certPem, keyPem, der: certDer } = generateSelfSigned({ now, days: 30, hosts: ['files.example', 'localhost', '127.0.0.1', '::1'] });
    const cert = new X509Certificate(certPem);
    expect(cert.raw).toEqual(certDer);
    expect(cert.subject).toBe('CN=netkit');
    expect(cert.issuer).toBe('CN=netkit');
    expect(cert.subjectAltName).toBe('DNS:files.example, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(new Date(cert.validFrom).getTime()).toBe(now.getTime() - 3600_000);
    expect(new Date(cert.validTo).getTime()).toBe(now.getTime() + 30 * 86_400_000);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('ec');
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkHost('files.example')).toBe('files.example');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.checkHost('other.example')).toBeUndefined();
    // Serial: positive, 16 bytes, fresh each time.
    expect(cert.serialNumber).toMatch(/^[0-7][0-9A-F]{31}$/);
    expect(new X509Certificate(generateSelfSigned({ now }).certPem).serialNumber).not.toBe(cert.serialNumber);
  });

  test('IPv6 forms in subjectAltName', () => {
    const { certPem } = generateSelfSigned({ hosts: ['fe80::1', '2001:db8::a:b', '::ffff:192.0.2.7', '[::2]'] });
    const cert = new X509Certificate(certPem);
    expect(cert.subjectAltName).toBe(
      'IP Address:FE80:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:0:A:B, IP Address:0:0:0:0:0:FFFF:C000:207, IP Address:0:0:0:0:0:0:0:2',
    );
  });

  test('the default covers localhost and both loopback addresses, and validity spans now', () => {
    const cert = new X509Certificate(generateSelfSigned().certPem);
    expect(cert.subjectAltName).toContain('DNS:localhost');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.subjectAltName).toContain('IP Address:0:0:0:0:0:0:0:1');
    expect(new Date(cert.validFrom).getTime()).toBeLessThan(Date.now());
    expect(new Date(cert.validTo).getTime()).toBeGreaterThan(Date.now() + 365 * 86_400_000);
  });

  test('a validity past 2049 uses GeneralizedTime and still parses', () => {
    const cert = new X509Certificate(generateSelfSigned({ now: new Date(Date.UTC(2049, 11, 1)), days: 60 }).certPem);
    expect(new Date(cert.validTo).getUTCFullYear()).toBe(2050);
  });

  test('refuses keys it cannot sign with', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    expect(() => buildSelfSignedCertificate(privateKey)).toThrow(/P-256/);
  });

  test('a TLS 1.3 client verifying against it as CA accepts it for localhost and 127.0.0.1', async () => {
    const { certPem, keyPem } = generateSelfSigned();
    const server = tls.createServer({ cert: certPem, key: keyPem, minVersion: 'TLSv1.3' }, (s) => s.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    try {
      for (const servername of ['localhost', undefined]) {
        const client = tls.connect({ host: '127.0.0.1', port, ca: certPem, servername, minVersion: 'TLSv1.3', checkServerIdentity: (_h, c) => tls.checkServerIdentity(servername ?? '127.0.0.1', c) });
        await once(client, 'secureConnect');
        expect(client.authorized).toBe(true);
        expect(client.getProtocol()).toBe('TLSv1.3');
        const [data] = (await once(client, 'data')) as [Buffer];
        expect(data.toString()).toBe('ok');
        client.destroy();
      }
    } finally {
      server.close();
    }
  });
});
