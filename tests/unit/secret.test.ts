// Loading the shared secret: NETKIT_TOKEN, --token-file on real files (permissions, FIFOs, sizes), validation, weak-token warnings, no leaks in logs.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  MIN_TOKEN_CHARS,
  Secret,
  TOKEN_ENV,
  generateToken,
  loadSecret,
  normalizeToken,
  readTokenFile,
  tokenWeaknesses,
} from '../../src/services/secret.js';
import { deriveKey } from '../../src/protocol/auth.js';
import { NetkitError } from '../../src/errors.js';

const STRONG = 'q3Xl0cJ1V8Q4pA9sR2tY7uW6eZ5mN0bK1hG3fD8jL2c';
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netkit-secret-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function tokenFile(content: string | Buffer, mode = 0o600, name = 'token'): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

async function failure(p: Promise<unknown>): Promise<NetkitError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NetkitError);
  return err as NetkitError;
}

describe('generateToken', () => {
  test('32 random bytes as 43 base64url characters, different every time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const t = generateToken();
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(t, 'base64url').length).toBe(32);
      expect(tokenWeaknesses(t)).toEqual([]);
      seen.add(t);
    }
    expect(seen.size).toBe(100);
  });
});

describe('loadSecret from the environment', () => {
  test('unset or empty NETKIT_TOKEN means no secret', async () => {
    expect(await loadSecret({ env: {} })).toBeUndefined();
    expect(await loadSecret({ env: { [TOKEN_ENV]: '' } })).toBeUndefined();
  });

  test('a strong token loads without warnings and derives the same keys as deriveKey', async () => {
    const s = (await loadSecret({ env: { NETKIT_TOKEN: ` ${STRONG}\n` } }))!;
    expect(s.source).toBe('NETKIT_TOKEN');
    expect(s.warnings).toEqual([]);
    expect(s.reveal()).toBe(STRONG);
    expect(s.key('disk').export()).toEqual(deriveKey(STRONG, 'disk').export());
    expect(s.key('file').export()).toEqual(deriveKey(STRONG, 'file').export());
  });

  test('a short token loads, with a warning that names the risk', async () => {
    const s = (await loadSecret({ env: { NETKIT_TOKEN: 'hunter2' } }))!;
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings[0]).toMatch(/weak.*7 characters.*offline.*netkit token/);
  });

  test('a long but repetitive token is called weak too', () => {
    expect(tokenWeaknesses('abababababababababababababab')).toEqual([expect.stringMatching(/2 distinct/)]);
    expect(tokenWeaknesses('x'.repeat(MIN_TOKEN_CHARS - 1))).toHaveLength(1);
  });

  test.each([
    ['only spaces', '   ', /empty/],
    ['a line break', 'two\nlines', /several lines/],
    ['non-ASCII', 'caf\u00e9-secret-value-long-enough', /printable ASCII/],
    ['a control character', 'bell\u0007-secret-value-long-enough', /printable ASCII/],
    ['1025 characters', 'x'.repeat(1025), /longer than 1024/],
  ])('refuses a token with %s', (_label, value, message) => {
    expect(() => normalizeToken(value, TOKEN_ENV)).toThrow(message);
    try {
      normalizeToken(value, TOKEN_ENV);
    } catch (e) {
      expect((e as NetkitError).code).toBe('USAGE');
      expect((e as NetkitError).hint).toBeTruthy();
    }
  });

  test('the Secret never prints its value', async () => {
    const s = (await loadSecret({ env: { NETKIT_TOKEN: STRONG } }))!;
    for (const text of [String(s), `${s}`, JSON.stringify({ s }), inspect(s), inspect({ nested: s }, { depth: 5 })]) {
      expect(text).not.toContain(STRONG);
      expect(text).toContain('NETKIT_TOKEN');
    }
    expect(inspect(s.key('disk'))).not.toContain(STRONG);
  });
});

describe('loadSecret from --token-file', () => {
  test('reads a private file, trims its newline, and wins over NETKIT_TOKEN', async () => {
    const p = tokenFile(`${STRONG}\n`);
    const s = (await loadSecret({ tokenFile: p, env: { NETKIT_TOKEN: 'another-secret-entirely-xyz' } }))!;
    expect(s).toBeInstanceOf(Secret);
    expect(s.reveal()).toBe(STRONG);
    expect(s.source).toBe(`--token-file ${p}`);
    expect(s.warnings).toEqual([]);
  });

  test('CRLF line endings are fine', async () => {
    expect((await readTokenFile(tokenFile(`${STRONG}\r\n`))).reveal()).toBe(STRONG);
  });

  test.each(['644', '640', '604', '620', '602', '666'])('a file with mode %s is refused with a chmod hint', async (octal) => {
    const p = tokenFile(STRONG, parseInt(octal, 8));
    const err = await failure(readTokenFile(p, 'linux'));
    expect(err.code).toBe('PERMISSION');
    expect(err.message).toMatch(/accessible by other users/);
    expect(err.hint).toBe(`make it private: chmod 600 ${p}`);
  });

  test('modes 600, 400 and 700 are accepted; Windows skips the mode check', async () => {
    for (const mode of [0o600, 0o400, 0o700]) {
      expect((await readTokenFile(tokenFile(STRONG, mode, `t${mode}`), 'linux')).reveal()).toBe(STRONG);
    }
    expect((await readTokenFile(tokenFile(STRONG, 0o644, 'w'), 'win32')).reveal()).toBe(STRONG);
  });

  test('a missing file is NOT_FOUND', async () => {
    const err = await failure(loadSecret({ tokenFile: join(dir, 'nope') }));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toMatch(/token file/);
  });

  test('a directory is refused', async () => {
    const d = join(dir, 'sub');
    mkdirSync(d, { mode: 0o700 });
    const err = await failure(loadSecret({ tokenFile: d }));
    expect(err.message).toMatch(/not a regular file|directory/);
  });

  test('a FIFO is refused without waiting for a writer', async () => {
    const p = join(dir, 'fifo');
    execFileSync('mkfifo', ['-m', '600', p]);
    const err = await failure(loadSecret({ tokenFile: p }));
    expect(err.code).toBe('USAGE');
    expect(err.message).toMatch(/not a regular file/);
  });

  test('an oversized file is refused without reading it all', async () => {
    const err = await failure(loadSecret({ tokenFile: tokenFile(Buffer.alloc(1 << 20, 0x41)) }));
    expect(err.message).toMatch(/too large/);
  });

  test('binary garbage, an empty file and several lines are refused', async () => {
    expect((await failure(loadSecret({ tokenFile: tokenFile(Buffer.from([0xff, 0xfe, 0x00, 0x41]), 0o600, 'bin') }))).code).toBe('USAGE');
    expect((await failure(loadSecret({ tokenFile: tokenFile('\n', 0o600, 'empty') }))).message).toMatch(/empty/);
    expect((await failure(loadSecret({ tokenFile: tokenFile(`${STRONG}\n${STRONG}\n`, 0o600, 'two') }))).message).toMatch(/several lines/);
  });

  test('an empty path is a usage error', async () => {
    expect((await failure(loadSecret({ tokenFile: '' }))).code).toBe('USAGE');
  });
});
