// --fs-include/--fs-exclude/--mount-include/--mount-exclude through the built binary, on the server and on the client, over real tmpfs and ramfs mounts the test makes in a private mount namespace.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';

function skipReason(): string | undefined {
  if (spawnSync('unshare', ['-m', '--propagation', 'private', 'true'], { stdio: 'ignore' }).status !== 0) return 'cannot create a mount namespace (needs root and util-linux unshare)';
  return undefined;
}
const reason = skipReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`skipping the filter tests: ${reason}`);
}
const maybe = reason ? describe.skip : describe;

interface Fs {
  mount: string;
  fstype: string;
  served: boolean;
}

maybe('filesystem filters, end to end', () => {
  let dir: string;
  const servers: Server[] = [];

  beforeAll(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'netkit-filters-')));
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A server that sees DIR/a and DIR/b (tmpfs) and DIR/c (ramfs, left out by default), in a mount namespace of its own. */
  async function serve(filters: string[]): Promise<Server> {
    const setup = [
      'for m in a b; do mkdir -p "$0/$m" && mount -t tmpfs -o size=1m "netkit-$m" "$0/$m" || exit 9; done',
      'mkdir -p "$0/c" && mount -t ramfs netkit-c "$0/c" || exit 9',
      'exec "$@"',
    ].join('\n');
    const s = await startServer(['disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--quiet', '--path', dir, ...filters], { prefix: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', setup, dir] });
    servers.push(s);
    return s;
  }

  async function query(s: Server, args: string[] = []): Promise<Fs[]> {
    const r = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--all', '--json', ...args]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as Array<{ filesystems: Fs[] }>)[0]!.filesystems;
  }
  const ours = (list: Fs[]): string[] => list.filter((f) => f.mount.startsWith(`${dir}/`)).map((f) => `${f.mount.slice(dir.length + 1)}:${f.fstype}`);

  test('serve: ramfs is left out by default and tmpfs kept; each filter changes what --all reports', async () => {
    const [plain, withRamfs, noB, noTmpfs, onlyDir] = await Promise.all([
      serve([]),
      serve(['--fs-include', 'ramfs']),
      serve(['--mount-exclude', `${dir}/b`]),
      serve(['--fs-exclude', 'tmp*']),
      serve(['--mount-include', `${dir}/*`]),
    ]);
    expect(ours(await query(plain))).toEqual(['a:tmpfs', 'b:tmpfs']);
    // An include keeps what a default exclusion would drop, and narrows that kind to what it names
    // (the served filesystem is always reported).
    const r = await query(withRamfs);
    expect(ours(r)).toEqual(['c:ramfs']);
    expect(r.filter((f) => !f.served).every((f) => f.fstype === 'ramfs')).toBe(true);
    expect(ours(await query(noB))).toEqual(['a:tmpfs']);
    expect(ours(await query(noTmpfs))).toEqual([]);
    const d = await query(onlyDir);
    expect(ours(d)).toEqual(['a:tmpfs', 'b:tmpfs']);
    expect(d.filter((f) => !f.served).every((f) => f.mount.startsWith(`${dir}/`))).toBe(true);
  });

  test('query: the same options filter what servers report, on the client', async () => {
    const s = await serve([]);
    expect(ours(await query(s, ['--mount-exclude', `${dir}/a`]))).toEqual(['b:tmpfs']);
    expect(ours(await query(s, ['--fs-exclude', 'tmpfs']))).toEqual([]);
    const only = await query(s, ['--mount-include', `${dir}/*`]);
    expect(only.map((f) => f.mount)).toEqual([`${dir}/a`, `${dir}/b`]);
    const tmp = await query(s, ['--fs-include', 'tmp*', '--mount-exclude', `${dir}/b`]);
    expect(tmp.length).toBeGreaterThan(0);
    expect(tmp.every((f) => f.fstype === 'tmpfs' && f.mount !== `${dir}/b`)).toBe(true);
    // The table shows the same selection.
    const t = await runNetkit(['disk', 'query', `127.0.0.1:${s.port}`, '--all', '--mount-include', `${dir}/*`]);
    expect(t.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[1])).toEqual([`${dir}/a`, `${dir}/b`]);
  });
});
