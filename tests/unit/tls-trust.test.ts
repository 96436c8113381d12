// Fingerprints, the known_hosts file (TOFU) and the server's stored identity, on a real temporary config directory.
import { describe, test, expect, beforeEach, afterEach } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetkitError } from '../../src/errors.js';
import { generateSelfSigned } from '../../src/transport/cert.js';
import {
  addKnownHost,
  checkKnownHost,
  configDir,
  fingerprintOf,
  fingerprintOfCert,
  hostKey,
  knownHostsPath,
  loadOrCreateServerIdentity,
  loadServerIdentity,
  parseFingerprint,
  readKnownHosts,
  verifyPeerFingerprint,
} from '../../src/transport/trust.js';

function thrown(fn: () => unknown): NetkitError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NetkitError);
    return err as NetkitError;
  }
  throw new Error('expected a NetkitError');
}

const FP_A = `sha256:${'a'.repeat(64)}`;
const FP_B = `sha256:${'b'.repeat(64)}`;

describe('fingerprints', () => {
  test('fingerprintOf agrees with X509Certificate.fingerprint256', () => {
    const { certPem, der } = generateSelfSigned();
    const x = new X509Certificate(certPem);
    const expected = `sha256:${x.fingerprint256.replace(/:/g, '').toLowerCase()}`;
    expect(fingerprintOf(der)).toBe(expected);
    expect(fingerprintOfCert(certPem)).toBe(expected);
  });

  test('parseFingerprint accepts hex, colon hex, any case, and base64', () => {
    const { der } = generateSelfSigned();
    const fp = fingerprintOf(der);
    const hex = fp.slice(7);
    const bytes = Buffer.from(hex, 'hex');
    expect(parseFingerprint(fp)).toBe(fp);
    expect(parseFingerprint(`SHA256:${hex.toUpperCase()}`)).toBe(fp);
    expect(parseFingerprint(`sha256:${hex.match(/../g)!.join(':')}`)).toBe(fp);
    expect(parseFingerprint(`sha256:${bytes.toString('base64')}`)).toBe(fp);
    expect(parseFingerprint(`sha256:${bytes.toString('base64').replace(/=$/, '')}`)).toBe(fp);
    expect(parseFingerprint(`  ${fp}\n`)).toBe(fp);
  });

  test.each([[''], ['abc'], [`sha1:${'a'.repeat(40)}`], [`sha256:${'a'.repeat(63)}`], [`sha256:${'g'.repeat(64)}`], ['sha256:'], [`md5:${'a'.repeat(64)}`]])(
    'parseFingerprint refuses %j with a usage error',
    (text) => {
      expect(thrown(() => parseFingerprint(text)).code).toBe('USAGE');
    },
  );

  test('hostKey brackets IPv6 and lower-cases names', () => {
    expect(hostKey('LocalHost', 8881)).toBe('localhost:8881');
    expect(hostKey('::1', 1)).toBe('[::1]:1');
    expect(hostKey('[::1]', 1)).toBe('[::1]:1');
    expect(hostKey('127.0.0.1', 2)).toBe('127.0.0.1:2');
  });
});

describe('config paths', () => {
  test('XDG_CONFIG_HOME wins; a relative one is ignored as the spec says', () => {
    expect(configDir({ XDG_CONFIG_HOME: '/x/y', HOME: '/h' })).toBe('/x/y/netkit');
    expect(configDir({ XDG_CONFIG_HOME: 'rel', HOME: '/h' })).toBe('/h/.config/netkit');
    expect(configDir({ HOME: '/h' })).toBe('/h/.config/netkit');
    expect(knownHostsPath({ XDG_CONFIG_HOME: '/x' })).toBe('/x/netkit/known_hosts');
  });
});

describe('known_hosts', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'netkit-kh-'));
    file = join(dir, 'netkit', 'known_hosts');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('records, finds, keeps other lines and comments, mode 0600, no temp files left', () => {
    mkdirSync(join(dir, 'netkit'));
    writeFileSync(file, '# my hosts\nother:1 ' + FP_B + '\n');
    expect(checkKnownHost(file, 'h:1', FP_A)).toEqual({ status: 'unknown' });
    addKnownHost(file, 'H:1', FP_A);
    expect(readFileSync(file, 'utf8')).toBe(`# my hosts\nother:1 ${FP_B}\nh:1 ${FP_A}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, 'netkit'))).toEqual(['known_hosts']);
    const seen = checkKnownHost(file, 'h:1', FP_A);
    expect(seen).toEqual({ status: 'known', entry: { host: 'h:1', fingerprint: FP_A, line: 3 } });
    // Recording the same thing twice is a no-op.
    addKnownHost(file, 'h:1', FP_A);
    expect(readKnownHosts(file)).toHaveLength(2);
  });

  test('a mismatch is a hard TLS_TRUST error naming the file and the line to remove', () => {
    addKnownHost(file, 'a:1', FP_B);
    addKnownHost(file, 'h:8881', FP_A);
    const err = thrown(() => checkKnownHost(file, 'h:8881', FP_B));
    expect(err.code).toBe('TLS_TRUST');
    expect(err.exitCode).toBe(11);
    expect(err.message).toContain('CHANGED');
    expect(err.message).toContain(`${file} line 2`);
    expect(err.message).toContain(FP_A);
    expect(err.message).toContain(FP_B);
    expect(err.hint).toContain(`delete line 2 of ${file}`);
    // addKnownHost never overwrites a recorded fingerprint either.
    expect(thrown(() => addKnownHost(file, 'h:8881', FP_B)).code).toBe('TLS_TRUST');
    expect(readKnownHosts(file).find((e) => e.host === 'h:8881')?.fingerprint).toBe(FP_A);
  });

  test('a malformed line is reported with its number', () => {
    mkdirSync(join(dir, 'netkit'));
    writeFileSync(file, `a:1 ${FP_A}\n\nbroken line here\n`);
    const err = thrown(() => readKnownHosts(file));
    expect(err.code).toBe('TLS_TRUST');
    expect(err.message).toContain('line 3');
  });

  test('known_hosts that anyone else could have written is refused: a FIFO (without waiting on it), group/other-writable, another owner', () => {
    mkdirSync(join(dir, 'netkit'));
    execFileSync('mkfifo', [file]);
    expect(thrown(() => readKnownHosts(file)).message).toMatch(/not a regular file/);
    rmSync(file);
    writeFileSync(file, `h:1 ${FP_A}\n`, { mode: 0o600 });
    expect(readKnownHosts(file)).toHaveLength(1);
    chmodSync(file, 0o664);
    const loose = thrown(() => checkKnownHost(file, 'h:1', FP_A));
    expect(loose.code).toBe('TLS_TRUST');
    expect(loose.message).toMatch(/writable by other users \(mode 664\)/);
    expect(loose.hint).toBe(`make it private: chmod 600 ${file}`);
    chmodSync(file, 0o644); // readable by others is fine, as for ssh's known_hosts
    expect(readKnownHosts(file)).toHaveLength(1);
    if (process.getuid?.() === 0) {
      chownSync(file, 65534, 65534);
      expect(thrown(() => readKnownHosts(file)).message).toMatch(/belongs to another user \(uid 65534\)/);
    }
  });

  test('CheckHostIP: the name and the address are both recorded; either one with another certificate is refused', () => {
    const a = generateSelfSigned();
    const b = generateSelfSigned();
    const told: Array<{ host: string }> = [];
    const tofu = { kind: 'tofu' as const, knownHostsFile: file, onFirstUse: (i: { host: string }) => told.push(i) };
    expect(verifyPeerFingerprint(tofu, 'NAS', 9, a.der, '10.0.0.5').how).toBe('first-use');
    expect(told.map((t) => t.host)).toEqual(['nas:9 and 10.0.0.5:9']);
    expect(readKnownHosts(file).map((e) => e.host)).toEqual(['nas:9', '10.0.0.5:9']);
    // A new name for the same address: known, and recorded without a notice.
    expect(verifyPeerFingerprint(tofu, 'nas.lan', 9, a.der, '::ffff:10.0.0.5').how).toBe('known');
    expect(verifyPeerFingerprint(tofu, '10.5', 9, a.der, '10.0.0.5').how).toBe('known');
    expect(told).toHaveLength(1);
    // Another certificate under a name never seen, at a known address: the same hard error.
    const err = thrown(() => verifyPeerFingerprint(tofu, 'other-name', 9, b.der, '10.0.0.5'));
    expect(err.code).toBe('TLS_TRUST');
    expect(err.message).toMatch(/of other-name:9 has CHANGED: .* line 2 \(recorded as 10\.0\.0\.5:9\)/);
    expect(readKnownHosts(file).map((e) => e.host)).toEqual(['nas:9', '10.0.0.5:9', 'nas.lan:9']);
  });

  test('verifyPeerFingerprint: pin accepts exactly one certificate; TOFU tells, records, then holds', () => {
    const a = generateSelfSigned();
    const b = generateSelfSigned();
    expect(verifyPeerFingerprint({ kind: 'pin', fingerprint: fingerprintOf(a.der) }, '127.0.0.1', 9, a.der)).toEqual({ fingerprint: fingerprintOf(a.der), how: 'pin' });
    const pinErr = thrown(() => verifyPeerFingerprint({ kind: 'pin', fingerprint: fingerprintOf(a.der) }, '127.0.0.1', 9, b.der));
    expect(pinErr.code).toBe('TLS_TRUST');
    expect(pinErr.message).toContain(fingerprintOf(b.der));

    const told: unknown[] = [];
    const tofu = { kind: 'tofu' as const, knownHostsFile: file, onFirstUse: (i: unknown) => told.push(i) };
    expect(verifyPeerFingerprint(tofu, '::1', 9, a.der).how).toBe('first-use');
    expect(told).toEqual([{ host: '[::1]:9', fingerprint: fingerprintOf(a.der), file }]);
    expect(verifyPeerFingerprint(tofu, '::1', 9, a.der).how).toBe('known');
    expect(told).toHaveLength(1);
    expect(thrown(() => verifyPeerFingerprint(tofu, '::1', 9, b.der)).code).toBe('TLS_TRUST');
    // Another port is another entry.
    expect(verifyPeerFingerprint(tofu, '::1', 10, b.der).how).toBe('first-use');
  });
});

describe('server identity', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'netkit-id-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('generated once with a 0600 key in a 0700 directory, then reused', () => {
    const tlsDir = join(dir, 'netkit', 'tls');
    const first = loadOrCreateServerIdentity({ dir: tlsDir });
    expect(first.created).toBe(true);
    expect(first.fingerprint).toBe(fingerprintOfCert(first.certPem));
    expect(statSync(join(tlsDir, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(tlsDir).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(tlsDir, 'cert.pem'), 'utf8')).toBe(first.certPem);
    expect(readdirSync(tlsDir).sort()).toEqual(['cert.pem', 'key.pem']);
    const second = loadOrCreateServerIdentity({ dir: tlsDir });
    expect(second.created).toBe(false);
    expect(second.fingerprint).toBe(first.fingerprint);
    expect(second.keyPem).toBe(first.keyPem);
  });

  test('a key left readable by others is tightened to 0600', () => {
    const first = loadOrCreateServerIdentity({ dir });
    chmodSync(join(dir, 'key.pem'), 0o644);
    expect(loadOrCreateServerIdentity({ dir }).fingerprint).toBe(first.fingerprint);
    expect(statSync(join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
  });

  test('a certificate and key that do not belong together are refused with a hint', () => {
    const a = generateSelfSigned();
    const b = generateSelfSigned();
    writeFileSync(join(dir, 'c.pem'), a.certPem);
    writeFileSync(join(dir, 'k.pem'), b.keyPem);
    const err = thrown(() => loadServerIdentity(join(dir, 'c.pem'), join(dir, 'k.pem')));
    expect(err.code).toBe('TLS_TRUST');
    expect(err.message).toContain('does not belong');
    writeFileSync(join(dir, 'k.pem'), a.keyPem);
    expect(loadServerIdentity(join(dir, 'c.pem'), join(dir, 'k.pem')).fingerprint).toBe(fingerprintOf(a.der));
  });

  test('missing and garbage files are clear errors', () => {
    expect(thrown(() => loadServerIdentity(join(dir, 'nope.pem'), join(dir, 'k.pem'))).code).toBe('NOT_FOUND');
    writeFileSync(join(dir, 'c.pem'), 'hello');
    writeFileSync(join(dir, 'k.pem'), 'hello');
    const err = thrown(() => loadServerIdentity(join(dir, 'c.pem'), join(dir, 'k.pem')));
    expect(err.code).toBe('TLS_TRUST');
    expect(err.message).toContain('not a PEM certificate');
  });
});
