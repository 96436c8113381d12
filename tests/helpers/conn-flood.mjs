// A connection flood for the adversarial tests, run as its own process: from several loopback sources, hold idle or stalled-TLS connections against a server, optionally reopening what it closes; bounded in count and time.
//
// node conn-flood.mjs '{"port":1234,"sources":["127.0.0.2"],"perSource":40,"mode":"idle","reopen":true,"maxMs":30000,"maxOpens":200000}'
//
// Prints one JSON line {"ready":true,...} once every source has made its first perSource attempts, and
// one {"done":true,...} line when it stops (SIGTERM, maxMs or maxOpens), then exits.
import { randomBytes } from 'node:crypto';
import net from 'node:net';

const cfg = JSON.parse(process.argv[2]);
const { port, sources, perSource, mode, reopen } = cfg;
const maxMs = cfg.maxMs ?? 30_000;
const maxOpens = cfg.maxOpens ?? 200_000;

/** The start of a TLS ClientHello whose record claims 512 bytes: the server's TLS stack waits for the rest. */
const STALLED_HELLO = Buffer.concat([Buffer.from('160301020001000200fc0303', 'hex'), randomBytes(32)]);

const stats = { opened: 0, connected: 0, closedByServer: 0, errors: 0, live: 0, maxLive: 0 };
const sockets = new Set();
let stopping = false;
let firstRound = sources.length * perSource;

function maybeReady() {
  if (firstRound === 0) {
    firstRound = -1;
    process.stdout.write(`${JSON.stringify({ ready: true, ...stats })}\n`);
  }
}

function open(source) {
  if (stopping || stats.opened >= maxOpens) return;
  stats.opened += 1;
  const s = net.connect({ host: '127.0.0.1', port, localAddress: source });
  sockets.add(s);
  let counted = false;
  const settle = () => {
    if (counted) return;
    counted = true;
    if (firstRound > 0) firstRound -= 1;
    maybeReady();
  };
  s.on('connect', () => {
    stats.connected += 1;
    stats.live += 1;
    stats.maxLive = Math.max(stats.maxLive, stats.live);
    if (mode === 'tls-stall') s.write(STALLED_HELLO);
    settle();
  });
  s.on('data', () => undefined); // a BUSY answer, read and ignored
  s.on('error', () => (stats.errors += 1));
  s.on('close', () => {
    sockets.delete(s);
    if (s.connectedOnce) stats.live -= 1;
    settle();
    if (stopping) return;
    if (s.connectedOnce) stats.closedByServer += 1;
    if (reopen) setImmediate(() => open(source));
  });
  s.once('connect', () => (s.connectedOnce = true));
}

function stop() {
  if (stopping) return;
  stopping = true;
  for (const s of sockets) s.destroy();
  process.stdout.write(`${JSON.stringify({ done: true, ...stats })}\n`);
  clearTimeout(bound);
  process.exitCode = 0;
}

const bound = setTimeout(stop, maxMs);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
for (let i = 0; i < perSource; i++) for (const source of sources) open(source);
