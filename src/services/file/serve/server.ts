// `netkit file serve`: accept and count every connection, dispatch it on its first bytes to v1, HTTP or classic (over TCP or TLS), and shut down gracefully.
import { promises as fsp } from 'node:fs';
import { NetkitError, isNetkitError } from '../../../errors.js';
import { formatHostPort, type StreamSocket } from '../../../transport/tcp.js';
import { FailureThrottle, sourceKey } from '../../limits.js';
import { BufferPool } from './body.js';
import { classicProtocol } from './classic.js';
import { ConnectionTable, type Conn } from './connections.js';
import { dispatch, type Mode, type Protocol } from './dispatch.js';
import { HashCache } from './hash-cache.js';
import { PrefetchBudget } from './prefetch-budget.js';
import { PrefixHashBudget } from './prefix-budget.js';
import { PrefixStates } from './prefix-states.js';
import { ReaderPool, SMALL_FILE } from './reader-pool.js';
import { Session, type ServeContext } from './session.js';
import { ConnectionEnd, SERVE_DEFAULTS, type FileServer, type ServeOptions, type TransferLog } from './types.js';
import { HTTP_MAX_HEAD, httpProtocol } from './http.js';
import { v1Protocol } from './v1.js';
import { httpConnections } from '../../../transport/http.js';

/**
 * The protocols on the port, in the order they are asked to claim a connection; the last claims
 * anything. HTTP claims only a whole request line, so it comes before classic (docs/protocol.md 6.1).
 */
function protocols(http: boolean): readonly Protocol[] {
  return http ? [v1Protocol, httpProtocol, classicProtocol] : [v1Protocol, classicProtocol];
}

async function servedRoot(dir: string): Promise<string> {
  try {
    const root = await fsp.realpath(dir);
    const st = await fsp.stat(root);
    if (!st.isDirectory()) throw new NetkitError('USAGE', `${dir} is not a directory`, 'give the directory to serve');
    return root;
  } catch (err) {
    if (isNetkitError(err)) throw err;
    throw new NetkitError('NOT_FOUND', `cannot serve ${dir}: no such directory`, 'give an existing directory to serve', { cause: err });
  }
}

export async function startFileServer(opts: ServeOptions): Promise<FileServer> {
  const root = await servedRoot(opts.dir);
  const maxConnections = opts.maxConnections ?? SERVE_DEFAULTS.maxConnections;
  const maxPerSource = opts.maxPerSource ?? SERVE_DEFAULTS.maxPerSource;
  const log = (entry: TransferLog): void => {
    try {
      opts.onLog?.(entry);
    } catch {
      // logging must never break serving
    }
  };
  const http = opts.http ?? true;
  const served = protocols(http);
  const table = new ConnectionTable({ maxTotal: maxConnections, maxPerSource, headerTimeoutMs: opts.headerTimeoutMs ?? SERVE_DEFAULTS.headerTimeoutMs });
  const ctx: ServeContext = {
    root,
    key: opts.secret,
    throttle: opts.secret ? (opts.failureThrottle ?? new FailureThrottle()) : undefined,
    table,
    pool: new BufferPool(),
    hashCache: new HashCache(),
    prefixBudget: new PrefixHashBudget(opts.prefixBudget),
    prefixStates: new PrefixStates(opts.prefixStates),
    readers: new ReaderPool({ small: SMALL_FILE }).start(),
    prefetch: new PrefetchBudget(),
    idleTimeoutMs: opts.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs,
    classicGapMs: opts.classicGapMs ?? SERVE_DEFAULTS.classicGapMs,
    refuseHardLinks: opts.refuseHardLinks ?? false,
    http: http ? httpConnections({ maxHeaderSize: HTTP_MAX_HEAD }) : undefined,
    log,
  };
  // A layered transport (TLS) hands us raw connections at accept; we run its handshake ourselves.
  const layer = opts.transport.layer;
  let closing = false;
  let finishedDuringClose = 0;
  const idleWaiters = new Set<() => void>();

  async function run(conn: Conn, mode: Mode): Promise<void> {
    const s = new Session(conn, ctx);
    try {
      await dispatch(s, served, layer, mode);
    } catch (err) {
      s.failed(err);
    } finally {
      await s.close();
      conn.release();
      if (closing && conn.kind === 'slot' && conn.phase !== 'header') finishedDuringClose += 1;
      if (table.size === 0) for (const w of idleWaiters) w();
      if (!s.logged) log(s.entry);
    }
  }

  const onConnection = (socket: StreamSocket): void => {
    socket.on('error', () => undefined); // every failure is handled where it matters
    if (closing) {
      socket.destroy();
      return;
    }
    const peer = formatHostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    const admission = table.admit(socket, sourceKey(socket.remoteAddress ?? '?'), peer);
    if (admission.kind === 'drop') {
      socket.destroy();
      return;
    }
    if (admission.kind === 'slot') {
      void run(admission.conn, { kind: 'serve' });
      return;
    }
    const total = admission.reason === 'total';
    void run(admission.conn, {
      kind: 'busy',
      message: total ? `server busy: ${maxConnections} connections already open` : `server busy: ${maxPerSource} connections already open from your address`,
      detail: total ? `over --max-connections (${maxConnections}), none of them evictable` : `over --max-per-source (${maxPerSource})`,
    });
  };

  let listener;
  try {
    listener = await (layer ?? opts.transport).listen({ host: opts.host, port: opts.port ?? SERVE_DEFAULTS.port }, onConnection);
  } catch (err) {
    ctx.readers.close();
    throw err;
  }

  return {
    host: listener.host,
    port: listener.port,
    root,
    transport: opts.transport.name,
    http,
    connections: () => table.size,
    async close(graceMs = SERVE_DEFAULTS.graceMs) {
      closing = true;
      const closed = listener.close();
      let aborted = 0;
      for (const c of table.conns()) {
        if (c.phase === 'header' && !c.endBetweenRequests?.()) {
          c.cut();
          aborted += 1;
        }
      }
      if (table.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            for (const c of table.conns()) {
              if (c.phase === 'transfer') aborted += 1;
              c.cut(new ConnectionEnd('aborted', 'the server is shutting down'));
            }
            resolve();
          }, graceMs);
          const done = (): void => {
            clearTimeout(timer);
            idleWaiters.delete(done);
            resolve();
          };
          idleWaiters.add(done);
        });
        // Destroyed sockets finish their handlers on the next turns; wait for the table to empty.
        if (table.size > 0) await new Promise<void>((resolve) => idleWaiters.add(resolve));
      }
      await closed;
      ctx.readers.close();
      return { finished: finishedDuringClose, aborted };
    },
  };
}
