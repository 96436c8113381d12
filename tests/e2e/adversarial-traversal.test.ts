// Path traversal against a running `netkit file serve`: 60+ hostile names over v1 and classic, symlinks out of the root, FIFOs, a swap after start.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Status } from '../../src/protocol/file-v1.js';
import { startServer, type Server } from '../helpers/netkit.js';
import { classicFetch, rawFetch } from '../helpers/raw-file-client.js';

const MARKER = 'TOP-SECRET-MARKER-4e1f';
const CLASSIC_MISSING = '-1      ';

let base: string;
let root: string;
let outside: string;
let server: Server;

const { NOT_FOUND, FORBIDDEN, BAD_REQUEST } = Status;
type Expect = number;

/** name -> the status the server must answer. Nothing here may ever be served. */
function corpus(): Array<[label: string, name: Buffer | string, status: Expect]> {
  const secretAbs = path.join(outside, 'secret.txt');
  const b = (...bytes: number[]): Buffer => Buffer.from(bytes);
  const cat = (...parts: Array<Buffer | string>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  return [
    // plain and doubled dot-dot
    ['dot-dot', '../outside/secret.txt', FORBIDDEN],
    ['dot-dot deep', '../../../../../../etc/passwd', FORBIDDEN],
    ['dot-dot after a segment', 'sub/../../outside/secret.txt', FORBIDDEN],
    ['dot-dot at the end', 'sub/..', FORBIDDEN],
    ['dot-dot with dot segments', './.././outside/secret.txt', FORBIDDEN],
    ['file then dot-dot', 'ok.txt/../../outside/secret.txt', FORBIDDEN],
    ['....//', '....//outside/secret.txt', NOT_FOUND],
    ['....//....//etc', '....//....//etc/passwd', NOT_FOUND],
    ['.../...', '.../.../outside/secret.txt', NOT_FOUND],
    ['..;/', '..;/outside/secret.txt', NOT_FOUND],
    ['space dot-dot', ' ../outside/secret.txt', NOT_FOUND],
    ['dot-dot space', '.. /outside/secret.txt', NOT_FOUND],
    // percent-encoded: never decoded, so literal names that do not exist
    ['%2e%2e%2f', '%2e%2e%2foutside%2fsecret.txt', NOT_FOUND],
    ['..%2f', '..%2foutside%2fsecret.txt', NOT_FOUND],
    ['%2e%2e/', '%2e%2e/outside/secret.txt', NOT_FOUND],
    ['%252e double-encoded', '%252e%252e%252foutside', NOT_FOUND],
    ['%2E upper', '%2E%2E/%2E%2E/etc/passwd', NOT_FOUND],
    ['..%5c', '..%5coutside%5csecret.txt', NOT_FOUND],
    ['%c0%ae as text', '%c0%ae%c0%ae/outside', NOT_FOUND],
    // separators
    ['backslash dot-dot', '..\\outside\\secret.txt', FORBIDDEN],
    ['mixed /..\\..', '/..\\..\\outside\\secret.txt', FORBIDDEN],
    ['sub\\..\\..', 'sub\\..\\..\\outside\\secret.txt', FORBIDDEN],
    ['mixed ../..\\', '..\\../outside/secret.txt', FORBIDDEN],
    // absolute, drive letters, UNC
    ['absolute /etc/passwd', '/etc/passwd', FORBIDDEN],
    ['double slash absolute', '//etc/passwd', FORBIDDEN],
    ['absolute path of the secret', secretAbs, FORBIDDEN],
    ['drive C:\\', 'C:\\Windows\\win.ini', FORBIDDEN],
    ['drive c:/', 'c:/windows/win.ini', FORBIDDEN],
    ['drive-relative C:', 'C:secret.txt', FORBIDDEN],
    ['UNC \\\\host\\share', '\\\\host\\share\\secret.txt', FORBIDDEN],
    ['UNC //host/share', '//host/share/secret.txt', FORBIDDEN],
    ['device namespace \\\\.\\', '\\\\.\\PhysicalDrive0', FORBIDDEN],
    ['file: URL', 'file:///etc/passwd', NOT_FOUND],
    ['tilde', '~/.ssh/id_rsa', NOT_FOUND],
    // NUL and control characters
    ['NUL truncation', 'ok.txt\u0000../../outside/secret.txt', BAD_REQUEST],
    ['NUL alone', '\u0000', BAD_REQUEST],
    ['escape sequence', '\u001b[31mok.txt', BAD_REQUEST],
    ['newline inside', 'ok.txt\nsecret', BAD_REQUEST],
    ['DEL', 'ok\u007f.txt', BAD_REQUEST],
    ['C1 control', 'ok\u0085.txt', BAD_REQUEST],
    ['bidi override', 'txt.\u202eok', BAD_REQUEST],
    // Unicode look-alikes: literal names, nothing folds them into '.' or '/'
    ['U+2024 one dot leader', '\u2024\u2024/outside/secret.txt', NOT_FOUND],
    ['U+FF0E fullwidth full stop', '\uff0e\uff0e/outside/secret.txt', NOT_FOUND],
    ['U+2215 division slash', '..\u2215outside\u2215secret.txt', NOT_FOUND],
    ['U+FF0F fullwidth solidus', '..\uff0foutside\uff0fsecret.txt', NOT_FOUND],
    ['U+2044 fraction slash', '..\u2044outside', NOT_FOUND],
    ['U+FE52 small full stop', '\ufe52\ufe52/outside/secret.txt', NOT_FOUND],
    // overlong UTF-8 encodings of '.' and '/' as raw bytes: not valid UTF-8, refused before any lookup
    ['overlong 0xC0 0xAE 0xC0 0xAF', cat(b(0xc0, 0xae, 0xc0, 0xae, 0xc0, 0xaf), 'outside/secret.txt'), BAD_REQUEST],
    ['overlong 3-byte dot', cat(b(0xe0, 0x80, 0xae, 0xe0, 0x80, 0xae), '/outside'), BAD_REQUEST],
    ['overlong slash after dot-dot', cat('..', b(0xc0, 0xaf), 'outside/secret.txt'), BAD_REQUEST],
    ['lone continuation byte', b(0x80, 0x2e, 0x2e), BAD_REQUEST],
    ['UTF-16 surrogate bytes', cat(b(0xed, 0xa0, 0x80), '.txt'), BAD_REQUEST],
    // overlong names
    ['1,025-byte name (over the cap)', 'a'.repeat(1025), BAD_REQUEST],
    ['4,000-byte name (near the frame cap)', 'a/'.repeat(2000), BAD_REQUEST],
    ['300-byte segment (over NAME_MAX)', 'b'.repeat(300), BAD_REQUEST],
    ['empty name', '', BAD_REQUEST],
    // reserved device names: ordinary, absent names on Linux
    ['CON', 'CON', NOT_FOUND],
    ['NUL', 'NUL', NOT_FOUND],
    ['AUX', 'AUX', NOT_FOUND],
    ['COM1', 'COM1', NOT_FOUND],
    ['LPT1', 'LPT1', NOT_FOUND],
    ['con.txt', 'con.txt', NOT_FOUND],
    ['PRN with stream', 'PRN::$DATA', NOT_FOUND],
    ['sub/NUL', 'sub/NUL', NOT_FOUND],
    // the root itself, directories
    ['the root .', '.', FORBIDDEN],
    ['the root ./', './', FORBIDDEN],
    ['a directory', 'sub', FORBIDDEN],
    ['a directory with slash', 'sub/', FORBIDDEN],
    // symlinks out of the root, chains, loops, devices, FIFOs
    ['file symlink out', 'link-out-file', FORBIDDEN],
    ['directory symlink out', 'link-out-dir/secret.txt', FORBIDDEN],
    ['symlink chain out', 'chain1', FORBIDDEN],
    ['relative symlink out', 'link-rel-out', FORBIDDEN],
    ['symlink loop', 'loop1', FORBIDDEN],
    ['symlink to /dev/zero', 'devzero', FORBIDDEN],
    ['symlink to /proc/self/root', 'procroot/etc/passwd', FORBIDDEN],
    ['symlink in a subdirectory out', 'sub/up', FORBIDDEN],
    ['FIFO inside the root', 'fifo', FORBIDDEN],
    ['FIFO in a subdirectory', 'sub/fifo2', FORBIDDEN],
    ['dangling symlink', 'dangling', NOT_FOUND],
  ];
}

beforeAll(async () => {
  base = mkdtempSync(path.join(tmpdir(), 'netkit-adv-trav-'));
  root = path.join(base, 'root');
  outside = path.join(base, 'outside');
  mkdirSync(path.join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret.txt'), `${MARKER}\n`);
  writeFileSync(path.join(root, 'ok.txt'), 'inside\n');
  writeFileSync(path.join(root, 'sub', 'inner.txt'), 'inner\n');
  writeFileSync(path.join(root, 'swap.txt'), 'harmless\n');
  mkdirSync(path.join(root, 'swapdir'));
  writeFileSync(path.join(root, 'swapdir', 'secret.txt'), 'harmless\n');
  symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'link-out-file'));
  symlinkSync(outside, path.join(root, 'link-out-dir'));
  symlinkSync('chain2', path.join(root, 'chain1'));
  symlinkSync('sub/chain3', path.join(root, 'chain2'));
  symlinkSync('../link-out-file', path.join(root, 'sub', 'chain3'));
  symlinkSync('../outside/secret.txt', path.join(root, 'link-rel-out'));
  symlinkSync('loop2', path.join(root, 'loop1'));
  symlinkSync('loop1', path.join(root, 'loop2'));
  symlinkSync('/dev/zero', path.join(root, 'devzero'));
  symlinkSync('/proc/self/root', path.join(root, 'procroot'));
  symlinkSync('../../outside/secret.txt', path.join(root, 'sub', 'up'));
  symlinkSync('ok.txt', path.join(root, 'link-in'));
  symlinkSync('nowhere', path.join(root, 'dangling'));
  execFileSync('mkfifo', [path.join(root, 'fifo'), path.join(root, 'sub', 'fifo2')]);
  server = await startServer(['file', 'serve', root, '--port', '0', '--host', '127.0.0.1', '--quiet']);
});

afterAll(async () => {
  await server?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('path traversal corpus against a running server', () => {
  test('the corpus has 50+ names', () => {
    expect(corpus().length).toBeGreaterThanOrEqual(50);
  });

  test('v1: every hostile name gets its refusal status, and the secret never crosses the wire', async () => {
    const results: string[] = [];
    for (const [label, name, status] of corpus()) {
      const a = await rawFetch(server.port, name, { timeoutMs: 8_000 });
      expect(a.raw.includes(MARKER)).toBe(false);
      if (a.status !== status) results.push(`${label}: status ${a.status} (${a.message}), expected ${status}`);
    }
    expect(results).toEqual([]);
  });

  test('classic: every hostile name that fits a classic request gets -1 and nothing else', async () => {
    const wrong: string[] = [];
    for (const [label, name] of corpus()) {
      const bytes = typeof name === 'string' ? Buffer.from(name) : name;
      if (bytes.length === 0 || bytes.includes(0x0a) || bytes.length > 1024) continue;
      const raw = await classicFetch(server.port, bytes, { timeoutMs: 8_000 });
      expect(raw.includes(MARKER)).toBe(false);
      if (raw.toString('latin1') !== CLASSIC_MISSING) wrong.push(`${label}: ${JSON.stringify(raw.toString('latin1').slice(0, 40))}`);
    }
    expect(wrong).toEqual([]);
  });

  test('names inside the root are still served, through an inside symlink too (the jail is not just refusing everything)', async () => {
    for (const [name, content] of [['ok.txt', 'inside\n'], ['sub/inner.txt', 'inner\n'], ['./sub//inner.txt', 'inner\n'], ['link-in', 'inside\n']] as const) {
      const a = await rawFetch(server.port, name);
      expect([name, a.status]).toEqual([name, Status.OK]);
      expect(a.body.toString()).toBe(content);
    }
  });

  test('a file and a directory swapped for symlinks out of the root after start are refused', async () => {
    expect((await rawFetch(server.port, 'swap.txt')).status).toBe(Status.OK);
    expect((await rawFetch(server.port, 'swapdir/secret.txt')).status).toBe(Status.OK);
    renameSync(path.join(root, 'swap.txt'), path.join(base, 'swap.old'));
    symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'swap.txt'));
    renameSync(path.join(root, 'swapdir'), path.join(base, 'swapdir.old'));
    symlinkSync(outside, path.join(root, 'swapdir'));
    for (const name of ['swap.txt', 'swapdir/secret.txt']) {
      const a = await rawFetch(server.port, name);
      expect(a.raw.includes(MARKER)).toBe(false);
      expect([name, a.status]).toEqual([name, Status.FORBIDDEN]);
    }
  });

  test('after the corpus the server still serves, and the FIFOs never blocked it', async () => {
    const a = await rawFetch(server.port, 'ok.txt');
    expect(a.status).toBe(Status.OK);
    expect(server.child.exitCode).toBeNull();
  });
});
