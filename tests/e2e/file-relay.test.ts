// Through a relay that does not keep half-open connections (the first FIN from either side closes both, as socat's default and a plain pipe do): `file list` and `file fetch NAME -o -` half-close only once the whole answer is in, and the server still ends each session normally.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, startServer, type Server } from '../helpers/netkit.js';
import { tcpRecordingProxy, type TcpRecordingProxy } from '../helpers/recording-proxy.js';

const FILES = 3000;
const RUNS = 4;
/** Text, so stdout can be compared as a string: 4 MiB, far more than is in flight when a FIN goes early. */
const big = randomBytes(2 * 1024 * 1024).toString('hex');

let base: string;
let server: Server;
let relay: TcpRecordingProxy;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'netkit-relay-'));
  mkdirSync(join(base, 'many'));
  for (let i = 0; i < FILES; i++) writeFileSync(join(base, 'many', `a-file-with-a-fairly-long-name-${String(i).padStart(4, '0')}.txt`), 'x');
  writeFileSync(join(base, 'big.txt'), big);
  writeFileSync(join(base, 'small.txt'), 'hello\n');
  server = await startServer(['file', 'serve', base, '--host', '127.0.0.1', '--port', '0', '--no-announce']);
  relay = await tcpRecordingProxy(server.port, '127.0.0.1', { halfOpen: false });
}, 60_000);

afterAll(async () => {
  await relay?.close();
  await server?.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

const viaRelay = (): string[] => ['-H', `127.0.0.1:${relay.port}`];
/** The server's log lines for sessions that ended normally. */
const okSessions = (): number => (server.stderr().match(/ v1 session of 1 request from "[^"]*" .* ok: 1 request: 1 ok$/gm) ?? []).length;
const sessions = (): number => (server.stderr().match(/ v1 session /g) ?? []).length;
/** Resolve once the server has logged `n` sessions in all (each is logged when it ends); reject if it exits first. */
function sessionsLogged(n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = (): void => {
      server.child.stderr.off('data', check);
      server.child.off('exit', exited);
    };
    const check = (): void => {
      if (sessions() < n) return;
      stop();
      resolve();
    };
    const exited = (): void => {
      stop();
      reject(new Error(`the server exited: ${server.stderr()}`));
    };
    server.child.stderr.on('data', check);
    server.child.once('exit', exited);
    check();
  });
}

describe('a relay that closes both directions at the first FIN', () => {
  test(`file list of ${FILES} entries and of the root arrive whole, ${RUNS} times each; the server ends every session ok`, async () => {
    const before = sessions();
    for (let i = 0; i < RUNS; i++) {
      const many = await runNetkit(['file', 'list', 'many', ...viaRelay()], { timeoutMs: 30_000 });
      expect(many.stderr).toBe('');
      expect(many.code).toBe(0);
      expect(many.stdout.trimEnd().split('\n')).toHaveLength(FILES);
      const root = await runNetkit(['file', 'list', '--json', ...viaRelay()], { timeoutMs: 30_000 });
      expect(root.code).toBe(0);
      expect((JSON.parse(root.stdout) as Array<{ path: string }>).map((e) => e.path)).toEqual(['big.txt', 'many', 'small.txt']);
    }
    // Each client closed after its answer; the server saw that close as the session's normal end.
    const want = before + 2 * RUNS;
    await sessionsLogged(want);
    expect(sessions()).toBe(want);
    expect(okSessions()).toBe(want);
  }, 120_000);

  test(`file fetch NAME -o - writes the whole file, verified, ${RUNS} times; the server ends every session ok`, async () => {
    const before = sessions();
    for (let i = 0; i < RUNS; i++) {
      const r = await runNetkit(['file', 'fetch', 'big.txt', '-o', '-', '--retries', '0', ...viaRelay()], { timeoutMs: 30_000 });
      expect(r.stderr).toMatch(/wrote stdout \(4\.0M, sha256 [0-9a-f]{64} verified/);
      expect(r.code).toBe(0);
      expect(r.stdout.length).toBe(big.length);
      expect(r.stdout === big).toBe(true);
      const small = await runNetkit(['file', 'fetch', 'small.txt', '-o', '-', '--retries', '0', ...viaRelay()], { timeoutMs: 30_000 });
      expect(small.code).toBe(0);
      expect(small.stdout).toBe('hello\n');
    }
    const want = before + 2 * RUNS;
    await sessionsLogged(want);
    expect(sessions()).toBe(want);
    expect(okSessions()).toBe(want);
    // And the server goes on serving: a listing straight after.
    const after = await runNetkit(['file', 'list', ...viaRelay()], { timeoutMs: 30_000 });
    expect(after.code).toBe(0);
  }, 120_000);
});
