// Dispatch on a connection's first bytes: a TLS handshake (then dispatch again inside it), or one of the protocols served on the port.
import { isNetkitError } from '../../../errors.js';
import { classifyFirstBytes } from '../../../transport/tls-sniff.js';
import type { ServerLayer } from '../../../transport/tcp.js';
import { TLS_REQUIRED_MESSAGE } from '../../file-tls.js';
import type { Session } from './session.js';
import { ConnectionEnd, type TransferLog } from './types.js';

/**
 * A protocol served on the port. The dispatcher asks each in turn whether it claims the connection's
 * first bytes; the first to say yes serves it. A protocol that needs more bytes to decide says
 * undefined, and the dispatcher reads on, until it decides or the client falls silent (the classic
 * gap) or ends its side: then undecided protocols are skipped. The last protocol claims anything.
 */
export interface Protocol {
  readonly name: TransferLog['protocol'];
  claims(first: Buffer): boolean | undefined;
  /** Serve one connection; it arrives in its header phase, under the header deadline from accept. */
  serve(s: Session): Promise<void>;
  /**
   * Refuse it before reading a request, in words its clients understand, and linger: 'busy' when the
   * server is over its limits, 'bad-request' for a plain client on a TLS server.
   */
  refuse(s: Session, why: 'busy' | 'bad-request', message: string, detail: string): Promise<void>;
}

/** What to do with a connection once its protocol is known. */
export type Mode = { kind: 'serve' } | { kind: 'busy'; message: string; detail: string };

/** Which protocol these bytes belong to; undefined while more bytes are needed (unless `final`). */
function choose(first: Buffer, protocols: readonly Protocol[], final: boolean): Protocol | undefined {
  if (first.length === 0) return undefined;
  for (const p of protocols) {
    const c = p.claims(first);
    if (c === true) return p;
    if (c === undefined && !final) return undefined;
  }
  return undefined;
}

/** Whether the first bytes begin a TLS handshake; undefined while one more byte is needed. */
function startsTls(first: Buffer, layer: ServerLayer | undefined): boolean | undefined {
  if (layer) return layer.starts(first);
  const kind = classifyFirstBytes(first);
  return kind === 'incomplete' ? undefined : kind === 'tls';
}

/** Read until the first bytes say whether this is TLS and which protocol; nothing is consumed. */
async function firstBytes(s: Session, protocols: readonly Protocol[], layer: ServerLayer | undefined): Promise<{ tls: boolean; protocol: Protocol | undefined }> {
  const decide = (final: boolean): { tls: boolean; protocol: Protocol | undefined } | undefined => {
    const all = s.reader.peekAll();
    if (all.length === 0) return undefined;
    const tls = startsTls(all, layer) ?? (final ? false : undefined);
    if (tls === undefined) return undefined;
    if (tls) return { tls, protocol: undefined };
    const protocol = choose(all, protocols, final);
    return protocol ? { tls, protocol } : undefined;
  };
  return s.readUntil(() => decide(false), { ms: s.ctx.classicGapMs, onGap: () => decide(true) });
}

/**
 * Serve (or refuse) one counted connection. On a TLS server a ClientHello starts the handshake, still
 * under the deadline that runs from accept, and the protocols are then told apart by the first
 * decrypted bytes; a plain client gets the protocol's own BAD_REQUEST. On a plain server a ClientHello
 * is closed without a byte in answer, so the client's TLS stack reports "not TLS" at once.
 */
export async function dispatch(s: Session, protocols: readonly Protocol[], layer: ServerLayer | undefined, mode: Mode): Promise<void> {
  let first = await firstBytes(s, protocols, layer);
  if (first.tls) {
    if (!layer) throw new ConnectionEnd('bad-request', 'a TLS client on this plain port (fetch without --tls)');
    // The bytes read so far are the start of the ClientHello: give them back to the TLS stack.
    s.conn.raw.unshift(s.reader.takeRest());
    try {
      s.conn.socket = await layer.handshake(s.conn.raw);
    } catch (err) {
      if (!isNetkitError(err)) throw err;
      throw new ConnectionEnd(err.code === 'PEER_CLOSED' ? 'aborted' : 'bad-request', err.message);
    }
    s.conn.socket.on('error', () => undefined); // every failure is handled where it matters
    first = await firstBytes(s, protocols, undefined);
  } else if (layer) {
    const p = first.protocol!;
    s.entry.protocol = p.name;
    await p.refuse(s, 'bad-request', TLS_REQUIRED_MESSAGE, 'a plain client on this TLS server (fetch with --tls)');
    return;
  }
  // Inside TLS, bytes that look like another ClientHello are just a classic name.
  const p = first.protocol ?? protocols[protocols.length - 1]!;
  s.entry.protocol = p.name;
  if (mode.kind === 'busy') await p.refuse(s, 'busy', mode.message, mode.detail);
  else await p.serve(s);
}
