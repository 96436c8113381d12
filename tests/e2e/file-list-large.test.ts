// Listing a large tree end to end (the built binary, a real server): 150,000 files in 150 directories, as a table and as JSON, with the server and the client each given only 16 MiB of JavaScript heap (old space): the server streams the listing and the client holds it as its frames, so neither keeps an object per entry.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

const DIRS = 150;
const PER_DIR = 1000;
const ENTRIES = DIRS + DIRS * PER_DIR;

/** 150,150 entries as one JavaScript object each would not fit in this (MiB). */
const HEAP = { NODE_OPTIONS: '--max-old-space-size=16' };

let base: string;
let server: Server;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-list-large-'));
  for (let d = 0; d < DIRS; d++) {
    const dir = join(base, `d${String(d).padStart(3, '0')}`);
    mkdirSync(dir);
    for (let i = 0; i < PER_DIR; i++) closeSync(openSync(join(dir, `f${String(i).padStart(4, '0')}`), 'w'));
  }
  // One file with a wider size column than the rest.
  writeFileSync(join(base, 'd000', 'f0000'), Buffer.alloc(1536));
  server = await startServer(['file', 'serve', base, '--host', '127.0.0.1', '--port', '0', '--quiet', '--no-announce'], { env: HEAP });
}, 120_000);

afterAll(async () => {
  await server?.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
}, 60_000);

const at = (): string[] => ['-H', `127.0.0.1:${server.port}`];

describe('file list of a large tree', () => {
  test('-r prints every one of 150,150 entries as an aligned table', async () => {
    const r = await runNetkit(['file', 'list', '-r', ...at()], { timeoutMs: 90_000, env: HEAP });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(ENTRIES);
    expect(lines[0]).toMatch(/^drwx\S+ {2}   - {2}\S+ \S+ {2}d000\/$/);
    expect(lines[1]).toMatch(/^-rw\S+ {2}1\.5K {2}\S+ \S+ {2}d000\/f0000$/);
    expect(lines[2]).toMatch(/^-rw\S+ {2}  0B {2}\S+ \S+ {2}d000\/f0001$/);
    expect(lines[ENTRIES - 1]).toMatch(/ d149\/f0999$/);
  }, 120_000);

  test('-r --json gives one array of 150,150 entries', async () => {
    const r = await runNetkit(['file', 'list', '-r', '--json', ...at()], { timeoutMs: 90_000, env: HEAP });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const entries = JSON.parse(r.stdout) as Array<{ path: string; type: string }>;
    expect(entries).toHaveLength(ENTRIES);
    expect(entries.filter((e) => e.type === 'dir')).toHaveLength(DIRS);
  }, 120_000);
});
