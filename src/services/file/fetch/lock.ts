// One lock file per fetched target: a second netkit fetching the same file into the same place is told who holds it; a dead holder's lock is taken over.
import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fsp, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { NetkitError, errnoOf, fsError } from '../../../errors.js';

/** What a lock file holds: enough to tell a live holder from a dead one, and to release only our own lock. */
interface LockInfo {
  pid: number;
  /** The holder's start time (/proc/PID/stat field 22), so a recycled pid is not taken for the holder. */
  start?: string;
  host: string;
  token: string;
}

const CREATE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | (fsc.O_NOFOLLOW ?? 0);
const READ = fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0) | (fsc.O_NONBLOCK ?? 0);

/** The start time of process `pid` in clock ticks since boot, where /proc tells it (Linux). */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(info: LockInfo): boolean {
  if (!(info.pid > 0)) return false; // unreadable or not a lock netkit wrote
  if (info.host !== hostname()) return true; // another machine's process (a shared file system): cannot tell, assume it lives
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    if (errnoOf(err) !== 'EPERM') return false;
  }
  if (info.start === undefined) return true;
  const now = startTimeOf(info.pid);
  return now === undefined || now === info.start;
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, READ);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw fsError(err, `cannot read the lock ${path}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > 4096) return { pid: 0, host: '', token: '' };
    const info = JSON.parse(await fh.readFile('utf8')) as Partial<LockInfo>;
    if (typeof info.pid === 'number' && typeof info.host === 'string' && typeof info.token === 'string') return info as LockInfo;
  } catch {
    // unreadable: treated as stale below (it was linked into place whole, so it is not half-written)
  } finally {
    await fh.close();
  }
  return { pid: 0, host: '', token: '' };
}

/** Create `path` holding `text`, failing with EEXIST if it exists: written to a temporary name, then linked into place whole. */
async function createWhole(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fsp.open(tmp, CREATE, 0o600);
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
  try {
    await fsp.link(tmp, path);
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
}

export interface HeldLock {
  readonly path: string;
  /** Remove the lock if it is still ours. Safe to call twice. */
  release(): Promise<void>;
}

/**
 * Take the lock at `path` for this process. If a live netkit holds it, fail with LOCKED naming its pid
 * and `what` (e.g. "fetching big.iso into /tmp"). A lock whose holder is dead is taken over; only one of
 * several processes doing that at once wins, through an exclusive `.break` file.
 */
export async function acquireLock(path: string, what: string): Promise<HeldLock> {
  const mine: LockInfo = { pid: process.pid, host: hostname(), token: randomBytes(12).toString('hex') };
  const start = startTimeOf(process.pid);
  if (start !== undefined) mine.start = start;
  const text = `${JSON.stringify(mine)}\n`;
  for (let round = 0; round < 4; round++) {
    try {
      await createWhole(path, text);
      return held(path, mine.token);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw fsError(err, `cannot create the lock ${path}`);
    }
    const holder = await readLock(path);
    if (holder === undefined) continue; // released meanwhile
    if (alive(holder)) {
      const who = holder.host === mine.host ? `pid ${holder.pid}` : `pid ${holder.pid} on ${holder.host}`;
      throw new NetkitError('LOCKED', `another netkit (${who}) is ${what}`, `wait for it to finish, or stop it; if no such process exists, delete ${path}`);
    }
    await breakStale(path, holder);
  }
  throw new NetkitError('LOCKED', `cannot take the lock ${path}: other processes keep taking it`, `delete ${path} if no netkit is running`);
}

/** Remove a dead holder's lock, unless another process is already doing so (then let it). */
async function breakStale(path: string, stale: LockInfo): Promise<void> {
  const breaker = `${path}.break`;
  try {
    await createWhole(breaker, `${JSON.stringify({ pid: process.pid, host: hostname(), token: '' })}\n`);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw fsError(err, `cannot create ${breaker}`);
    const other = await readLock(breaker);
    if (other && !alive(other)) await fsp.unlink(breaker).catch(() => undefined);
    return;
  }
  try {
    const now = await readLock(path);
    if (now && now.token === stale.token && now.pid === stale.pid) await fsp.unlink(path).catch(() => undefined);
  } finally {
    await fsp.unlink(breaker).catch(() => undefined);
  }
}

function held(path: string, token: string): HeldLock {
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      const now = await readLock(path).catch(() => undefined);
      if (now?.token === token) await fsp.unlink(path).catch(() => undefined);
    },
  };
}
