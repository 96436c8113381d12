// The pipelined v1 session (docs/protocol.md 2.11): requests read a window ahead and prepared concurrently, answered strictly in order, small answers written back to back, until the client half-closes.
import { isNetkitError } from '../../../errors.js';
import { decodeList, type ListRequest } from '../../../protocol/file-list.js';
import { FrameType, Status, decodeRequest, type Frame, type Request, type StatusValue } from '../../../protocol/file-v1.js';
import { drain } from '../../file-stream.js';
import { refusalFrame, smallAnswer, streamLarge, type Answered } from './answer.js';
import { IdleDeadline } from './idle.js';
import { SMALL_FILE, prepareFile, type Prepared } from './prepare.js';
import { RequestInput } from './request-input.js';
import { ENDS } from './session.js';
import { SessionTally } from './session-tally.js';
import type { Outcome } from './types.js';
import { authorize, holdOff, requestedName } from './v1-auth.js';
import { prepareList, streamListing, type PreparedList } from './v1-list.js';
import type { V1 } from './v1.js';

/** Requests read and being prepared beyond the one being answered, at most (memory is bounded by the prefetch budget too). */
export const AHEAD = 64;
/** Unparsed request bytes held at most; past it the socket is paused and the rest waits in the kernel. */
const INPUT_CAP = 64 * 1024;
/** Small answers are copied together into chunks of this size, each handed to the kernel in one write. */
const BATCH = 256 * 1024;

type Job =
  /** `hold`: bytes of the prefetch budget it holds (the small-file limit until read, then what it took). */
  | { kind: 'file'; seq: number; request: Request; prepared?: Prepared; ready: Promise<void>; hold: number }
  | { kind: 'list'; seq: number; list: ListRequest; prepared?: PreparedList; ready: Promise<void> }
  /** A refusal that ends the session (a failed proof, a malformed frame), answered after `delayMs` from `at`. */
  | { kind: 'end'; seq: number; name?: string; status: StatusValue; outcome: Outcome; detail: string; logDetail?: string; delayMs: number; at: number };

/**
 * Serve requests until the client half-closes after its last one. The first request is under the
 * header deadline that runs from accept; between requests the connection waits for the next one under
 * the idle timeout and may be evicted for a newcomer, as a connection in its header may; while it
 * answers, it is in its transfer. A refusal answers one request; a failed proof or a malformed frame
 * is answered and ends the session.
 */
export async function serveSession(v1: V1): Promise<void> {
  const { s } = v1;
  const { ctx, conn, socket } = s;
  const input = new RequestInput(socket, s.reader, INPUT_CAP);
  const idle = new IdleDeadline(conn, ctx.idleTimeoutMs);
  const tally = new SessionTally(s.entry);
  const queue: Job[] = [];
  let seq = 0;
  let stopped = false;
  let first = true;
  /** The chunk small answers are gathered in, and how much of it is used. */
  let chunk: Buffer | undefined;
  let used = 0;
  /** Prefetch budget held by this session's jobs. */
  let reserved = 0;
  let over = false;
  const budget = ctx.prefetch;
  const release = (job: Job, keep = 0): void => {
    if (job.kind !== 'file' || job.hold === keep) return;
    budget.give(job.hold - keep);
    reserved -= job.hold - keep;
    job.hold = keep;
  };

  const makeJob = (frame: Frame, n: number): Job => {
    const end = (status: StatusValue, outcome: Outcome, detail: string, delayMs = 0, logDetail?: string): Job => ({ kind: 'end', seq: n, name: requestedName(frame), status, outcome, detail, logDetail, delayMs, at: Date.now() });
    if (ctx.key) {
      const a = authorize(v1, frame, n);
      if (!a.ok) return end(Status.UNAUTHORIZED, 'unauthorized', a.why, a.delayMs, a.detail);
    }
    try {
      if (frame.type === FrameType.REQUEST) {
        const request = decodeRequest(frame);
        const job: Job = { kind: 'file', seq: n, request, ready: Promise.resolve(), hold: SMALL_FILE };
        reserved += SMALL_FILE;
        job.ready = prepareFile(ctx, request, true).then((p) => {
          job.prepared = p;
          release(job, over || p.kind !== 'small' ? 0 : p.data.length);
        });
        return job;
      }
      if (frame.type === FrameType.LIST) {
        const list = decodeList(frame);
        const job: Job = { kind: 'list', seq: n, list, ready: Promise.resolve() };
        job.ready = prepareList(ctx, list).then((p) => void (job.prepared = p));
        return job;
      }
      return end(Status.BAD_REQUEST, 'bad-request', `expected a REQUEST or LIST frame, got frame type 0x${frame.type.toString(16)}`);
    } catch (err) {
      if (isNetkitError(err)) return end(Status.BAD_REQUEST, 'bad-request', err.message);
      throw err;
    }
  };

  /** Parse what has arrived into jobs, up to the window; a session-ending job stops the parsing. */
  const fill = (): void => {
    while (!stopped && queue.length < AHEAD) {
      // A request may need the whole small-file limit until it is read; with none queued, one always may.
      if (!budget.tryTake(queue.length === 0 ? 0 : reserved, SMALL_FILE)) return;
      let job: Job;
      try {
        const frame = input.poll();
        if (!frame) {
          budget.give(SMALL_FILE);
          return;
        }
        job = makeJob(frame, seq++);
        if (job.kind !== 'file') budget.give(SMALL_FILE);
      } catch (err) {
        budget.give(SMALL_FILE);
        if (!isNetkitError(err)) throw err;
        job = { kind: 'end', seq: seq++, status: Status.BAD_REQUEST, outcome: 'bad-request', detail: err.message, delayMs: 0, at: Date.now() };
      }
      if (first) {
        conn.requestComplete();
        first = false;
      }
      queue.push(job);
      if (job.kind === 'end') stopped = true;
    }
  };

  /** Chunks the kernel has taken, ready to be filled again (at most two are kept). */
  const spare: Buffer[] = [];
  const uncork = (): void => {
    if (!chunk || used === 0) return;
    const full = chunk;
    socket.write(full.subarray(0, used), () => void (spare.length < 2 && spare.push(full)));
    chunk = undefined;
    used = 0;
  };
  const write = (buf: Buffer): void => {
    if (!chunk || used + buf.length > chunk.length) {
      uncork();
      if (buf.length > BATCH / 4) {
        socket.write(buf);
        return;
      }
      chunk = spare.pop() ?? Buffer.allocUnsafeSlow(BATCH);
    }
    used += buf.copy(chunk, used);
  };

  /**
   * Hand what is gathered to the socket and, while the client does not take it, wait: no request is
   * parsed or prepared meanwhile, so a client that pipelines requests and never reads gets at most the
   * window of them prepared and a chunk of answers queued, its further requests wait in its own socket
   * buffers (the input is paused at its cap), and the idle deadline ends it.
   */
  const drained = async (): Promise<void> => {
    conn.enter('transfer');
    await drain(socket, ENDS);
  };
  const flush = async (): Promise<void> => {
    uncork();
    if (socket.writableNeedDrain) await drained();
  };

  try {
    for (;;) {
      // Answers written earlier still wait for the client: read no further request until they leave.
      if (socket.writableNeedDrain) await drained();
      fill();
      const job = queue[0];
      if (!job) {
        await flush();
        if (stopped || input.ended) break;
        // Waiting for the client: evictable, and bounded by the idle timeout once a request was answered.
        if (tally.requests > 0) conn.enter('header');
        // Every answer is out: a server shutting down ends this session gracefully, not with a cut.
        if (tally.requests > 0) conn.endBetweenRequests = () => (input.expire(), true);
        const got = await input.wait(tally.requests > 0 ? ctx.idleTimeoutMs : undefined);
        conn.endBetweenRequests = undefined;
        if (got === 'timeout') {
          tally.note(`no further request within ${ctx.idleTimeoutMs / 1000}s`);
          break;
        }
        if (got === 'stop') {
          tally.note('the server is shutting down');
          break;
        }
        continue;
      }
      if (socket.destroyed) throw ENDS.closed('close');
      if (job.kind !== 'end' && job.prepared === undefined) {
        await flush();
        await job.ready;
        continue;
      }
      queue.shift();
      release(job);
      conn.enter('transfer');
      if (job.kind === 'file' && job.prepared!.kind !== 'large') {
        // Ready now: no read, no wait. Gathered in one chunk, so many small answers leave in one system call.
        const p = job.prepared!;
        if (p.kind === 'small') {
          const { parts, answered } = smallAnswer(v1, p, job.request, job.seq);
          for (const part of parts) write(part);
          tally.add(job.request.name, answered);
        } else {
          write(refusalFrame(v1, p, job.seq));
          tally.add(job.request.name, { outcome: p.outcome, detail: p.detail, bytes: 0 });
        }
        if (used >= BATCH - 4096) await flush();
        continue;
      }
      await flush();
      if (job.kind === 'end') {
        await holdOff(socket, job.at + job.delayMs - Date.now());
        write(refusalFrame(v1, { kind: 'refused', status: job.status, outcome: job.outcome, detail: job.detail }, job.seq));
        uncork();
        tally.add(job.name, { outcome: job.outcome, detail: job.logDetail ?? job.detail, bytes: 0 }, true);
        break;
      }
      if (job.kind === 'list') {
        const p = job.prepared!;
        const r = p.kind === 'refused' ? (write(refusalFrame(v1, p, job.seq)), { outcome: p.outcome, detail: p.detail, bytes: 0 }) : await streamListing(v1, p.listing, job.seq);
        tally.add(job.list.name || '.', r);
        continue;
      }
      tally.add(job.request.name, await answerLarge(v1, job, idle, tally));
    }
    uncork();
    input.stop();
    tally.close(true);
    await s.finish();
  } catch (err) {
    s.failed(err);
    tally.close(false);
  } finally {
    over = true;
    idle.stop();
    input.stop();
    // Whatever is still queued gives its budget back (now, or once its read returns).
    for (const job of queue) release(job);
  }
}

/** A large file at its turn: streamed, or refused if its turn finds it different (or the prefix budget spent). */
async function answerLarge(v1: V1, job: Extract<Job, { kind: 'file' }>, idle: IdleDeadline, tally: SessionTally): Promise<Answered> {
  const base = tally.bytes;
  tally.answering(job.request.name);
  const r = await streamLarge(v1, job.request, job.seq, { idle, onSent: (n) => tally.sending(base + n) });
  if (!('kind' in r)) return r;
  v1.s.socket.write(refusalFrame(v1, r, job.seq));
  return { outcome: r.outcome, detail: r.detail, bytes: 0 };
}
