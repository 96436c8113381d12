// HTTP/1.x on the file server's port (docs/protocol.md section 6): claim a request line, then answer each request in turn, logged one by one, under the connection's deadlines and limits.
import { performance } from 'node:perf_hooks';
import { isNetkitError } from '../../../errors.js';
import { httpRequestLine } from '../../../protocol/http-sniff.js';
import { parseTarget } from '../../../protocol/http-target.js';
import type { HttpReply, HttpRequestHead } from '../../../transport/http.js';
import type { Protocol } from './dispatch.js';
import { checkBearer } from './http-auth.js';
import { serveFile } from './http-file.js';
import { serveDirectory } from './http-listing.js';
import type { Session } from './session.js';
import { ConnectionEnd, type Outcome, type TransferLog } from './types.js';

/** The largest request head (request line and headers) accepted: 8 KiB, past which 431 answers. */
export const HTTP_MAX_HEAD = 8 * 1024;

/** Status codes for the jail's and the target parser's refusals. */
export const REFUSAL_STATUS: Record<'not-found' | 'forbidden' | 'bad-request', number> = { 'not-found': 404, forbidden: 403, 'bad-request': 400 };

/** Headers on every answer: no MIME sniffing, so a text file can never be run as a page. */
const COMMON = { 'X-Content-Type-Options': 'nosniff' } as const;

/** One request being answered: the request, the reply, and its log entry. */
export class Exchange {
  readonly started = performance.now();
  readonly entry: TransferLog;
  /** Close the connection after this answer (a request with a body, a malformed one). */
  closeAfter = false;

  constructor(
    readonly s: Session,
    readonly req: HttpRequestHead,
    readonly reply: HttpReply,
  ) {
    this.entry = { peer: s.conn.peer, protocol: 'http', method: req.method, bytes: 0, durationMs: 0, outcome: 'error' };
  }

  get head(): boolean {
    return this.req.method === 'HEAD';
  }

  /** Whether this connection runs inside TLS. */
  get secure(): boolean {
    return this.s.conn.socket !== this.s.conn.raw;
  }

  /** Send the status line and headers (and the common ones). */
  start(status: number, headers: Record<string, string | number>): void {
    this.entry.status = status;
    this.reply.head(status, { ...COMMON, ...headers, ...(this.closeAfter ? { Connection: 'close' } : {}) });
  }

  /** A short text answer (refusals, redirects, 304, 401...), with the outcome it is logged under. */
  async text(status: number, outcome: Outcome, message: string, headers: Record<string, string | number> = {}): Promise<void> {
    this.entry.outcome = outcome;
    if (outcome !== 'ok') this.entry.detail = message;
    // A 304 has no content, and must not announce a length other than the file's (RFC 9110 8.6): none.
    const body = status === 304 ? '' : `${message}\n`;
    const content: Record<string, string | number> = status === 304 ? {} : { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) };
    this.start(status, { ...content, 'Cache-Control': 'no-store', ...headers });
    if (!this.head && body !== '') this.reply.body.write(body);
    await this.reply.end();
  }
}

/** Route one request: method, body, secret, target; then a file or a directory. */
async function route(x: Exchange): Promise<void> {
  const { req } = x;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    x.closeAfter = req.hasBody;
    return x.text(405, 'bad-request', `${req.method} is not served here: this server answers GET and HEAD`, { Allow: 'GET, HEAD' });
  }
  if (req.hasBody) {
    x.closeAfter = true;
    return x.text(400, 'bad-request', 'a GET or HEAD request carries no body here');
  }
  if (req.hostFields > 1 || (req.hostFields === 0 && req.version === '1.1')) {
    x.closeAfter = true;
    x.entry.name = req.target;
    return x.text(400, 'bad-request', req.hostFields > 1 ? 'more than one Host header' : 'an HTTP/1.1 request needs a Host header');
  }
  if (x.s.ctx.key) {
    // A refusal for the secret is logged with the path asked for too (decoded when it can be).
    try {
      x.entry.name = parseTarget(req.target).path;
    } catch {
      x.entry.name = req.target;
    }
    if (!(await checkBearer(x))) return;
  }
  let target;
  try {
    target = parseTarget(req.target);
  } catch (err) {
    if (!isNetkitError(err)) throw err;
    x.entry.name = req.target;
    return x.text(400, 'bad-request', err.message);
  }
  x.entry.name = target.path;
  // One leading '/' is the root; the rest goes to the jail exactly as a v1 NAME would.
  const name = target.path.slice(1);
  if (name === '' || name.endsWith('/')) return serveDirectory(x, name.replace(/\/+$/, ''), target.query);
  return serveFile(x, name, target.query);
}

/** The outcome of an exchange cut short: the reason the socket was destroyed with, if any, wins. */
function cutShort(x: Exchange, err: unknown): void {
  const { conn } = x.s;
  const destroyedWith = (conn.socket as { errored?: unknown }).errored ?? (conn.raw as { errored?: unknown }).errored;
  const end = destroyedWith instanceof ConnectionEnd ? destroyedWith : err instanceof ConnectionEnd ? err : undefined;
  x.entry.outcome = end?.outcome ?? 'error';
  x.entry.detail = end?.detail ?? (err instanceof Error ? err.message : String(err));
}

async function answer(s: Session, req: HttpRequestHead, reply: HttpReply): Promise<void> {
  s.logged = true;
  s.conn.requestComplete();
  const x = new Exchange(s, req, reply);
  try {
    await route(x);
  } catch (err) {
    cutShort(x, err);
    reply.abort();
  } finally {
    // Waiting for the next request (keep-alive) is the header phase again: evictable, under a fresh deadline.
    s.conn.expectRequest();
    x.entry.durationMs = performance.now() - x.started;
    s.ctx.log(x.entry);
  }
}

/** The connection's own entry, logged only when no request was ever answered on it. */
function malformed(s: Session, status: number, why: string, req?: { method: string; target: string }): string {
  s.entry.status = status;
  if (req) {
    s.conn.requestComplete();
    s.entry.method = req.method;
    s.entry.name = req.target;
  }
  s.outcome('bad-request', why);
  return `${why}\n`;
}

async function serveHttp(s: Session): Promise<void> {
  const socket = s.socket;
  // The bytes the dispatcher read to recognise the request line go back to the parser first.
  socket.unshift(s.reader.takeRest());
  s.outcome('aborted', 'the client closed the connection before a complete request');
  await s.ctx.http!.serve(socket, { request: (req, reply) => answer(s, req, reply), malformed: (status, why, req) => malformed(s, status, why, req) });
  // A deadline or an eviction before any request: the log says which.
  const destroyedWith = (socket as { errored?: unknown }).errored ?? (s.conn.raw as { errored?: unknown }).errored;
  if (destroyedWith instanceof ConnectionEnd) s.outcome(destroyedWith.outcome, destroyedWith.detail);
}

/** Over the limits (503), or plain HTTP on a TLS server (400): every request on the connection gets that answer, then it closes. */
async function refuseHttp(s: Session, why: 'busy' | 'bad-request', _message: string, detail: string): Promise<void> {
  s.outcome(why, detail);
  const socket = s.socket;
  socket.unshift(s.reader.takeRest());
  const text = why === 'busy' ? `server busy: ${detail}; try again shortly` : 'this server speaks HTTPS only: use an https:// address';
  await s.ctx.http!.serve(socket, {
    request: async (req, reply) => {
      s.conn.requestComplete();
      s.entry.method = req.method;
      s.entry.name = req.target;
      const x = new Exchange(s, req, reply);
      x.closeAfter = true;
      await x.text(why === 'busy' ? 503 : 400, why, text, why === 'busy' ? { 'Retry-After': 1 } : {});
      s.entry.status = x.entry.status;
    },
    malformed: (status, reason) => `${reason}\n`,
  });
}

export const httpProtocol: Protocol = {
  name: 'http',
  claims: httpRequestLine,
  serve: serveHttp,
  refuse: refuseHttp,
};
