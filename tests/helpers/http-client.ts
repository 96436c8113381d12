// HTTP requests for tests: Node's client for ordinary requests (plain or TLS, keep-alive or not), and raw bytes for request lines no client would send.
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  trailers: NodeJS.Dict<string>;
  /** The local port of the connection that carried it (to tell a reused connection). */
  localPort: number | undefined;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  tls?: boolean;
  agent?: http.Agent;
  host?: string;
  body?: string;
}

/** One request with Node's client; resolves when the whole body (and any trailer) arrived. */
export function request(port: number, path: string, o: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const opts: https.RequestOptions = { host: o.host ?? '127.0.0.1', port, path, method: o.method ?? 'GET', headers: o.headers, agent: o.agent ?? false };
    const req = o.tls ? https.request({ ...opts, rejectUnauthorized: false }) : http.request(opts);
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers, localPort: res.socket?.localPort }),
      );
    });
    req.end(o.body);
  });
}

/** Write `bytes` as they are (plain or TLS) and return everything the server sent until it closed. */
export async function raw(port: number, bytes: string | Buffer, o: { tls?: boolean; timeoutMs?: number } = {}): Promise<Buffer> {
  const socket: net.Socket = o.tls ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  const timer = setTimeout(() => socket.destroy(), o.timeoutMs ?? 10_000);
  await once(socket, o.tls ? 'secureConnect' : 'connect');
  socket.write(bytes);
  await once(socket, 'close');
  clearTimeout(timer);
  return Buffer.concat(chunks);
}

/** The status code of a raw HTTP/1.x answer. */
export function statusOf(answer: Buffer): number {
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(answer.toString('latin1'));
  return m ? Number(m[1]) : -1;
}
