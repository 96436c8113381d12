// A scripted file-protocol v1 server for client tests: serves an in-memory tree with or without sessions, can lie in its listings, and records every request and when bytes moved.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { FrameReader, FrameType, HelloFlag, Status, decodeHello, decodeRequest, encodeHello, encodeResponse, encodeTrailer } from '../../src/protocol/file-v1.js';
import { EntryKind, decodeList, encodeEnd, encodeEntry, type Entry } from '../../src/protocol/file-list.js';

export interface FakeFile {
  name: string;
  data: Buffer;
  mtimeMs?: number;
  mode?: number;
}

export interface FakeOptions {
  /** Answer the SESSION flag (default true); false behaves like a netkit server from before sessions. */
  session?: boolean;
  /** Send MTIME and MODE in a RESPONSE (default: with sessions only; netkit servers from before sessions sent neither). */
  responseMeta?: boolean;
  /** Replace the listing of `dir` (entries sent as given: a hostile server). */
  listing?: (dir: string, recursive: boolean) => Entry[] | undefined;
  /** Data to send for a file instead of its own (the TRAILER still carries the hash of `data`): a lying server. */
  body?: (name: string) => Buffer | undefined;
  /** Drop this ENTRY frame (by index) from the listing but keep it in END's count and hash: a listing cut on the way. */
  dropEntry?: number;
  /** END's SKIPPED for the listing of `dir` (default 0). */
  skipped?: (dir: string) => number;
}

export interface Recorded {
  type: 'list' | 'get';
  name: string;
  offset: number;
  /** The connection it came on (from 0). */
  connection: number;
  /** It arrived before this server had sent a byte on its connection (it travelled with the client's HELLO). */
  early: boolean;
}

export interface FakeServer {
  port: number;
  requests: Recorded[];
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

function dirsOf(files: readonly FakeFile[]): Set<string> {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.name.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return dirs;
}

/** The listing of `dir` ('' = root) in the order netkit uses: depth-first, a directory before its contents, names sorted by bytes. */
export function listTree(files: readonly FakeFile[], dir: string, recursive: boolean): Entry[] {
  const dirs = dirsOf(files);
  const children = (d: string): string[] => {
    const p = d === '' ? '' : `${d}/`;
    const names = new Set<string>();
    for (const f of files) if (f.name.startsWith(p)) names.add(f.name.slice(p.length).split('/')[0]!);
    return [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map((n) => `${p}${n}`);
  };
  const out: Entry[] = [];
  const walk = (d: string): void => {
    for (const path of children(d)) {
      const file = files.find((f) => f.name === path);
      if (file) out.push({ name: path, kind: EntryKind.FILE, size: file.data.length, mtimeMs: file.mtimeMs ?? 1_700_000_000_000, mode: file.mode ?? 0o644 });
      else if (dirs.has(path)) {
        out.push({ name: path, kind: EntryKind.DIRECTORY, size: 0, mtimeMs: 1_700_000_000_000, mode: 0o755 });
        if (recursive) walk(path);
      }
    }
  };
  walk(dir);
  return out;
}

export async function fakeFileServer(files: FakeFile[], opts: FakeOptions = {}): Promise<FakeServer> {
  const requests: Recorded[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const session = opts.session !== false;
  const responseMeta = opts.responseMeta ?? session;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const connection = connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const reader = new FrameReader();
    let preamble = true;
    let sessionOn = false;
    let answered = 0;
    let spoke = false;
    const write = s.write.bind(s);
    s.write = ((...a: Parameters<typeof write>) => {
      spoke = true;
      return write(...a);
    }) as typeof s.write;
    s.on('data', (c: Buffer) => {
      reader.push(c);
      if (preamble && reader.take(5)) preamble = false;
      const early = !spoke;
      for (let f = preamble ? undefined : reader.next(); f; f = reader.next()) {
        if (f.type === FrameType.HELLO) {
          sessionOn = session && (decodeHello(f).flags & HelloFlag.SESSION) !== 0;
          s.write(encodeHello({ nonce: randomBytes(32), flags: session ? HelloFlag.SESSION : 0 }));
          continue;
        }
        if (!sessionOn && answered > 0) continue; // an old server reads one request
        answered += 1;
        if (f.type === FrameType.LIST && sessionOn) {
          const l = decodeList(f);
          requests.push({ type: 'list', name: l.name, offset: 0, connection, early });
          const entries = opts.listing?.(l.name, l.recursive);
          const isDir = l.name === '' || dirsOf(files).has(l.name);
          if (!entries && !isDir) {
            const file = files.some((x) => x.name === l.name);
            s.write(encodeResponse({ status: file ? Status.NOT_DIRECTORY : Status.NOT_FOUND, size: 0, offset: 0, validator: Buffer.alloc(0), message: file ? 'not a directory' : 'no such directory' }));
            continue;
          }
          const frames = (entries ?? listTree(files, l.name, l.recursive)).map(encodeEntry);
          const hash = createHash('sha256');
          for (const e of frames) hash.update(e);
          const sent = frames.filter((_, i) => i !== opts.dropEntry);
          s.write(Buffer.concat([encodeResponse({ status: Status.OK, size: 0, offset: 0, validator: Buffer.alloc(0), message: '' }), ...sent, encodeEnd({ count: frames.length, skipped: opts.skipped?.(l.name) ?? 0, sha256: hash.digest() })]));
          continue;
        }
        if (f.type !== FrameType.REQUEST) {
          s.end(encodeResponse({ status: Status.BAD_REQUEST, size: 0, offset: 0, validator: Buffer.alloc(0), message: 'expected a REQUEST frame' }));
          continue;
        }
        const r = decodeRequest(f);
        requests.push({ type: 'get', name: r.name, offset: r.offset, connection, early });
        const file = files.find((x) => x.name === r.name);
        const end = (b: Buffer): void => void (sessionOn ? s.write(b) : s.end(b));
        if (!file) {
          const dir = dirsOf(files).has(r.name);
          end(encodeResponse({ status: dir ? (sessionOn ? Status.IS_DIRECTORY : Status.FORBIDDEN) : Status.NOT_FOUND, size: 0, offset: 0, validator: Buffer.alloc(0), message: dir ? 'is a directory' : 'no such file' }));
          continue;
        }
        const validator = Buffer.from('v1');
        const head = encodeResponse({ status: Status.OK, size: file.data.length, offset: r.offset, validator, message: '', ...(responseMeta ? { mtimeMs: file.mtimeMs ?? 1_700_000_000_000, mode: file.mode ?? 0o644 } : {}) });
        const body = (opts.body?.(file.name) ?? file.data).subarray(r.offset);
        end(Buffer.concat([head, body, encodeTrailer({ sha256: createHash('sha256').update(file.data).digest() })]));
      }
      if (!sessionOn && answered > 0 && s.readableEnded) s.end();
    });
    s.on('end', () => {
      if (sessionOn) s.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
