// HTTP transport: a small node:http server for read-only endpoints (metrics), and HTTP/1.x on connections another server accepted (the file server's port). Parsing is Node's, never ours.
import http from 'node:http';
import type net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { NetkitError, errnoOf, isNetkitError } from '../errors.js';
import { socketError } from './tcp.js';
import { closeGently } from './tls-sniff.js';
import { formatHostPort } from './udp.js';

export interface HttpRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  /** The Authorization header, if any. */
  authorization?: string;
  remoteAddress: string;
}

export interface HttpResponse {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export interface HttpListenOptions {
  host: string;
  port: number;
  handle: (req: HttpRequest) => Promise<HttpResponse>;
  /** Called when a handler throws (the client gets a 500). */
  onError?: (err: unknown) => void;
}

export interface HttpListener {
  address: { address: string; port: number };
  close(): Promise<void>;
}

function listenError(err: unknown, host: string, port: number): NetkitError {
  const where = formatHostPort(host, port);
  switch (errnoOf(err)) {
    case 'EADDRINUSE':
      return new NetkitError('ADDRESS_IN_USE', `cannot listen on tcp ${where}: port in use`, 'choose another --metrics port, or 0 for any free port', { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new NetkitError('PERMISSION', `cannot listen on tcp ${where}: permission denied`, 'ports below 1024 need privileges', { cause: err });
    case 'EADDRNOTAVAIL':
      return new NetkitError('UNREACHABLE', `cannot listen on tcp ${where}: no such local address`, 'use an address of this machine', { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new NetkitError('HOST_NOT_FOUND', `cannot resolve '${host}'`, 'use an address of this machine, such as 127.0.0.1', { cause: err });
    default:
      return new NetkitError('FAILED', `cannot listen on tcp ${where}: ${errnoOf(err) ?? String(err)}`, undefined, { cause: err });
  }
}

/** Serve GET/HEAD requests with `handle`; bodies of requests are not read (nothing here accepts one). */
export async function listenHttp(opts: HttpListenOptions): Promise<HttpListener> {
  const server = http.createServer({ maxHeaderSize: 8192, requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 30_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const request: HttpRequest = { method: req.method ?? 'GET', path, remoteAddress: req.socket.remoteAddress ?? '' };
    if (typeof req.headers.authorization === 'string') request.authorization = req.headers.authorization;
    req.resume();
    opts.handle(request).then(
      (r) => {
        const body = request.method === 'HEAD' ? '' : r.body;
        res.writeHead(r.status, { 'Content-Length': Buffer.byteLength(r.body), ...r.headers });
        res.end(body);
      },
      (err: unknown) => {
        opts.onError?.(err);
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('internal error\n');
      },
    );
  });
  // Bounded like the other servers: a flood of idle connections cannot take every descriptor.
  server.maxConnections = 64;
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, opts.host, opts.port)));
    server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => resolve());
  });
  const a = server.address();
  const address = typeof a === 'object' && a ? { address: a.address, port: a.port } : { address: opts.host, port: opts.port };
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.x on connections accepted elsewhere

/** What the file server reads of one request: the head only (no request it serves has a body). */
export interface HttpRequestHead {
  method: string;
  /** The request-target as sent, one character per byte (latin1). */
  target: string;
  /** '1.0' or '1.1'. */
  version: string;
  /** A header's value by lower-case name; repeated ones joined with ', ' (Node's rules). */
  header(name: string): string | undefined;
  /** The request announces a body (Content-Length above 0, or Transfer-Encoding). */
  hasBody: boolean;
  /** How many Host fields the head carried (Node keeps only the first; RFC 9112 3.2 wants exactly one in HTTP/1.1). Node's own bare 400 for none is off: the handler answers it. */
  hostFields: number;
}

/** The answer to one request. */
export interface HttpReply {
  /** Status line and headers. Without Content-Length an HTTP/1.1 body is chunked; HTTP/1.0 ends it with the connection. */
  head(status: number, headers: Record<string, string | number>): void;
  /** The body: write() returns false when the client is behind, then 'drain' follows (or 'close'). */
  readonly body: Writable;
  /** End the body, with trailers when the head declared them (chunked only). Resolves true once sent, false if the connection closed first. */
  end(trailers?: Record<string, string>): Promise<boolean>;
  /** Cut the connection now: a chunked body is then never completed, which the client sees as a failure. */
  abort(reason?: Error): void;
}

export interface HttpConnectionHandler {
  /** One request at a time, in order; the next is handed over when this one's promise settles. */
  request(req: HttpRequestHead, reply: HttpReply): Promise<void>;
  /**
   * Node's parser refused what the client sent (`status`: 400, or 431 for headers over the limit), or
   * the request is one this transport never hands over (CONNECT, with its method and target in `req`).
   * Returns the short text body to answer with; the connection is then closed.
   */
  malformed(status: number, why: string, req?: { method: string; target: string }): string;
}

export interface HttpConnections {
  /**
   * Speak HTTP on an accepted socket (TCP or TLS) whose first bytes were read and given back with
   * unshift(). Resolves when the socket closes. Node's own timeouts are off: the caller's deadlines
   * (header, idle) destroy the socket.
   */
  serve(socket: net.Socket, handler: HttpConnectionHandler): Promise<void>;
}

/** Requests a client may have in the pipeline before the connection is cut (each is answered in turn). */
const MAX_PIPELINED = 32;

const PARSE_ERRORS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'the request head is larger than this server accepts',
  HPE_INVALID_METHOD: 'invalid method',
  HPE_INVALID_URL: 'invalid request target',
  HPE_INVALID_VERSION: 'invalid HTTP version',
  HPE_INVALID_HEADER_TOKEN: 'invalid header',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'Content-Length and Transfer-Encoding together',
};

class Connection {
  private readonly queue: { req: http.IncomingMessage; res: http.ServerResponse }[] = [];
  private busy = false;
  /** An answer said `Connection: close` (or the socket closed): requests parsed after it are never answered. */
  private over = false;

  constructor(
    readonly socket: net.Socket,
    readonly handler: HttpConnectionHandler,
  ) {}

  /** A reply has begun on this connection: a parse error can no longer be answered in clear text. */
  get answering(): boolean {
    return this.busy;
  }

  push(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.over) {
      req.resume();
      return;
    }
    if (this.queue.length >= MAX_PIPELINED) {
      this.socket.destroy();
      return;
    }
    this.queue.push({ req, res });
    if (!this.busy) void this.pump();
  }

  private async pump(): Promise<void> {
    this.busy = true;
    while (this.queue.length > 0 && !this.socket.destroyed) {
      const { req, res } = this.queue.shift()!;
      // Nothing served here reads a body: discard it so the parser reaches the next request.
      req.resume();
      const headers = req.headers;
      const head: HttpRequestHead = {
        method: req.method ?? '',
        target: req.url ?? '',
        version: req.httpVersion,
        header: (name) => {
          const v = headers[name];
          return Array.isArray(v) ? v.join(', ') : v;
        },
        hasBody: headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0'),
        hostFields: req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'host').length,
      };
      try {
        await this.handler.request(head, replyFor(res));
      } catch {
        // The handler's own failures are its to report; here the answer can only be cut short.
        if (!res.headersSent) {
          closes.add(res);
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
          res.end('internal error\n');
        } else {
          res.destroy();
        }
      }
      // That answer closed the connection: the requests behind it are dropped unopened (answering them
      // would wait forever on a response the socket never carries, holding their files open).
      if (!res.shouldKeepAlive || closes.has(res) || this.socket.destroyed) {
        this.over = true;
        for (const q of this.queue.splice(0)) q.req.resume();
      }
    }
    this.busy = false;
  }
}

/** Answers whose own head says `Connection: close` (Node keeps shouldKeepAlive true for those, and writeHead's headers are not in getHeader()). */
const closes = new WeakSet<http.ServerResponse>();

function replyFor(res: http.ServerResponse): HttpReply {
  return {
    head: (status, headers) => {
      if (Object.entries(headers).some(([k, v]) => k.toLowerCase() === 'connection' && /\bclose\b/i.test(String(v)))) closes.add(res);
      res.writeHead(status, headers);
    },
    body: res,
    end: (trailers) =>
      new Promise<boolean>((resolve) => {
        if (res.destroyed) {
          resolve(false);
          return;
        }
        const done = (ok: boolean) => (): void => {
          res.off('finish', onFinish);
          res.off('close', onClose);
          resolve(ok);
        };
        const onFinish = done(true);
        const onClose = done(false);
        res.once('finish', onFinish);
        res.once('close', onClose);
        if (trailers) res.addTrailers(trailers);
        res.end();
      }),
    abort: (reason) => void res.socket?.destroy(reason),
  };
}

/** HTTP/1.x with Node's parser on sockets accepted by another server. */
export function httpConnections(opts: { maxHeaderSize: number }): HttpConnections {
  const conns = new WeakMap<net.Socket, Connection>();
  const server = http.createServer({ maxHeaderSize: opts.maxHeaderSize, requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 0, requireHostHeader: false }, (req, res) => {
    const conn = conns.get(req.socket);
    if (conn) conn.push(req, res);
    else req.socket.destroy();
  });
  server.timeout = 0;
  // A client that half-closes after its request (`nc -N`) still gets the answer, then the connection ends.
  (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  /** Answer `status` with the handler's text and close: the parser has let go of this connection. */
  const refuse = (socket: net.Socket, status: number, why: string, req?: { method: string; target: string }): void => {
    const conn = conns.get(socket);
    // A deadline or an eviction destroyed the socket, or an answer is under way: nothing to answer.
    if (!conn || socket.destroyed || !socket.writable || conn.answering) {
      socket.destroy();
      return;
    }
    const body = conn.handler.malformed(status, why, req);
    socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    closeGently(socket);
  };
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (!(err.code ?? '').startsWith('HPE_')) {
      socket.destroy();
      return;
    }
    refuse(socket, err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400, PARSE_ERRORS[err.code!] ?? 'malformed request');
  });
  // CONNECT (the authority form): Node hands the socket over instead of a request; without this
  // listener it would close it without a word.
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    refuse(socket, 400, 'CONNECT (the authority form) is not served here: this server answers GET and HEAD', { method: req.method ?? 'CONNECT', target: req.url ?? '' });
  });
  return {
    serve(socket, handler) {
      return new Promise<void>((resolve) => {
        conns.set(socket, new Connection(socket, handler));
        socket.once('close', () => resolve());
        server.emit('connection', socket);
        // The bytes given back with unshift() sit in the socket's buffer: flowing mode hands them to the
        // parser before anything read later (the parser may read the handle directly from then on).
        socket.resume();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The client: one GET over a connection the caller's stream transport opens (TCP, or TLS with its trust policy)

export interface HttpGetOptions {
  host: string;
  port: number;
  /** The request-target: an encoded path and query. */
  path: string;
  headers: Record<string, string>;
  /** Open the connection (TLS included, trust decided) before a byte of the request is written. */
  connect: () => Promise<net.Socket>;
}

export interface HttpClientResponse {
  status: number;
  /** A header's value by lower-case name (repeated ones joined with ', '). */
  header(name: string): string | undefined;
  /** The body as it arrives; pause() and resume() apply backpressure to the server. */
  body: Readable;
  /** Resolves when the body ended as its framing says, rejects (PEER_CLOSED...) when it was cut short. */
  ended: Promise<void>;
  /** A trailer field by lower-case name, once the body has ended. */
  trailer(name: string): string | undefined;
  socket: net.Socket;
}

/** Node's client errors -> NetkitError: connection failures as the TCP adapter says them, parse errors as "not HTTP". */
function clientError(err: unknown, host: string, port: number, phase: 'connect' | 'transfer'): NetkitError {
  if (isNetkitError(err)) return err;
  const code = errnoOf(err) ?? '';
  const where = formatHostPort(host, port);
  if (code.startsWith('HPE_')) return new NetkitError('PROTOCOL', `${where} did not answer in HTTP/1.x (${code})`, 'is that an HTTP server? a netkit server without HTTP needs a NAME, not a URL', { cause: err });
  if (code === 'ECONNRESET' && phase === 'connect') return new NetkitError('PEER_CLOSED', `${where} closed the connection without an answer`, undefined, { cause: err });
  return socketError(err, { host, port, phase });
}

/** Send one GET and resolve with the response head; the body is left for the caller to read. */
export function httpGet(o: HttpGetOptions): Promise<HttpClientResponse> {
  return new Promise<HttpClientResponse>((resolve, reject) => {
    const req = http.request({
      host: o.host,
      port: o.port,
      path: o.path,
      method: 'GET',
      headers: o.headers,
      setHost: false,
      createConnection: (_opts: unknown, cb: (err: Error | null, socket?: net.Socket) => void) => {
        o.connect().then(
          (socket) => cb(null, socket),
          (err: Error) => cb(err),
        );
        return undefined;
      },
    } as http.RequestOptions);
    /** A parse error in the body comes to the request; the response then only says "aborted". */
    let bodyError: unknown;
    req.on('error', (err) => {
      bodyError = err;
      reject(clientError(err, o.host, o.port, 'connect'));
    });
    // A 101 (or a CONNECT-style answer) hands the socket over instead of a response: no file follows.
    req.on('upgrade', (res: http.IncomingMessage, socket: net.Socket) => {
      socket.destroy();
      reject(new NetkitError('PROTOCOL', `${formatHostPort(o.host, o.port)} answered ${res.statusCode ?? 101} (switching protocols) to a GET: no file follows`));
    });
    // Whatever else ends the request before a response (a promise left pending would end the process silently).
    req.on('close', () => reject(new NetkitError('PEER_CLOSED', `${formatHostPort(o.host, o.port)} closed the connection without an answer`)));
    req.on('response', (res) => {
      const socket = res.socket;
      const ended = new Promise<void>((done, fail) => {
        res.once('end', () => done());
        res.once('error', (err: NodeJS.ErrnoException) => {
          const destroyedWith = (socket as { errored?: unknown }).errored;
          if (isNetkitError(destroyedWith)) return fail(destroyedWith);
          const where = formatHostPort(o.host, o.port);
          if ((errnoOf(bodyError) ?? '').startsWith('HPE_')) return fail(new NetkitError('PROTOCOL', `${where} sent a malformed HTTP body (${errnoOf(bodyError)})`, undefined, { cause: bodyError }));
          // Node says "aborted" (ECONNRESET) for any end before the body's last byte; only a real reset leaves its error on the socket.
          if (err.message === 'aborted' && destroyedWith == null) return fail(new NetkitError('PEER_CLOSED', `${where} closed the connection before the body was complete`));
          fail(clientError(err, o.host, o.port, 'transfer'));
        });
        res.once('close', () => {
          if (res.complete) return done();
          const destroyedWith = (socket as { errored?: unknown }).errored;
          fail(isNetkitError(destroyedWith) ? destroyedWith : new NetkitError('PEER_CLOSED', `${formatHostPort(o.host, o.port)} closed the connection before the body was complete`, 'run the same fetch again to resume'));
        });
      });
      ended.catch(() => undefined);
      const pick = (from: NodeJS.Dict<string | string[]>) => (name: string): string | undefined => {
        const v = from[name];
        return Array.isArray(v) ? v.join(', ') : v;
      };
      resolve({ status: res.statusCode ?? 0, header: pick(res.headers), body: res, ended, trailer: (name) => pick(res.trailers)(name), socket });
    });
    req.end();
  });
}
