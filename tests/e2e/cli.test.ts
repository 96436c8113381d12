// The CLI as a user meets it: --version, --help, and usage errors, against the built binary.
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { runNetkit } from '../helpers/netkit.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

describe('netkit CLI', () => {
  test('--version prints the package version', async () => {
    const r = await runNetkit(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test('--help lists the command groups on stdout', async () => {
    const r = await runNetkit(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/netkit disk/);
    expect(r.stdout).toMatch(/netkit file/);
  });

  test('file fetch --help says --preserve keeps the permission bits, as docs/cli.md does', async () => {
    const r = await runNetkit(['file', 'fetch', '--help']);
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toContain('keep the modification time and permission bits');
    expect(text).not.toContain('executable bits');
  });

  test.each([
    [['dsk'], /^netkit: unknown command 'dsk'\. Did you mean disk\?$/m],
    [['disk', 'quer'], /^netkit: unknown command 'quer'\. Did you mean query\?$/m],
    [[], /choose a command/],
    [['disk'], /^netkit: choose a disk command: serve or query$/m],
    [['disk', 'query', '--bogus'], /^netkit: unknown option --bogus$/m],
    [['disk', 'query', '--bogus', '-z'], /^netkit: unknown options --bogus, -z$/m],
    [['file', 'fetch'], /^netkit: 'netkit file fetch' is missing a required argument$/m],
    [['file', 'serve', 'a', 'b'], /^netkit: unexpected argument 'b'$/m],
    [['file', 'fetch', 'a', 'b', '-o', '-'], /^netkit: -o - writes one file to stdout: name exactly one file$/m],
    [['disk', 'serve', '--port', '70000'], /invalid --port '70000'/],
    [['disk', 'query', '--port', '0'], /^netkit: invalid --port '0': expected a number from 1 to 65535$/m],
  ])('usage error %p exits 2 with a message and a hint', async (args, pattern) => {
    const r = await runNetkit(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^netkit: /);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).toMatch(/hint: /);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace for a usage error
  });
});
