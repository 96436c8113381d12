// A bounded UDP flood from thousands of distinct loopback sources (127.x.y.z; Linux needs no setup for them).
// node udp-flood.mjs PORT SOURCES RATE SECONDS: each source sends a 12-byte disk v1 QUERY in turn,
// RATE datagrams a second in all, round-robin (a source comes back only after SOURCES/RATE s), for SECONDS, then prints "sent N" and exits. Prints "ready" once bound,
// and "covered" once every source has sent at least once (from then on a server sees them all as active).
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

const [port, wanted, rate, seconds] = process.argv.slice(2).map(Number);
// One socket per source: stay under this process's descriptor limit.
const fdLimit = Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
const sources = Math.min(wanted, fdLimit - 256);
const query = Buffer.from([0x4e, 0x4b, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0]);
const sockets = [];
for (let i = 0; i < sources; i += 1) {
  const s = dgram.createSocket('udp4');
  s.on('error', () => undefined);
  s.on('message', () => undefined);
  // 127.64.0.1 onward: far from 127.0.0.1, which the clients under test use.
  const n = i + 1;
  await new Promise((resolve) => s.bind(0, `127.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`, resolve));
  sockets.push(s);
}
process.stdout.write(`ready ${sources}\n`);
let sent = 0;
let next = 0;
const started = performance.now();
// Paced on setImmediate, not a coarse timer: a flood sent in 10 ms bursts would leave a rate limiter
// idle (and refilling) between bursts, which is not what a steady flood does.
const step = () => {
  const elapsed = performance.now() - started;
  const due = Math.min(Math.floor((elapsed * rate) / 1000), Math.floor(seconds * rate));
  while (sent < due) {
    sockets[next].send(query, port, '127.0.0.1');
    next = (next + 1) % sockets.length;
    sent += 1;
    if (sent === sources) process.stdout.write('covered\n');
  }
  if (elapsed < seconds * 1000) {
    setImmediate(step);
    return;
  }
  process.stdout.write(`sent ${sent}\n`);
  for (const s of sockets) s.close();
};
setImmediate(step);
