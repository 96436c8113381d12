// A hostile server whose listing never ends (entries with 1,000-byte names, as fast as the client reads): `file list -r` refuses it once the listing passes its byte budget, with a clear message, long before it eats memory.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { FrameReader, FrameType, HelloFlag, Status, encodeHello, encodeResponse } from '../../src/protocol/file-v1.js';
import { EntryKind, encodeEntry } from '../../src/protocol/file-list.js';
import { startNetkit } from '../helpers/netkit.js';

/** The client's documented budget for one listing (ENTRY frames as sent). */
const MAX_LIST_BYTES = 128 * 1024 * 1024;
/** The server stops sending after this much (a client with no budget would then wait for the rest and time out). */
const SEND_AT_MOST = 400 * 1024 * 1024;

let server: net.Server;
let sent = 0;
/** The client's peak resident memory (VmHWM), read from /proc each time the server's writes drain. */
let clientPid: number | undefined;
let peakKiB = 0;

function readPeak(): void {
  if (clientPid === undefined) return;
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${clientPid}/status`, 'utf8'));
    if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
  } catch {
    // the client has exited
  }
}

beforeAll(async () => {
  server = net.createServer((s) => {
    s.on('error', () => undefined);
    const reader = new FrameReader();
    let preamble = true;
    let started = false;
    s.on('data', (c: Buffer) => {
      reader.push(c);
      if (preamble && reader.take(5)) preamble = false;
      for (let f = preamble ? undefined : reader.next(); f; f = reader.next()) {
        if (f.type === FrameType.HELLO) s.write(encodeHello({ nonce: randomBytes(32), flags: HelloFlag.SESSION }));
        else if (f.type === FrameType.LIST && !started) {
          started = true;
          s.write(encodeResponse({ status: Status.OK, size: 0, offset: 0, validator: Buffer.alloc(0), message: '' }));
          let n = 0;
          const pump = (): void => {
            readPeak();
            while (!s.destroyed && sent < SEND_AT_MOST) {
              const frame = encodeEntry({ name: `${'n'.repeat(990)}${String(n++).padStart(10, '0')}`, kind: EntryKind.FILE, size: 1, mtimeMs: 1_700_000_000_000, mode: 0o644 });
              sent += frame.length;
              if (!s.write(frame)) {
                s.once('drain', pump);
                return;
              }
            }
          };
          pump();
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

describe('a listing that never ends', () => {
  test(`is refused once it passes ${MAX_LIST_BYTES / (1024 * 1024)} MiB: TOO_LARGE (exit 8), a clear message, bounded memory`, async () => {
    const { port } = server.address() as net.AddressInfo;
    const client = startNetkit(['file', 'list', '-r', '-H', `127.0.0.1:${port}`, '--timeout', '5s']);
    clientPid = client.child.pid;
    const r = await client.done(120_000);
    expect(r.stderr).toMatch(/^netkit: the listing of '\.' is larger than 128 MiB \(\d+ entries so far\): netkit refuses a listing that large$/m);
    expect(r.stderr).toMatch(/^hint: list or fetch a directory below it$/m);
    expect(r.code).toBe(8);
    expect(r.stdout).toBe('');
    // Refused at the budget: what the server got out is the budget plus what the socket buffers held.
    expect(sent).toBeLessThan(MAX_LIST_BYTES + 32 * 1024 * 1024);
    // The entries are held as about the bytes sent, not as one object each.
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB).toBeLessThan(400 * 1024);
  }, 150_000);
});
