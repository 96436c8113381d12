// `file fetch` into a directory another local user can write (mode 1777, like /tmp): what that user plants or swaps never redirects, hangs or fakes a download.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNetkit, spawnNetkit, startServer, type RunResult, type Server } from '../helpers/netkit.js';
import { asNobody, otherUserUnavailable } from '../helpers/other-user.js';
import { partialReaches, staged } from '../helpers/staging.js';

const skip = otherUserUnavailable();
const maybe = skip ? describe.skip : describe;
if (skip) console.warn(`skipping the shared-directory tests: ${skip}`);

let base: string;
let served: string;
let victims: string;
const small = randomBytes(200_000);
const BIG = 64 * 1024 * 1024;
let bigSha = '';
let server: Server;

beforeAll(async () => {
  if (skip) return;
  base = mkdtempSync(join(tmpdir(), 'netkit-shared-'));
  chmodSync(base, 0o755); // the other user must reach the output directories inside
  served = join(base, 'served');
  victims = join(base, 'victims');
  mkdirSync(served);
  mkdirSync(victims);
  writeFileSync(join(served, 'small.bin'), small);
  const fd = openSync(join(served, 'big.bin'), 'w');
  const hash = createHash('sha256');
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < BIG / block.length; i++) {
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  bigSha = hash.digest('hex');
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet']);
}, 60_000);
afterAll(async () => {
  if (skip) return;
  await server.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

/** Files of the victim's that a planted symbolic link points at; they must never change. */
function victimFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const n of ['a', 'b', 'c']) {
    const p = join(victims, `${n}-${randomBytes(4).toString('hex')}.txt`);
    writeFileSync(p, `precious ${n}\n`);
    files[p] = `precious ${n}\n`;
  }
  return files;
}
const unchanged = (files: Record<string, string>): void => {
  for (const [p, text] of Object.entries(files)) expect(readFileSync(p, 'utf8')).toBe(text);
};

/** A fresh output directory of mode 1777 (or `mode`), as /tmp is. */
function sharedOut(mode = 0o1777): string {
  const out = mkdtempSync(join(base, 'out-'));
  chmodSync(out, mode);
  return out;
}

function plant(script: string): void {
  const r = asNobody(script);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
}

const fetch = (name: string, out: string, ...more: string[]): Promise<RunResult> =>
  runNetkit(['file', 'fetch', name, '-H', `127.0.0.1:${server.port}`, '-o', out, '--retries', '0', ...more], { timeoutMs: 20_000 });

function expectSaved(r: RunResult, out: string, name: string, bytes: Buffer): void {
  expect(r.signal).toBeNull(); // never killed by the time bound: nothing hung
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const st = lstatSync(join(out, name));
  expect(st.isFile()).toBe(true);
  expect(st.uid).toBe(0);
  expect(readFileSync(join(out, name)).equals(bytes)).toBe(true);
}

function expectRefused(r: RunResult, code: number, message: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.code).toBe(code);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

maybe('another user plants things in a mode-1777 output directory', () => {
  test('symbolic links at NAME.part and NAME.part.json: never followed, never touched; the file is saved', async () => {
    const v = victimFiles();
    const [a, b] = Object.keys(v);
    const out = sharedOut();
    plant(`ln -s ${a} ${out}/small.bin.part && ln -s ${b} ${out}/small.bin.part.json`);
    expectSaved(await fetch('small.bin', out), out, 'small.bin', small);
    unchanged(v);
    expect(lstatSync(join(out, 'small.bin.part')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(out, 'small.bin.part.json')).isSymbolicLink()).toBe(true);
  });

  test('a symbolic link at NAME: refused without --force; with --force the link itself is replaced', async () => {
    const v = victimFiles();
    const [a] = Object.keys(v);
    const out = sharedOut();
    plant(`ln -s ${a} ${out}/small.bin`);
    expectRefused(await fetch('small.bin', out), 9, /small\.bin already exists/);
    unchanged(v);
    expectSaved(await fetch('small.bin', out, '--force'), out, 'small.bin', small);
    unchanged(v);
  });

  test('OUT/.netkit as a symbolic link (to a directory the other user owns): refused, nothing written through it', async () => {
    const out = sharedOut();
    plant(`mkdir ${out}/trap && chmod 777 ${out}/trap && ln -s ${out}/trap ${out}/.netkit`);
    expectRefused(await fetch('small.bin', out), 9, /\.netkit is a symbolic link/);
    expect(readdirSync(join(out, 'trap'))).toEqual([]);
    expect(readdirSync(out).sort()).toEqual(['.netkit', 'trap']);
  });

  test("OUT/.netkit as the other user's directory, with links and a forged record at netkit's names: refused", async () => {
    const v = victimFiles();
    const [a, b] = Object.keys(v);
    const out = sharedOut();
    const s = staged(out, 'small.bin');
    const forged = JSON.stringify({ netkit: 2, target: 'small.bin', name: 'small.bin', server: 'x', size: 10 ** 9, validator: '' });
    plant(`mkdir -m 777 ${s.dir} && ln -s ${a} ${s.part} && ln -s ${b} ${s.lock} && printf '%s' '${forged}' > ${s.info}`);
    expectRefused(await fetch('small.bin', out), 9, /\.netkit belongs to another user/);
    unchanged(v);
    expect(readdirSync(out)).toEqual(['.netkit']);
  });

  test('FIFOs at NAME.part and NAME.part.json are never opened; a FIFO at .netkit or NAME is refused at once', async () => {
    let out = sharedOut();
    plant(`mkfifo ${out}/small.bin.part ${out}/small.bin.part.json`);
    expectSaved(await fetch('small.bin', out), out, 'small.bin', small);
    out = sharedOut();
    plant(`mkfifo ${out}/.netkit`);
    expectRefused(await fetch('small.bin', out), 9, /\.netkit is not a directory/);
    out = sharedOut();
    plant(`mkfifo ${out}/small.bin`);
    expectRefused(await fetch('small.bin', out), 9, /already exists/);
    expectSaved(await fetch('small.bin', out, '--force'), out, 'small.bin', small);
  });

  test('a forged partial file and record at the old names: ignored, left alone, and the download verifies', async () => {
    const out = sharedOut();
    const forged = JSON.stringify({ netkit: 1, host: '127.0.0.1', port: server.port, name: 'small.bin', size: small.length, validator: '00' });
    plant(`printf 'EVIL' > ${out}/small.bin.part && printf '%s' '${forged}' > ${out}/small.bin.part.json`);
    const r = await fetch('small.bin', out, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, resumedFrom: 0 });
    expect(readFileSync(join(out, 'small.bin')).equals(small)).toBe(true);
    expect(readFileSync(join(out, 'small.bin.part'), 'utf8')).toBe('EVIL');
  });

  test('swapping the partial file during the transfer fails for the other user; the download verifies', async () => {
    const v = victimFiles();
    const [a] = Object.keys(v);
    const out = sharedOut();
    const s = staged(out, 'big.bin');
    const f = spawnNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', out, '--json'], { timeoutMs: 30_000 });
    await partialReaches(out, 'big.bin', 4 * 1024 * 1024);
    f.child.kill('SIGSTOP');
    // Sticky directory: the other user can neither rename nor remove root's .netkit, nor enter it.
    for (const attempt of [`mv ${s.dir} ${out}/stolen`, `rm -rf ${s.dir}`, `ln -sf ${a} ${s.part}`, `printf x > ${s.part}`, `ls ${s.dir}`]) {
      expect(asNobody(attempt).status).not.toBe(0);
    }
    f.child.kill('SIGCONT');
    const r = await f.done;
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, sha256: bigSha });
    unchanged(v);
  });

  test('without the sticky bit the other user can swap .netkit itself: netkit notices and publishes nothing', async () => {
    const out = sharedOut(0o777);
    const s = staged(out, 'big.bin');
    const f = spawnNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', out], { timeoutMs: 30_000 });
    await partialReaches(out, 'big.bin', 4 * 1024 * 1024);
    f.child.kill('SIGSTOP');
    plant(`mv ${s.dir} ${out}/stolen && mkdir -m 777 ${s.dir} && printf EVIL > ${s.part} && chmod 666 ${s.part}`);
    f.child.kill('SIGCONT');
    const r = await f.done;
    // Told as what happened (not as the new directory's owner), with where the verified bytes went.
    expectRefused(r, 9, /\.netkit was replaced during the download: refusing to publish from it; the verified data is in .*\/stolen\/big\.bin\.[0-9a-f]{16}\.part\n/);
    expect(r.stderr).not.toMatch(/belongs to another user/);
    expect(readdirSync(out).sort()).toEqual(['.netkit', 'stolen']);
    expect(readFileSync(s.part, 'utf8')).toBe('EVIL');
  });

  test('a .netkit put in place of ours is never removed by netkit, even when it is empty', async () => {
    const out = sharedOut(0o777);
    const s = staged(out, 'big.bin');
    const f = spawnNetkit(['file', 'fetch', 'big.bin', '-H', `127.0.0.1:${server.port}`, '-o', out], { timeoutMs: 30_000 });
    await partialReaches(out, 'big.bin', 4 * 1024 * 1024);
    f.child.kill('SIGSTOP');
    plant(`mv ${s.dir} ${out}/stolen && mkdir -m 777 ${s.dir}`);
    f.child.kill('SIGCONT');
    const r = await f.done;
    expectRefused(r, 9, /was replaced during the download/);
    expect(readdirSync(out).sort()).toEqual(['.netkit', 'stolen']);
    expect(lstatSync(s.dir).uid).toBe(65534);
    expect(readdirSync(s.dir)).toEqual([]);
  });
});
