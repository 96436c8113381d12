// A FUSE filesystem whose statfs never returns, made by the test in a private mount namespace: the disk server keeps answering fast, and reports the hung mount as timed out.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeReply, encodeQuery, MsgType, Scope } from '../../src/protocol/disk-v1.js';
import { BIN, runNetkit } from '../helpers/netkit.js';

const HANG = fileURLToPath(new URL('../helpers/hang_fuse.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

function skipReason(): string | undefined {
  if (!existsSync('/dev/fuse')) return '/dev/fuse is not available';
  if (spawnSync('sh', ['-c', 'command -v unshare']).status !== 0) return 'unshare (util-linux) is not installed';
  if (spawnSync(PYTHON, ['-c', 'import fuse'], { stdio: 'ignore' }).status !== 0) return 'python3-fuse is not installed (apt-get install -y fuse3 python3-fuse)';
  if (spawnSync('unshare', ['-m', '--propagation', 'private', 'true'], { stdio: 'ignore' }).status !== 0) return 'cannot create a mount namespace (needs root)';
  return undefined;
}
const reason = skipReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`skipping the hung-mount tests: ${reason}`);
}
const maybe = reason ? describe.skip : describe;

/** A shell in a private mount namespace that mounts, prints `fuse PID` per FUSE daemon, then execs the disk server. */
interface Namespace {
  ns: ChildProcessWithoutNullStreams;
  fusePids: number[];
  port: number;
  metricsUrl: string;
}

/** Start `script` with unshare -m and wait for the server's udp and metrics lines (rejects if the namespace exits first). */
async function startInNamespace(script: string): Promise<Namespace> {
  const ns = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  ns.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const started: Namespace = { ns, fusePids: [], port: 0, metricsUrl: '' };
  await new Promise<void>((resolve, reject) => {
    ns.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      started.fusePids = [...out.matchAll(/^fuse (\d+)$/gm)].map((m) => Number(m[1]));
      const l = /^listening udp 127\.0\.0\.1:(\d+)$/m.exec(out);
      const m = /^metrics (http:\S+)$/m.exec(out);
      if (l && m) {
        started.port = Number(l[1]);
        started.metricsUrl = m[1]!;
        resolve();
      }
    });
    ns.once('exit', (code) => reject(new Error(`the namespace exited ${code}:\n${out}`)));
  });
  return started;
}

/** Kill the FUSE daemons (their hung calls abort, so the server's stuck threads return), then the server. */
async function stopNamespace(n: Namespace | undefined): Promise<void> {
  if (!n) return;
  for (const pid of n.fusePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (n.ns.exitCode === null && n.ns.signalCode === null) {
    const exited = once(n.ns, 'exit');
    n.ns.kill('SIGTERM');
    await exited;
  }
}

maybe('a mount whose statfs never returns', () => {
  let dir: string;
  let mnt: string;
  let n: Namespace | undefined;
  let port = 0;
  let metricsUrl = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netkit-hung-'));
    mnt = join(dir, 'hung');
    mkdirSync(mnt);
    // Only this shell, the FUSE daemon and the server see the mount: other processes (df, other servers) never touch it.
    const script = [
      `${PYTHON} ${HANG} ${mnt} -f -o fsname=netkit-hang &`,
      'echo "fuse $!"',
      `i=0; until grep -q " ${mnt} " /proc/self/mountinfo; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done`,
      `exec ${process.execPath} ${BIN} disk serve --port 0 --host 127.0.0.1 --metrics 0 --quiet --path ${dir}`,
    ].join('\n');
    n = await startInNamespace(script);
    ({ port, metricsUrl } = n);
  }, 30_000);

  afterAll(async () => {
    await stopNamespace(n);
    rmSync(dir, { recursive: true, force: true });
  });

  test('answers stay under 100 ms throughout; after the mount timeout (2 s) the mount is reported with error timeout and device_error 1', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const slow: string[] = [];
    let sawHung = false;
    try {
      // 4 s of queries, both scopes, one at a time: across the first statfs, its timeout, and after.
      const until = Date.now() + 4000;
      for (let id = 1; Date.now() < until; id += 1) {
        const scope = id % 2 === 0 ? Scope.ALL : Scope.PATH;
        const started = performance.now();
        const got = once(sock, 'message');
        sock.send(encodeQuery(id, scope, scope === Scope.ALL ? 8192 : 1200), port, '127.0.0.1');
        const [msg] = (await Promise.race([got, new Promise((_, rej) => setTimeout(() => rej(new Error(`no answer to query ${id}`)), 2000).unref())])) as [Buffer];
        const ms = performance.now() - started;
        if (ms >= 100) slow.push(`query ${id} (scope ${scope}): ${ms.toFixed(0)} ms`);
        const r = decodeReply(msg);
        if (r.type !== MsgType.ANSWER) throw new Error(`query ${id}: error reply ${JSON.stringify(r)}`);
        const hung = r.answer.filesystems.find((f) => f.mount === mnt);
        if (hung?.error) sawHung = true;
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      sock.close();
    }
    expect(slow).toEqual([]);
    expect(sawHung).toBe(true);

    const q = await runNetkit(['disk', 'query', `127.0.0.1:${port}`, '--all', '--json']);
    const fs = (JSON.parse(q.stdout) as Array<{ filesystems: Array<{ mount: string; served: boolean; error?: { code: string } }> }>)[0]!.filesystems;
    expect(fs.find((f) => f.mount === mnt)?.error?.code).toBe('timeout');
    expect(fs.find((f) => f.served)?.error).toBeUndefined();

    const body = await (await fetch(metricsUrl)).text();
    expect(body).toMatch(new RegExp(`^node_filesystem_device_error\\{device="netkit-hang",mountpoint="${mnt}",fstype="fuse[^"]*"\\} 1$`, 'm'));
    expect(body).not.toMatch(new RegExp(`^node_filesystem_avail_bytes\\{[^}]*mountpoint="${mnt}"`, 'm'));
    expect(body).toMatch(/^node_filesystem_device_error\{[^}]*mountpoint="\/"[^}]*\} 0$/m);
  }, 30_000);
});

// More hung mounts than the server keeps threads for: a thread must stay free for the healthy ones.
const HUNG = 20;

maybe(`${HUNG} mounts whose statfs never returns, and a healthy tmpfs`, () => {
  let dir: string;
  let fresh: string;
  let n: Namespace | undefined;
  let port = 0;
  let metricsUrl = '';
  const hungMounts: string[] = [];

  type Fs = { mount: string; served: boolean; available: string | number; error?: { code: string; message: string } };
  const queryAll = async (): Promise<Fs[]> => {
    const q = await runNetkit(['disk', 'query', `127.0.0.1:${port}`, '--all', '--json']);
    return (JSON.parse(q.stdout) as Array<{ filesystems: Fs[] }>)[0]!.filesystems;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'netkit-hung-many-'));
    fresh = join(dir, 'fresh');
    mkdirSync(fresh);
    for (let i = 1; i <= HUNG; i += 1) {
      hungMounts.push(join(dir, `hung${String(i).padStart(2, '0')}`));
      mkdirSync(hungMounts[i - 1]!);
    }
    const script = [
      `mount -t tmpfs -o size=64m netkit-fresh ${fresh} || exit 8`,
      ...hungMounts.map((m) => `${PYTHON} ${HANG} ${m} -f -o fsname=netkit-hang & echo "fuse $!"`),
      `i=0; until [ "$(grep -c ' fuse[^ ]* netkit-hang ' /proc/self/mountinfo)" -ge ${HUNG} ]; do i=$((i+1)); [ $i -gt 400 ] && exit 9; sleep 0.05; done`,
      `exec ${process.execPath} ${BIN} disk serve --port 0 --host 127.0.0.1 --metrics 0 --quiet --mount-timeout 500ms --path ${dir}`,
    ].join('\n');
    n = await startInNamespace(script);
    ({ port, metricsUrl } = n);
  }, 60_000);

  afterAll(async () => {
    await stopNamespace(n);
    rmSync(dir, { recursive: true, force: true });
  });

  test('every hung mount is reported (none left out), and a healthy tmpfs still shows a new write, without error', async () => {
    // Wait (bounded) until every hung mount has been found out: asked and timed out, or not asked.
    let fs: Fs[] = [];
    const until = Date.now() + 30_000;
    for (;;) {
      fs = await queryAll();
      const flagged = hungMounts.filter((m) => fs.find((f) => f.mount === m)?.error?.code === 'timeout');
      if (flagged.length === HUNG) break;
      if (Date.now() > until) throw new Error(`only ${flagged.length} of ${HUNG} hung mounts flagged:\n${JSON.stringify(fs)}`);
    }
    const before = BigInt(fs.find((f) => f.mount === fresh)!.available);

    // 8 MiB into the tmpfs, written inside the namespace (only it sees the mount).
    const w = spawnSync('nsenter', ['-t', String(n!.fusePids[0]), '-m', 'dd', 'if=/dev/zero', `of=${fresh}/blob`, 'bs=1M', 'count=8', 'status=none']);
    expect(w.status).toBe(0);

    // Answers come from figures at most 1 s old (the server's cache): ask until the write shows, bounded.
    const after = before - 8n * 1024n * 1024n;
    const deadline = Date.now() + 10_000;
    let tmp: Fs;
    do {
      fs = await queryAll();
      tmp = fs.find((f) => f.mount === fresh)!;
    } while (BigInt(tmp.available) !== after && Date.now() < deadline);
    expect(tmp.error).toBeUndefined();
    expect(BigInt(tmp.available)).toBe(after);
    for (const m of hungMounts) expect(fs.find((f) => f.mount === m)?.error?.code).toBe('timeout');
    expect(fs.find((f) => f.served)?.error).toBeUndefined();
    expect(fs.filter((f) => f.error).map((f) => f.mount).sort()).toEqual(hungMounts);

    const body = await (await fetch(metricsUrl)).text();
    const esc = fresh.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    expect(body).toMatch(new RegExp(`^node_filesystem_avail_bytes\\{device="netkit-fresh",mountpoint="${esc}",fstype="tmpfs"\\} ${Number(after)}$`, 'm'));
    expect(body).toMatch(new RegExp(`^node_filesystem_device_error\\{device="netkit-fresh",mountpoint="${esc}",fstype="tmpfs"\\} 0$`, 'm'));
    expect(body.match(/^node_filesystem_device_error\{device="netkit-hang",[^}]*\} 1$/gm)).toHaveLength(HUNG);
  }, 90_000);
});
