// The fetch's retry policy against scripted servers on loopback: the file changing while it is sent, refusals that stop at once, the back-off.
import { afterEach, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetkitError } from '../../src/errors.js';
import { FrameReader, FrameType, Status, decodeRequest, encodeHello, encodeResponse, encodeTrailer, type Request } from '../../src/protocol/file-v1.js';
import { fetchFile, type FetchOptions, type RetryNotice } from '../../src/services/file/fetch/session.js';
import { BusyError } from '../../src/services/file/fetch/answers.js';
import { SlowPeerError } from '../../src/services/file/fetch/receiver.js';
import { Retries, afterRetries, backoffMs, retryReason } from '../../src/services/file/fetch/retry.js';
import { tcpTransport } from '../../src/transport/tcp.js';
import { rejection } from '../helpers/errors.js';

const fakes: net.Server[] = [];
afterEach(async () => {
  for (const f of fakes.splice(0)) await new Promise((r) => f.close(r));
});

/** A v1 server that answers the n-th REQUEST (from 0) with `answers[n]`, written as is. */
async function scripted(answers: Array<(s: net.Socket, r: Request) => void>): Promise<{ port: number; requests: Request[] }> {
  const requests: Request[] = [];
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    const reader = new FrameReader();
    let preamble = true;
    s.on('data', (c: Buffer) => {
      reader.push(c);
      if (preamble && reader.take(5)) preamble = false;
      for (let f = preamble ? undefined : reader.next(); f; f = reader.next()) {
        if (f.type === FrameType.HELLO) s.write(encodeHello({ nonce: randomBytes(32), flags: 0 }));
        if (f.type === FrameType.REQUEST) {
          const r = decodeRequest(f);
          const answer = answers[Math.min(requests.length, answers.length - 1)]!;
          requests.push(r);
          answer(s, r);
        }
      }
    });
  });
  fakes.push(srv);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as net.AddressInfo).port, requests };
}

const ok = (size: number, offset = 0, validator = 'v1'): Buffer => encodeResponse({ status: Status.OK, size, offset, validator: Buffer.from(validator), message: '' });
const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

function fetchFrom(port: number, out: string, extra: Partial<FetchOptions> = {}) {
  return fetchFile({ name: 'x.bin', host: '127.0.0.1', port, outDir: out, transport: tcpTransport, timeoutMs: 2000, ...extra });
}

describe('the file changing while it is sent (a RESPONSE with CHANGED in place of the TRAILER)', () => {
  const old = randomBytes(300_000);
  const fresh = randomBytes(200_000);
  const changedFrame = encodeResponse({ status: Status.CHANGED, size: 0, offset: 0, validator: Buffer.alloc(0), message: 'modified during transfer' });

  test('with a retry left: the partial bytes are discarded, it starts over (counted as a retry) and verifies the new version', async () => {
    const srv = await scripted([(s) => s.end(Buffer.concat([ok(old.length), old, changedFrame])), (s) => s.end(Buffer.concat([ok(fresh.length, 0, 'v2'), fresh, encodeTrailer({ sha256: sha(fresh) })]))]);
    const out = mkdtempSync(join(tmpdir(), 'netkit-retry-'));
    const retries: RetryNotice[] = [];
    const r = await fetchFrom(srv.port, out, { onRetry: (n) => retries.push(n) });
    expect(r).toMatchObject({ verified: true, size: fresh.length, retries: 1, resumedFrom: 0 });
    expect(readFileSync(join(out, 'x.bin')).equals(fresh)).toBe(true);
    expect(retries).toEqual([{ reason: 'the file changed on the server while it was sent', have: 0, size: undefined, discarded: old.length, delayMs: 1000, attempt: 1, of: 5 }]);
    expect(srv.requests.map((q) => q.offset)).toEqual([0, 0]);
    expect(readdirSync(out)).toEqual(['x.bin']);
  });

  test('without one: CHANGED (exit 8), nothing published, nothing kept', async () => {
    const srv = await scripted([(s) => s.end(Buffer.concat([ok(old.length), old, changedFrame]))]);
    const out = mkdtempSync(join(tmpdir(), 'netkit-retry-'));
    const err = await rejection(fetchFrom(srv.port, out, { retries: 0 }));
    expect(err.code).toBe('CHANGED');
    expect(err.exitCode).toBe(8);
    expect(err.message).toMatch(/changed on the server while it was sent; the partial download was discarded and nothing was saved/);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('what a retry cannot fix stops at once', () => {
  test.each([
    [Status.NOT_FOUND, 'NOT_FOUND'],
    [Status.FORBIDDEN, 'FORBIDDEN'],
    [Status.UNAUTHORIZED, 'UNAUTHORIZED'],
  ])('status %i on the reconnection -> %s after one retry, and the partial file is kept', async (status, code) => {
    const body = randomBytes(100_000);
    const srv = await scripted([
      (s) => s.end(Buffer.concat([ok(400_000), body])),
      (s) => s.end(encodeResponse({ status, size: 0, offset: 0, validator: Buffer.alloc(0), message: 'no' })),
    ]);
    const out = mkdtempSync(join(tmpdir(), 'netkit-retry-'));
    const retries: RetryNotice[] = [];
    const err = await rejection(fetchFrom(srv.port, out, { onRetry: (n) => retries.push(n) }));
    expect(err.code).toBe(code);
    expect(retries.map((n) => n.reason)).toEqual(['connection lost']);
    expect(srv.requests.map((q) => q.offset)).toEqual([0, body.length]);
    expect(readdirSync(join(out, '.netkit')).filter((n) => n.endsWith('.part'))).toHaveLength(1);
  });

  test('a wrong SHA-256 is not retried, and nothing is kept', async () => {
    const body = randomBytes(10_000);
    const srv = await scripted([(s) => s.end(Buffer.concat([ok(body.length), body, encodeTrailer({ sha256: Buffer.alloc(32) })]))]);
    const out = mkdtempSync(join(tmpdir(), 'netkit-retry-'));
    const err = await rejection(fetchFrom(srv.port, out));
    expect(err.code).toBe('INTEGRITY');
    expect(srv.requests).toHaveLength(1);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('the policy', () => {
  test('back-off doubles per attempt in a row without progress, capped at 30 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(backoffMs)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  test('before the server ever answered, nothing is retried (a wrong address is not a blip)', () => {
    const lost = new NetkitError('PEER_CLOSED', 'x');
    expect(retryReason(lost, false)).toBeUndefined();
    expect(retryReason(lost, true)).toBe('connection lost');
    expect(retryReason(new NetkitError('CONNECT_REFUSED', 'x'), true)).toBe('connection refused');
    expect(retryReason(new SlowPeerError('h sent only 3 bytes in 1s (less than 1 KiB/s): the transfer stalled', ''), true)).toBe('the transfer stalled');
    expect(retryReason(new NetkitError('TIMEOUT', 'h sent nothing for 1s'), true)).toBe('the server went silent');
    for (const code of ['NOT_FOUND', 'FORBIDDEN', 'UNAUTHORIZED', 'TLS_TRUST', 'INTEGRITY', 'DISK_FULL', 'EXISTS', 'BUSY', 'PROTOCOL', 'LOCKED'] as const) {
      expect(retryReason(new NetkitError(code, 'x'), true)).toBeUndefined();
    }
  });

  test('an attempt that was only dripped at is no progress, and a second one in a row ends the retries', () => {
    const r = new Retries(5);
    const lost = new NetkitError('PEER_CLOSED', 'x');
    const drip = (): SlowPeerError => new SlowPeerError('h sent only 30 bytes in 1s (less than 1 KiB/s): the transfer stalled', '');
    expect(r.next(drip(), true, true)).toEqual({ reason: 'the transfer stalled', delayMs: 1000 });
    expect(r.next(lost, true, false)).toEqual({ reason: 'connection lost', delayMs: 2000 });
    expect(r.next(drip(), true, true)).toEqual({ reason: 'the transfer stalled', delayMs: 4000 });
    const last = drip();
    expect(r.next(last, true, true)).toBeUndefined();
    expect(r.count).toBe(3);
    expect(afterRetries(r.count, last)).toBe(' (after 3 retries; it was too slow twice in a row)');
    expect(afterRetries(1, lost)).toBe(' (after 1 retry)');
    expect(afterRetries(0, lost)).toBe('');
  });

  test('a BUSY that says when to come back is retried no sooner; one that does not, or asks too much, is not', () => {
    const r = new Retries(2);
    const busy = new BusyError('h is busy: no budget; try again in 7s', 'no budget', 7000);
    expect(r.next(busy, true, false)).toEqual({ reason: 'the server is busy (no budget)', delayMs: 7000 });
    expect(r.next(new BusyError('h is busy: server busy: 8 connections already open', 'x'), true, false)).toBeUndefined();
    expect(r.next(new BusyError('h is busy', 'x', 3_600_000), true, false)).toBeUndefined();
    expect(r.next(busy, true, false)).toEqual({ reason: 'the server is busy (no budget)', delayMs: 7000 });
    expect(r.next(busy, true, false)).toBeUndefined(); // the retries ran out
  });
});
