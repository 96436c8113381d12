// Asking disk servers (v1 or classic) for their figures, several hosts at once; results in, never printed here.
import { randomBytes, type KeyObject } from 'node:crypto';
import { NetkitError } from '../../errors.js';
import { parseTarget as parseTargetText, type Target } from '../target.js';
import { udpExchange, type Verdict } from '../../transport/udp.js';
import { UdpSession } from '../../transport/udp-session.js';
import {
  DEFAULT_PORT,
  DEFAULT_REQUEST_SIZE,
  HEADER_SIZE,
  MAGIC0,
  MAGIC1,
  MAX_DATAGRAM,
  MsgType,
  Scope,
  WireError,
  WIRE_ERROR_NAMES,
  decodeReply,
  encodeQuery,
  readId,
  type Answer,
  type ErrorReply,
} from '../../protocol/disk-v1.js';
import { DISK_NONCE_LENGTH } from '../../protocol/auth.js';
import { encodeAuthQuery, verifyReply } from '../../protocol/disk-auth.js';
import { CLASSIC_REQUEST, parseClassicAnswer, type ClassicAnswer } from '../../protocol/disk-classic.js';

/** What should be running at the address, as the hints name it (a noun phrase: "is … running there?"). */
const SERVICE = '`netkit disk serve`';
const CLASSIC_SERVICE = 'a classic disk server (a seed program, or `netkit disk serve --classic`: a netkit disk server answers classic queries only with --classic)';

export type QueryTarget = Target;

/** HOST, HOST:PORT, [V6], [V6]:PORT or a bare IPv6 literal (the parser every command shares). */
export function parseTarget(text: string, defaultPort = DEFAULT_PORT): QueryTarget {
  return parseTargetText(text, defaultPort);
}

export interface DiskQueryOptions {
  timeoutMs?: number;
  retries?: number;
  all?: boolean;
  classic?: boolean;
  /** Hosts asked at the same time. */
  concurrency?: number;
  /**
   * k_disk (Secret.key('disk')): seal each request (a fresh nonce per attempt) and accept only replies
   * whose MAC verifies against one of our nonces. Cannot be combined with `classic`.
   */
  secret?: KeyObject;
}

/** The hint for a silent server, which is what a server requiring a secret looks like to a client without one. */
export const NO_SECRET_HINT = 'if the server requires a secret, set NETKIT_TOKEN or --token-file (it stays silent without one)';

interface Common {
  target: QueryTarget;
  /** From the first request to the outcome, ms. */
  elapsedMs: number;
}

export type HostResult =
  | (Common & { ok: true; protocol: 'v1'; address: string; attempts: number; answer: Answer })
  | (Common & { ok: true; protocol: 'classic'; address: string; attempts: number; text: string; parsed?: ClassicAnswer })
  | (Common & { ok: false; error: NetkitError });

/** The NetkitError for a typed error reply. Its message may carry peer text: print it sanitised. */
export function wireErrorToNetkit(e: ErrorReply, where: string): NetkitError {
  const detail = e.message ? `: ${e.message}` : '';
  switch (e.code) {
    case WireError.BAD_REQUEST:
      return new NetkitError('BAD_REQUEST', `${where} rejected the query${detail}`, 'the server may run a different netkit version');
    case WireError.UNSUPPORTED_VERSION:
      return new NetkitError('PROTOCOL', `${where} does not speak disk protocol v1${detail}`, 'upgrade netkit on one side');
    case WireError.TOO_LARGE:
      return new NetkitError('TOO_LARGE', `${where}: the answer does not fit even a ${MAX_DATAGRAM}-byte request${detail}`, 'query without --all');
    case WireError.RATE_LIMITED:
      return new NetkitError('BUSY', `${where} rate-limited this address${detail}`, 'wait a moment, or ask its operator to raise --rate-limit');
    case WireError.INTERNAL:
      return new NetkitError('FAILED', `${where} could not read its disk figures${detail}`);
    default:
      return new NetkitError('PROTOCOL', `${where} answered error ${WIRE_ERROR_NAMES[e.code] ?? e.code}${detail}`);
  }
}

/**
 * The sockets for a run of v1 queries (one query, a fleet, or every round of a live view): replies are
 * matched by request id, from any address of the server. Close it when done.
 */
export function openDiskSession(): UdpSession {
  return new UdpSession({
    keyOf: (msg) => (msg.length >= HEADER_SIZE && msg[0] === MAGIC0 && msg[1] === MAGIC1 ? readId(msg) : undefined),
    // Replies of a whole burst (hundreds of hosts) may land on one socket before they are read.
    recvBufferSize: 4 << 20,
  });
}

function where(t: QueryTarget): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

async function queryV1(target: QueryTarget, opts: DiskQueryOptions, session: UdpSession): Promise<HostResult> {
  // Unpredictable ids make blind reply spoofing a 1-in-2^32 guess; the session keeps them unique.
  const id = session.newKey();
  const scope = opts.all ? Scope.ALL : Scope.PATH;
  let grown = false;
  let size = DEFAULT_REQUEST_SIZE;
  let malformed: NetkitError | undefined;
  const key = opts.secret;
  const nonces: Buffer[] = [];
  let unproven: { count: number; why: 'unauthenticated' | 'bad-mac' } | undefined;
  const build = (): Buffer => {
    if (!key) return encodeQuery(id, scope, size);
    const nonce = randomBytes(DISK_NONCE_LENGTH);
    nonces.push(nonce);
    return encodeAuthQuery(key, id, scope, nonce, Date.now(), size);
  };
  const onReply = (msg: Buffer): Verdict<Answer> => {
    // Not ours, or not for this request: keep waiting for the real answer.
    if (msg.length < HEADER_SIZE || msg[0] !== MAGIC0 || msg[1] !== MAGIC1 || readId(msg) !== id) return undefined;
    if (key) {
      // Nothing in a reply is believed before its MAC verifies; a forgery is ignored as if it never came.
      const v = verifyReply(key, nonces, msg);
      if (v !== 'ok') {
        const why = v === 'unauthenticated' ? 'unauthenticated' : 'bad-mac';
        unproven = { count: (unproven?.count ?? 0) + 1, why: unproven?.why === 'bad-mac' ? 'bad-mac' : why };
        return undefined;
      }
    }
    let reply;
    try {
      reply = decodeReply(msg);
    } catch (err) {
      malformed = err as NetkitError;
      return undefined;
    }
    if (reply.type === MsgType.ANSWER) return { accept: reply.answer };
    const e = reply.error;
    if (e.code === WireError.TOO_LARGE && !grown && e.need !== undefined && e.need > DEFAULT_REQUEST_SIZE && e.need <= MAX_DATAGRAM) {
      // Anti-amplification: the server only answers as much as we send, so send a bigger request, once.
      grown = true;
      size = e.need;
      return { resend: build() };
    }
    throw wireErrorToNetkit(e, where(target));
  };
  try {
    const r = await session.exchange(id, {
      host: target.host,
      port: target.port,
      payload: build(),
      timeoutMs: opts.timeoutMs ?? 1000,
      retries: opts.retries ?? 2,
      onReply,
      ...(key ? { retryPayload: build } : {}),
      service: SERVICE,
    });
    return { ok: true, protocol: 'v1', target, address: r.address, attempts: r.attempts, elapsedMs: r.elapsedMs, answer: r.value };
  } catch (err) {
    const timedOut = err instanceof NetkitError && err.code === 'TIMEOUT';
    if (unproven && timedOut) {
      const n = unproven.count === 1 ? 'an answer' : `${unproven.count} answers`;
      const detail =
        unproven.why === 'unauthenticated'
          ? 'without a MAC: the server does not use a secret, or something else is answering in its place'
          : 'with a MAC that does not verify: forged, or the server uses a different secret';
      throw new NetkitError('UNAUTHORIZED', `${where(target)} sent ${n} ${detail}; rejected`, 'give both sides the same secret (NETKIT_TOKEN or --token-file)', { cause: err });
    }
    if (timedOut && !malformed) {
      const hint = key
        ? `${err.hint ?? ''} Does the server use the same secret? With a different one it stays silent.`
        : `${err.hint ?? ''} And ${NO_SECRET_HINT}.`;
      throw new NetkitError('TIMEOUT', err.message, hint.trim(), { cause: err.cause });
    }
    if (malformed && err instanceof NetkitError && err.code === 'TIMEOUT') {
      throw new NetkitError('PROTOCOL', `${where(target)} sent only malformed replies (${malformed.message})`, 'is that a netkit disk server? try --classic for a seed server', { cause: err });
    }
    throw err;
  }
}

async function queryClassic(target: QueryTarget, opts: DiskQueryOptions): Promise<HostResult> {
  const r = await udpExchange({
    host: target.host,
    port: target.port,
    payload: CLASSIC_REQUEST,
    timeoutMs: opts.timeoutMs ?? 1000,
    retries: opts.retries ?? 2,
    // The classic protocol has no id: the first datagram from the server's address is the answer.
    onReply: (msg) => ({ accept: msg.toString('utf8') }),
    service: CLASSIC_SERVICE,
  });
  const parsed = parseClassicAnswer(r.value);
  return { ok: true, protocol: 'classic', target, address: r.address, attempts: r.attempts, elapsedMs: r.elapsedMs, text: r.value, ...(parsed ? { parsed } : {}) };
}

/**
 * Query one host; failures come back as results, not exceptions. Without a session, one is opened for
 * this query and closed after it.
 */
export async function queryDisk(target: QueryTarget, opts: DiskQueryOptions = {}, session?: UdpSession): Promise<HostResult> {
  const started = Date.now();
  const own = !opts.classic && !session ? openDiskSession() : undefined;
  try {
    return opts.classic ? await queryClassic(target, opts) : await queryV1(target, opts, (session ?? own)!);
  } catch (err) {
    const error = err instanceof NetkitError ? err : new NetkitError('INTERNAL', err instanceof Error ? err.message : String(err), undefined, { cause: err });
    return { ok: false, target, error, elapsedMs: Date.now() - started };
  } finally {
    await own?.close();
  }
}

/**
 * Query every target concurrently (at most opts.concurrency in flight), results in the order given.
 * The queries share one session: the given one (kept open), or one opened and closed here.
 */
export async function queryDisks(targets: readonly QueryTarget[], opts: DiskQueryOptions = {}, session?: UdpSession): Promise<HostResult[]> {
  const results: HostResult[] = new Array(targets.length);
  const own = !opts.classic && !session ? openDiskSession() : undefined;
  const shared = session ?? own;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      results[i] = await queryDisk(targets[i]!, opts, shared);
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 64, targets.length));
  try {
    await Promise.all(Array.from({ length: n }, worker));
  } finally {
    await own?.close();
  }
  return results;
}
