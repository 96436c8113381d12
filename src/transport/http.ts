// HTTP transport: a small node:http server for read-only endpoints (metrics); listen errors -> NetkitError. Parsing is Node's, never ours.
import http from 'node:http';
import { NetkitError, errnoOf } from '../errors.js';
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
