// `netkit token` as a user meets it: one fresh 32-byte base64url secret on stdout, nothing else, and no way to pass a secret as a value.
import { describe, expect, test } from '@jest/globals';
import { runNetkit } from '../helpers/netkit.js';

describe('netkit token', () => {
  test('prints a new 32-byte base64url secret and a newline on stdout, nothing on stderr', async () => {
    const [a, b] = await Promise.all([runNetkit(['token']), runNetkit(['token'])]);
    for (const r of [a, b]) {
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
      expect(Buffer.from(r.stdout.trim(), 'base64url')).toHaveLength(32);
    }
    expect(a.stdout).not.toBe(b.stdout);
  });

  test('--help explains where the secret goes', async () => {
    const r = await runNetkit(['token', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/NETKIT_TOKEN/);
    expect(r.stdout).toMatch(/--token-file/);
  });

  test('the top-level help lists it', async () => {
    const r = await runNetkit(['--help']);
    expect(r.stdout).toMatch(/netkit token/);
  });

  test.each([[['token', 'extra']], [['token', '--token', 'abc']], [['token', '--bytes', '8']]])(
    '%p is a usage error',
    async (args) => {
      const r = await runNetkit(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^netkit: /);
      expect(r.stderr).toMatch(/hint: run 'netkit token --help'/);
    },
  );
});
