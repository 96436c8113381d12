// Sniffing the first bytes of a connection, so that each side of a plain/TLS mismatch can say so: classify them, and close a connection gently.
import type net from 'node:net';

/** A TLS record carrying a handshake message starts 0x16 0x03 <minor>; ClientHellos use 0x03 0x01 .. 0x03 0x04. */
export const TLS_HANDSHAKE_RECORD = 0x16;
/** The first byte of a plain netkit v1 file request (its magic is 0x89 'N' 'K' 'F'). */
export const NETKIT_V1_FIRST_BYTE = 0x89;

export type FirstBytes = 'tls' | 'netkit-v1' | 'other' | 'incomplete';

/**
 * What a connection's first bytes say it is. 'incomplete' only for an empty buffer or a lone 0x16,
 * since one more byte is needed to tell a ClientHello from garbage that happens to start with 0x16.
 */
export function classifyFirstBytes(buf: Buffer): FirstBytes {
  if (buf.length === 0) return 'incomplete';
  const b0 = buf[0]!;
  if (b0 === TLS_HANDSHAKE_RECORD) {
    if (buf.length < 2) return 'incomplete';
    return buf[1] === 0x03 ? 'tls' : 'other';
  }
  if (b0 === NETKIT_V1_FIRST_BYTE) return 'netkit-v1';
  return 'other';
}

/** True when `buf` (the first bytes a plain server received) is the start of a TLS ClientHello. */
export function looksLikeTlsClientHello(buf: Buffer): boolean {
  return classifyFirstBytes(buf) === 'tls';
}

/** How long a refused client may take to close its side before we cut the connection. */
const REFUSAL_LINGER_MS = 2_000;

/**
 * End our side and discard input until the peer closes (bounded), so the close is a FIN, not a reset
 * that could destroy bytes still in flight, and a half-open peer cannot keep the socket forever.
 */
export function closeGently(socket: net.Socket): void {
  const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
  socket.on('error', () => undefined);
  socket.end();
  socket.resume();
}

/**
 * What a plain server does with a TLS client: close without writing, so the client's TLS stack sees the
 * connection end during the handshake and connectTls() reports "the server is not running TLS" at once
 * (anything written would be parsed as a TLS record and give a vaguer error).
 */
export function refuseTlsClient(socket: net.Socket): void {
  closeGently(socket);
}
