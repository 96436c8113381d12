// Discovery's pure parts: TXT, names, which links to announce on, the browser's cache, the responder's answers and conflicts, fingerprints against known_hosts, rendering; and lazy loading of the mDNS code.
import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeTxt } from '../../src/transport/mdns-browse.js';
import { conflicts, eligibleLinks, renamed, renamedHost } from '../../src/transport/mdns-announce.js';
import { encodeQuery, onSubnet, serviceRecords, type LinkInfo, type MdnsRecord } from '../../src/transport/mdns.js';
import { answersFor, compareClaims } from '../../src/transport/mdns-records.js';
import { ServiceCache } from '../../src/transport/mdns-cache.js';
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

describe('the browser\'s cache: per responder, malformed and partial answers', () => {
  const T = '_netkit-file._tcp.local';
  const ptr = (inst: string, ttl = 4500): MdnsRecord => ({ name: T, type: 'PTR', ttl, data: `${inst}.${T}` });
  const srv = (inst: string, port: number, target: string, ttl = 120): MdnsRecord => ({ name: `${inst}.${T}`, type: 'SRV', ttl, data: { priority: 0, weight: 0, port, target } });
  const txt = (inst: string): MdnsRecord => ({ name: `${inst}.${T}`, type: 'TXT', ttl: 4500, data: [Buffer.from('v=1')] });
  const a = (host: string, addr: string): MdnsRecord => ({ name: host, type: 'A', ttl: 120, data: addr });

  test('one name from two responders is two services, each with its own addresses; a goodbye drops one', () => {
    const cache = new ServiceCache(['file'], true, [], 0);
    const first = cache.apply({ answers: [ptr('dup'), srv('dup', 8881, 'clone.local'), txt('dup'), a('clone.local', '10.0.0.1')] }, '10.0.0.1', 10);
    expect(first.up.map((s) => [s.instance, s.addresses, s.source])).toEqual([['dup', ['10.0.0.1'], '10.0.0.1']]);
    const second = cache.apply({ answers: [ptr('dup'), srv('dup', 8881, 'clone.local'), txt('dup'), a('clone.local', '10.0.0.2')] }, '10.0.0.2', 20);
    expect(second.up.map((s) => [s.instance, s.addresses, s.source])).toEqual([['dup', ['10.0.0.2'], '10.0.0.2']]);
    expect(cache.services()).toHaveLength(2);
    const bye = cache.apply({ answers: [{ ...ptr('dup'), ttl: 0 }] }, '10.0.0.1', 30);
    expect(bye.down.map((s) => s.source)).toEqual(['10.0.0.1']);
    expect(cache.services().map((s) => s.source)).toEqual(['10.0.0.2']);
  });

  test('a second responder\'s SRV never borrows the first one\'s addresses; a host announced by another responder alone is used', () => {
    const cache = new ServiceCache(['file'], true, [], 0);
    cache.apply({ answers: [ptr('dup'), srv('dup', 8881, 'clone.local'), txt('dup'), a('clone.local', '10.0.0.1')] }, '10.0.0.1', 10);
    const copy = cache.apply({ answers: [srv('dup', 8881, 'clone.local'), txt('dup')] }, '10.0.0.9', 20);
    expect(copy.up).toEqual([]);
    expect(copy.incomplete).toEqual([`dup.${T}`]);
    const proxied = cache.apply({ answers: [ptr('proxy'), srv('proxy', 9000, 'box.local'), txt('proxy')] }, '10.0.0.5', 30);
    expect(proxied.up).toEqual([]);
    expect(cache.apply({ answers: [a('box.local', '10.0.0.6')] }, '10.0.0.6', 40).up.map((s) => [s.instance, s.addresses])).toEqual([['proxy', ['10.0.0.6']]]);
  });

  test('an SRV with port 0 is malformed and ignored; follow-ups ask SRV, TXT, A and AAAA together, as far as they are missing', () => {
    const cache = new ServiceCache(['file'], true, [], 0);
    const zero = cache.apply({ answers: [ptr('z'), srv('z', 0, 'z.local'), txt('z'), a('z.local', '10.0.0.3')] }, '10.0.0.3', 10);
    expect(zero.up).toEqual([]);
    expect(cache.followUp(`z.${T}`)).toEqual([{ name: `z.${T}`, type: 'SRV' }]);
    cache.apply({ answers: [ptr('n')] }, '10.0.0.4', 10);
    expect(cache.followUp(`n.${T}`)).toEqual([{ name: `n.${T}`, type: 'SRV' }, { name: `n.${T}`, type: 'TXT' }]);
    cache.apply({ answers: [srv('n', 1, 'n.local')] }, '10.0.0.4', 11);
    expect(cache.followUp(`n.${T}`)).toEqual([{ name: `n.${T}`, type: 'TXT' }, { name: 'n.local', type: 'A' }, { name: 'n.local', type: 'AAAA' }]);
  });

  test('at the deadline, an SRV without addresses or TXT is reported as it is, with what it lacks; a bare PTR is nameless', () => {
    const cache = new ServiceCache(['file'], true, [], 0);
    cache.apply({ answers: [ptr('late'), srv('late', 8881, 'late.local')] }, '10.0.0.7', 10);
    cache.apply({ answers: [ptr('silent')] }, '10.0.0.8', 10);
    const late = cache.finish(1500);
    expect(late).toEqual([expect.objectContaining({ instance: 'late', port: 8881, addresses: [], source: '10.0.0.7', missing: ['addresses', 'txt'], foundMs: 1500 })]);
    expect(cache.finish(1600)).toEqual([]);
    expect(cache.nameless()).toEqual([{ kind: 'file', instance: 'silent' }]);
    const d = toDiscovered(late[0]!);
    expect(d).toMatchObject({ address: '10.0.0.7', missing: ['addresses', 'txt'] });
    expect(serverJson(d)).toMatchObject({ addresses: [], address: '10.0.0.7', missing: ['addresses', 'txt'], auth: null });
  });
});

describe('the responder: answers, probes, conflicts', () => {
  const spec = { kind: 'file' as const, instance: 'nas', host: 'box', port: 8881, txt: { v: '1' } };
  const served = serviceRecords(spec, ['10.1.0.5']);
  const claim = { instanceName: 'nas._netkit-file._tcp.local', hostName: 'box.local', port: 8881 };
  const own = (): Set<string> => new Set(['10.1.0.5']);

  test('an SRV answer carries its target\'s addresses; a PTR answer the SRV, TXT and addresses', () => {
    const bySrv = answersFor(served, { name: 'NAS._netkit-file._tcp.local', type: 'SRV' });
    expect(bySrv.answers.map((r) => r.type)).toEqual(['SRV']);
    expect(bySrv.additionals.map((r) => r.type)).toEqual(['A']);
    const byPtr = answersFor(served, { name: '_netkit-file._tcp.local', type: 'PTR' });
    expect(byPtr.additionals.map((r) => r.type).sort()).toEqual(['A', 'SRV', 'TXT']);
    expect(answersFor(served, { name: 'box.local', type: 'ANY' }).answers.map((r) => r.data)).toEqual(['10.1.0.5']);
  });

  test('queries carry the QU bit where asked, in each question\'s class', () => {
    const bytes = encodeQuery({ questions: [{ name: 'a.local', type: 'A', qu: true }, { name: 'b.local', type: 'A' }] });
    // header 12, "a.local" 9 bytes + type 2 + class 2, then "b.local" likewise
    expect(bytes.readUInt16BE(12 + 9 + 2)).toBe(0x8001);
    expect(bytes.readUInt16BE(12 + 13 + 9 + 2)).toBe(0x0001);
  });

  test('a conflict: another port or target for our instance, an address of another machine for our host name', () => {
    const pkt = (records: MdnsRecord[]): { answers: MdnsRecord[] } => ({ answers: records });
    const srvOf = (port: number, target: string): MdnsRecord => ({ name: claim.instanceName, type: 'SRV', ttl: 120, data: { port, target } });
    expect(conflicts(pkt([srvOf(8881, 'box.local')]), '10.1.0.9', claim, own)).toEqual({ instance: false, host: false });
    expect(conflicts(pkt([srvOf(8882, 'box.local')]), '10.1.0.9', claim, own)).toEqual({ instance: true, host: false });
    expect(conflicts(pkt([{ name: 'BOX.local', type: 'A', ttl: 120, data: '10.1.0.9' }]), '10.1.0.9', claim, own)).toEqual({ instance: false, host: true });
    // Our own address (another netkit server on this machine), or a goodbye: no conflict.
    expect(conflicts(pkt([{ name: 'box.local', type: 'A', ttl: 120, data: '10.1.0.5' }]), '10.1.0.5', claim, own).host).toBe(false);
    expect(conflicts(pkt([{ name: 'box.local', type: 'A', ttl: 0, data: '10.1.0.9' }]), '10.1.0.9', claim, own).host).toBe(false);
  });

  test('simultaneous probes: the lexicographically later records win, the same records tie', () => {
    const mine: MdnsRecord[] = [{ name: 'box.local', type: 'A', data: '10.1.0.5' }];
    expect(compareClaims(mine, [{ name: 'box.local', type: 'A', data: '10.1.0.9' }])).toBeLessThan(0);
    expect(compareClaims(mine, [{ name: 'box.local', type: 'A', data: '10.1.0.40' }])).toBeLessThan(0);
    expect(compareClaims(mine, [{ name: 'box.local', type: 'A', data: '9.200.0.1' }])).toBeGreaterThan(0);
    expect(compareClaims(mine, mine)).toBe(0);
    const srvA: MdnsRecord = { name: 'n', type: 'SRV', data: { priority: 0, weight: 0, port: 8881, target: 'a.local' } };
    const srvB: MdnsRecord = { name: 'n', type: 'SRV', data: { priority: 0, weight: 0, port: 8882, target: 'a.local' } };
    expect(compareClaims([srvA], [srvB])).toBeLessThan(0);
    expect(compareClaims([srvA, srvB], [srvA])).toBeGreaterThan(0); // the set that runs out first loses
  });

  test('a renamed host stays one DNS label', () => {
    expect(renamedHost('clone', 2)).toBe('clone-2');
    expect(renamedHost('x'.repeat(63), 12)).toBe(`${'x'.repeat(60)}-12`);
  });
});
