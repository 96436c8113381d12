// Running `netkit file fetch NAME...`: where results go (-o DIR, -o NEWNAME, -o -), the bar on a terminal, one line per retry, then the summary (or one JSON object) on stdout.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fetchFile, type FetchResult } from '../../services/file/fetch/session.js';
import { fetchToStream } from '../../services/file/fetch/to-stream.js';
import { runSet } from '../../services/file/fetch/tree.js';
import type { SetResult } from '../../services/file/fetch/set-types.js';
import { parseName } from '../../services/file/fetch/names.js';
import { formatBytes, jsonLine, sanitize } from '../../cli/output.js';
import { createProgressBar, type Progress } from '../../cli/progress.js';
import { onInterrupt } from '../../cli/signals.js';
import { stdoutFailure } from '../../cli/stdio.js';
import { EXIT_CODES, NetkitError, errnoOf, isNetkitError, type ErrorCode } from '../../errors.js';
import { setUpClient, type ClientArgs } from './client-setup.js';
import { failedWhat, failureLines, leftOutLines, retryLine, setJson, setSummary, singleSummary } from './fetch-render.js';

export { retryLine } from './fetch-render.js';

export interface FetchRunOptions extends ClientArgs {
  names: string[];
  /** -o as given: an existing directory, a new name for the one NAME, or `-` (stdout). */
  out?: string | undefined;
  force: boolean;
  checksum?: boolean;
  preserve?: boolean;
  json: boolean;
  timeoutMs: number;
  retries?: number;
  classic: boolean;
  /** Flush to disk before the final rename (default true). */
  fsync?: boolean;
}

/** Where -o puts things: a directory, a directory and a new name for the one NAME, or stdout. */
async function resolveOut(out: string | undefined, names: readonly string[]): Promise<{ outDir: string; rename?: string; stdout?: boolean }> {
  if (out === undefined) return { outDir: '.' };
  if (out === '-') {
    if (names.length !== 1 || parseName(names[0]!).kind !== 'plain') throw new NetkitError('USAGE', '-o - writes one file to stdout: name exactly one file', 'for several files, -o must be a directory');
    return { outDir: '.', stdout: true };
  }
  const st = await fsp.stat(out).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  if (!(st instanceof Error)) {
    if (st.isDirectory()) return { outDir: out };
    if (names.length === 1) return { outDir: path.dirname(out), rename: path.basename(out) };
    throw new NetkitError('LOCAL_IO', `--out ${out} is not a directory`, 'with several NAMEs, choose a directory with --out');
  }
  if (errnoOf(st) !== 'ENOENT' || names.length !== 1 || out.endsWith('/')) {
    throw new NetkitError('LOCAL_IO', `--out ${out}: ${errnoOf(st) === 'ENOENT' ? 'no such directory' : (errnoOf(st) ?? String(st))}`, 'create it first, or choose another --out');
  }
  // -o NEWNAME for one NAME: its directory must exist.
  const dir = path.dirname(out);
  const parent = await fsp.stat(dir).catch(() => undefined);
  if (!parent?.isDirectory()) throw new NetkitError('LOCAL_IO', `--out ${out}: no such directory ${dir}`, 'create it first, or choose another --out');
  return { outDir: dir, rename: path.basename(out) };
}

export async function runFileFetch(o: FetchRunOptions): Promise<void> {
  if (o.classic && o.names.length !== 1) throw new NetkitError('USAGE', '--classic fetches one file: the seed protocol cannot list or send several', 'run one fetch per file');
  const client = await setUpClient(o, o.names, true);
  const out = await resolveOut(o.out, client.names);
  if (out.stdout && o.json) throw new NetkitError('USAGE', '--json and -o - both want stdout', 'leave out one of them');
  if (out.stdout && (client.http || o.classic)) throw new NetkitError('USAGE', '-o - fetches from a netkit server (file protocol v1)', 'save the file, then read it');
  const single = client.names.length === 1 && parseName(client.names[0]!).kind === 'plain';
  const bar: Progress | undefined = o.quiet ? undefined : await createProgressBar(process.stderr, single ? (client.names[0]!.split('/').pop() ?? client.names[0]!) : 'listing');
  const say = (line: string): void => {
    bar?.clear();
    process.stderr.write(`netkit: ${sanitize(line)}\n`);
  };
  // Ctrl-C or SIGTERM: the fetch stops, keeps what arrived, and says so; a second signal ends at once.
  const abort = new AbortController();
  const stopListening = onInterrupt((signal) => abort.abort(signal));
  const common = {
    transport: client.transport,
    host: client.host,
    port: client.port,
    timeoutMs: o.timeoutMs,
    retries: o.retries,
    fsync: o.fsync,
    secret: client.key,
    signal: abort.signal,
    onNotice: o.quiet ? undefined : say,
    onRetry: o.quiet ? undefined : (r: Parameters<typeof retryLine>[0]) => say(retryLine(r)),
  };
  let printed = false;
  try {
    if (out.stdout || o.classic || client.http) {
      const opts = { ...common, name: client.names[0]!, outDir: out.outDir, saveAs: out.rename, force: o.force, classic: o.classic, ...(client.http ? { http: client.http } : {}), onProgress: bar ? (n: number, t: number) => bar.update(n, t) : undefined };
      const result = out.stdout ? await fetchToStream(opts, process.stdout) : await fetchFile(opts);
      bar?.stop();
      // Bytes that never reached the reader were not "written": the stdout failure is the one message.
      const lost = out.stdout ? await stdoutFailure() : undefined;
      if (lost) throw lost;
      printSingle(result, o, out.stdout === true);
      return;
    }
    const run = await runSet(
      {
        ...common,
        names: client.names,
        outDir: out.outDir,
        rename: out.rename,
        force: o.force,
        checksum: o.checksum,
        preserve: o.preserve,
        keepOutcomes: o.json,
        onProgress: bar ? (p) => bar.update(p.bytesDone, p.bytesTotal, p.set ? { name: p.current || 'listing', filesDone: p.filesDone, filesTotal: p.filesTotal } : undefined) : undefined,
      },
      { single },
    );
    bar?.stop();
    if (run.single) {
      const err = run.singleError ?? run.fatal;
      if (err !== undefined) throw err;
      const f = run.outcomes[0]!;
      if (f.status === 'failed') throw new NetkitError('FAILED', f.error?.message ?? 'failed');
      const r = run.result();
      printSingle(
        { name: f.name, path: f.path, size: f.size ?? 0, sha256: f.sha256 ?? '', verified: true, protocol: 'v1', resumedFrom: f.resumedFrom ?? 0, received: r.received, retries: r.retries, durationMs: r.durationMs, host: r.host, port: r.port, ...(f.status === 'skipped' ? { skipped: f.reason ?? 'already there' } : {}) },
        o,
        false,
      );
      return;
    }
    const r = run.result();
    printed = o.json;
    if (o.json) process.stdout.write(jsonLine(setJson(r, run.fatal)));
    // A fetch stopped before any file ended (a refused secret, say) has nothing to count: its error says it all.
    else if (!o.quiet && !(run.fatal && r.fetched + r.skipped + r.failed === 0)) process.stdout.write(setSummary(r));
    if (r.skippedByServer > 0 && !o.quiet) {
      process.stderr.write(`netkit: the server left out ${r.skippedByServer} ${r.skippedByServer === 1 ? 'entry' : 'entries'} it does not serve (links leaving its directory, links to directories, FIFOs, sockets, devices, unreadable files)\n`);
      process.stderr.write(leftOutLines(r.leftOut ?? []));
    }
    if (r.failed > 0) process.stderr.write(`netkit: ${failedWhat(r)} failed:\n${failureLines(r)}`);
    if (run.fatal) throw run.fatal;
    if (r.failed > 0 && r.fetched + r.skipped === 0) throw nothingArrived(r);
    if (r.failed > 0) {
      throw new NetkitError('PARTIAL', `${r.fetched + r.skipped} ${r.fetched + r.skipped === 1 ? 'file is' : 'files are'} there (${formatBytes(r.bytes)} fetched), ${r.failed} failed (listed above)`, 'fix what is listed (or use --force for files that differ), then run the same command again: what is there is skipped');
    }
  } catch (err) {
    bar?.stop();
    if (o.json && !printed && isNetkitError(err)) {
      process.stdout.write(jsonLine({ ok: false, error: { code: err.code, exitCode: err.exitCode, message: err.message } }));
    }
    throw err;
  } finally {
    stopListening();
  }
}

/**
 * A set where nothing is there and something failed is no partial success: it exits with the code its
 * failures share (3 when every NAME was missing), or 1 when their codes differ.
 */
function nothingArrived(r: SetResult): NetkitError {
  const failures = r.files.filter((f) => f.status === 'failed');
  const codes = new Set(failures.map((f) => f.error?.exitCode));
  const first = failures[0]?.error?.code;
  const code: ErrorCode = codes.size === 1 && first !== undefined && first in EXIT_CODES ? (first as ErrorCode) : 'FAILED';
  const why = codes.size === 1 ? '' : ' for different reasons';
  return new NetkitError(code, `nothing arrived (${r.failed} failed${why}, listed above)`, 'fix what is listed, then run the same command again');
}

function printSingle(result: FetchResult, o: FetchRunOptions, toStdout: boolean): void {
  // A file skipped by size and time was never hashed: no sha256 rather than an empty one.
  const { sha256, ...rest } = result;
  if (o.json) process.stdout.write(jsonLine({ ok: true, ...rest, ...(sha256 === '' ? {} : { sha256 }), durationMs: Math.round(result.durationMs) }));
  else if (!o.quiet) (toStdout ? process.stderr : process.stdout).write(toStdout ? `netkit: ${singleSummary(result).replace(/^saved - /, 'wrote stdout ')}` : singleSummary(result));
}
