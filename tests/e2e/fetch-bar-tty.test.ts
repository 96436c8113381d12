// The fetch progress bar on a real terminal (tmux) of 40 and 60 columns, with CJK, emoji and accented names: every frame fits in terminal columns, keeps its percentage, speed and ETA, and the bar stays put from frame to frame.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import displayWidth from 'string-width';
import { BIN, startServer, type Server } from '../helpers/netkit.js';
import { hasTmux, startPane } from '../helpers/tmux.js';

const maybe = hasTmux() ? describe : describe.skip;
if (!hasTmux()) console.warn('skipping the progress bar terminal test: tmux is not installed (apt-get install -y tmux)');

const BIG = '写真の整理-二〇二四年-夏休みの思い出-🎉👨‍👩‍👧‍👦-完全版.bin';
const TREE = ['🎂 誕生日/ケーキ-e\u0301te\u0301-2024.jpg', '🎂 誕生日/한국어-파일-이름이-아주-깁니다.jpg', '🎂 誕生日/a.jpg', '🎂 誕生日/🏳️‍🌈🏳️‍🌈🏳️‍🌈.jpg'];
let base: string;
let server: Server;
let relay: net.Server;
let relayPort = 0;

beforeAll(async () => {
  if (!hasTmux()) return;
  base = mkdtempSync(join(tmpdir(), 'netkit-bar-'));
  const served = join(base, 'served');
  mkdirSync(join(served, '🎂 誕生日'), { recursive: true });
  writeFileSync(join(served, BIG), randomFillSync(Buffer.alloc(12 * 1024 * 1024)));
  for (const name of TREE) writeFileSync(join(served, name), randomFillSync(Buffer.alloc(3 * 1024 * 1024)));
  server = await startServer(['file', 'serve', served, '--host', '127.0.0.1', '--port', '0', '--quiet']);
  // A relay that paces the server's bytes (1 MiB, then 80 ms of rest), so the bar draws many frames.
  relay = net.createServer({ allowHalfOpen: true }, (client) => {
    const up = net.connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
    let since = 0;
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.pipe(up);
    up.on('data', (d: Buffer) => {
      client.write(d);
      since += d.length;
      if (since >= 1024 * 1024) {
        since = 0;
        up.pause();
        setTimeout(() => up.resume(), 80);
      }
    });
    up.on('end', () => client.end());
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  relayPort = (relay.address() as net.AddressInfo).port;
}, 60_000);

afterAll(async () => {
  if (!hasTmux()) return;
  await new Promise((r) => relay.close(r));
  await server.stop('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

/** The bar's frames in what the program wrote: cli-progress starts each at column 1. */
function framesOf(raw: string): string[] {
  return Buffer.from(raw, 'latin1')
    .toString('utf8')
    .split('\u001b[1G')
    .map((f) => f.replace(/\u001b(?:\[[0-9;?]*[A-Za-z]|[78])/g, '').split(/[\r\n]/)[0]!)
    .filter((f) => /\d%/.test(f));
}

async function fetchOnTerminal(columns: number, names: string[]): Promise<string[]> {
  const out = mkdtempSync(join(base, 'out-'));
  const pane = startPane([process.execPath, BIN, 'file', 'fetch', ...names, '-H', `127.0.0.1:${relayPort}`, '-o', out], { columns, rows: 10 });
  try {
    expect(await pane.exitStatus()).toBe(0);
    const frames = framesOf(pane.raw());
    // What the screen shows last: the final frame on one row, not clipped or wrapped.
    expect(pane.screen().some((row) => /100% .*ETA/.test(row))).toBe(true);
    return frames;
  } finally {
    pane.close();
  }
}

maybe('the progress bar on a terminal', () => {
  test.each([40, 60])('one file with a CJK and emoji name at %i columns', async (columns) => {
    const frames = await fetchOnTerminal(columns, [BIG]);
    expect(frames.length).toBeGreaterThanOrEqual(5);
    for (const f of frames) {
      expect(displayWidth(f)).toBeLessThanOrEqual(columns - 1);
      expect(f).toMatch(/\d+% .*ETA +\S+$/);
    }
    // The same name, the same terminal: every frame is laid out alike.
    expect(new Set(frames.map((f) => displayWidth(f))).size).toBe(1);
    expect(new Set(frames.map((f) => displayWidth(f.slice(0, f.indexOf('%'))))).size).toBe(1);
  }, 60_000);

  test.each([40, 60])('a tree of wide names at %i columns: the whole-set bar fits, and stays put from file to file', async (columns) => {
    const frames = await fetchOnTerminal(columns, ['🎂 誕生日']);
    expect(frames.length).toBeGreaterThanOrEqual(5);
    for (const f of frames) {
      expect(displayWidth(f)).toBeLessThanOrEqual(columns - 1);
      expect(f).toMatch(/\d+% .*ETA +\S+$/);
    }
    const drawn = frames.filter((f) => !f.startsWith('listing'));
    expect(new Set(drawn.map((f) => displayWidth(f.slice(0, f.indexOf('%'))))).size).toBe(1);
  }, 60_000);
});
