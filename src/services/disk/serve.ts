// The disk server: answers v1 queries (and, opt-in, classic ones) from cached figures at most ~1 s old.
import type { Socket, RemoteInfo } from 'node:dgram';
import type { KeyObject } from 'node:crypto';
import { NetkitError } from '../../errors.js';
import { bindUdp, type UdpAddress } from '../../transport/udp.js';
import {
  Classify,
  DEFAULT_PORT,
  HEADER_SIZE,
  MsgType,
  Scope,
  WireError,
  classify,
  decodeQueryScope,
  encodeAnswerBody,
  encodeError,
  readId,
  writeReplyHeader,
} from '../../protocol/disk-v1.js';
import { CLASSIC_ERROR, encodeClassicAnswer, isClassicRequest } from '../../protocol/disk-classic.js';
import { createSystemFacts, type DiskFactsSource, type FactsScope } from './facts.js';
import type { MountFilterOptions } from './mounts.js';
import { createDiskMetrics, startMetricsServer } from './metrics.js';
import type { HttpListener } from '../../transport/http.js';
import { version } from '../../version.js';
import { RateLimiter, RateVerdict } from '../limits.js';
import { REPLY_MAC_OVERHEAD, locateAuthFields, sealReply, writeReplyMac, type AuthFieldProblem } from '../../protocol/disk-auth.js';
import { ReplayCache, admitDiskRequest, type DiskAdmission } from '../replay-cache.js';

/** Default per-source limit (requests/s) for non-loopback senders; see docs/cli.md. */
export const DEFAULT_RATE_LIMIT = 1000;
/** Sources with their own rate-limit bucket; past it, a new one replaces one of the least recently seen (docs/security.md 3). */
export const RATE_LIMIT_SOURCES = 4096;

/** What kind of datagram arrived. */
export type QueryKind = 'path' | 'all' | 'classic' | 'v1' | 'foreign';
/** What the server did with it. */
export type QueryOutcome =
  | 'answered'
  | 'too-large' // answered ERROR TOO_LARGE
  | 'bad-request' // answered ERROR BAD_REQUEST
  | 'wrong-version' // answered ERROR UNSUPPORTED_VERSION
  | 'rate-limited' // answered ERROR RATE_LIMITED, or dropped when over the limit
  | 'error' // answered ERROR INTERNAL (figures could not be read)
  | 'classic-error' // answered the classic error text
  | 'silent' // nothing sent: not for us, or any reply would be larger than the request
  | 'refused'; // dropped without a reply by a server that requires a secret; `reason` says why

/** Why a server with a secret dropped a datagram (logged; never sent: no oracle). */
export type RefusalReason = 'classic' | 'not-netkit' | 'wrong-version' | 'rate-limited' | AuthFieldProblem | Exclude<DiskAdmission, 'ok'>;

export interface QueryEvent {
  address: string;
  port: number;
  kind: QueryKind;
  outcome: QueryOutcome;
  /** Request and reply sizes in bytes (reply 0 when silent). */
  requestBytes: number;
  replyBytes: number;
  /** Set when outcome is 'refused'. */
  reason?: RefusalReason;
}

export interface DiskServeOptions {
  host?: string;
  port?: number;
  /** The filesystem to report: the one holding this path (default "."). */
  path?: string;
  classic?: boolean;
  /** Requests per second per source; 0 turns the limit off. */
  rateLimit?: number;
  /** Leave loopback senders unlimited (default true). */
  exemptLoopback?: boolean;
  /** Oldest figures ever sent (ms); they are re-read in the background from half that age. */
  maxAgeMs?: number;
  /** Injected figures (tests); by default the real machine's. */
  facts?: DiskFactsSource;
  /** Which filesystems scope 1 (and /metrics) report; see mounts.ts. */
  filter?: MountFilterOptions;
  /** A statfs that has not returned after this long is reported with error TIMEOUT (ms, default 2,000). */
  mountTimeoutMs?: number;
  /** Also serve Prometheus metrics over HTTP at host:port/metrics. */
  metrics?: { host: string; port: number; /** Require `Authorization: Bearer <this>`. */ bearerToken?: string };
  /**
   * k_disk (Secret.key('disk')): when set, every query must be authenticated (docs/security.md 4.2),
   * everything else is dropped without a reply, and replies carry a MAC. Incompatible with `classic`.
   */
  secret?: KeyObject;
  /** Freshness window for authenticated requests, ms (default 30 s). */
  authWindowMs?: number;
  /** Called for every datagram; leave unset when nothing is logged (it costs an object per query). */
  onQuery?: (event: QueryEvent) => void;
  /** Problems that do not stop the server (a send that failed, figures that could not be read). */
  onWarning?: (err: NetkitError) => void;
}

export interface ServeStats {
  received: number;
  answered: number;
  errors: number;
  silent: number;
  /** Dropped by a server with a secret (unauthenticated, stale, replayed, forged, classic). */
  refused: number;
}

export interface DiskServer {
  address: UdpAddress;
  /** Where /metrics is served, when asked for. */
  metricsAddress?: { address: string; port: number };
  stats: Readonly<ServeStats>;
  close(): Promise<void>;
}

interface Cached {
  body?: Buffer;
  classic?: Buffer;
  readAt: number;
  refreshing?: Promise<void>;
  failure?: NetkitError;
  waiting: Array<{ msg: Buffer; address: string; port: number; kind: QueryKind; nonce: Buffer | undefined }>;
}

/** Requests parked while stale figures are re-read; more than this are dropped (a stuck disk must not eat memory). */
const MAX_WAITING = 4096;

/**
 * Bind and serve until close(). The request path is small on purpose: classify the header, look up
 * the cached encoded answer, write an 8-byte header echoing the id, send header + body.
 */
export async function startDiskServer(opts: DiskServeOptions = {}): Promise<DiskServer> {
  const maxAge = opts.maxAgeMs ?? 1000;
  const refreshAge = maxAge / 2;
  const ownFacts = opts.facts === undefined;
  const facts = opts.facts ?? (await createSystemFacts({ path: opts.path ?? '.', filter: opts.filter, mountTimeoutMs: opts.mountTimeoutMs }));
  const rate = opts.rateLimit ?? DEFAULT_RATE_LIMIT;
  // Burst: one second's worth. Loopback is exempt by default (benchmarks, local users).
  const limiter = new RateLimiter({ ratePerSec: rate, burst: Math.max(1, rate), maxSources: RATE_LIMIT_SOURCES, exemptLoopback: opts.exemptLoopback ?? true });
  const classic = opts.classic === true;
  const key = opts.secret;
  if (key && classic) {
    throw new NetkitError('USAGE', 'a server that requires a secret cannot answer classic queries', 'leave out --classic: classic clients cannot authenticate');
  }
  // Requests stamped before this server started are refused: its replay cache starts empty, so a request
  // recorded before a restart could otherwise be answered twice.
  const replay = key ? new ReplayCache({ windowMs: opts.authWindowMs, notBeforeMs: Date.now() }) : undefined;
  const metrics = opts.metrics ? createDiskMetrics(facts, version()) : undefined;
  const userOnQuery = opts.onQuery;
  const onQuery = metrics
    ? (e: QueryEvent): void => {
        metrics.countQuery(e.outcome);
        userOnQuery?.(e);
      }
    : userOnQuery;
  const stats: ServeStats = { received: 0, answered: 0, errors: 0, silent: 0, refused: 0 };
  const cache: Record<FactsScope, Cached> = { path: { readAt: -Infinity, waiting: [] }, all: { readAt: -Infinity, waiting: [] } };

  const warn = (err: unknown): void => {
    const e = err instanceof NetkitError ? err : new NetkitError('INTERNAL', String(err instanceof Error ? err.message : err), undefined, { cause: err });
    opts.onWarning?.(e);
  };

  let socket: Socket;
  let closed = false;

  const event = (address: string, port: number, kind: QueryKind, outcome: QueryOutcome, requestBytes: number, replyBytes: number): void => {
    if (outcome === 'answered') stats.answered += 1;
    else if (outcome === 'silent') stats.silent += 1;
    else stats.errors += 1;
    onQuery?.({ address, port, kind, outcome, requestBytes, replyBytes });
  };

  const refuse = (address: string, port: number, kind: QueryKind, reason: RefusalReason, requestBytes: number): void => {
    stats.refused += 1;
    onQuery?.({ address, port, kind, outcome: 'refused', requestBytes, replyBytes: 0, reason });
  };

  /** Send a typed error no larger than the request (MAC included when authenticated), or nothing. */
  const sendError = (msg: Buffer, address: string, port: number, kind: QueryKind, outcome: QueryOutcome, code: WireError, message: string, need?: number, nonce?: Buffer): void => {
    const plain = encodeError(readId(msg), { code, message, need }, msg.length - (nonce ? REPLY_MAC_OVERHEAD : 0));
    const reply = plain && nonce ? sealReply(key!, nonce, [plain]) : plain;
    if (reply) {
      socket.send(reply, port, address);
      event(address, port, kind, outcome, msg.length, reply.length);
    } else {
      event(address, port, kind, 'silent', msg.length, 0);
    }
  };

  const refresh = (scope: FactsScope): Promise<void> => {
    const c = cache[scope];
    if (c.refreshing) return c.refreshing;
    c.refreshing = facts
      .read(scope)
      .then(
        (snap) => {
          c.body = encodeAnswerBody(snap);
          const served = snap.filesystems.find((f) => f.served) ?? snap.filesystems[0];
          if (scope === 'path' && served) c.classic = encodeClassicAnswer(snap.host, served.total, served.available);
          c.readAt = snap.time;
          c.failure = undefined;
        },
        (err: unknown) => {
          c.failure = err instanceof NetkitError ? err : new NetkitError('INTERNAL', 'cannot read the disk figures', undefined, { cause: err });
          warn(c.failure);
        },
      )
      .finally(() => {
        c.refreshing = undefined;
        const waiting = c.waiting;
        c.waiting = [];
        for (const w of waiting) reply(w.msg, w.address, w.port, w.kind, scope, false, w.nonce);
      });
    return c.refreshing;
  };

  /** Answer from the cache; when the figures are too old, park the request until they are re-read. */
  const reply = (msg: Buffer, address: string, port: number, kind: QueryKind, scope: FactsScope, mayWait: boolean, nonce?: Buffer): void => {
    if (closed) return;
    const c = cache[scope];
    const age = Date.now() - c.readAt;
    // Parked requests (mayWait false) are answered from the read that just finished, however long it took.
    const body = c.body;
    if (body === undefined || (mayWait ? age >= maxAge : c.failure !== undefined)) {
      if (mayWait) {
        if (c.waiting.length < MAX_WAITING) c.waiting.push({ msg, address, port, kind, nonce });
        else event(address, port, kind, 'silent', msg.length, 0);
        void refresh(scope);
        return;
      }
      if (kind === 'classic') event(address, port, kind, 'silent', msg.length, 0);
      else sendError(msg, address, port, kind, 'error', WireError.INTERNAL, c.failure ? 'cannot read the disk figures' : 'figures not ready', undefined, nonce);
      return;
    }
    if (age >= refreshAge) void refresh(scope);
    if (kind === 'classic') {
      // The documented exception to the size rule: a classic answer is bigger than its 1-byte "y".
      socket.send(c.classic!, port, address);
      event(address, port, kind, 'answered', msg.length, c.classic!.length);
      return;
    }
    const size = HEADER_SIZE + body.length + (nonce ? REPLY_MAC_OVERHEAD : 0);
    if (size > msg.length) {
      sendError(msg, address, port, kind, 'too-large', WireError.TOO_LARGE, `answer needs a ${size}-byte request`, size, nonce);
      return;
    }
    // One buffer per reply (from Node's pool): a buffer list costs more per send than copying ~100 bytes,
    // and the cached body must not be patched in place while an earlier send may still hold it.
    const out = Buffer.allocUnsafe(size);
    writeReplyHeader(out, MsgType.ANSWER, msg);
    body.copy(out, HEADER_SIZE);
    // The MAC binds the answer to this request's nonce, so it is computed per reply.
    if (nonce) writeReplyMac(key!, nonce, out, HEADER_SIZE + body.length);
    socket.send(out, port, address);
    event(address, port, kind, 'answered', msg.length, size);
  };

  /**
   * A server with a secret: nothing is ever sent to an unauthenticated datagram (no oracle, no
   * amplification). Checks run cheapest first: shape, timestamp, MAC, replay cache. The MAC is
   * checked before the rate limiter has a say (it costs about a microsecond), so a flood of forged or
   * spoofed datagrams can never cost a key holder its answer; the limiter only counts the rest.
   */
  const onAuthMessage = (msg: Buffer, address: string, port: number, c: Classify): void => {
    if (c === Classify.FOREIGN) return refuse(address, port, 'foreign', isClassicRequest(msg) ? 'classic' : 'not-netkit', msg.length);
    if (c === Classify.RUNT || c === Classify.NOT_QUERY) return event(address, port, 'v1', 'silent', msg.length, 0);
    const limited = (): boolean => limiter.check(address) !== RateVerdict.OK;
    if (c === Classify.WRONG_VERSION) return refuse(address, port, 'v1', limited() ? 'rate-limited' : 'wrong-version', msg.length);
    let scope: Scope;
    try {
      scope = decodeQueryScope(msg);
    } catch {
      return refuse(address, port, 'v1', limited() ? 'rate-limited' : 'malformed', msg.length);
    }
    const at = locateAuthFields(msg, true);
    if (typeof at === 'string') return refuse(address, port, 'v1', limited() ? 'rate-limited' : at, msg.length);
    const verdict = admitDiskRequest({ key: key!, datagram: msg, macOffset: at.macOffset, nonce: at.nonce!, timestampMs: at.timestampMs!, cache: replay!, nowMs: Date.now() });
    if (verdict !== 'ok') return refuse(address, port, 'v1', limited() ? 'rate-limited' : verdict, msg.length);
    const which = scope === Scope.ALL ? 'all' : 'path';
    reply(msg, address, port, which, which, true, at.nonce);
  };

  const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    stats.received += 1;
    const { address, port } = rinfo;
    const c = classify(msg);
    if (key) return onAuthMessage(msg, address, port, c);
    if (c === Classify.FOREIGN) {
      if (!classic) return event(address, port, 'foreign', 'silent', msg.length, 0);
      const verdict = limiter.check(address);
      if (verdict !== RateVerdict.OK) return event(address, port, 'classic', 'rate-limited', msg.length, 0);
      if (isClassicRequest(msg)) return reply(msg, address, port, 'classic', 'path', true);
      // The seed client waits for ever for a reply, so whatever it was sent gets the seed's error text,
      // even a 1-byte "n": the second documented exception to the size rule, bounded by the rate limit.
      socket.send(CLASSIC_ERROR, port, address);
      return event(address, port, 'classic', 'classic-error', msg.length, CLASSIC_ERROR.length);
    }
    // Runts carry no id to echo, and replies to ANSWER/ERROR could make two servers ping-pong.
    if (c === Classify.RUNT || c === Classify.NOT_QUERY) return event(address, port, 'v1', 'silent', msg.length, 0);
    const verdict = limiter.check(address);
    if (verdict === RateVerdict.DROP) return event(address, port, 'v1', 'silent', msg.length, 0);
    if (verdict === RateVerdict.NOTIFY) return sendError(msg, address, port, 'v1', 'rate-limited', WireError.RATE_LIMITED, 'too many requests from your address');
    if (c === Classify.WRONG_VERSION) {
      return sendError(msg, address, port, 'v1', 'wrong-version', WireError.UNSUPPORTED_VERSION, 'this server speaks disk protocol version 1');
    }
    let scope: Scope;
    try {
      scope = decodeQueryScope(msg);
    } catch (err) {
      return sendError(msg, address, port, 'v1', 'bad-request', WireError.BAD_REQUEST, err instanceof Error ? err.message : 'bad request');
    }
    if (scope === Scope.ALL) reply(msg, address, port, 'all', 'all', true);
    else reply(msg, address, port, 'path', 'path', true);
  };

  let http: HttpListener | undefined;
  try {
    // Read the figures once before listening, so a bad --path fails at start, not per query.
    await refresh('path');
    if (cache.path.failure) throw cache.path.failure;
    if (metrics && opts.metrics) http = await startMetricsServer({ ...opts.metrics, metrics, onError: warn });
    const bound = await bindUdp({ host: opts.host, port: opts.port ?? DEFAULT_PORT, recvBufferSize: 4 << 20 });
    socket = bound.socket;
    socket.on('message', onMessage);
    // Send failures (ENOBUFS, EPERM from a firewall, an unreachable source) must not stop the server.
    socket.on('error', (err) => warn(new NetkitError('FAILED', `udp: ${err.message}`, undefined, { cause: err })));
    let closing: Promise<void> | undefined;
    return {
      address: bound.address,
      ...(http ? { metricsAddress: http.address } : {}),
      stats,
      close() {
        closing ??= new Promise<void>((resolve) => {
          closed = true;
          cache.path.waiting = [];
          cache.all.waiting = [];
          void (http?.close() ?? Promise.resolve()).then(() => {
            if (ownFacts) facts.close();
            socket.close(() => resolve());
          });
        });
        return closing;
      },
    };
  } catch (err) {
    await http?.close();
    if (ownFacts) facts.close();
    throw err;
  }
}
