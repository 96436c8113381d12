// Disk bench: UDP answers/s with 16 requests in flight, and round-trip p50/p99 with one in flight,
// for netkit and its peers side by side in one run, interleaved.
import { createSocket } from 'node:dgram';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync, existsSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  BENCH, OUT, BIN, NODE, cleanEnv, log, which, skippedTool, median, rotated, startProcess, runTimed, freePort,
  netkitHas, ensureDir, nowMs, quantile, track, cpuSeconds,
} from './common.mjs';
import * as snmp from './snmp.mjs';

const REQUEST_SIZE = 1200; // what `netkit disk query` sends (docs/protocol.md: padded so an answer fits)

/** netkit disk v1 QUERY for the served path, written from docs/protocol.md section 1 (not from netkit's code). */
export function netkitQuery(id, size = REQUEST_SIZE) {
  const b = Buffer.alloc(size);
  b.write('NK', 0, 'latin1');
  b[2] = 1; // version
  b[3] = 1; // QUERY
  b.writeUInt32BE(id >>> 0, 4);
  b[8] = 0x01; // SCOPE
  b.writeUInt16BE(1, 9);
  b[11] = 0; // the served path
  return b;
}

/** The TIME field (ms since the epoch when the figures were read) of a v1 ANSWER, or NaN. */
export function answerTime(buf) {
  if (buf.length < 8 || buf[0] !== 0x4e || buf[1] !== 0x4b || buf[3] !== 2) return NaN;
  for (let off = 8; off + 3 <= buf.length; ) {
    const tag = buf[off];
    if (tag === 0) break;
    const len = buf.readUInt16BE(off + 1);
    if (tag === 0x03 && len === 8) return Number(buf.readBigUInt64BE(off + 3));
    off += 3 + len;
  }
  return NaN;
}

/** One request/reply over a fresh socket, bounded: used to check that a server answers before timing it. */
export function udpAsk(port, datagram, { timeoutMs = 1000, attempts = 5 } = {}) {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    let tries = 0;
    let timer;
    const done = (err, msg) => {
      clearTimeout(timer);
      s.close();
      if (err) reject(err);
      else resolve(msg);
    };
    const send = () => {
      if (tries++ >= attempts) return done(new Error(`no reply from 127.0.0.1:${port} after ${attempts} attempts`));
      s.send(datagram, port, '127.0.0.1');
      timer = setTimeout(send, timeoutMs);
    };
    s.on('message', (msg) => done(null, msg));
    s.on('error', (e) => {
      // ICMP port unreachable while the server is still binding: try again on the timer.
      if (e.code !== 'ECONNREFUSED') done(e);
    });
    s.bind(0, '127.0.0.1', send);
  });
}

/** Build bench/out/udpload from bench/udpload.c; null (and a warning) when no C compiler works. */
export function buildUdpload() {
  const src = join(BENCH, 'udpload.c');
  const exe = join(ensureDir(OUT), 'udpload');
  if (existsSync(exe) && statSync(exe).mtimeMs >= statSync(src).mtimeMs) return exe;
  const cc = which('cc') || which('gcc') || which('clang');
  if (!cc) {
    log(`warning: no C compiler; using the Node load generator, which may be the bottleneck (${skippedTool('cc')})`);
    return null;
  }
  const r = spawnSync(cc, ['-O2', '-o', exe, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    log(`warning: cc -O2 bench/udpload.c failed; using the Node load generator, which may be the bottleneck\n${r.stderr}`);
    return null;
  }
  return exe;
}

/** The Node fallback: same contract as udpload.c (ids, FIFO when id-less, timeouts, only valid replies count). */
async function nodeLoad(port, t, { inflight, duration, warmup, count, timeoutMs, latency }) {
  const s = createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  s.connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  const slots = Array.from({ length: inflight }, () => ({ busy: false, id: 0, at: 0 }));
  let nextId = t.idBase ?? 1;
  let valid = 0, counted = 0, lost = 0, invalid = 0, sent = 0, maxReply = 0;
  const samples = [];
  const t0 = nowMs();
  let measuring = warmup <= 0;
  let mStart = measuring ? t0 : 0;
  const end = t0 + (warmup + duration) * 1000;
  const issue = (q) => {
    const sl = slots[q];
    sl.busy = true;
    sl.id = nextId++;
    sl.at = nowMs();
    const d = Buffer.from(t.datagram);
    if (t.idLen) d.writeUIntBE(sl.id, t.idOff, t.idLen);
    s.send(d);
    sent++;
  };
  await new Promise((resolve) => {
    s.on('message', (m) => {
      const now = nowMs();
      maxReply = Math.max(maxReply, m.length);
      let ok = m.length >= (t.minReply ?? 1);
      if (ok && t.expect && !m.subarray(0, t.expect.length).equals(t.expect)) ok = false;
      if (ok && t.reject && m.subarray(0, t.reject.length).equals(t.reject)) ok = false;
      let q = -1;
      if (ok && t.idLen) {
        q = slots.findIndex((sl) => {
          if (!sl.busy) return false;
          const idb = Buffer.alloc(t.idLen);
          idb.writeUIntBE(sl.id, 0, t.idLen);
          return t.replyIdOff >= 0 ? m.subarray(t.replyIdOff, t.replyIdOff + t.idLen).equals(idb) : m.includes(idb);
        });
      } else if (ok) {
        q = slots.findIndex((sl) => sl.busy);
      }
      if (q < 0) return void invalid++;
      valid++;
      if (measuring) {
        counted++;
        if (latency) samples.push(now - slots[q].at);
      }
      slots[q].busy = false;
      issue(q);
    });
    s.on('error', () => undefined);
    const tick = setInterval(() => {
      const now = nowMs();
      if (!measuring && now >= t0 + warmup * 1000) {
        measuring = true;
        mStart = now;
        counted = 0;
        samples.length = 0;
      }
      slots.forEach((sl, q) => {
        if (sl.busy && now - sl.at > timeoutMs) {
          lost++;
          issue(q);
        }
      });
      if (now >= end || (count && counted >= count)) {
        clearInterval(tick);
        resolve();
      }
    }, 5);
    slots.forEach((_, q) => issue(q));
  });
  const secs = (nowMs() - mStart) / 1000;
  s.close();
  const r = { inflight, req_bytes: t.datagram.length, sent, valid_total: valid, valid: counted, invalid, lost, max_reply_bytes: maxReply, seconds: secs, rate: counted / secs, generator: 'node' };
  if (latency && samples.length) {
    r.samples = samples.length;
    r.p50_us = quantile(samples, 0.5) * 1000;
    r.p99_us = quantile(samples, 0.99) * 1000;
  }
  return r;
}

/** Run the load generator once against one contender. */
async function load(exe, port, t, opts) {
  if (!exe) return nodeLoad(port, t, opts);
  const args = ['--port', String(port), '--req', t.file, '--inflight', String(opts.inflight), '--duration', String(opts.duration),
    '--warmup', String(opts.warmup), '--timeout-ms', String(opts.timeoutMs), '--min-reply', String(t.minReply ?? 1)];
  if (opts.count) args.push('--count', String(opts.count));
  if (opts.latency) args.push('--latency');
  if (t.idLen) args.push('--id-off', String(t.idOff), '--id-len', String(t.idLen), '--id-base', String(t.idBase ?? 1), '--reply-id-off', String(t.replyIdOff));
  if (t.expect) args.push('--expect-prefix', t.expect.toString('hex'));
  if (t.reject) args.push('--reject-prefix', t.reject.toString('hex'));
  const r = await runTimed(exe, args, { timeoutMs: (opts.warmup + opts.duration) * 1000 + 20000 });
  if (r.code !== 0) throw new Error(`udpload failed (${r.code}): ${r.stderr}`);
  return { ...JSON.parse(r.stdout), generator: 'c' };
}

/** Start every contender that can run here; each entry says how to make requests and what counts as an answer. */
async function startContenders(tmp, skipped) {
  const list = [];
  const write = (name, buf) => {
    const f = join(tmp, `${name}.req`);
    writeFileSync(f, buf);
    return f;
  };
  const classic = { datagram: Buffer.from('y'), idLen: 0, reject: Buffer.from('Erro'), minReply: 10 };

  if (which('python3')) {
    const srv = await startProcess('python3', [join(BENCH, 'peers', 'seed_udp_server.py'), '0'], { cwd: tmp });
    const port = Number(/:(\d+)\s*$/m.exec(srv.match[0])[1]);
    list.push({ key: 'seed', label: 'Python seed-style server (reply prepared in advance)', srv, port, t: { ...classic, file: write('seed', classic.datagram) } });
  } else skipped.push({ key: 'seed', reason: skippedTool('python3') });

  const snmpd = which('snmpd');
  if (snmpd) {
    const port = await freePort('udp');
    const conf = join(tmp, 'snmpd.conf');
    // Read-only v2c community for loopback and the UCD dskTable row for "/": the SNMP way to ask for disk space.
    writeFileSync(conf, 'rocommunity public 127.0.0.1\ndisk /\n');
    const child = startSnmpd(snmpd, conf, tmp, port);
    const req = snmp.getRequest();
    try {
      const reply = await udpAsk(port, req.datagram, { timeoutMs: 300, attempts: 20 });
      const parsed = snmp.parseResponse(reply);
      if (parsed.errorStatus !== 0 || parsed.values.some((v) => typeof v === 'object')) throw new Error(`snmpd answered ${JSON.stringify(parsed)}`);
      list.push({
        key: 'snmpd', label: 'snmpd, SNMP v2c GET dskPath.1 dskTotal.1 dskAvail.1', srv: child, port,
        t: { datagram: req.datagram, file: write('snmp', req.datagram), idOff: req.idOff, idLen: 4, idBase: snmp.ID_BASE, replyIdOff: -1, expect: Buffer.from([0x30]) },
        sample: parsed,
      });
    } catch (e) {
      await child.stop();
      skipped.push({ key: 'snmpd', reason: `skipped: snmpd did not answer (${e.message.split('\n')[0]})` });
    }
  } else skipped.push({ key: 'snmpd', reason: skippedTool('snmpd') });

  if (netkitHas(['disk', 'serve'])) {
    const srv = await startProcess(NODE, [BIN, 'disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--path', tmp, '--quiet'], { cwd: tmp });
    const port = Number(/:(\d+)\s*$/m.exec(srv.match[0])[1]);
    const q = netkitQuery(1);
    const reply = await udpAsk(port, q);
    if (reply.readUInt32BE(4) !== 1 || reply[3] !== 2) throw new Error(`netkit disk serve gave an unexpected reply: ${reply.subarray(0, 16).toString('hex')}`);
    list.push({
      key: 'netkit', label: 'netkit disk serve (protocol v1, 1200-byte requests)', srv, port, freshness: true,
      t: { datagram: q, file: write('netkit', q), idOff: 4, idLen: 4, idBase: 1, replyIdOff: 4, expect: Buffer.from([0x4e, 0x4b, 0x01, 0x02]) },
    });
    if (netkitHas(['disk', 'serve'], '--classic')) {
      const csrv = await startProcess(NODE, [BIN, 'disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--path', tmp, '--classic', '--quiet'], { cwd: tmp });
      const cport = Number(/:(\d+)\s*$/m.exec(csrv.match[0])[1]);
      const creply = await udpAsk(cport, Buffer.from('y'));
      if (creply.subarray(0, 4).toString() === 'Erro') throw new Error('netkit --classic answered y with an error');
      list.push({ key: 'netkit-classic', label: 'netkit disk serve --classic (answering `y`)', srv: csrv, port: cport, t: { ...classic, file: write('netkit-classic', classic.datagram) } });
    } else skipped.push({ key: 'netkit-classic', reason: 'skipped: netkit disk serve --classic not implemented yet' });
  } else {
    skipped.push({ key: 'netkit', reason: 'skipped: netkit disk serve not implemented yet' });
  }
  return list;
}

function startSnmpd(snmpd, conf, tmp, port) {
  // Foreground, only our config (-C -c), no MIB files to parse, log to a file, state in the tmp dir.
  const args = ['-f', '-C', '-c', conf, '-Lf', join(tmp, 'snmpd.log'), '-p', join(tmp, 'snmpd.pid'), '-M', '/dev/null', '-m', '', `udp:127.0.0.1:${port}`];
  const child = track(spawn(snmpd, args, { env: cleanEnv({ SNMP_PERSISTENT_DIR: tmp }), stdio: ['ignore', 'ignore', 'pipe'] }));
  child.stderr.resume();
  return {
    child, pid: child.pid,
    peakRssKiB: () => NaN,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      return child.exitCode;
    },
  };
}

/** Sample the age of netkit's figures while it is under load: the answer's TIME against our clock. */
function freshnessSampler(port, everyMs = 250) {
  const ages = [];
  const s = createSocket('udp4');
  let id = 0x7f000000;
  s.on('message', (m) => {
    const t = answerTime(m);
    if (Number.isFinite(t)) ages.push(Date.now() - t);
  });
  s.on('error', () => undefined);
  s.bind(0, '127.0.0.1');
  const timer = setInterval(() => s.send(netkitQuery(id++), port, '127.0.0.1'), everyMs);
  return {
    stop() {
      clearInterval(timer);
      s.close();
      return ages;
    },
  };
}

export async function runDisk({ quick }) {
  const rounds = quick ? 1 : 5;
  const duration = quick ? 1 : 2;
  const warmup = 0.5;
  const latencyCount = quick ? 1000 : 1000; // per round: 5000 round trips per server in a full run
  const exe = buildUdpload();
  const tmp = mkdtempSync(join(tmpdir(), 'netkit-bench-disk-'));
  const skipped = [];
  let list = [];
  try {
    list = await startContenders(tmp, skipped);
    for (const s of skipped) log(`disk: ${s.key}: ${s.reason}`);
    const rates = Object.fromEntries(list.map((c) => [c.key, []]));
    const runs = Object.fromEntries(list.map((c) => [c.key, []]));
    const fresh = [];
    for (let r = 0; r < rounds; r++) {
      for (const c of rotated(list, r)) {
        const cpu0 = cpuSeconds(c.srv.pid);
        const sampler = c.freshness ? freshnessSampler(c.port) : null;
        const res = await load(exe, c.port, c.t, { inflight: 16, duration, warmup, timeoutMs: 200 });
        if (sampler) fresh.push(...sampler.stop());
        const cpu1 = cpuSeconds(c.srv.pid);
        res.server_cpu_s = cpu1 - cpu0;
        res.round = r;
        runs[c.key].push(res);
        rates[c.key].push(res.rate);
        log(`disk: round ${r + 1}/${rounds} ${c.key}: ${Math.round(res.rate)} answers/s (lost ${res.lost}, invalid ${res.invalid}, max reply ${res.max_reply_bytes} B for ${res.req_bytes} B requests)`);
      }
    }
    // Round trips, interleaved too: idle cores sleep deeper, so one server measured alone would look slower.
    const latRuns = Object.fromEntries(list.map((c) => [c.key, []]));
    for (let r = 0; r < rounds; r++) {
      for (const c of rotated(list, r)) {
        latRuns[c.key].push(await load(exe, c.port, c.t, { inflight: 1, duration: 10, warmup: 0.2, count: latencyCount, timeoutMs: 200, latency: true }));
      }
    }
    const latency = {};
    for (const c of list) {
      const rs = latRuns[c.key];
      latency[c.key] = { p50_us: median(rs.map((x) => x.p50_us)), p99_us: median(rs.map((x) => x.p99_us)), samples: rs.reduce((a, x) => a + (x.samples ?? 0), 0), runs: rs };
      log(`disk: round trip ${c.key}: p50 ${latency[c.key].p50_us?.toFixed(0)} µs, p99 ${latency[c.key].p99_us?.toFixed(0)} µs (median of ${rs.length} rounds, ${latency[c.key].samples} samples)`);
    }
    // Paired ratios (netkit and the seed-style server in the same round) cancel most of the machine's drift.
    const paired = (a, b) => (rates[a] && rates[b] ? rates[a].map((x, i) => x / rates[b][i]) : null);
    const result = {
      conditions: { rounds, duration_s: duration, warmup_s: warmup, inflight: 16, timeout_ms: 200, latency_requests: latencyCount, generator: exe ? 'bench/udpload.c (cc -O2)' : 'Node fallback (may be the bottleneck)' },
      contenders: list.map((c) => ({
        key: c.key, label: c.label, req_bytes: c.t.datagram.length,
        median_rate: median(rates[c.key]), rates: rates[c.key], runs: runs[c.key], latency: latency[c.key],
      })),
      skipped,
      paired_ratios: { netkit_seed: paired('netkit', 'seed'), netkit_snmpd: paired('netkit', 'snmpd'), classic_seed: paired('netkit-classic', 'seed') },
    };
    if (fresh.length) result.freshness = { samples: fresh.length, max_age_ms: Math.max(...fresh), median_age_ms: median(fresh) };
    return result;
  } finally {
    for (const c of list) await c.srv.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Keep a netkit disk server up for the start-up bench; returns null when the command doesn't exist yet. */
export async function startNetkitDisk(tmp) {
  if (!netkitHas(['disk', 'serve'])) return null;
  const srv = await startProcess(NODE, [BIN, 'disk', 'serve', '--port', '0', '--host', '127.0.0.1', '--path', tmp, '--quiet'], { cwd: tmp });
  srv.port = Number(/:(\d+)\s*$/m.exec(srv.match[0])[1]);
  return srv;
}
