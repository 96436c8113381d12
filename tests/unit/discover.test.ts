// Discovery's pure parts: TXT, names, which links to announce on, fingerprints against known_hosts, rendering; and lazy loading of the mDNS code.
import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeTxt } from '../../src/transport/mdns-browse.js';
import { eligibleLinks, renamed } from '../../src/transport/mdns-announce.js';
import { onSubnet, serviceRecords, type LinkInfo } from '../../src/transport/mdns.js';
import { defaultInstanceName, hostLabel, isLoopback, serverTxt } from '../../src/services/announce.js';
import { fingerprintTrust, toDiscovered } from '../../src/services/discover.js';
import { parseInstanceName } from '../../src/commands/announce-option.js';
import { parseKind } from '../../src/commands/discover/index.js';
import { fingerprintWarning, serverJson, serverLine } from '../../src/commands/discover/render.js';
import { codeOf } from '../helpers/errors.js';

const eth0: LinkInfo = { iface: 'eth0', address: '10.1.0.5', netmask: '255.255.255.0', v6: ['fd00::5'] };
const wlan0: LinkInfo = { iface: 'wlan0', address: '192.168.7.9', netmask: '255.255.0.0', v6: [] };

describe('TXT', () => {
  test('the server TXT carries v, auth, tls and, with TLS, fp; nothing else', () => {
    expect(serverTxt({ kind: 'disk', auth: false, tls: false })).toEqual({ v: '1', auth: '0', tls: '0' });
    expect(serverTxt({ kind: 'file', auth: true, tls: true, fingerprint: 'sha256:ab' })).toEqual({ v: '1', auth: '1', tls: '1', fp: 'sha256:ab' });
    expect(serverTxt({ kind: 'file', auth: false, tls: false, fingerprint: 'sha256:ab' })).not.toHaveProperty('fp');
  });

  test('decoding: keys case-insensitive, first occurrence wins, bare keys, junk and floods bounded', () => {
    const b = (s: string): Buffer => Buffer.from(s);
    expect(decodeTxt([b('V=1'), b('auth=0'), b('v=2'), b('flag'), b('=nokey'), b(''), b('fp=a=b')])).toEqual({ v: '1', auth: '0', flag: '', fp: 'a=b' });
    expect(Object.keys(decodeTxt(Array.from({ length: 500 }, (_, i) => b(`k${i}=x`))))).toHaveLength(32);
    expect(decodeTxt(undefined)).toEqual({});
  });
});

describe('names', () => {
  test('--name: one DNS label of printable text', () => {
    expect(parseInstanceName('Office NAS')).toBe('Office NAS');
    expect(parseInstanceName('żółw')).toBe('żółw');
    for (const bad of ['', '  ', 'a.b', 'x\u001b[31m', 'é'.repeat(32)]) expect(codeOf(() => parseInstanceName(bad))).toBe('USAGE');
  });

  test('renaming after a conflict stays within 63 bytes', () => {
    expect(renamed('nas', 2)).toBe('nas (2)');
    const long = renamed('ü'.repeat(31), 12);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long.endsWith(' (12)')).toBe(true);
  });

  test('host label and default instance name from the host name', () => {
    expect(hostLabel('nas.example.com')).toBe('nas');
    expect(hostLabel('my_box!')).toBe('my-box');
    expect(hostLabel('...')).toBe('netkit');
    expect(defaultInstanceName('Büro-PC.lan')).toBe('Büro-PC');
  });

  test('--type is disk or file', () => {
    expect(parseKind('FILE')).toBe('file');
    expect(codeOf(() => parseKind('printer'))).toBe('USAGE');
  });
});

describe('where a server is announced', () => {
  test('every link for a wildcard bind, one link and one address for a specific one, none for loopback', () => {
    expect(eligibleLinks([eth0, wlan0], '::')).toEqual([
      { link: eth0, addresses: ['10.1.0.5', 'fd00::5'] },
      { link: wlan0, addresses: ['192.168.7.9'] },
    ]);
    expect(eligibleLinks([eth0, wlan0], '0.0.0.0').map((e) => e.addresses)).toEqual([['10.1.0.5'], ['192.168.7.9']]);
    expect(eligibleLinks([eth0, wlan0], '192.168.7.9')).toEqual([{ link: wlan0, addresses: ['192.168.7.9'] }]);
    expect(eligibleLinks([eth0, wlan0], '::ffff:10.1.0.5')).toEqual([{ link: eth0, addresses: ['10.1.0.5'] }]);
    expect(eligibleLinks([eth0, wlan0], 'fd00::5')).toEqual([{ link: eth0, addresses: ['fd00::5'] }]);
    expect(eligibleLinks([eth0, wlan0], '10.9.9.9')).toEqual([]);
    expect(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('::ffff:127.0.0.2')).toBe(true);
    expect(isLoopback('::')).toBe(false);
  });

  test('queries are answered only from the link\'s subnet (or IPv4 link-local)', () => {
    expect(onSubnet(eth0, '10.1.0.200')).toBe(true);
    expect(onSubnet(eth0, '10.1.1.200')).toBe(false);
    expect(onSubnet(wlan0, '192.168.200.1')).toBe(true);
    expect(onSubnet(eth0, '169.254.3.4')).toBe(true);
    expect(onSubnet(eth0, 'fe80::1')).toBe(false);
  });

  test('the records on a link carry that link\'s addresses only, the target ends in .local, unique records flush caches', () => {
    const records = serviceRecords({ kind: 'file', instance: 'Office NAS', host: 'box', port: 8881, txt: { v: '1' } }, ['10.1.0.5', 'fd00::5']);
    const byType = (t: string): unknown[] => records.filter((r) => r.type === t).map((r) => r.data);
    expect(byType('PTR')).toEqual(['Office NAS._netkit-file._tcp.local', '_netkit-file._tcp.local']);
    expect(byType('SRV')).toEqual([expect.objectContaining({ port: 8881, target: 'box.local' })]);
    expect(byType('A')).toEqual(['10.1.0.5']);
    expect(byType('AAAA')).toEqual(['fd00::5']);
    expect(records.filter((r) => r.flush).map((r) => r.type).sort()).toEqual(['A', 'AAAA', 'SRV', 'TXT']);
  });
});

describe('fingerprints against known_hosts', () => {
  const fp = (c: string): string => `sha256:${c.repeat(64)}`;
  const dir = mkdtempSync(join(tmpdir(), 'netkit-disc-unit-'));
  const file = join(dir, 'known_hosts');
  writeFileSync(file, `# comment\n10.1.0.5:8881 ${fp('a')}\nnas:8881 ${fp('b')}\n`);

  test('matches under any of its names, new when none is recorded, CHANGED with the line otherwise', () => {
    expect(fingerprintTrust(fp('a'), ['nas', '10.1.0.5'], 8881, file)).toEqual({ status: 'known', key: '10.1.0.5:8881' });
    expect(fingerprintTrust(fp('b'), ['nas', '10.1.0.5'], 8881, file)).toEqual({ status: 'known', key: 'nas:8881' });
    expect(fingerprintTrust(fp('c'), ['other'], 8881, file)).toEqual({ status: 'new' });
    expect(fingerprintTrust(fp('c'), ['10.1.0.5'], 8881, file)).toEqual({ status: 'changed', key: '10.1.0.5:8881', expected: fp('a'), line: 2, file });
    expect(fingerprintTrust(fp('a'), ['10.1.0.5'], 9000, file)).toEqual({ status: 'new' });
    writeFileSync(join(dir, 'bad'), 'garbage\n');
    expect(fingerprintTrust(fp('a'), ['x'], 1, join(dir, 'bad')).status).toBe('unreadable');
  });

  test('an announcement becomes a row, a JSON object and, when CHANGED, a loud warning; peer text is escaped', () => {
    const found = { kind: 'file' as const, instance: 'evil\u001b[2J', host: 'box.local', port: 8881, addresses: ['10.1.0.5'], txt: { v: '1', auth: '0', tls: '1', fp: fp('C') }, source: '10.1.0.5', foundMs: 42 };
    const d = toDiscovered(found, file);
    expect(d).toMatchObject({ auth: false, tls: true, version: 1, fingerprint: fp('c'), trust: { status: 'changed', line: 2 }, address: '10.1.0.5' });
    expect(serverLine(d)).toMatch(/^file\s+evil\\x1b\[2J\s+box\.local\s+8881\s+10\.1\.0\.5\s+no\s+yes\s+sha256:c{64} CHANGED\n$/);
    expect(fingerprintWarning(d)).toMatch(/WARNING: "evil\\x1b\[2J" announces the TLS certificate sha256:c{64}, but .* line 2 \(10\.1\.0\.5:8881\) holds sha256:a{64}/);
    expect(serverJson(d)).toMatchObject({ fingerprintStatus: 'changed', knownHosts: { line: 2 }, elapsedMs: 42 });
    const junk = toDiscovered({ ...found, txt: { v: 'x', auth: 'maybe', fp: 'not-a-fingerprint' } }, file);
    expect(junk).toMatchObject({ badFingerprint: 'not-a-fingerprint' });
    expect(junk.version).toBeUndefined();
    expect(junk.auth).toBeUndefined();
    expect(serverJson(junk)).toMatchObject({ fingerprintStatus: 'invalid', auth: null, version: null });
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('start-up', () => {
  test('`netkit --version` and every command\'s parser never load the mDNS library (only announcing and browsing do)', () => {
    const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist');
    const seen = new Set<string>();
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:^|[;}\s])import\s*(?:[^'"();]*?from\s*)?["'](\.{1,2}\/[^"']+)["']/g)) walk(resolve(dirname(file), m[1]!));
    };
    walk(join(dist, 'netkit.js'));
    const mdnsChunks = readdirSync(join(dist, 'chunks')).filter((f) => f.endsWith('.js') && readFileSync(join(dist, 'chunks', f), 'utf8').includes('224.0.0.251'));
    expect(mdnsChunks.length).toBeGreaterThan(0);
    for (const f of seen) expect(readFileSync(f, 'utf8')).not.toContain('224.0.0.251');
    expect(seen.size).toBeGreaterThan(1);
  });
});
