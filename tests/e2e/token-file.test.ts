// --token-file as every command meets it, with the built binary: a FIFO (or a link to one) is refused without blocking, a file others can read or write is refused with a chmod hint.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit } from '../helpers/netkit.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'netkit-e2e-tokenfile-'));
  execFileSync('mkfifo', ['-m', '600', join(work, 'fifo')]);
  symlinkSync(join(work, 'fifo'), join(work, 'link-to-fifo'));
  writeFileSync(join(work, 'shared'), 'Hq2Wn8Rt5Yv1Xc7Zb4Nm9Kl3Jp6Df0Gs2Ae8Ui5Oy1\n');
  chmodSync(join(work, 'shared'), 0o640);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Every command that reads a secret, in a form that would start working if the secret loaded. */
const COMMANDS: Array<[string, string[]]> = [
  ['file serve', ['file', 'serve', '.', '--port', '0', '--host', '127.0.0.1']],
  ['file fetch', ['file', 'fetch', 'x', '-H', '127.0.0.1', '-p', '9', '--timeout', '1s']],
  ['disk serve', ['disk', 'serve', '--port', '0', '--host', '127.0.0.1']],
  ['disk query', ['disk', 'query', '127.0.0.1', '--timeout', '1s', '--retries', '0']],
];

describe('--token-file', () => {
  test.each(COMMANDS)('%s: a FIFO, or a symbolic link to one, is refused at once (no writer is waited for)', async (_, args) => {
    for (const file of ['fifo', 'link-to-fifo']) {
      const started = Date.now();
      const r = await runNetkit([...args, '--token-file', join(work, file)], { cwd: work, timeoutMs: 10_000 });
      expect(r.signal).toBeNull(); // not killed by the runner's bound: it ended on its own
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/is not a regular file/);
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });

  test.each(COMMANDS)('%s: a token file that group or others can read (mode 640) is refused with the chmod hint', async (_, args) => {
    const r = await runNetkit([...args, '--token-file', join(work, 'shared')], { cwd: work, timeoutMs: 10_000 });
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/is accessible by other users \(mode 640\)/);
    expect(r.stderr).toMatch(/hint: make it private: chmod 600/);
  });
});
