// Running `netkit file list`: the listing as a table like `ls -l` (directories marked), or as one JSON array.
import { listRemote } from '../../services/file/fetch/list.js';
import { listEntryJson } from '../../services/file/serve/listing.js';
import { EntryKind, type Entry } from '../../protocol/file-list.js';
import { formatBytes, safeJson, sanitize } from '../../cli/output.js';
import { onInterrupt } from '../../cli/signals.js';
import { setUpClient, type ClientArgs } from './client-setup.js';
import { NetkitError } from '../../errors.js';
import { parseHttpUrl } from '../../services/target.js';
import { formatHostPort } from '../../transport/tcp.js';

export interface ListRunOptions extends ClientArgs {
  path: string;
  recursive: boolean;
  json: boolean;
  timeoutMs: number;
}

/** `drwxr-xr-x`, `-rwsr-xr-x`: the type and the nine permission bits, with setuid, setgid and sticky as ls shows them. */
export function modeString(dir: boolean, mode: number): string {
  const rwx = (bits: number, special: boolean, s: string): string =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? s : s.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return `${dir ? 'd' : '-'}${rwx(mode >> 6, (mode & 0o4000) !== 0, 's')}${rwx(mode >> 3, (mode & 0o2000) !== 0, 's')}${rwx(mode, (mode & 0o1000) !== 0, 't')}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local time, `2024-05-01 12:00`. */
export function shortTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** One row: mode, size (human; `-` for a directory), time, and the path below the listed directory (`/` after a directory). */
function row(dir: string, e: Entry): [mode: string, size: string, time: string, path: string] {
  const isDir = e.kind === EntryKind.DIRECTORY;
  const rel = dir === '' ? e.name : e.name.slice(dir.length + 1);
  return [modeString(isDir, e.mode), isDir ? '-' : formatBytes(e.size), shortTime(e.mtimeMs), `${sanitize(rel, 4096)}${isDir ? '/' : ''}`];
}

/**
 * The table's lines, one entry at a time (the entries are gone through twice: once for the width of
 * the size column, once for the lines), so a large listing never exists as one array of rows.
 */
export function* tableLines(dir: string, entries: Iterable<Entry>): Generator<string> {
  let width = 0;
  for (const e of entries) {
    const size = e.kind === EntryKind.DIRECTORY ? 1 : formatBytes(e.size).length;
    if (size > width) width = size;
  }
  for (const e of entries) {
    const r = row(dir, e);
    yield `${r[0]}  ${r[1].padStart(width)}  ${r[2]}  ${r[3]}\n`;
  }
}

/** The whole table as one string (for a small listing). */
export function renderTable(dir: string, entries: Iterable<Entry>): string {
  let out = '';
  for (const line of tableLines(dir, entries)) out += line;
  return out;
}

/** The listing as one JSON array, an entry at a time. */
function* jsonLines(entries: Iterable<Entry>): Generator<string> {
  let first = true;
  for (const e of entries) {
    yield `${first ? '[' : ','}${safeJson(listEntryJson({ path: e.name, type: e.kind === EntryKind.DIRECTORY ? 'dir' : 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode }))}`;
    first = false;
  }
  yield first ? '[]\n' : ']\n';
}

/** Write text to stdout in pieces of about 64 KiB, waiting while stdout is behind; stop if it fails. */
async function writeOut(pieces: Iterable<string>): Promise<void> {
  const out = process.stdout;
  let buf = '';
  const flush = async (): Promise<boolean> => {
    if (out.destroyed || out.writableEnded) return false;
    const more = out.write(buf);
    buf = '';
    if (!more) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          out.off('drain', done);
          out.off('error', done);
          out.off('close', done);
          resolve();
        };
        out.on('drain', done);
        out.on('error', done);
        out.on('close', done);
      });
    }
    return true;
  };
  for (const piece of pieces) {
    buf += piece;
    if (buf.length >= 64 * 1024 && !(await flush())) return;
  }
  if (buf !== '') await flush();
}

/** `file list` speaks to netkit servers only: an http(s) URL is a usage error that names the listing it likely meant. */
function refuseUrl(path: string): void {
  const m = /^(https?):/i.exec(path);
  if (!m) return;
  const scheme = m[1]!.toLowerCase();
  const tls = scheme === 'https' ? ' --tls' : '';
  let example = `netkit file list DIR/ -H HOST:PORT${tls}`;
  try {
    const text = path.replace(/^(https?):\/*/i, '$1://');
    const url = parseHttpUrl(text);
    if (url) {
      const dir = url.name === '' ? '.' : url.name;
      const port = /^https?:\/\/(\[[^\]]*\]|[^/:?#]*):\d/i.test(text) ? url.port : 0;
      example = `netkit file list '${sanitize(dir, 200)}' -H ${port === 0 ? formatHostPort(url.host, 0).replace(/:0$/, '') : formatHostPort(url.host, port)}${tls}`;
    }
  } catch {
    // Not even a URL: the generic example stands.
  }
  throw new NetkitError('USAGE', `cannot list '${sanitize(path, 200)}': file list lists a netkit file server's directories and takes no ${scheme}:// URL`, `name the directory and the server: ${example}`);
}

export async function runFileList(o: ListRunOptions): Promise<void> {
  refuseUrl(o.path);
  const client = await setUpClient(o, [o.path]);
  const abort = new AbortController();
  const stopListening = onInterrupt((signal) => abort.abort(signal));
  try {
    const listing = await listRemote({ transport: client.transport, host: client.host, port: client.port, path: client.names[0]!, recursive: o.recursive, timeoutMs: o.timeoutMs, secret: client.key, signal: abort.signal });
    await writeOut(o.json ? jsonLines(listing.entries) : tableLines(listing.dir, listing.entries));
    if (listing.skipped > 0 && !o.quiet) {
      process.stderr.write(`netkit: the server left out ${listing.skipped} ${listing.skipped === 1 ? 'entry' : 'entries'} it does not serve (links leaving its directory, links to directories, FIFOs, sockets, devices, unreadable files)\n`);
    }
  } finally {
    stopListening();
  }
}
