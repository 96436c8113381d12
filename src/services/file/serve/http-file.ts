// GET and HEAD of a file over HTTP: the jail, validators, 304, one range (206/416, If-Range), Repr-Digest as a header when known or as a trailer when asked for, and the body with backpressure.
import type { Hash } from 'node:crypto';
import mime from 'mime';
import { isNetkitError } from '../../../errors.js';
import { contentRange, entityTag, httpDate, ifRangeAllows, notModified, parseRange, reprDigest, type Validators } from '../../../protocol/http-range.js';
import { encodePath } from '../../../protocol/http-target.js';
import { prefixAllowanceMs } from '../../file-stream.js';
import { hashRange, sendBody } from './body.js';
import { identityChange, validatorOf } from './hash-cache.js';
import { REFUSAL_STATUS, type Exchange } from './http.js';
import { IdleDeadline } from './idle.js';
import { isDirectoryRefusal, normaliseName, openInJail, type JailedFile } from './jail.js';
import { refusalOutcome } from './session.js';
import { ConnectionEnd } from './types.js';

/** Files above this size are refused, as in v1: the body code counts bytes in doubles. */
const MAX_SIZE = BigInt(Number.MAX_SAFE_INTEGER);

/** The media type of a name, from its extension; unknown ones are plain bytes. */
export function contentType(name: string): string {
  return mime.getType(name) ?? 'application/octet-stream';
}

/** `/dir` names a directory: send the browser to `/dir/`, built from the checked segments only. */
async function redirectToDirectory(x: Exchange, name: string, query: string): Promise<void> {
  const location = `/${encodePath(normaliseName(name))}/${query === '' ? '' : `?${query}`}`;
  await x.text(301, 'ok', `a directory: ${location}`, { Location: location });
}

/** Whether the client asked for the digest as a trailer (TE: trailers), which needs HTTP/1.1's chunked body. */
function wantsTrailer(x: Exchange): boolean {
  return x.req.version === '1.1' && /(^|,)\s*trailers\s*(;|,|$)/i.test(x.req.header('te') ?? '');
}

export async function serveFile(x: Exchange, name: string, query: string): Promise<void> {
  const { s } = x;
  const { ctx } = s;
  let file: JailedFile;
  try {
    file = await openInJail(ctx.root, name, { refuseHardLinks: ctx.refuseHardLinks });
  } catch (err) {
    if (!isNetkitError(err)) throw err;
    if (isDirectoryRefusal(err)) return redirectToDirectory(x, name, query);
    const outcome = refusalOutcome(err);
    return x.text(REFUSAL_STATUS[outcome], outcome, err.message);
  }
  try {
    await answerFile(x, file);
  } finally {
    await file.handle.close().catch(() => undefined);
  }
}

async function answerFile(x: Exchange, file: JailedFile): Promise<void> {
  const { s, req, entry } = x;
  const { ctx, conn } = s;
  const st = file.stat;
  if (st.size > MAX_SIZE) return x.text(403, 'too-large', `the file is ${st.size} bytes, more than this server sends (2^53 - 1)`);
  const size = Number(st.size);
  entry.size = size;
  const v: Validators = { etag: entityTag(validatorOf(st)), mtimeMs: Number(st.mtimeNs / 1_000_000n) };
  const validators = { ETag: v.etag, 'Last-Modified': httpDate(v.mtimeMs), 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-cache' };
  if (notModified({ ifNoneMatch: req.header('if-none-match'), ifModifiedSince: req.header('if-modified-since') }, v)) {
    return x.text(304, 'ok', 'not modified', validators);
  }
  let range = parseRange(req.header('range'), size);
  if (range.kind !== 'full' && !ifRangeAllows(req.header('if-range'), v)) range = { kind: 'full' };
  // No range of an empty file is satisfiable, yet a client resuming from 0 (`bytes=0-`) wants it whole:
  // the Range is ignored (RFC 9110 14.2 allows it), and the answer is the empty 200.
  if (size === 0) range = { kind: 'full' };
  if (range.kind === 'unsatisfiable') {
    return x.text(416, 'bad-offset', `the range is outside the file (${size} bytes)`, { ...validators, 'Content-Range': contentRange(size) });
  }
  const from = range.kind === 'partial' ? range.start : 0;
  const to = range.kind === 'partial' ? range.end + 1 : size;
  entry.offset = from;
  const known = ctx.hashCache.get(st);
  // The digest of the whole file as a trailer: computed from the bytes sent (and, for a range that runs
  // to the end, the prefix before it, under the same per-address budget as a v1 resume).
  let trailer = !known && !x.head && to === size && wantsTrailer(x);
  // The prefix continues from a SHA-256 state kept where a transfer got to, as a v1 resume does.
  let start = trailer ? ctx.prefixStates.start(st, from) : undefined;
  let prefix: { release: () => void } | undefined;
  if (start && from - start.from > ctx.prefixStates.step) {
    const budget = ctx.prefixBudget.tryStart(conn.source, from - start.from);
    if (budget.ok) prefix = budget;
    else {
      trailer = false;
      start = undefined;
    }
  }
  const headers: Record<string, string | number> = { ...validators, 'Content-Type': contentType(file.name) };
  if (range.kind === 'partial') headers['Content-Range'] = contentRange(size, range);
  if (known) headers['Repr-Digest'] = reprDigest(known);
  if (trailer) headers.Trailer = 'Repr-Digest';
  else headers['Content-Length'] = to - from;
  const status = range.kind === 'partial' ? 206 : 200;
  if (x.head) {
    entry.outcome = 'ok';
    x.start(status, headers);
    await x.reply.end();
    return;
  }
  conn.enter('transfer');
  const hash: Hash | undefined = start?.hash;
  try {
    x.start(status, headers);
    if (start && from > start.from) await hashRange(s.socket, file.handle, start.from, from, ctx.pool, start.hash);
  } finally {
    prefix?.release();
  }
  const recorder = hash ? ctx.prefixStates.recorder(st, from, hash) : undefined;
  const idle = new IdleDeadline(conn, ctx.idleTimeoutMs, trailer && from > 0 ? prefixAllowanceMs(from) : 0);
  try {
    entry.bytes = await sendBody(x.reply.body, file.handle, from, to, {
      pool: ctx.pool,
      hash: recorder,
      onSent: (n) => (entry.bytes = n),
      onFlushed: () => idle.progress(),
    });
  } finally {
    idle.stop();
    recorder?.stop();
  }
  await finish(x, file, hash);
}

/**
 * After the last body byte, check the file's identity on the descriptor. Changed: the connection is
 * reset, so a chunked body never completes and its trailer never comes; a body framed by
 * Content-Length may still arrive whole, and then only a digest or the ETag of a later request shows
 * the change. Unchanged: the trailer (if asked for) carries the digest, which the cache keeps.
 */
async function finish(x: Exchange, file: JailedFile, hash: Hash | undefined): Promise<void> {
  const { entry } = x;
  const cache = x.s.ctx.hashCache;
  const change = identityChange(file.stat, await file.handle.stat({ bigint: true }));
  if (change) {
    cache.delete(file.stat);
    x.s.ctx.prefixStates.delete(file.stat);
    entry.outcome = 'changed';
    entry.detail = `the file changed while it was sent (${change}); the connection was reset`;
    x.reply.abort(new ConnectionEnd('changed', entry.detail));
    return;
  }
  let trailers: Record<string, string> | undefined;
  if (hash) {
    const digest = hash.digest();
    cache.set(file.stat, digest);
    trailers = { 'Repr-Digest': reprDigest(digest) };
  }
  const sent = await x.reply.end(trailers);
  if (!sent) throw new ConnectionEnd('aborted', `the client went away after ${entry.bytes} bytes`);
  entry.outcome = 'ok';
}
