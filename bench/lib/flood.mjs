// Flood bench: how many fresh clients a disk server answers per second while thousands of spoofed loopback
// sources (127.64.x.y) flood it, with and without a secret, against the same server without a flood.
// A fresh client is a source address the server has never seen (127.96.x.y onward), sending one query,
// one attempt, waiting 1 s. Requests are built from docs/protocol.md (1.1, 1.8), not from netkit's code.
import { createSocket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ROOT, BIN, NODE, cleanEnv, cpuSeconds, log, median, nowMs, startProcess, track } from './common.mjs';
import { netkitQuery } from './disk.mjs';

const FLOOD = join(ROOT, 'tests', 'helpers', 'udp-flood.mjs');
const TOKEN = 'Hq2Wn8Rt5Yv1Xc7Zb4Nm9Kl3Jp6Df0Gs2Ae8Ui5Oy1';
const FLOOD_SOURCES = 15000;
const FLOOD_RATE = 11000;
const FRESH_RATE = 1000;

/** k_disk (docs/protocol.md 1.8): HKDF-SHA-256 of the token text. */
const kDisk = Buffer.from(hkdfSync('sha256', Buffer.from(TOKEN, 'utf8'), 'netkit v1 hkdf salt', 'netkit disk v1 key', 32));

/** An authenticated QUERY: header, SCOPE, AUTH_NONCE, AUTH_TIME, AUTH_MAC (over everything before its value), zeros to 1,200 bytes. */
function authQuery(id) {
  const b = netkitQuery(id); // header and SCOPE at 0..12, zeros after
  let o = 12;
  b[o] = 0x11;
  b.writeUInt16BE(16, o + 1);
  randomBytes(16).copy(b, o + 3);
  o += 19;
  b[o] = 0x12;
  b.writeUInt16BE(8, o + 1);
  b.writeBigUInt64BE(BigInt(Date.now()), o + 3);
  o += 11;
  b[o] = 0x10;
  b.writeUInt16BE(32, o + 1);
  const m = o + 3;
  createHmac('sha256', kDisk).update(Buffer.from('netkit disk v1 request\0', 'latin1')).update(b.subarray(0, m)).digest().copy(b, m);
  return b;
}

/** Fresh clients at `rate` per second for `seconds`: each a new source address, one query, one attempt of 1 s. */
async function freshClients(port, { rate, seconds, secret, firstSource }) {
  const total = Math.round(rate * seconds);
  const results = [];
  const pending = [];
  const t0 = nowMs();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    while (nowMs() < due) await new Promise((r) => setTimeout(r, Math.max(0, Math.min(5, due - nowMs()))));
    const n = firstSource + i;
    const source = `127.${96 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
    pending.push(
      new Promise((resolve) => {
        const s = createSocket('udp4');
        const id = (Math.random() * 2 ** 32) >>> 0;
        let timer;
        const done = (ms) => {
          clearTimeout(timer);
          s.close();
          results.push(ms);
          resolve();
        };
        s.on('error', () => done(NaN));
        s.on('message', (msg) => {
          // An ANSWER for our id (with a secret, only a key holder's query gets any reply at all).
          if (msg.length >= 8 && msg[0] === 0x4e && msg[1] === 0x4b && msg[3] === 2 && msg.readUInt32BE(4) === id) done(nowMs() - sent);
        });
        let sent = 0;
        s.bind(0, source, () => {
          sent = nowMs();
          s.send(secret ? authQuery(id) : netkitQuery(id), port, '127.0.0.1');
          timer = setTimeout(() => done(NaN), 1000);
        });
      }),
    );
  }
  await Promise.all(pending);
  const answered = results.filter(Number.isFinite);
  return { offered: total, answered: answered.length, seconds, answers_per_s: answered.length / seconds, median_reply_ms: median(answered) };
}

async function startFlood(port, seconds) {
  const child = track(spawn(NODE, [FLOOD, String(port), String(FLOOD_SOURCES), String(FLOOD_RATE), String(seconds)], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('covered\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`flood generator exited (${code}) before every source had sent`)));
  });
  const sources = Number(/ready (\d+)/.exec(out)?.[1] ?? NaN);
  return { sources, done: once(child, 'exit').then(() => Number(/sent (\d+)/.exec(out)?.[1] ?? NaN)) };
}

export async function runFlood({ quick }) {
  const seconds = quick ? 3 : 8;
  const tmp = mkdtempSync(join(tmpdir(), 'netkit-bench-flood-'));
  const rows = [];
  let firstSource = 1;
  try {
    for (const secret of [false, true]) {
      for (const flooded of [false, true]) {
        const env = cleanEnv(secret ? { NETKIT_TOKEN: TOKEN } : {});
        const srv = await startProcess(NODE, [BIN, 'disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--quiet', '--no-exempt-loopback', '--path', tmp], { env });
        try {
          const port = Number(/:(\d+)\s*$/m.exec(srv.match[0])[1]);
          // The flood outlasts the fresh clients by a margin; it is bounded in rate and time.
          const flood = flooded ? await startFlood(port, seconds + 3) : undefined;
          const cpu0 = cpuSeconds(srv.pid);
          const t0 = nowMs();
          const r = await freshClients(port, { rate: FRESH_RATE, seconds, secret, firstSource });
          const cpu = (cpuSeconds(srv.pid) - cpu0) / ((nowMs() - t0) / 1000);
          firstSource += r.offered; // never reuse a source: each client is new to every server
          const sent = flood ? await flood.done : 0;
          rows.push({ secret, flooded, ...r, server_cpu_pct: 100 * cpu, flood: flood ? { sources: flood.sources, rate: FLOOD_RATE, sent } : null });
          log(`flood: ${secret ? 'secret' : 'no secret'}, ${flooded ? `flood of ${flood.sources} sources` : 'no flood'}: ${r.answered}/${r.offered} fresh clients answered (${r.answers_per_s.toFixed(0)}/s)`);
        } finally {
          await srv.stop();
        }
      }
    }
    if (rows.some((x) => !x.flooded && x.answered === 0)) throw new Error('a server without a flood answered no fresh client: the bench request is wrong');
    return { conditions: { fresh_rate: FRESH_RATE, seconds, flood_sources: FLOOD_SOURCES, flood_rate: FLOOD_RATE, attempt_timeout_ms: 1000, server: 'netkit disk serve --host 127.0.0.1 --no-exempt-loopback (default --rate-limit 1000)' }, rows };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
