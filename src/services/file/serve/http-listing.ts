// GET of a directory over HTTP: a small self-contained HTML page (or JSON shaped like `file list --json`), streamed entry by entry from the listing service.
import { isNetkitError } from '../../../errors.js';
import { drain } from '../../file-stream.js';
import { REFUSAL_STATUS, type Exchange } from './http.js';
import { IdleDeadline } from './idle.js';
import { directoryPageEnd, directoryPageStart, directoryRow, LISTING_CSP } from './listing-html.js';
import { listDirectory, listEntryJson, NOT_A_DIRECTORY, type ListEntry } from './listing.js';
import { ENDS, refusalOutcome, type Session } from './session.js';
import { ConnectionEnd } from './types.js';

/** Bytes gathered before one write: one write per few hundred entries, not one per entry. */
const FLUSH_AT = 64 * 1024;

/** q of a media type in an Accept value: undefined when not listed. */
function quality(accept: string, type: string): number | undefined {
  for (const part of accept.split(',')) {
    const [media, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    if (media !== type) continue;
    const q = params.find((p) => p.startsWith('q='));
    const v = q === undefined ? 1 : Number(q.slice(2));
    return Number.isFinite(v) ? v : 0;
  }
  return undefined;
}

/**
 * JSON when the query says `format=json`, or when Accept lists application/json at least as high as
 * text/html (a browser lists only text/html); `format=html` forces the page.
 */
export function wantsJson(query: string, accept: string | undefined): boolean {
  const format = new URLSearchParams(query).get('format');
  if (format === 'json') return true;
  if (format === 'html') return false;
  const json = quality(accept ?? '', 'application/json');
  return json !== undefined && json > 0 && json >= (quality(accept ?? '', 'text/html') ?? 0);
}

/** Write `text` to the reply, waiting while the client is behind. */
async function put(s: Session, x: Exchange, text: string): Promise<void> {
  const body = x.reply.body;
  if (body.destroyed) throw new ConnectionEnd('aborted', 'the client went away during the listing');
  x.entry.bytes += Buffer.byteLength(text);
  if (!body.write(text)) await drain(body, ENDS);
}

export async function serveDirectory(x: Exchange, dir: string, query: string): Promise<void> {
  const { s } = x;
  const { ctx, conn } = s;
  const stop = new AbortController();
  let listing;
  try {
    listing = await listDirectory(ctx.root, dir, { recursive: false, refuseHardLinks: ctx.refuseHardLinks, signal: stop.signal });
  } catch (err) {
    if (!isNetkitError(err)) throw err;
    if (err.message === NOT_A_DIRECTORY) return x.text(404, 'not-found', 'not a directory (a file has no trailing /)');
    const outcome = refusalOutcome(err);
    return x.text(REFUSAL_STATUS[outcome], outcome, err.message);
  }
  const json = wantsJson(query, x.req.header('accept'));
  x.start(200, {
    'Content-Type': json ? 'application/json' : 'text/html; charset=utf-8',
    'Cache-Control': 'no-cache',
    Vary: 'Accept',
    ...(json ? {} : { 'Content-Security-Policy': LISTING_CSP, 'Referrer-Policy': 'no-referrer' }),
  });
  if (x.head) {
    x.entry.outcome = 'ok';
    await x.reply.end();
    return;
  }
  conn.enter('transfer');
  const idle = new IdleDeadline(conn, ctx.idleTimeoutMs);
  const gone = (): void => stop.abort(new ConnectionEnd('aborted', 'the client went away during the listing'));
  s.socket.once('close', gone);
  try {
    let pending = json ? '[' : directoryPageStart(dir);
    let count = 0;
    for await (const e of listing.entries as AsyncIterable<ListEntry>) {
      pending += json ? `${count === 0 ? '' : ','}\n${JSON.stringify(listEntryJson(e))}` : directoryRow(e);
      count += 1;
      if (pending.length >= FLUSH_AT) {
        await put(s, x, pending);
        idle.progress();
        pending = '';
      }
    }
    pending += json ? `${count === 0 ? '' : '\n'}]\n` : directoryPageEnd(count, listing.skipped());
    await put(s, x, pending);
  } catch (err) {
    if (isNetkitError(err) && err.code === 'TOO_LARGE') throw new ConnectionEnd('too-large', err.message);
    throw err;
  } finally {
    idle.stop();
    s.socket.off('close', gone);
  }
  if (!(await x.reply.end())) throw new ConnectionEnd('aborted', 'the client went away at the end of the listing');
  x.entry.outcome = 'ok';
}
