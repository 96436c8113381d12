// One HTTP attempt of `file fetch http(s)://…`: GET from the resume offset (Range + If-Range), the body into the partial file, and the SHA-256 checked against Repr-Digest or Digest when the server sends one.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NetkitError, fsError } from '../../../errors.js';
import { formatBytes, sanitize } from '../../../cli/output.js';
import { parseHttpDate, sha256FromDigestField } from '../../../protocol/http-range.js';
import { httpGet, type HttpClientResponse } from '../../../transport/http.js';
import { formatHostPort } from '../../../transport/tcp.js';
import { version } from '../../../version.js';
import { prefixAllowanceMs } from '../../file-stream.js';
import { BusyError, ChangedError } from './answers.js';
import { SlowPeerError, connectAbortable, guardStall, interruption } from './receiver.js';
import { localNameOf, type Ctx, type FetchOptions, type PartState, type Tally } from './context.js';
import { BATCH, PartWriter, checkRoom, hashPrefix } from './writer.js';

/** Same-origin redirects followed in one attempt. */
const MAX_REDIRECTS = 5;
/** What a partial download's record keeps as its validator: this prefix, then the If-Range value. */
const VALIDATOR_PREFIX = 'http ';

/** The If-Range value a partial download of ours recorded, or undefined (not ours, or none). */
function recordedIfRange(part: PartState): string | undefined {
  if (!part.info) return undefined;
  const text = Buffer.from(part.info.validator, 'hex').toString('utf8');
  return text.startsWith(VALIDATOR_PREFIX) && text.length > VALIDATOR_PREFIX.length ? text.slice(VALIDATOR_PREFIX.length) : undefined;
}

/**
 * What a later request may send as If-Range (RFC 9110 13.1.5): a strong ETag, or else Last-Modified
 * when it is a strong validator (at least a second older than the response's Date). Undefined: this
 * download cannot be resumed safely.
 */
function ifRangeOf(res: HttpClientResponse): string | undefined {
  const etag = res.header('etag')?.trim();
  if (etag?.startsWith('"')) return etag;
  const modified = res.header('last-modified');
  const lm = modified === undefined ? undefined : parseHttpDate(modified);
  const date = parseHttpDate(res.header('date') ?? '');
  return lm !== undefined && date !== undefined && date - lm >= 1000 ? modified!.trim() : undefined;
}

/** `bytes a-b/total` (total may be `*`). */
function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/** The whole file's SHA-256 the server vouches for: Repr-Digest (RFC 9530), or the older Digest (RFC 3230). */
function announcedDigest(get: (name: string) => string | undefined, whole: boolean): Buffer | undefined {
  const repr = get('repr-digest');
  const legacy = get('digest');
  // Content-Digest covers the bytes of this message: the whole file only in a 200 without content coding.
  const content = whole ? get('content-digest') : undefined;
  return (
    (repr === undefined ? undefined : sha256FromDigestField(repr)) ??
    (legacy === undefined ? undefined : sha256FromDigestField(legacy, true)) ??
    (content === undefined ? undefined : sha256FromDigestField(content))
  );
}

/** A short text body (a refusal's reason), at most 1 KiB of it, for the error message. */
async function reason(res: HttpClientResponse): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  res.body.on('data', (c: Buffer) => {
    if (n < 1024) chunks.push(c);
    n += c.length;
  });
  await Promise.race([res.ended.catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
  const text = Buffer.concat(chunks).subarray(0, 1024).toString('utf8').trim();
  return text === '' || /^\s*</.test(text) ? '' : `: ${sanitize(text.split('\n')[0]!, 200)}`;
}

async function refusal(c: Ctx, res: HttpClientResponse): Promise<NetkitError> {
  const url = sanitize(c.opts.http!.url, 200);
  const said = await reason(res);
  const s = res.status;
  if (s === 401) {
    const hint = c.opts.http!.scheme === 'http' ? 'a secret is sent only over https:// (the server needs --tls)' : 'set NETKIT_TOKEN or --token-file (the same secret as the server)';
    return new NetkitError('UNAUTHORIZED', `${url}: 401 unauthorized${said}`, hint);
  }
  if (s === 403) return new NetkitError('FORBIDDEN', `${url}: 403 forbidden${said}`);
  if (s === 404 || s === 410) return new NetkitError('NOT_FOUND', `${url}: ${s} not found${said}`, 'check the path');
  if (s === 429 || s === 503) {
    // Retry-After in seconds (an HTTP date is not waited for): a retry comes back no sooner.
    const after = /^\s*(\d{1,6})\s*$/.exec(res.header('retry-after') ?? '');
    return new BusyError(`${url}: ${s} busy${said}`, `${s}${said}`, after ? Number(after[1]) * 1000 : undefined);
  }
  if (s >= 400 && s < 500) return new NetkitError('BAD_REQUEST', `${url}: ${s} refused${said}`);
  if (s >= 300 && s < 400) {
    const location = res.header('location');
    if (location === undefined || ![301, 302, 303, 307, 308].includes(s)) return new NetkitError('PROTOCOL', `${url}: the server answered ${s} without a redirect netkit can follow${said}`);
    return new NetkitError('PROTOCOL', `${url} redirects to ${sanitize(location, 200)} on another server`, 'fetch that URL (netkit follows redirects only on the same server)');
  }
  return new NetkitError('FAILED', `${url}: the server answered ${s}${said}`);
}

/**
 * A URL that names a directory (its path ends with '/', or it redirects there): its answer is a page
 * listing the directory, not a file. The hint names the tree fetch from a netkit server.
 */
function directoryError(c: Ctx, pathname: string, why: string): NetkitError {
  const src = c.opts.http!;
  let name: string;
  try {
    name = decodeURIComponent(pathname).replace(/^\/+/, '');
  } catch {
    name = pathname.replace(/^\/+/, '');
  }
  const dir = name === '' ? '.' : name.endsWith('/') ? name : `${name}/`;
  const tree = treeHint(c.host, c.port, src.scheme, dir);
  return new NetkitError('FORBIDDEN', `${sanitize(src.url, 200)} is a directory (${why}): nothing was saved`, `name a file in it, or, from a netkit file server, fetch the whole tree: ${tree}`);
}

/** The tree fetch that a directory URL likely meant, from a netkit server. */
function treeHint(host: string, port: number, scheme: 'http' | 'https', dir: string): string {
  return `netkit file fetch '${sanitize(dir, 200)}' -H ${formatHostPort(host, port)}${scheme === 'https' ? ' --tls' : ''}`;
}

/**
 * The local name of a URL's file: its path's last segment. The server's root has none: that URL
 * names a directory (without -o NAME, nothing to save it as).
 */
export function httpLocalName(opts: FetchOptions): string {
  const src = opts.http!;
  if (opts.name.split('/').every((s) => s === '')) {
    throw new NetkitError('USAGE', `${sanitize(src.url, 200)} names the server's root directory, not a file`, `name a file in it, give -o NAME to save the page itself, or, from a netkit file server, fetch the whole tree: ${treeHint(opts.host ?? 'HOST', opts.port ?? (src.scheme === 'https' ? 443 : 80), src.scheme, '.')}`);
  }
  return localNameOf(opts.name);
}

/**
 * A 200 to a path ending in '/' that is a page or a JSON listing: a directory index, not a file
 * (unless -o NAME asked for the page itself).
 */
function isListing(c: Ctx, target: string, res: HttpClientResponse): boolean {
  if (c.opts.saveAs !== undefined || res.status !== 200 || !target.split('?')[0]!.endsWith('/')) return false;
  return /^\s*(text\/html|application\/json)\b/i.test(res.header('content-type') ?? '');
}

/** Send the GET, following redirects that stay on the same scheme, host and port. */
async function request(c: Ctx, headers: Record<string, string>): Promise<HttpClientResponse> {
  const { opts } = c;
  let target = opts.http!.target;
  /** The targets asked for so far, in order: a redirect back to one of them is a loop. */
  const asked: string[] = [];
  for (let hops = 0; ; hops++) {
    asked.push(target);
    let stop = (): void => undefined;
    const res = await httpGet({
      host: c.host,
      port: c.port,
      path: target,
      headers,
      connect: async () => {
        const socket = await connectAbortable(opts.transport, { host: c.host, port: c.port, timeoutMs: c.timeoutMs }, opts.signal);
        // The status line and headers within --timeout of connecting, however slowly they trickle in.
        let bytes = 0;
        const count = (d: Buffer): void => void (bytes += d.length);
        socket.on('data', count);
        const deadline = setTimeout(() => {
          const sent = bytes === 0 ? 'sent nothing' : `sent only ${bytes} bytes and not yet a complete response head`;
          socket.destroy(new SlowPeerError(`${c.target} ${sent} in ${c.timeoutMs / 1000}s: the answer stalled`, 'is the server overloaded? or raise --timeout'));
        }, c.timeoutMs);
        stop = () => {
          clearTimeout(deadline);
          socket.off('data', count);
        };
        socket.once('close', stop);
        return socket;
      },
    }).finally(() => stop());
    if (isListing(c, target, res)) {
      res.socket.destroy();
      throw directoryError(c, target.split('?')[0]!, 'the server answered with a page for it, not a file');
    }
    const location = res.header('location');
    if (![301, 302, 303, 307, 308].includes(res.status) || location === undefined) return res;
    const base = new URL(opts.http!.url);
    const from = new URL(target, base);
    if (!URL.canParse(location, from.href)) {
      res.socket.destroy();
      throw new NetkitError('PROTOCOL', `${sanitize(opts.http!.url, 200)}: the server answered ${res.status} with a Location that is not a URL (${sanitize(location, 200)})`);
    }
    const next = new URL(location, from);
    if (next.origin !== base.origin) return res;
    res.socket.destroy();
    const nextTarget = `${next.pathname}${next.search}`;
    const url = sanitize(opts.http!.url, 200);
    if (asked.includes(nextTarget)) {
      const chain = [...asked.slice(asked.indexOf(nextTarget)), nextTarget].map((t) => sanitize(t, 100)).join(' -> ');
      throw new NetkitError('PROTOCOL', `${url}: a redirect loop on the server (${chain})`, 'the server redirects back to a path it already redirected from: fix its configuration, or fetch the file by another URL');
    }
    if (hops >= MAX_REDIRECTS) {
      throw new NetkitError('PROTOCOL', `${url}: too many redirects (more than ${MAX_REDIRECTS}, the last to ${sanitize(nextTarget, 200)})`, 'fetch the final URL directly');
    }
    if (next.pathname.endsWith('/') && !target.split('?')[0]!.endsWith('/')) throw directoryError(c, next.pathname, `the server redirects to ${sanitize(next.pathname, 200)}`);
    target = nextTarget;
  }
}

function truncate(fd: number, where: string): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, 0, (err) => (err ? reject(fsError(err, `cannot write ${where}`)) : resolve())));
}

/**
 * Fetch the rest of the file once, from `part.have` on, into `part.fd`. Returns whether a digest from
 * the server verified the whole file; a digest that does not match fails with INTEGRITY.
 */
export async function attemptHttp(c: Ctx, part: PartState, tally: Tally): Promise<{ size: number; sha256: string; verified: boolean; restarted: boolean }> {
  const { opts, entry } = c;
  const src = opts.http!;
  const ifRange = recordedIfRange(part);
  if (part.have > 0 && ifRange === undefined) {
    opts.onNotice?.(`starting over: ${c.target} cannot resume ${c.localName} (it announced no byte ranges, or no validator that tells the file is the same)`);
    part.have = 0;
    part.hash = undefined;
  }
  let offset = part.have;
  let restarted = offset === 0;
  const headers: Record<string, string> = {
    Host: c.port === (src.scheme === 'https' ? 443 : 80) ? formatHostPort(c.host, 0).replace(/:0$/, '') : formatHostPort(c.host, c.port),
    'User-Agent': `netkit/${version()}`,
    Accept: '*/*',
    'Accept-Encoding': 'identity',
    // Ask for the digest (RFC 9530; and RFC 3230's Digest), as a trailer if the server computes it while sending.
    TE: 'trailers',
    'Want-Repr-Digest': 'sha-256=9',
    'Want-Digest': 'sha-256',
    Range: `bytes=${offset}-`,
    Connection: 'close',
    ...(offset > 0 ? { 'If-Range': ifRange! } : {}),
    ...(src.bearer !== undefined && src.scheme === 'https' ? { Authorization: `Bearer ${src.bearer}` } : {}),
  };
  const res = await request(c, headers);
  const { socket } = res;
  tally.reached = true;
  const onAbort = (): void => void socket.destroy(interruption(opts.signal));
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) onAbort();
  socket.setTimeout(c.timeoutMs, () => socket.destroy(new NetkitError('TIMEOUT', `${c.target} sent nothing for ${(socket.timeout || c.timeoutMs) / 1000}s`, 'is the server overloaded? try again, or raise --timeout')));
  let writer: PartWriter | undefined;
  let guard: { stop(): void } | undefined;
  try {
    let size: number | undefined;
    if (res.status === 206) {
      const range = parseContentRange(res.header('content-range'));
      if (!range || range.start !== offset || (range.total !== undefined && range.end + 1 !== range.total)) {
        throw new NetkitError('PROTOCOL', `${c.target} answered a different range (${sanitize(res.header('content-range') ?? 'none')}) than bytes=${offset}-`);
      }
      size = range.total;
    } else if (res.status === 200) {
      const length = res.header('content-length');
      size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
      if (offset > 0) {
        opts.onNotice?.(`starting over: ${c.target} sent the whole file (it does not resume, or the file changed since the partial download)`);
        offset = 0;
        restarted = true;
      }
    } else if (res.status === 416 && offset > 0) {
      throw new ChangedError('resume', 'the file on the server is no longer longer than the partial download');
    } else {
      throw await refusal(c, res);
    }
    const coding = res.header('content-encoding');
    if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
      throw new NetkitError('PROTOCOL', `${c.target} sent the file encoded (${sanitize(coding)}) though netkit asked for it as is`, 'fetch it with a client that decodes it');
    }
    if (size !== undefined) await checkRoom(path.dirname(entry.finalPath), size - offset);
    if (offset === 0) {
      if (part.fd === undefined) part.fd = await entry.create();
      else await truncate(part.fd, entry.partPath);
      const validator = ifRangeOf(res);
      // A record only when a later run can resume: the size, a validator, and ranges.
      const ranges = res.status === 206 || /\bbytes\b/i.test(res.header('accept-ranges') ?? '');
      part.info = size !== undefined && validator !== undefined && ranges ? { netkit: 2, target: entry.target, name: opts.name, server: c.target, size, validator: Buffer.from(VALIDATOR_PREFIX + validator).toString('hex') } : undefined;
      if (part.info) await entry.writeInfo(part.info);
      part.hash = createHash('sha256');
    } else if (part.hash === undefined) {
      opts.onNotice?.(`resuming ${c.localName} at ${formatBytes(offset)}${size === undefined ? '' : ` of ${formatBytes(size)}`}`);
      socket.setTimeout(0);
      part.hash = await hashPrefix(part.fd!, entry.partPath, offset, opts.signal);
    }
    // A netkit server hashes [0, offset) before the first body byte when it sends the digest as a trailer.
    socket.setTimeout(c.timeoutMs + (offset > 0 ? prefixAllowanceMs(offset) : 0));
    const hash = part.hash;
    writer = new PartWriter(part.fd!, entry.partPath, offset, hash, opts.fsync !== false);
    const w = writer;
    const counters = { bytes: 0, throttled: false };
    let got = 0;
    let reported = 0;
    opts.onProgress?.(offset, size ?? 0);
    await new Promise<void>((resolve, reject) => {
      w.onResume = () => res.body.resume();
      w.onFail = (err) => {
        reject(err);
        socket.destroy();
      };
      res.body.on('data', (chunk: Buffer) => {
        if (got === 0) {
          socket.setTimeout(c.timeoutMs);
          guard = guardStall({ socket, receiver: counters }, c.target, c.timeoutMs);
        }
        w.push(chunk);
        got += chunk.length;
        counters.bytes += chunk.length;
        tally.received += chunk.length;
        if (got - reported >= BATCH) {
          reported = got;
          opts.onProgress?.(offset + got, size ?? 0);
        }
        if (w.high) {
          counters.throttled = true;
          res.body.pause();
        }
      });
      res.ended.then(resolve, reject);
    });
    await writer.settle();
    part.have = writer.written;
    opts.onProgress?.(part.have, size ?? part.have);
    if (size !== undefined && part.have !== size) {
      throw new NetkitError('PEER_CLOSED', `${c.target} ended the body at ${formatBytes(part.have)} of ${formatBytes(size)}`, 'run the same fetch again to resume');
    }
    const whole = res.status === 200;
    const expected = announcedDigest(res.header, whole) ?? announcedDigest(res.trailer, whole);
    const digest = hash.digest();
    part.hash = undefined;
    if (expected && !digest.equals(expected)) {
      throw new NetkitError(
        'INTEGRITY',
        `${c.localName} did not verify: SHA-256 ${digest.toString('hex')} here, ${expected.toString('hex')} announced by the server; the partial file was removed`,
        'run the fetch again; if it fails again, the file is changing on the server or the network corrupts data',
      );
    }
    return { size: part.have, sha256: digest.toString('hex'), verified: expected !== undefined, restarted };
  } catch (err) {
    socket.destroy();
    guard?.stop();
    if (writer) {
      await writer.settle().catch(() => undefined);
      part.have = writer.written;
      if (writer.failed) part.hash = undefined;
    }
    if (writer?.failed) throw writer.failed;
    if (opts.signal?.aborted) throw interruption(opts.signal);
    throw err;
  } finally {
    guard?.stop();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
