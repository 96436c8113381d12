// HTTP pieces that are pure functions: the request-line sniff, the target's decoding, ranges, validators, digests, the directory page's escaping, content negotiation and the URLs shown at start.
import { describe, expect, test } from '@jest/globals';
import { httpRequestLine } from '../../src/protocol/http-sniff.js';
import { encodePath, parseTarget } from '../../src/protocol/http-target.js';
import { contentRange, entityTag, httpDate, ifRangeAllows, noneMatchHit, notModified, parseHttpDate, parseRange, reprDigest, sha256FromDigestField } from '../../src/protocol/http-range.js';
import { directoryPageEnd, directoryPageStart, directoryRow, escapeHtml, humanSize, LISTING_CSP } from '../../src/services/file/serve/listing-html.js';
import { wantsJson } from '../../src/services/file/serve/http-listing.js';
import { serverUrls } from '../../src/services/file/serve/urls.js';
import { parseHttpUrl } from '../../src/services/target.js';
import { codeOf } from '../helpers/errors.js';

describe('the request line that claims a connection for HTTP', () => {
  test.each([
    ['GET / HTTP/1.1\r\n', true],
    ['HEAD /a%20b?x=1 HTTP/1.0\r\nHost: x\r\n\r\n', true],
    ['M-SEARCH * HTTP/1.1\r\n', true],
    ['GET http://h:1/a HTTP/1.1\r\n', true],
    ['notes.txt', false],
    ['README\n', false],
    ['get / HTTP/1.1\r\n', false],
    ['GET / HTTP/2.0\r\n', false],
    ['GET / HTTP/1.1\n', false],
    ['GET  / HTTP/1.1\r\n', false],
    ['PRI * HTTP/2.0\r\n', false],
    ['\u0089NKF\u0001', false],
    ['GET', undefined],
    ['GET /', undefined],
    ['GET / HTTP/1.', undefined],
    ['GET / HTTP/1.1\r', undefined],
    ['GET notes', undefined],
  ])('%j -> %s', (text, verdict) => {
    expect(httpRequestLine(Buffer.from(text, 'latin1'))).toBe(verdict);
  });

  test('every prefix of a request line is undecided, never refused, and the whole line decides', () => {
    const line = Buffer.from('GET /dir/%E2%82%AC.txt HTTP/1.1\r\n');
    for (let i = 1; i < line.length; i++) expect(httpRequestLine(line.subarray(0, i))).toBeUndefined();
    expect(httpRequestLine(line)).toBe(true);
  });

  test('a classic name that never ends a request line is let go after 8 KiB at most', () => {
    expect(httpRequestLine(Buffer.from(`GET /${'a'.repeat(9000)}`))).toBe(false);
  });
});

describe('the request target', () => {
  test.each([
    ['/a.txt', '/a.txt', ''],
    ['/a%20b.txt?format=json', '/a b.txt', 'format=json'],
    ['/%2e%2e/etc/passwd', '/../etc/passwd', ''],
    ['/%252e%252e/x', '/%2e%2e/x', ''],
    ['/caf%C3%A9', '/café', ''],
    ['/a%2Fb', '/a/b', ''],
    ['http://evil.example:80/x?y', '/x', 'y'],
    ['HTTP://h', '/', ''],
    ['https://h?q', '/', 'q'],
  ])('%j -> path %j, query %j', (target, path, query) => {
    expect(parseTarget(target)).toEqual({ path, query });
  });

  test.each(['*', 'h:80', '/a%zz', '/a%2', '/%ff%fe', '/a#frag', 'mailto:x', 'file:///etc/passwd', 'ftp://h/x'])('%j is refused as BAD_REQUEST', (target) => {
    expect(codeOf(() => parseTarget(target))).toBe('BAD_REQUEST');
  });

  test('raw UTF-8 bytes (as Node hands them over, one character per byte) decode too', () => {
    expect(parseTarget(Buffer.from('/é', 'utf8').toString('latin1')).path).toBe('/é');
  });

  test('encodePath keeps every segment a segment', () => {
    expect(encodePath(['a b', '?#%', '..', 'é'])).toBe('a%20b/%3F%23%25/../%C3%A9');
  });
});

describe('ranges', () => {
  test.each([
    [undefined, 100, { kind: 'full' }],
    ['bytes=0-9', 100, { kind: 'partial', start: 0, end: 9 }],
    ['bytes=90-', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-10', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-1000', 100, { kind: 'partial', start: 0, end: 99 }],
    ['bytes=50-5000', 100, { kind: 'partial', start: 50, end: 99 }],
    ['BYTES = 1-2', 100, { kind: 'partial', start: 1, end: 2 }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
    ['bytes=99999999999999999999-', 100, { kind: 'unsatisfiable' }],
    ['bytes=9-1', 100, { kind: 'full' }],
    ['bytes=0-1,5-6', 100, { kind: 'full' }],
    ['items=0-1', 100, { kind: 'full' }],
    ['bytes=a-b', 100, { kind: 'full' }],
    ['bytes=-', 100, { kind: 'full' }],
  ])('%j of %d bytes -> %j', (header, size, choice) => {
    expect(parseRange(header, size)).toEqual(choice);
  });

  test('Content-Range', () => {
    expect(contentRange(100, { start: 90, end: 99 })).toBe('bytes 90-99/100');
    expect(contentRange(100)).toBe('bytes */100');
  });
});

describe('validators and conditional requests', () => {
  const etag = entityTag(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
  const mtimeMs = Date.UTC(2024, 4, 1, 12, 0, 0, 500);
  const v = { etag, mtimeMs };

  test('a strong ETag in quotes, an IMF-fixdate in whole seconds', () => {
    expect(etag).toBe('"00112233445566778899aabbccddeeff"');
    expect(httpDate(mtimeMs)).toBe('Wed, 01 May 2024 12:00:00 GMT');
    expect(parseHttpDate('Wed, 01 May 2024 12:00:00 GMT')).toBe(Date.UTC(2024, 4, 1, 12));
    expect(parseHttpDate('Wednesday, 01-May-24 12:00:00 GMT')).toBe(Date.UTC(2024, 4, 1, 12));
    expect(parseHttpDate('Wed May  1 12:00:00 2024')).toBe(Date.UTC(2024, 4, 1, 12));
    expect(parseHttpDate('1714564800')).toBeUndefined();
  });

  test('If-None-Match compares weakly and decides alone; If-Modified-Since to the second', () => {
    expect(noneMatchHit(`"x", W/${etag}`, etag)).toBe(true);
    expect(noneMatchHit('*', etag)).toBe(true);
    expect(notModified({ ifNoneMatch: '"other"', ifModifiedSince: 'Wed, 01 May 2024 13:00:00 GMT' }, v)).toBe(false);
    expect(notModified({ ifModifiedSince: 'Wed, 01 May 2024 12:00:00 GMT' }, v)).toBe(true);
    expect(notModified({ ifModifiedSince: 'Wed, 01 May 2024 11:59:59 GMT' }, v)).toBe(false);
    expect(notModified({ ifModifiedSince: 'garbage' }, v)).toBe(false);
    expect(notModified({}, v)).toBe(false);
  });

  test('If-Range: the exact strong ETag, or the exact Last-Modified date', () => {
    expect(ifRangeAllows(undefined, v)).toBe(true);
    expect(ifRangeAllows(etag, v)).toBe(true);
    expect(ifRangeAllows(`W/${etag}`, v)).toBe(false);
    expect(ifRangeAllows('"other"', v)).toBe(false);
    expect(ifRangeAllows('Wed, 01 May 2024 12:00:00 GMT', v)).toBe(true);
    expect(ifRangeAllows('Wed, 01 May 2024 12:00:01 GMT', v)).toBe(false);
  });

  test('Repr-Digest and the older Digest carry SHA-256 in base64', () => {
    const sha = Buffer.alloc(32, 7);
    expect(reprDigest(sha)).toBe(`sha-256=:${sha.toString('base64')}:`);
    expect(sha256FromDigestField(`sha-512=:AAAA:, ${reprDigest(sha)}`)).toEqual(sha);
    expect(sha256FromDigestField(`SHA-256=${sha.toString('base64')}`, true)).toEqual(sha);
    expect(sha256FromDigestField('sha-256=:AAAA:')).toBeUndefined();
    expect(sha256FromDigestField('md5=:AAAA:')).toBeUndefined();
  });
});

describe('the directory page', () => {
  const hostile = ['<script>alert(1)', '<img src=x onerror=alert(1)>', '"quoted\' & more', '%2e%2e', 'café ☕', 'javascript:alert(1)', '?x#y'];
  const row = (path: string, type: 'file' | 'dir' = 'file'): string => directoryRow({ path, type, size: 1536, mtimeMs: Date.UTC(2024, 4, 1, 12), mode: 0o644 });

  test.each(hostile)('%j is escaped in the text and percent-encoded in the link', (name) => {
    const html = row(`sub/${name}`);
    expect(html).not.toContain('<script>');
    expect(html).toContain(`href="./${encodeURIComponent(name)}"`);
    expect(html).toContain(`>${escapeHtml(name)}</a>`);
    const [, href] = /href="([^"]*)"/.exec(html)!;
    expect(decodeURIComponent(href!.slice(2))).toBe(name);
    // A relative link with no scheme and no query or fragment of its own.
    expect(href).toMatch(/^\.\/[^:?#]*$/);
  });

  test('directories end with /, files get a download link, sizes read like 1.50 KiB', () => {
    expect(row('a/b', 'dir')).toContain('href="./b/">b/</a>');
    expect(row('a/f')).toContain('download="f"');
    expect(humanSize(1536)).toBe('1.50 KiB');
    expect(humanSize(1023)).toBe('1023 B');
    expect(humanSize(5 * 1024 ** 3)).toBe('5.00 GiB');
  });

  test('the page has a viewport, a breadcrumb of encoded links, a parent link below the root, and no script', () => {
    const page = directoryPageStart('a b/<x>') + directoryPageEnd(2, 1);
    expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(page).toContain('<a href="/a%20b/">a b</a>/<a href="/a%20b/%3Cx%3E/">&lt;x&gt;</a>/');
    expect(page).toContain('<a href="../">../</a>');
    expect(page).not.toMatch(/<script|src=|http:|https:/i);
    expect(directoryPageStart('')).not.toContain('../');
    expect(page).toContain('2 entries; 1 left out');
    expect(LISTING_CSP).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'/);
  });

  test.each([
    ['format=json', undefined, true],
    ['format=html', 'application/json', false],
    ['', 'application/json', true],
    ['', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', false],
    ['', 'application/json;q=0.5, text/html', false],
    ['', 'application/json;q=0', false],
    ['', undefined, false],
  ])('query %j, Accept %j -> JSON %s', (query, accept, json) => {
    expect(wantsJson(query, accept)).toBe(json);
  });
});

describe('the URLs printed at start', () => {
  const ifs = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
    eth0: [
      { address: '192.168.1.20', family: 'IPv4', internal: false },
      { address: 'fe80::1', family: 'IPv6', internal: false },
      { address: '2001:db8::20', family: 'IPv6', internal: false },
    ],
  } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;

  test('one per non-loopback address when bound to every interface; the bound address otherwise', () => {
    expect(serverUrls('::', 8881, 'http', ifs)).toEqual(['http://192.168.1.20:8881/', 'http://[2001:db8::20]:8881/']);
    expect(serverUrls('0.0.0.0', 8881, 'https', ifs)).toEqual(['https://192.168.1.20:8881/']);
    expect(serverUrls('127.0.0.1', 1234, 'http', ifs)).toEqual(['http://127.0.0.1:1234/']);
    expect(serverUrls('::1', 1234, 'http', ifs)).toEqual(['http://[::1]:1234/']);
    expect(serverUrls('::', 1, 'http', { lo: ifs.lo })).toEqual(['http://[::1]:1/']);
  });
});

describe('a URL to fetch', () => {
  test.each([
    ['http://nas:8881/movies/big%20one.iso', { scheme: 'http', host: 'nas', port: 8881, target: '/movies/big%20one.iso', name: 'movies/big one.iso' }],
    ['https://[::1]/a?x=1', { scheme: 'https', host: '::1', port: 443, target: '/a?x=1', name: 'a' }],
    ['HTTP://h/a/../b', { scheme: 'http', host: 'h', port: 80, target: '/b', name: 'b' }],
  ])('%j', (url, parsed) => {
    expect(parseHttpUrl(url)).toMatchObject(parsed);
  });

  test('not a URL, a bad URL, credentials in it', () => {
    expect(parseHttpUrl('nas:movies/x')).toBeUndefined();
    expect(codeOf(() => parseHttpUrl('http://[zz/x'))).toBe('USAGE');
    expect(codeOf(() => parseHttpUrl('http://me:pw@h/x'))).toBe('USAGE');
  });
});
