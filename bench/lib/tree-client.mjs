// A minimal v1 session client for the tree benchmarks, written from docs/protocol.md 2.10-2.11 (not from netkit's code): LIST the tree early, REQUEST every file with a window, check every file's SHA-256 against its TRAILER, discard the bytes.
// Usage: node bench/lib/tree-client.mjs PORT [DIR] [WINDOW]  ->  one JSON line on stdout.
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const port = Number(process.argv[2]);
const dir = process.argv[3] ?? '';
const WINDOW = Number(process.argv[4] ?? 64);

function frame(type, fields) {
  let len = 0;
  for (const [, v] of fields) len += 3 + v.length;
  const b = Buffer.allocUnsafe(3 + len);
  b[0] = type;
  b.writeUInt16BE(len, 1);
  let at = 3;
  for (const [t, v] of fields) {
    b[at] = t;
    b.writeUInt16BE(v.length, at + 1);
    v.copy(b, at + 3);
    at += 3 + v.length;
  }
  return b;
}
const u32 = (n) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const ZERO64 = Buffer.alloc(8);
function fields(p) {
  const m = new Map();
  for (let at = 0; at < p.length; ) {
    const len = p.readUInt16BE(at + 1);
    m.set(p[at], p.subarray(at + 3, at + 3 + len));
    at += 3 + len;
  }
  return m;
}
const fail = (why) => {
  process.stderr.write(`tree-client: ${why}\n`);
  process.exit(1);
};

const t0 = performance.now();
const sock = net.connect({ port, host: '127.0.0.1' });
sock.setNoDelay(true);
// Preamble, HELLO with SESSION, and the LIST as the early request.
sock.write(Buffer.concat([Buffer.from([0x89, 0x4e, 0x4b, 0x46, 1]), frame(1, [[1, randomBytes(32)], [2, u32(2)]]), frame(5, [[3, Buffer.from(dir)], [2, u32(1)]])]));

let buf = Buffer.alloc(0);
let state = 'hello';
const files = [];
let sent = 0;
let done = 0;
let bytes = 0;
let bodyLeft = 0;
let hash;
let listMs = 0;
let firstByteMs = 0;
let listHash = createHash('sha256');
let ended = false;

function pump() {
  if (state === 'hello' || state === 'list' || state === 'entries' || ended) return;
  const out = [];
  while (sent < files.length && sent - done < WINDOW) out.push(frame(2, [[3, files[sent++]], [4, ZERO64], [5, Buffer.alloc(0)]]));
  if (out.length) sock.write(Buffer.concat(out));
  if (sent === files.length) {
    ended = true;
    sock.end();
  }
}

function onData(c) {
  buf = buf.length ? Buffer.concat([buf, c]) : c;
  for (;;) {
    if (bodyLeft > 0) {
      const n = Math.min(bodyLeft, buf.length);
      if (n === 0) return;
      hash.update(buf.subarray(0, n));
      bodyLeft -= n;
      bytes += n;
      buf = buf.subarray(n);
      if (bodyLeft > 0) return;
      continue;
    }
    if (buf.length < 3) return;
    const len = buf.readUInt16BE(1);
    if (buf.length < 3 + len) return;
    const type = buf[0];
    const whole = buf.subarray(0, 3 + len);
    const f = fields(buf.subarray(3, 3 + len));
    buf = buf.subarray(3 + len);
    if (state === 'hello') {
      if (type !== 1 || !((f.get(2)?.readUInt32BE(0) ?? 0) & 2)) fail('the server did not agree to a session');
      state = 'list';
    } else if (state === 'list') {
      if (type !== 3 || f.get(6)[0] !== 0) fail(`LIST refused: ${f.get(8)?.toString()}`);
      state = 'entries';
    } else if (state === 'entries') {
      if (type === 6) {
        listHash.update(whole);
        if (f.get(0x0b)[0] === 1) files.push(Buffer.from(f.get(3)));
        continue;
      }
      if (type !== 7 || !listHash.digest().equals(f.get(9)) || Number(f.get(0x0e).readBigUInt64BE()) < files.length) fail('the listing does not verify');
      listMs = performance.now() - t0;
      state = 'response';
    } else if (state === 'response') {
      if (type !== 3 || f.get(6)[0] !== 0) fail(`REQUEST refused: ${f.get(8)?.toString()}`);
      bodyLeft = Number(f.get(7).readBigUInt64BE());
      hash = createHash('sha256');
      if (!firstByteMs) firstByteMs = performance.now() - t0;
      state = 'trailer';
    } else if (state === 'trailer') {
      if (type !== 4 || !hash.digest().equals(f.get(9))) fail('a file does not verify');
      done += 1;
      state = 'response';
    }
  }
}

sock.on('data', (c) => {
  onData(c);
  pump();
});
sock.on('error', (e) => fail(e.message));
sock.on('close', () => {
  if (done !== files.length) fail(`${done} of ${files.length} files arrived`);
  process.stdout.write(`${JSON.stringify({ files: files.length, bytes, ms: performance.now() - t0, listMs, firstByteMs })}\n`);
});
