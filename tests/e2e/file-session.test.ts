// Sessions and listings against the built `netkit file serve`: a tree with every kind of entry listed, a long pipelined session with refusals, the early request, and descriptors after aborted sessions.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EntryKind } from '../../src/protocol/file-list.js';
import { Status } from '../../src/protocol/file-v1.js';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { RawSession, type Ask, type FileAnswer, type ListAnswer } from '../helpers/raw-session-client.js';

let dir: string;
let srv: string;
let env: NodeJS.ProcessEnv;
const big = randomBytes(5 * 1024 * 1024 + 11);
const MANY = 2_000;
const servers: Server[] = [];
const sessions: RawSession[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'netkit-session-e2e-'));
  srv = path.join(dir, 'srv');
  env = { XDG_CONFIG_HOME: path.join(dir, 'config') };
  for (const d of ['a/b/c', 'a/empty2', 'empty', 'bin', 'dir with spaces', 'many']) mkdirSync(path.join(srv, d), { recursive: true });
  writeFileSync(path.join(srv, 'a/b/c/deep.txt'), 'deep\n');
  writeFileSync(path.join(srv, 'zero.bin'), '');
  writeFileSync(path.join(srv, 'dir with spaces/ficheiro ünï ✓.txt'), 'olá\n');
  writeFileSync(path.join(srv, 'bin/tool'), '#!/bin/sh\necho tool\n');
  chmodSync(path.join(srv, 'bin/tool'), 0o755);
  writeFileSync(path.join(srv, 'big.bin'), big);
  symlinkSync('bin/tool', path.join(srv, 'link-to-tool'));
  writeFileSync(path.join(dir, 'outside.txt'), 'outside');
  symlinkSync(path.join(dir, 'outside.txt'), path.join(srv, 'link-out'));
  symlinkSync('a', path.join(srv, 'link-dir'));
  execFileSync('mkfifo', [path.join(srv, 'pipe')]);
  for (let i = 0; i < MANY; i++) writeFileSync(path.join(srv, 'many', `f${String(i).padStart(4, '0')}`), randomBytes(1024));
});

afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  while (servers.length > 0) await servers.pop()!.stop();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function serve(...extra: string[]): Promise<Server> {
  const s = await startServer(['file', 'serve', srv, '--port', '0', '--host', '127.0.0.1', ...extra], { env });
  servers.push(s);
  return s;
}

async function open(port: number, opts: Parameters<typeof RawSession.open>[1] = {}): Promise<RawSession> {
  const s = await RawSession.open(port, { timeoutMs: 60_000, ...opts });
  sessions.push(s);
  return s;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const manyName = (i: number): string => `many/f${String(i % MANY).padStart(4, '0')}`;

describe('LIST against the built server', () => {
  test('a tree with nested and empty directories, a 0-byte file, spaces and Unicode, an executable, links in and out, a link to a directory and a FIFO', async () => {
    const s = await serve('--quiet');
    const c = await open(s.port, { early: [{ list: '', recursive: true }] });
    c.end();
    const a = (await c.next()) as ListAnswer;
    const listed = a.entries.filter((e) => !e.name.startsWith('many/'));
    expect(listed.map((e) => `${e.kind === EntryKind.DIRECTORY ? 'd' : 'f'} ${e.name}`)).toEqual([
      'd a',
      'd a/b',
      'd a/b/c',
      'f a/b/c/deep.txt',
      'd a/empty2',
      'f big.bin',
      'd bin',
      'f bin/tool',
      'd dir with spaces',
      'f dir with spaces/ficheiro ünï ✓.txt',
      'd empty',
      'f link-to-tool',
      'd many',
      'f zero.bin',
    ]);
    expect(a.entries.filter((e) => e.name.startsWith('many/'))).toHaveLength(MANY);
    // link-out, link-dir and the FIFO are left out and counted.
    expect(a.end).toMatchObject({ count: listed.length + MANY, skipped: 3 });
    expect(a.end!.sha256).toEqual(createHash('sha256').update(Buffer.concat(a.entryFrames)).digest());
    const tool = listed.find((e) => e.name === 'bin/tool')!;
    expect(tool).toMatchObject({ mode: 0o755, size: 20, mtimeMs: Number(lstatSync(path.join(srv, 'bin/tool'), { bigint: true }).mtimeNs / 1_000_000n) });
    expect(listed.find((e) => e.name === 'link-to-tool')).toEqual({ ...tool, name: 'link-to-tool' });
    expect(listed.find((e) => e.name === 'zero.bin')).toMatchObject({ size: 0, kind: EntryKind.FILE });
    // Every listed file can be requested as named, in the same session or another.
    const files = listed.filter((e) => e.kind === EntryKind.FILE);
    const d = await open(s.port);
    d.send(files.map((e) => ({ file: e.name })));
    d.end();
    for (const [i, r] of (await d.answers(files.length)).entries()) {
      const f = r as FileAnswer;
      expect(f.response).toMatchObject({ status: Status.OK, size: files[i]!.size, mode: files[i]!.mode, mtimeMs: files[i]!.mtimeMs });
      expect(f.sha256!.toString('hex')).toBe(sha(f.body));
    }
  }, 60_000);
});

describe('a pipelined session against the built server', () => {
  test(`${MANY} small files, a large one and refusals in the middle, in one connection, every body verified; the first body byte after one turn`, async () => {
    const s = await serve();
    const asks: Ask[] = Array.from({ length: MANY }, (_, i) => ({ file: manyName(i) }));
    const refusals: Ask[] = [{ file: 'nope' }, { file: 'empty' }, { file: 'pipe' }, { file: 'link-out' }, { list: 'zero.bin' }];
    asks.splice(1000, 0, ...refusals, { file: 'big.bin' });
    const c = await open(s.port, { early: [asks[0]!] });
    // Nothing more is written before the first answer: its body came after one turn (plus TCP's handshake).
    const answers = [await c.next()];
    expect(c.firstBodyAfterTurns).toBe(1);
    c.send(asks.slice(1));
    c.end();
    answers.push(...(await c.answers(asks.length - 1)));
    expect(answers.slice(1000, 1005).map((a) => a.response.status)).toEqual([Status.NOT_FOUND, Status.IS_DIRECTORY, Status.FORBIDDEN, Status.FORBIDDEN, Status.NOT_DIRECTORY]);
    const bigAnswer = answers[1005] as FileAnswer;
    expect(sha(bigAnswer.body)).toBe(sha(big));
    expect(bigAnswer.sha256!.toString('hex')).toBe(sha(big));
    const files = [...answers.slice(0, 1000), ...answers.slice(1006)] as FileAnswer[];
    for (const [i, a] of files.entries()) {
      expect(a.body.equals(readFileSync(path.join(srv, manyName(i))))).toBe(true);
      expect(a.sha256!.toString('hex')).toBe(sha(a.body));
    }
    await c.closedByServer();
    const line = new RegExp(`v1 session of ${asks.length} requests from "many/f0000" .* ok: ${asks.length} requests: ${asks.length - 5} ok, 1 not-found, 1 is-directory, 3 forbidden \\(first refused: nope: no such file\\)`);
    while (!line.test(s.stderr())) await once(s.child.stderr, 'data');
  }, 60_000);

  test('the current netkit client (one request per connection, no SESSION) still fetches and verifies', async () => {
    const s = await serve('--quiet');
    const out = mkdtempSync(path.join(dir, 'out-'));
    for (const name of ['big.bin', 'zero.bin', 'dir with spaces/ficheiro ünï ✓.txt']) {
      const r = await runNetkit(['file', 'fetch', name, '-H', '127.0.0.1', '-p', String(s.port), '-o', out], { env, timeoutMs: 20_000 });
      expect([r.code, r.stderr]).toEqual([0, '']);
      expect(sha(readFileSync(path.join(out, path.basename(name))))).toBe(sha(readFileSync(path.join(srv, name))));
    }
  }, 60_000);
});

describe('descriptor leaks', () => {
  test('after 300 sessions cut in the middle of their answers the server is back to its baseline descriptor count', async () => {
    const s = await serve('--quiet', '--max-connections', '300', '--max-per-source', '300');
    const pid = s.child.pid!;
    const good = async (): Promise<void> => {
      const c = await open(s.port, { early: [{ file: 'big.bin' }] });
      c.end();
      expect(sha(((await c.next()) as FileAnswer).body)).toBe(sha(big));
    };
    await good();
    const baseline = fdCount(pid);
    const cut = async (i: number): Promise<void> => {
      const c = await open(s.port, { early: [{ file: manyName(i) }] });
      c.send(Array.from({ length: 63 }, (_, j) => ({ file: j % 20 === 0 ? 'big.bin' : manyName(i + j) })));
      await new Promise<void>((resolve) => {
        let got = 0;
        c.socket.on('data', (d: Buffer) => {
          got += d.length;
          if (got > 32 * 1024 * (1 + (i % 4))) {
            c.socket.resetAndDestroy();
            resolve();
          }
        });
        c.socket.on('close', () => resolve());
      });
    };
    for (let batch = 0; batch < 6; batch++) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => cut(batch * 50 + j)));
      await good();
    }
    // Bounded polling on events we control: each check follows a complete fetch.
    let now = fdCount(pid);
    for (let i = 0; i < 20 && now > baseline; i++) {
      await good();
      now = fdCount(pid);
    }
    expect(now).toBeLessThanOrEqual(baseline);
  }, 120_000);
});
