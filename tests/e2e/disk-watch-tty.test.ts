// `disk query --watch` on a real terminal (tmux): redrawn in place without scrolling, AGE/ANS/TMO/TREND/FULL IN, space falling on a tmpfs the test fills, resizing, and Ctrl-C restoring the terminal.
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startServer } from '../helpers/netkit.js';
import { hasTmux, startPane, type Pane } from '../helpers/tmux.js';

function skipReason(): string | undefined {
  if (!hasTmux()) return 'tmux is not installed (apt-get install -y tmux)';
  if (spawnSync('unshare', ['-m', '--propagation', 'private', 'true'], { stdio: 'ignore' }).status !== 0) return 'cannot create a mount namespace (needs root and util-linux unshare)';
  return undefined;
}
const reason = skipReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`skipping the live-view terminal test: ${reason}`);
}
const maybe = reason ? describe.skip : describe;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A port on which nothing listens (bound, then closed): queries to it are refused. */
async function closedPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The frames a program drew: what follows each cursor-home, with escape sequences removed. */
function frames(raw: string): string[][] {
  return raw
    .split('\u001b[H')
    .slice(1)
    .map((f) => f.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').split('\n'));
}

maybe('the live view on a terminal', () => {
  test('redraws in place, shows age, answers, trend and time to full as a tmpfs fills, fits the width, and Ctrl-C restores the terminal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netkit-watch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    // A 64 MiB tmpfs that only the server (in its own mount namespace) sees; it goes away with the server.
    const mount = 'mount -t tmpfs -o size=64m netkit-watch "$0" && exec "$@"';
    const s = await startServer(['disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--quiet', '--path', dir], { prefix: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', mount, dir] });
    cleanups.push(() => s.stop());
    const dead = await closedPort();
    const pane: Pane = startPane([process.execPath, BIN, 'disk', 'query', `127.0.0.1:${s.port}`, `127.0.0.1:${dead}`, '--watch', '300ms'], { columns: 80, rows: 12 });
    cleanups.push(() => pane.close());

    const round = (): number => Number(/round (\d+)/.exec(pane.screen()[0] ?? '')?.[1] ?? 0);
    const line = (): string => pane.screen().find((l) => l.startsWith(`127.0.0.1:${s.port} `)) ?? '';
    await pane.waitFor('the first round', () => round() >= 1);
    // Space falls for real: the file grows, through the server's view of its mount namespace, a little each round.
    const grow = join(`/proc/${s.child.pid}/root`, dir, 'grow');
    const chunk = Buffer.alloc(2 << 20, 1);
    for (let n = round(); n < 8; ) {
      appendFileSync(grow, chunk);
      const seen = n;
      await pane.waitFor(`round ${seen + 1}`, () => round() > seen);
      n = round();
    }
    // TREND shows once the samples span 10 s; until then it is `-`.
    expect(line()).not.toMatch(/\/h\s/);
    await pane.waitFor('a falling trend with a time to full', () => /\s-[\d.]+[KMG]\/h\s+\d+(s|m|h)\b/.test(line()), 30_000);

    const screen = pane.screen();
    expect(screen[0]).toMatch(/^netkit disk query, every 300ms: round \d+, 1\/2 hosts answered \(Ctrl-C quits\)$/);
    // At 80 columns the table drops what it can spare (TYPE, USED, SIZE, then the counters) before the host names.
    expect(screen[1]).toMatch(/^HOST\s+MOUNT\s+.*AVAIL\s+USE%\s+AGE\s+TREND\s+FULL IN\s+NOTE$/);
    // AGE in ms or s, space falling, and when it runs out.
    expect(line()).toMatch(/\s\d+(ms|\.\ds)\s+-[\d.]+[KMG]\/h\s+\d+(s|m|h)$/);
    expect(screen.find((l) => l.startsWith(`127.0.0.1:${dead} `))).toMatch(/\s-\s+-\s+-\s+refused$/);

    // In place: every frame starts at the top left, nothing clears the screen (no blank frame), and no
    // frame has as many lines as the terminal or a line wider than it, so the screen never scrolls or wraps.
    const raw = pane.raw();
    expect(raw).not.toContain('\u001b[2J');
    const drawn = frames(raw);
    expect(drawn.length).toBeGreaterThanOrEqual(8);
    for (const f of drawn) {
      expect(f.length - 1).toBeLessThan(12);
      for (const l of f) expect(l.length).toBeLessThanOrEqual(80);
    }
    expect(pane.format('#{history_size}')).toBe('0');

    // A wider terminal is used at once: the columns left out at 80 come back, with the answer counters:
    // every round answered, none timed out.
    pane.resize(120, 12);
    await pane.waitFor('the wider table', () => /^HOST\s+MOUNT\s+TYPE\s+SIZE\s+USED\s+AVAIL\s+USE%\s+AGE\s+ANS\/TMO\s+TREND\s+FULL IN\s+NOTE$/.test(pane.screen()[1] ?? ''));
    const counters = /\s(\d+)\/0\s+-[\d.]+[KMG]\/h\s/.exec(line());
    expect(Number(counters?.[1])).toBeGreaterThanOrEqual(8);
    expect(pane.screen().find((l) => l.startsWith(`127.0.0.1:${dead} `))).toMatch(/\s0\/0\s.*refused$/);

    pane.keys('C-c');
    expect(await pane.exitStatus()).toBe(0);
    // Restored: the alternate screen is left and the cursor shown again, after the last frame.
    expect(pane.format('#{alternate_on}')).toBe('0');
    expect(pane.format('#{cursor_flag}')).toBe('1');
    const end = pane.raw();
    expect(end.lastIndexOf('\u001b[?1049l')).toBeGreaterThan(end.lastIndexOf('\u001b[H'));
  }, 60_000);
});
