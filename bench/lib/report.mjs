// Turn bench/out/*.json into the marked section of docs/benchmarks.md: only numbers that were measured.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, OUT, fmt, median } from './common.mjs';

export const BEGIN = '<!-- bench:begin -->';
export const END = '<!-- bench:end -->';
const DOC = join(ROOT, 'docs', 'benchmarks.md');

const cell = (s) => String(s).replace(/\|/g, '\\|');
const verdict = (ok) => (ok ? '**PASS**' : '**MISS**');
const MiB = 1 << 20;
const sizeLabel = (b) => (b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(b % (1 << 30) ? 2 : 0)} GiB` : `${Math.round(b / MiB)} MiB`);

function header(part, r) {
  const m = r.machine;
  return [
    `_Measured ${m.date.replace('T', ' ').slice(0, 16)} UTC at commit ${m.commit || '?'} with \`${r.command}\`${r.quick ? ' (quick mode)' : ''}; ` +
      `${m.nproc} CPUs (${m.cpu}), ${m.memGiB} GiB RAM, Node ${m.node}, ${m.kernel}; load average before the part: ${m.loadavg}._`,
    '',
  ];
}

function diskSection(r) {
  const d = r.result;
  const L = ['### Disk server capacity', '', ...header('disk', r)];
  const c = d.conditions;
  L.push(`Conditions: loopback only; load generator ${c.generator} keeps ${c.inflight} requests in flight, replaces a request unanswered after ${c.timeout_ms} ms, counts only valid replies (id echoed where the protocol has one); ` +
    `${c.rounds} rounds × ${c.duration_s} s per server after ${c.warmup_s} s warm-up, servers interleaved with the order rotated each round; the table shows the median round. ` +
    `Round trips: ${c.latency_requests} requests per server per round with one in flight, also interleaved; the median over rounds of each round's p50 and p99. ` +
    'All servers run at the same time on the same 2 shared cores as the generator. "Server CPU" is the server process\'s user+system time during the measured run divided by its length.', '');
  L.push('| server | request | answers/s (median) | rounds | lost / invalid | largest reply | server CPU | round trip p50 / p99 (1 in flight) |', '|---|---|---:|---|---|---:|---:|---|');
  for (const k of d.contenders) {
    const runs = k.runs ?? [];
    const mid = runs.find((x) => x.rate === k.median_rate) ?? runs[0];
    const lost = runs.reduce((a, x) => a + x.lost, 0);
    const inval = runs.reduce((a, x) => a + x.invalid, 0);
    const cpu = mid ? `${Math.round((100 * mid.server_cpu_s) / mid.seconds)}%` : '–';
    const lat = k.latency ? `${Math.round(k.latency.p50_us)} µs / ${Math.round(k.latency.p99_us)} µs` : '–';
    // (round trips: median over rounds of each round's p50 and p99)
    L.push(`| ${k.label} | ${k.req_bytes} B | ${fmt.int(k.median_rate)} | ${k.rates.map(fmt.int).join(', ')} | ${lost} / ${inval} | ${Math.max(...runs.map((x) => x.max_reply_bytes))} B | ${cpu} | ${lat} |`);
  }
  for (const s of d.skipped) L.push(`| ${s.key} | | ${cell(s.reason)} | | | | | |`);
  L.push('');
  const nk = d.contenders.find((k) => k.key === 'netkit');
  const seed = d.contenders.find((k) => k.key === 'seed');
  if (nk && seed) {
    const ratio = nk.median_rate / seed.median_rate;
    const pr = d.paired_ratios?.netkit_seed ?? [];
    const pmed = median(pr);
    const fresh = d.freshness;
    const freshOk = fresh && fresh.max_age_ms <= 1000;
    L.push(`- Target "netkit ≥ the seed-style server's rate, same run": ratio of medians netkit/seed = ${fmt.ratio(ratio)}; ` +
      `per-round paired ratios ${pr.map(fmt.ratio).join(', ')} (median ${fmt.ratio(pmed)}) → ${verdict(pmed >= 1 && ratio >= 1)}.`);
    const cl = d.contenders.find((k) => k.key === 'netkit-classic');
    if (cl) L.push(`- netkit --classic/seed (same \`y\` request, same reply shape) = ${fmt.ratio(cl.median_rate / seed.median_rate)}.`);
    if (fresh) L.push(`- Freshness under load: ${fresh.samples} answers sampled during netkit's runs; figures were at most ${Math.round(fresh.max_age_ms)} ms old (median ${Math.round(fresh.median_age_ms)} ms) → ${verdict(freshOk)} (target ≤ 1 s).`);
    const snmp = d.contenders.find((k) => k.key === 'snmpd');
    if (snmp) L.push(`- netkit/snmpd = ${fmt.ratio(nk.median_rate / snmp.median_rate)}.`);
    const amp = Math.max(...nk.runs.map((x) => x.max_reply_bytes));
    L.push(`- Anti-amplification: the largest netkit reply seen was ${amp} B for ${nk.req_bytes} B requests (${amp <= nk.req_bytes ? 'never larger than the request' : 'LARGER than the request'}).`);
    L.push('- netkit exempts loopback senders from its per-source rate limit, so these figures do not include rate limiting.');
  } else {
    L.push('- Target not evaluated: netkit or the seed-style peer did not run.');
  }
  L.push('');
  return L;
}

function startupSection(r) {
  const s = r.result;
  const L = ['### Whole-process start-up', '', ...header('startup', r)];
  L.push(`Conditions: ${s.conditions.method}; ${s.conditions.env}; the query goes to a ${s.conditions.server ?? '(no server)'} started once before. Ratios are the median over rounds of each round's median ratio.`, '');
  L.push('| command | median wall time | per-round medians | ratio to `node -e 0` |', '|---|---:|---|---:|');
  for (const c of s.commands) L.push(`| ${c.label} | ${fmt.ms(c.median_ms)} | ${c.round_medians_ms.map((x) => x.toFixed(1)).join(', ')} | ${fmt.ratio(c.ratio_to_node)} |`);
  L.push('');
  const q = s.commands.find((c) => c.key === 'query');
  if (q) L.push(`- Target "\`netkit disk query\` ≤ 1.5× \`node -e 0\`": ${fmt.ratio(q.ratio_to_node)} → ${verdict(q.ratio_to_node <= 1.5)}.`);
  const y = s.commands.find((c) => c.key === 'yargs');
  if (y) {
    L.push(`- The yargs floor: a program that only parses the same command line with yargs, bundled like netkit, takes ${fmt.ratio(y.ratio_to_node)} \`node -e 0\`${y.ratio_to_node > 1.5 ? ', already over the 1.5× target before any socket is opened' : ''}.`);
    if (q) L.push(`- netkit's own share (query, socket, output) over that floor: ${fmt.ms(q.median_ms - y.median_ms)}.`);
  }
  for (const n of s.notes) L.push(`- ${n}`);
  L.push('');
  return L;
}

function fileSection(r) {
  const f = r.result;
  const L = ['### File transfer', '', ...header('file', r)];
  const c = f.conditions;
  L.push(`Conditions: ${sizeLabel(c.size)} of ${c.file}; output on the ${c.out}; ${c.verify} (a run that doesn't verify is not counted); ` +
    `${c.rounds} interleaved rounds, order rotated each round and reversed every other round. Wall time runs from the client's start to its exit (for nc, until both the sending client and the receiving listener have exited; for "then fsync", until fsync(2) of the output and of its directory returned, done by the bench process: the durability netkit's default gives before its rename); servers were already listening. Only netkit verifies anything.`, '');
  L.push('| transfer | median wall time | throughput | runs (s) | failed runs |', '|---|---:|---:|---|---:|');
  for (const t of f.transfer) {
    L.push(`| ${t.label} | ${fmt.s(t.median_ms)} | ${fmt.mbps(c.size, t.median_ms)} | ${t.runs_ms.map((x) => (x == null ? 'failed' : (x / 1000).toFixed(2))).join(', ')} | ${t.failed_runs} |`);
  }
  for (const s of f.skipped) L.push(`| ${s.key} | ${cell(s.reason)} | | | |`);
  L.push('');
  const get = (k) => f.transfer.find((t) => t.key === k);
  const nk = get('netkit');
  if (nk && Number.isFinite(nk.median_ms)) {
    const nc = get('nc');
    const curl = get('curl');
    const ncSync = get('nc_fsync');
    const nkFast = get('netkit_nofsync');
    // Rounds are interleaved: runs with the same round index ran close together, so their ratio is paired.
    const paired = (a, b) => {
      const r = a.runs_ms.map((x, i) => (x != null && b.runs_ms[i] != null ? x / b.runs_ms[i] : null)).filter((x) => x != null);
      return r.length ? `; per-round paired ratios ${r.map((x) => fmt.ratio(x)).join(', ')} (median ${fmt.ratio(median(r))})` : '';
    };
    if (nc) L.push(`- Target "netkit wall time ≤ 1.0× nc" (netkit flushing to disk, nc not): ${fmt.ratio(nk.median_ms / nc.median_ms)}${paired(nk, nc)} → ${verdict(nk.median_ms <= nc.median_ms)}.`);
    if (ncSync && Number.isFinite(ncSync.median_ms)) L.push(`- Same durability: netkit (fsync before rename) / nc then fsync: ${fmt.ratio(nk.median_ms / ncSync.median_ms)}${paired(nk, ncSync)} → ${verdict(nk.median_ms <= ncSync.median_ms)}.`);
    if (nc && nkFast && Number.isFinite(nkFast.median_ms)) L.push(`- Neither flushes: netkit --no-fsync / nc: ${fmt.ratio(nkFast.median_ms / nc.median_ms)}${paired(nkFast, nc)} → ${verdict(nkFast.median_ms <= nc.median_ms)}.`);
    if (nc && ncSync && Number.isFinite(ncSync.median_ms)) L.push(`- What the flush costs nc here: nc then fsync / nc = ${fmt.ratio(ncSync.median_ms / nc.median_ms)}${nkFast && Number.isFinite(nkFast.median_ms) ? `; netkit / netkit --no-fsync = ${fmt.ratio(nk.median_ms / nkFast.median_ms)}` : ''}.`);
    if (curl) L.push(`- netkit/curl wall time: ${fmt.ratio(nk.median_ms / curl.median_ms)}.`);
    if (f.first_fetch) L.push(`- The netkit server hashes every full fetch it serves (while it streams); the rounds above ran after one first fetch from a fresh server (not in the median), which took ${f.first_fetch.ok ? fmt.s(f.first_fetch.ms) : 'FAILED'}${nc && f.first_fetch.ok ? ` (${fmt.ratio(f.first_fetch.ms / nc.median_ms)} nc)` : ''}.`);
  } else if (nk) {
    L.push('- netkit did not complete a verified transfer; no ratio.');
  }
  if (f.rss?.length) {
    L.push('', '| file | netkit client peak RSS | netkit server peak RSS (VmHWM) | fetch verified |', '|---|---:|---:|---|');
    for (const x of f.rss) L.push(`| ${sizeLabel(x.size)} | ${fmt.mib(x.client_kib)} | ${fmt.mib(x.server_kib)} | ${x.ok ? 'yes' : 'NO'} |`);
    const all = f.rss.flatMap((x) => [x.client_kib, x.server_kib]);
    const under = all.every((k) => Number.isFinite(k) && k * 1024 <= 100e6);
    const [a, b] = f.rss;
    const same = b && Math.abs(b.client_kib - a.client_kib) <= 0.25 * a.client_kib && Math.abs(b.server_kib - a.server_kib) <= 0.25 * a.server_kib;
    L.push('', `- Target "peak RSS ≤ 100 MB for each process, about the same for 10 MiB and 1 GiB": ≤ 100 MB ${verdict(under)}; same within 25% ${verdict(same)}.`);
    L.push('  Client: `/usr/bin/time -f %M`; server: VmHWM from /proc/<pid>/status after the fetch, a fresh server per file size.');
  }
  if (f.concurrent) {
    const k = f.concurrent;
    L.push('', `- ${k.clients} concurrent \`netkit file fetch\` processes of one ${sizeLabel(k.size)} file against one server: ${k.verified}/${k.clients} completed and verified in ${fmt.s(k.wall_ms)} ` +
      `(aggregate ${fmt.mbps(k.aggregate_bytes, k.wall_ms)}, including ${k.clients} Node start-ups on 2 cores; server peak RSS ${fmt.mib(k.server_kib)}) → ${verdict(k.verified === k.clients)}.`);
    for (const x of k.failures) L.push(`  - failure ${x}`);
  }
  if (f.cut) {
    const k = f.cut;
    const nk = f.transfer.find((t) => t.key === 'netkit');
    L.push('', `- A fetch of the ${sizeLabel(k.size)} file whose connection is reset three times (after each quarter of the file; \`--retries\` default 5, back-off 1 s after an attempt that made progress), through a relay in the bench process: ` +
      `${k.ok_runs}/${k.rounds} runs verified with 3 retries; median time from the first cut to the completed file ${fmt.s(k.first_cut_to_done_ms)}, from the last cut ${fmt.s(k.last_cut_to_done_ms)}; whole fetch ${fmt.s(k.wall_ms)}` +
      `${nk && Number.isFinite(nk.median_ms) ? ` (an uncut fetch: ${fmt.s(nk.median_ms)})` : ''}; bytes relayed ${fmt.ratio(k.wire_ratio)} the file.`);
  }
  L.push('');
  return L;
}

function tlsSection(r) {
  const t = r.result;
  const L = ['### TLS', ''];
  if (t.skipped) return [...L, ...header('tls', r), `- ${t.skipped}`, ''];
  L.push(...header('tls', r));
  L.push(`Conditions: ${sizeLabel(t.conditions.size)} file, ${t.conditions.rounds} interleaved rounds, plain and \`--tls\` servers from the same build side by side, client pinned with \`--tls-fingerprint\`, both fetches with \`--no-fsync\` (the flush to disk is the same for both and varies by more than TLS costs).`, '');
  L.push('| fetch | median wall time | throughput | failed runs |', '|---|---:|---:|---:|');
  L.push(`| plain | ${fmt.s(t.plain.median_ms)} | ${fmt.mbps(t.conditions.size, t.plain.median_ms)} | ${t.plain.failed_runs} |`);
  L.push(`| --tls | ${fmt.s(t.tls.median_ms)} | ${fmt.mbps(t.conditions.size, t.tls.median_ms)} | ${t.tls.failed_runs} |`);
  const ratio = t.plain.median_ms / t.tls.median_ms;
  const paired = t.paired_ratios?.length ? `; per-round paired ratios ${t.paired_ratios.map((x) => fmt.ratio(x)).join(', ')} (median ${fmt.ratio(median(t.paired_ratios))})` : '';
  L.push('', `- Target "TLS throughput ≥ 0.7× plain": ${fmt.ratio(ratio)}${paired} → ${verdict(ratio >= 0.7)}.`, '');
  return L;
}

function discoverSection(r) {
  const d = r.result;
  const L = ['### Discovery (mDNS/DNS-SD)', '', ...header('discover', r)];
  if (d.skipped) return [...L, `- ${d.skipped}`, ''];
  const c = d.conditions;
  L.push(`Conditions: ${c.lab}; servers: ${c.server}; client: ${c.client}; ${c.rounds} rounds per size. Times are from spawning the client to its output, so they include Node's start-up (\`netkit --version\` in the same namespace, for scale). "Internal" times are the \`elapsedMs\` --json reports, counted from the first query.`, '');
  L.push('| announced servers | first result (median) | all found (median) | per-round first / all | all found every round | internal first / last (median) | `netkit --version` (median) |', '|---:|---:|---:|---|---|---|---:|');
  for (const x of d.first_result) {
    const per = x.runs.map((k) => `${Math.round(k.first_ms)} / ${Math.round(k.all_ms)}`).join(', ');
    L.push(`| ${x.servers} | ${fmt.ms(x.median_first_ms, 0)} | ${fmt.ms(x.median_all_ms, 0)} | ${per} | ${x.all_found_every_round ? 'yes' : '**no**'} | ${fmt.ms(x.median_internal_first_ms, 0)} / ${fmt.ms(x.median_internal_last_ms, 0)} | ${fmt.ms(x.median_version_ms, 0)} |`);
  }
  L.push('');
  const one = d.first_result[0];
  const fifty = d.first_result.find((x) => x.servers === 50);
  if (one) L.push(`- Target "the first server within 300 ms": median ${fmt.ms(one.median_first_ms, 0)} with 1 server, ${fmt.ms(fifty?.median_first_ms, 0)} with 50 → ${verdict(d.first_result.every((x) => x.median_first_ms <= 300))}.`);
  if (fifty) L.push(`- Target "all 50 within the default timeout (2 s)": ${fifty.all_found_every_round ? 'every round found all 50' : 'some round missed servers'}, median ${fmt.ms(fifty.median_all_ms, 0)} → ${verdict(fifty.all_found_every_round)}.`);
  L.push('');
  const t = d.traffic;
  if (t?.skipped) L.push(`- Traffic: ${t.skipped}`, '');
  else if (t) {
    const cell = (x) => `${x.packets} packets, ${fmt.int(x.bytes)} B`;
    L.push(`Traffic: one \`netkit disk serve\` and one avahi-daemon 0.8 publishing one \`_netkit-disk._udp\` service (\`avahi-publish -s\`, host name record included, IPv4 only, no workstation or HINFO records), started together in their own namespaces; a third namespace counts every mDNS packet each sends. Window 1: their first ${t.window_s} s (probes and announcements, no browser). Window 2: the next ${t.window_s} s, with a PTR query for \`_netkit-disk._udp.local\` every 10 s (${t.queries_in_window_2} queries). Then netkit's goodbye on SIGTERM.`, '');
    L.push(`| sender | window 1: start-up, per ${t.window_s} s | window 2: answering ${t.queries_in_window_2} queries | shutdown |`, '|---|---|---|---|');
    L.push(`| netkit disk serve | ${cell(t.netkit.start)} | ${cell(t.netkit.queried)} | ${cell(t.netkit.goodbye)} |`);
    L.push(`| avahi-daemon, one service | ${cell(t.avahi.start)} | ${cell(t.avahi.queried)} | (not stopped) |`);
    L.push('');
    L.push(`- Target "announcement traffic per server per minute no more than an avahi-daemon announcing one service" (window 1, unsolicited): netkit/avahi = ${fmt.ratio(t.netkit.start.packets / t.avahi.start.packets)} in packets, ${fmt.ratio(t.netkit.start.bytes / t.avahi.start.bytes)} in bytes → ${verdict(t.netkit.start.bytes <= t.avahi.start.bytes && t.netkit.start.packets <= t.avahi.start.packets)}. Neither sends anything unsolicited after that.`);
    L.push(`- Answers to queries (window 2, not announcements): netkit/avahi = ${fmt.ratio(t.netkit.queried.packets / t.avahi.queried.packets)} in packets, ${fmt.ratio(t.netkit.queried.bytes / t.avahi.queried.bytes)} in bytes. Both answer a PTR question with PTR, SRV, TXT and address records in one packet; avahi compresses repeated names (RFC 1035 section 4.1.4) and the packet encoder under bonjour-service (dns-packet) does not.`, '');
  }
  return L;
}


function treeSection(r) {
  const t = r.result;
  const c = t.conditions;
  const L = ['### Trees: many files (`npm run bench -- tree`)', '', ...header('tree', r)];
  L.push(`Conditions: loopback; ${c.data}; ${c.check}; ${c.rounds} interleaved rounds, order rotated each round and reversed every other round. ` +
    'Wall time runs from the client\'s start to its exit (for tar|nc, from the sender\'s start until both ends have exited); servers were already listening. Only netkit verifies anything, and only netkit flushes to the disk (unless --no-fsync).', '');
  const table = (title, runs, bytes) => {
    L.push(`**${title}**`, '', '| transfer | median wall time | throughput | runs (s) | failed runs |', '|---|---:|---:|---|---:|');
    for (const x of runs) L.push(`| ${cell(x.label)} | ${fmt.s(x.median_ms)} | ${bytes ? fmt.mbps(bytes, x.median_ms) : '–'} | ${x.runs_ms.map((v) => (v == null ? 'failed' : (v / 1000).toFixed(2))).join(', ')} | ${x.failed_runs} |`);
    L.push('');
  };
  const ratioLine = (what, runs, a, b, goal) => {
    const x = runs.find((k) => k.key === a);
    const y = runs.find((k) => k.key === b);
    if (!x || !y || !Number.isFinite(x.median_ms) || !Number.isFinite(y.median_ms)) return;
    const paired = x.runs_ms.map((v, i) => (v != null && y.runs_ms[i] != null ? v / y.runs_ms[i] : null)).filter((v) => v != null);
    const ratio = x.median_ms / y.median_ms;
    L.push(`- ${what}: ${fmt.ratio(ratio)}${paired.length ? `; per-round paired ratios ${paired.map(fmt.ratio).join(', ')}` : ''}${goal ? ` → ${verdict(ratio <= 1)}` : ''}.`);
  };
  table(`${fmt.int(c.small.files)} files of 4 KiB in ${c.small.dirs} directories (${sizeLabel(c.small.bytes)})`, t.small, c.small.bytes);
  ratioLine('Target "netkit ≤ 1.0× tar|nc", every file verified and flushed', t.small, 'netkit', 'tar_nc', true);
  ratioLine('netkit --no-fsync / tar|nc', t.small, 'netkit_nofsync', 'tar_nc', false);
  ratioLine('netkit / rsync -a', t.small, 'netkit', 'rsync', false);
  L.push('');
  table(`A mixed tree: ${c.mixed.files} files from 1 KiB to 100 MiB (${sizeLabel(c.mixed.bytes)})`, t.mixed, c.mixed.bytes);
  ratioLine('Target "netkit ≤ 1.0× tar|nc"', t.mixed, 'netkit', 'tar_nc', true);
  ratioLine('netkit --no-fsync / tar|nc', t.mixed, 'netkit_nofsync', 'tar_nc', false);
  ratioLine('netkit / rsync -a', t.mixed, 'netkit', 'rsync', false);
  L.push('');
  table(`Re-run with nothing changed (the ${fmt.int(c.small.files)}-file tree already there)`, t.again, 0);
  ratioLine('Target "netkit re-run ≤ 1.0× rsync -a re-run"', t.again, 'netkit', 'rsync', true);
  L.push('');
  if (t.rss) {
    const under = [t.rss.client_kib, t.rss.server_kib].every((k) => Number.isFinite(k) && k * 1024 <= 100e6);
    L.push(`- Peak RSS on the ${fmt.int(c.small.files)}-file tree: client ${fmt.mib(t.rss.client_kib)} (\`/usr/bin/time -f %M\`), server ${fmt.mib(t.rss.server_kib)} (VmHWM of a fresh server)${t.rss.ok ? '' : ' (the fetch FAILED)'}; target ≤ 100 MB each → ${verdict(under && t.rss.ok)}.`);
  }
  for (const s of t.skipped) L.push(`- ${s.key}: ${s.reason}`);
  L.push('');
  return L;
}

function httpSection(r) {
  const h = r.result;
  const L = ['### HTTP on the file port', '', ...header('http', r)];
  L.push(
    `Conditions: loopback; the ${sizeLabel(h.size)} file in the page cache; each server its own process on its own port, all running during the whole part: ` +
      '`netkit file serve` (HTTP on by default; `--max-connections 256 --max-per-source 256` so that 100 connections from one address are let in), ' +
      'nginx 1.22 with a generated minimal configuration (`master_process off`, one process, `sendfile on`, `tcp_nopush on`, no access log), and `python3 -m http.server`. ' +
      `Whole file: \`curl -sS -f -o FILE URL\` into the page cache, timed from spawn to exit, then \`cmp\` against the source; ${h.rounds} rounds, the order rotated each round. ` +
      `Ranges: one \`curl --parallel --parallel-immediate --parallel-max ${h.concurrent}\` with ${h.concurrent} \`-r a-b\` requests of 1 MiB at random 4 KiB-aligned offsets, each into its own file (checked against the source in the first round), ${h.range_rounds} rounds alternating netkit and nginx; requests/s = ${h.concurrent} / wall time. ` +
      'Peak RSS: VmHWM of each server process at the end of the part (both tests).',
    '',
  );
  L.push('| server | whole file: median | throughput | per round | failed | 100 × 1 MiB ranges: requests/s (median) | per round | peak RSS |', '|---|---:|---:|---|---:|---:|---|---:|');
  for (const c of h.contenders) {
    L.push(
      `| ${c.label} | ${fmt.s(c.whole_median_ms)} | ${fmt.int(c.whole_mb_s)} MB/s | ${c.whole_runs_ms.map((x) => (x == null ? 'failed' : fmt.s(x))).join(', ')} | ${c.whole_failed} | ` +
        `${c.ranges_median_rps == null ? '–' : fmt.int(c.ranges_median_rps)} | ${c.ranges_rps.map(fmt.int).join(', ') || '–'} | ${Number.isFinite(c.peak_rss_mib) ? `${c.peak_rss_mib.toFixed(1)} MiB` : '–'} |`,
    );
  }
  for (const s of h.skipped) L.push(`| ${s.key} | ${cell(s.reason)} | | | | | | |`);
  L.push('');
  const nk = h.contenders.find((c) => c.key === 'netkit');
  const ng = h.contenders.find((c) => c.key === 'nginx');
  const py = h.contenders.find((c) => c.key === 'python');
  if (nk && ng) {
    const tput = ng.whole_median_ms / nk.whole_median_ms;
    const pairs = nk.whole_runs_ms.map((x, i) => (x != null && ng.whole_runs_ms[i] != null ? ng.whole_runs_ms[i] / x : null)).filter((x) => x != null);
    L.push(`- Target "whole-file throughput ≥ 0.9× nginx": netkit/nginx = ${fmt.ratio(tput)}; per-round paired ratios ${pairs.map(fmt.ratio).join(', ')} → ${verdict(tput >= 0.9)}.`);
    const rps = nk.ranges_median_rps / ng.ranges_median_rps;
    L.push(`- Target "${h.concurrent} concurrent 1 MiB ranges: requests/s ≥ 0.5× nginx": ${fmt.ratio(rps)} → ${verdict(rps >= 0.5)}.`);
    if (py) L.push(`- netkit/python3 -m http.server whole-file throughput: ${fmt.ratio(py.whole_median_ms / nk.whole_median_ms)}.`);
    L.push(`- Target "peak server RSS ≤ 100 MB during both": netkit ${nk.peak_rss_mib.toFixed(1)} MiB = ${((nk.peak_rss_mib * MiB) / 1e6).toFixed(1)} MB → ${verdict(nk.peak_rss_mib * MiB <= 100e6)}.`);
  }
  L.push('');
  return L;
}

function fleetSection(r) {
  const f = r.result;
  const c = f.conditions;
  const L = ['### Fleet: 1,000 hosts, the live view, and /metrics', '', ...header('fleet', r)];
  L.push(`Conditions: one \`netkit disk serve\` bound to every address (\`[::]\`, loopback exempt from the rate limit) answers on ${fmt.int(c.hosts)} loopback addresses (127.0.1.1 onward) and from 127.0.0.1 whatever address was asked; ` +
    `one \`netkit disk query --hosts-file\` (${fmt.int(c.hosts)} lines) \`--json\` asks all of them, timed from spawn to exit with GNU time for the peak RSS, against a one-host query in the same rounds; ${c.rounds} rounds.`, '');
  L.push('| query | median wall | runs | peak RSS | answered (after a retry) |', '|---|---:|---|---:|---|');
  L.push(`| \`disk query\` of 1 host | ${fmt.ms(f.single.median_ms, 0)} | ${f.single.runs_ms.map((x) => x.toFixed(0)).join(', ')} ms | ${fmt.mib(f.single.median_rss_kib)} | |`);
  const runs = f.fleet.runs;
  L.push(`| \`disk query --hosts-file\` of ${fmt.int(c.hosts)} hosts | ${fmt.ms(f.fleet.median_ms, 0)} | ${runs.map((x) => x.ms.toFixed(0)).join(', ')} ms | ${fmt.mib(f.fleet.median_rss_kib)} | ${runs.map((x) => `${x.answered} (${x.retried})`).join(', ')} |`);
  L.push('');
  L.push(`- Goal "≤ 1.0 s wall": ${fmt.ms(f.fleet.median_ms, 0)} (${fmt.ratio(f.fleet.median_ms / f.single.median_ms)} the one-host query) → ${verdict(f.fleet.median_ms <= 1000)}; "≤ 120 MB RSS": largest ${fmt.mib(f.fleet.max_rss_kib)} → ${verdict(f.fleet.max_rss_kib * 1024 <= 120e6)}.`);
  const p = f.profile;
  if (p) {
    const ph = p.phases_ms;
    const k = Object.entries(p.network_ms_by_kind).map(([name, ms]) => `${KIND[name] ?? name} ${ms} ms`).join(', ');
    L.push(`- Where the time goes (one more query, under \`node --cpu-prof\`, which slows it: ${p.wall_ms} ms): Node's own boot ${ph.boot} ms, netkit's start-up (code, arguments, hosts file) ${ph.startup} ms, ` +
      `the queries ${ph.network} ms, rendering and writing the JSON ${ph.output} ms, exit ${ph.exit} ms. During the queries: ${k}.`);
  }
  L.push('');
  const w = f.watch;
  L.push(`**\`--watch 1\` on the same ${fmt.int(c.hosts)} hosts**, CPU over ${c.watch_seconds} s after the first round (user + system time from /proc):`, '');
  L.push('| output | rounds | client CPU (one core) | server CPU |', '|---|---:|---:|---:|');
  const row = (label, x) => (x.skipped ? L.push(`| ${label} | ${cell(x.skipped)} | | |`) : L.push(`| ${label} | ${x.rounds} | ${x.client_cpu_pct.toFixed(1)}% | ${x.server_cpu_pct.toFixed(1)}% |`));
  row('piped (NDJSON, one line per round)', w.piped);
  row('a terminal (tmux, 120×50: the table fitted to the screen)', w.terminal);
  const worst = Math.max(w.piped.client_cpu_pct, w.terminal.client_cpu_pct ?? 0);
  const worstSrv = Math.max(w.piped.server_cpu_pct, w.terminal.server_cpu_pct ?? 0);
  L.push('', `- Goal "client ≤ 10% of one core, server ≤ 5%": client ${worst.toFixed(1)}% → ${verdict(worst <= 10)}; server ${worstSrv.toFixed(1)}% → ${verdict(worstSrv <= 5)}.`, '');
  const sc = f.scrape;
  if (sc.skipped) L.push(`**Scrape**: ${sc.skipped}.`, '');
  else {
    L.push(`**Scrape**: \`/metrics\` of a \`disk serve --metrics\` that sees ${sc.filesystems} filesystems (${sc.bench_mounts} tmpfs mounted for the bench in a private mount namespace, which ends with the server, plus the machine's), ` +
      `${fmt.int(sc.scrapes)} scrapes one after another over one keep-alive connection, after 20 not counted; ${fmt.int(sc.body_bytes)} bytes each.`, '');
    L.push(`- p50 ${sc.p50_ms.toFixed(2)} ms, p99 ${sc.p99_ms.toFixed(2)} ms, max ${sc.max_ms.toFixed(1)} ms; server CPU ${sc.server_cpu_ms_per_scrape.toFixed(2)} ms per scrape. Goal "≤ 20 ms at p99": ${verdict(sc.p99_ms <= 20)}.`, '');
  }
  return L;
}

const KIND = { socket: 'socket set-up', send: 'sends', receive: 'receiving and matching replies', gc: 'garbage collection', idle: 'waiting', other: 'other JavaScript', render: 'rendering', load: 'loading code' };

function floodSection(r) {
  const f = r.result;
  const c = f.conditions;
  const L = ['### Fresh clients under a spoofed-source flood', '', ...header('flood', r)];
  L.push(`Conditions: ${c.server}, alone each time (a fresh server per row). Fresh clients: ${fmt.int(c.fresh_rate)} a second for ${c.seconds} s, each from a loopback address no server has seen (127.96.x.y onward), one 1,200-byte query, ` +
    `one attempt, ${c.attempt_timeout_ms} ms wait; with a secret, the query carries a valid MAC (built from docs/protocol.md 1.8). Flood: ${fmt.int(c.flood_sources)} spoofed sources (127.64.x.y) taking turns at ${fmt.int(c.flood_rate)} datagrams/s in all ` +
    '(tests/helpers/udp-flood.mjs), started before the fresh clients and running past them, so the rate limiter\'s table (4,096 sources) is full and churning the whole time. Everything on the same 2 cores.', '');
  L.push('| server | flood | fresh clients answered | answers/s | median reply | server CPU |', '|---|---|---:|---:|---:|---:|');
  for (const x of f.rows) {
    const flood = x.flood ? `${fmt.int(x.flood.sources)} sources, ${fmt.int(x.flood.sent)} datagrams` : 'none';
    L.push(`| ${x.secret ? 'with a secret' : 'without a secret'} | ${flood} | ${fmt.int(x.answered)} of ${fmt.int(x.offered)} (${((100 * x.answered) / x.offered).toFixed(1)}%) | ${fmt.int(x.answers_per_s)} | ${fmt.ms(x.median_reply_ms, 2)} | ${x.server_cpu_pct.toFixed(0)}% |`);
  }
  const worst = Math.min(...f.rows.filter((x) => x.flooded).map((x) => x.answered / x.offered));
  L.push('', `- Requirement "a fresh client gets ≥ 95% of its queries answered under the flood": lowest ${(100 * worst).toFixed(1)}% with a single attempt → ${verdict(worst >= 0.95)}.`, '');
  return L;
}

const SECTIONS = [['disk', diskSection], ['startup', startupSection], ['file', fileSection], ['tls', tlsSection], ['fleet', fleetSection], ['flood', floodSection], ['http', httpSection], ['discover', discoverSection], ['tree', treeSection]];
/** Each part's heading, to keep its block from the current document when this run did not measure it. */
const HEADINGS = { disk: '### Disk server capacity', startup: '### Whole-process start-up', file: '### File transfer', tls: '### TLS', fleet: '### Fleet', flood: '### Fresh clients under a spoofed-source flood', http: '### HTTP on the file port', discover: '### Discovery', tree: '### Trees' };

/** The lines of `part`'s block in an earlier generated section (its heading up to the next heading), if any. */
function previousBlock(previous, part) {
  const lines = previous.split('\n');
  const start = lines.findIndex((l) => l.startsWith(HEADINGS[part]));
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && !lines[end].startsWith('### ') && !lines[end].startsWith(END)) end++;
  return lines.slice(start, end);
}

export function renderSection(previous = '') {
  const L = [BEGIN, '', '<!-- Generated by `npm run bench` from bench/out/*.json; edit bench/lib/report.mjs, not this section. -->', ''];
  for (const [part, render] of SECTIONS) {
    const p = join(OUT, `${part}.json`);
    if (!existsSync(p)) {
      // Not measured by this run: keep what the document already says about it.
      L.push(...(previousBlock(previous, part) ?? [`### ${part}`, '', `- not measured yet: run \`npm run bench -- ${part}\`.`, '']));
      continue;
    }
    L.push(...render(JSON.parse(readFileSync(p, 'utf8'))));
  }
  L.push(END);
  return L.join('\n');
}

export function updateDoc() {
  let doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : '';
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  const section = renderSection(a >= 0 && b > a ? doc.slice(a, b) : '');
  if (a >= 0 && b > a) doc = doc.slice(0, a) + section + doc.slice(b + END.length);
  else doc = `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(DOC, doc);
  return DOC;
}
