// `netkit file list [PATH]`: one LIST over a session (sent with the HELLO when there is no secret), believed only once its END verifies.
import type { KeyObject } from 'node:crypto';
import { NetkitError, isNetkitError } from '../../../errors.js';
import { sanitize } from '../../../cli/output.js';
import { EntryKind, type Entry } from '../../../protocol/file-list.js';
import type { StreamTransport } from '../../../transport/tcp.js';
import { formatHostPort } from '../../../transport/tcp.js';
import { listFrame, readListingFrames } from './list-read.js';
import { openSession } from './session-conn.js';

export interface ListRemoteOptions {
  transport: StreamTransport;
  host: string;
  port: number;
  /** The directory to list, relative to the served directory ('' or '.': the served directory). */
  path: string;
  recursive: boolean;
  timeoutMs: number;
  secret?: KeyObject | undefined;
  signal?: AbortSignal | undefined;
}

export interface RemoteListing {
  /** The directory listed, normalised ('' for the served directory). */
  dir: string;
  /**
   * Files and directories, in the server's order (depth-first, each directory sorted by name); kept
   * compactly and decoded as they are iterated (which may be done more than once).
   */
  entries: Iterable<Entry>;
  /** Entries the server left out (links leaving its directory, FIFOs, devices, unreadable...). */
  skipped: number;
}

/** The directory as the server names it: empty and `.` segments dropped; `..` is refused here already. */
export function normaliseListPath(p: string): string {
  const segments = p.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new NetkitError('USAGE', `'${sanitize(p)}' has a '..' segment`, 'paths are relative to the served directory and cannot leave it');
  return segments.join('/');
}

export async function listRemote(o: ListRemoteOptions): Promise<RemoteListing> {
  const dir = normaliseListPath(o.path);
  const target = formatHostPort(o.host, o.port);
  const asked = { target, name: dir === '' ? '.' : dir };
  const build = listFrame(dir, o.recursive);
  const { sc, early } = await openSession({ transport: o.transport, host: o.host, port: o.port, target, timeoutMs: o.timeoutMs, signal: o.signal, key: o.secret, reached: false }, build, asked);
  try {
    if (!sc.session) {
      throw new NetkitError('PROTOCOL', `${target} is an older netkit server that cannot list directories`, 'upgrade netkit on the server, or fetch files by name');
    }
    let seq = 0;
    if (!early) {
      const req = sc.request(build);
      seq = req.seq;
      sc.socket.write(req.bytes);
    }
    const answer = await readListingFrames(sc, seq, asked);
    sc.finish();
    const listed = answer.entries;
    const entries: Iterable<Entry> = {
      *[Symbol.iterator]() {
        for (const e of listed) if (e.kind === EntryKind.FILE || e.kind === EntryKind.DIRECTORY) yield e;
      },
    };
    return { dir, entries, skipped: answer.skipped };
  } catch (err) {
    if (isNetkitError(err) && err.code === 'NOT_FOUND') {
      throw new NetkitError('NOT_FOUND', `${target} has no directory '${sanitize(asked.name, 200)}'`, 'check the path: it is relative to the directory the server serves', { cause: err });
    }
    throw err;
  } finally {
    if (!sc.finished) sc.destroy();
  }
}
