// The test vectors of docs/protocol.md section 5.4, read from the document: netkit's code must produce every one, and so must the formulas of section 5 written out with node:crypto alone.
import { describe, expect, test } from '@jest/globals';
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../../src/protocol/auth-frames.js';
import { deriveKey } from '../../src/protocol/auth.js';
import { encodeAuthQuery, sealReply, verifyReply } from '../../src/protocol/disk-auth.js';
import { Scope, encodeAnswer } from '../../src/protocol/disk-v1.js';
import { EntryKind, encodeEnd, encodeEntry, encodeList } from '../../src/protocol/file-list.js';
import { Status, encodeRequest, encodeResponse, encodeTrailer } from '../../src/protocol/file-v1.js';

/** name = value lines between the markers; indented lines continue a value; spaces inside hex are ignored. */
function vectors(): Record<string, string> {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8');
  const block = /<!-- test-vectors:begin -->\n```\n([\s\S]*?)```\n<!-- test-vectors:end -->/.exec(doc);
  if (!block) throw new Error('no test-vectors block in docs/protocol.md');
  const out: Record<string, string> = {};
  let last = '';
  for (const line of block[1]!.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^(\w+)\s*=\s*(.*)$/.exec(line);
    if (m) out[(last = m[1]!)] = m[2]!.trim();
    else out[last] += ` ${line.trim()}`;
  }
  return out;
}

const V = vectors();
const hex = (name: string): Buffer => {
  if (V[name] === undefined) throw new Error(`docs/protocol.md has no vector ${name}`);
  return Buffer.from(V[name]!.replace(/\s+/g, ''), 'hex');
};
const seq = (from: number, n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => from + i));

/** Section 5 written out: HKDF-SHA-256 and a labelled HMAC, nothing from netkit. */
const spec = {
  key: (purpose: 'disk' | 'file'): Buffer => Buffer.from(hkdfSync('sha256', Buffer.from(V.token!, 'utf8'), Buffer.from('netkit v1 hkdf salt'), Buffer.from(`netkit ${purpose} v1 key`), 32)),
  mac: (key: Buffer, label: string, ...parts: Buffer[]): Buffer => createHmac('sha256', key).update(Buffer.concat([Buffer.from(label, 'ascii'), Buffer.from([0]), ...parts])).digest(),
};

const token = V.token!;
const kDisk = deriveKey(token, 'disk');
const kFile = deriveKey(token, 'file');

describe('docs/protocol.md section 5.4', () => {
  test('keys', () => {
    expect(kDisk.export()).toEqual(hex('k_disk'));
    expect(kFile.export()).toEqual(hex('k_file'));
    expect(spec.key('disk')).toEqual(hex('k_disk'));
    expect(spec.key('file')).toEqual(hex('k_file'));
  });

  test('disk QUERY and ANSWER', () => {
    const nonce = seq(0, 16);
    const query = encodeAuthQuery(kDisk, 0x2a, Scope.PATH, nonce, 1_700_000_000_000, 1200);
    expect(query.length).toBe(1200);
    expect(query.subarray(0, 77)).toEqual(hex('disk_query'));
    expect(query.subarray(77).every((b) => b === 0)).toBe(true);
    expect(query.subarray(45, 77)).toEqual(hex('disk_mac_req'));
    expect(spec.mac(hex('k_disk'), 'netkit disk v1 request', hex('disk_query').subarray(0, 45))).toEqual(hex('disk_mac_req'));

    const plain = encodeAnswer(0x2a, {
      host: 'nas',
      time: 1_700_000_000_000,
      filesystems: [{ mount: '/', fstype: 'ext4', device: '/dev/sda1', total: 1_000_000_000_000n, used: 400_000_000_000n, available: 550_000_000_000n, free: 600_000_000_000n, served: true }],
    });
    const answer = sealReply(kDisk, nonce, [plain]);
    expect(answer).toEqual(hex('disk_answer'));
    expect(answer.subarray(81)).toEqual(hex('disk_mac_ans'));
    expect(spec.mac(hex('k_disk'), 'netkit disk v1 answer', nonce, answer.subarray(0, 81))).toEqual(hex('disk_mac_ans'));
    expect(verifyReply(kDisk, [nonce], hex('disk_answer'))).toBe('ok');
  });

  test('file REQUEST, RESPONSE, TRAILER, and CHANGED in place of the TRAILER', () => {
    const nonces = { client: hex('file_n_c'), server: hex('file_n_s') };
    expect(nonces.client).toEqual(seq(0, 32));
    expect(nonces.server).toEqual(seq(0x20, 32));
    const frames: Array<[string, string, 'client' | 'server' | 'trailer', string, Buffer]> = [
      ['file_request', 'file_p_c', 'client', 'netkit file v1 client', encodeRequest({ name: 'hi.txt', offset: 0, validator: Buffer.alloc(0) }, [MAC_PLACEHOLDER])],
      ['file_response', 'file_p_s', 'server', 'netkit file v1 server', encodeResponse({ status: Status.OK, size: 5, offset: 0, validator: seq(0xa0, 16), message: '' }, [MAC_PLACEHOLDER])],
      ['file_trailer', 'file_p_t', 'trailer', 'netkit file v1 trailer', encodeTrailer({ sha256: createHash('sha256').update('hello').digest() }, [MAC_PLACEHOLDER])],
      ['file_changed', 'file_p_s_changed', 'server', 'netkit file v1 server', encodeResponse({ status: Status.CHANGED, size: 6, offset: 0, validator: seq(0xb0, 16), message: 'changed' }, [MAC_PLACEHOLDER])],
    ];
    for (const [frameName, macName, kind, label, unsealed] of frames) {
      const sealed = sealFrame(kind, kFile, nonces, unsealed);
      expect([frameName, sealed.toString('hex')]).toEqual([frameName, hex(frameName).toString('hex')]);
      const payload = sealed.subarray(3);
      const m = payload.length - 32;
      expect(payload.subarray(m)).toEqual(hex(macName));
      const [first, second] = kind === 'client' ? [nonces.server, nonces.client] : [nonces.client, nonces.server];
      expect(spec.mac(hex('k_file'), label, first, second, payload.subarray(0, m))).toEqual(hex(macName));
      expect(checkFrame(kind, kFile, nonces, hex(frameName).subarray(3))).toBe('ok');
    }
  });

  test('file session: LIST, its RESPONSE and END as request 0, then a REQUEST, its RESPONSE and TRAILER as request 1, each MAC over its sequence number', () => {
    const nonces = { client: hex('file_n_c'), server: hex('file_n_s') };
    const u32 = (i: number): Buffer => Buffer.from([i >>> 24, (i >>> 16) & 255, (i >>> 8) & 255, i & 255]);
    // The END of section 2.10's example: the hash of its two ENTRY frames.
    const entries = Buffer.concat([
      encodeEntry({ name: 'photos/2024', kind: EntryKind.DIRECTORY, size: 0, mtimeMs: 1714564800000, mode: 0o755 }),
      encodeEntry({ name: 'photos/2024/a.jpg', kind: EntryKind.FILE, size: 5, mtimeMs: 1714564800123, mode: 0o644 }),
    ]);
    const frames: Array<[string, string, 'client' | 'server' | 'trailer', string, number, Buffer]> = [
      ['file_s_list', 'file_s_p_c0', 'client', 'netkit file v1 client', 0, encodeList({ name: 'photos', recursive: true }, [MAC_PLACEHOLDER])],
      ['file_s_list_ok', 'file_s_p_s0', 'server', 'netkit file v1 server', 0, encodeResponse({ status: Status.OK, size: 0, offset: 0, validator: Buffer.alloc(0), message: '' }, [MAC_PLACEHOLDER])],
      ['file_s_end', 'file_s_p_t0', 'trailer', 'netkit file v1 trailer', 0, encodeEnd({ count: 2, skipped: 1, sha256: createHash('sha256').update(entries).digest() }, [MAC_PLACEHOLDER])],
      ['file_s_request1', 'file_s_p_c1', 'client', 'netkit file v1 client', 1, encodeRequest({ name: 'hi.txt', offset: 0, validator: Buffer.alloc(0) }, [MAC_PLACEHOLDER])],
      ['file_s_response1', 'file_s_p_s1', 'server', 'netkit file v1 server', 1, encodeResponse({ status: Status.OK, size: 5, offset: 0, validator: seq(0xa0, 16), message: '', mtimeMs: 1714564800000, mode: 0o644 }, [MAC_PLACEHOLDER])],
      ['file_s_trailer1', 'file_s_p_t1', 'trailer', 'netkit file v1 trailer', 1, encodeTrailer({ sha256: createHash('sha256').update('hello').digest() }, [MAC_PLACEHOLDER])],
    ];
    for (const [frameName, macName, kind, label, i, unsealed] of frames) {
      const sealed = sealFrame(kind, kFile, nonces, unsealed, i);
      expect([frameName, sealed.toString('hex')]).toEqual([frameName, hex(frameName).toString('hex')]);
      const payload = sealed.subarray(3);
      const m = payload.length - 32;
      expect(payload.subarray(m)).toEqual(hex(macName));
      const [first, second] = kind === 'client' ? [nonces.server, nonces.client] : [nonces.client, nonces.server];
      expect(spec.mac(hex('k_file'), label, first, second, u32(i), payload.subarray(0, m))).toEqual(hex(macName));
      expect(checkFrame(kind, kFile, nonces, hex(frameName).subarray(3), i)).toBe('ok');
      // Outside a session, or as another request, the same bytes do not verify.
      expect(checkFrame(kind, kFile, nonces, hex(frameName).subarray(3))).toBe('bad-mac');
      expect(checkFrame(kind, kFile, nonces, hex(frameName).subarray(3), i + 1)).toBe('bad-mac');
    }
    // The session TRAILER is the frame of file_trailer with another MAC.
    expect(hex('file_s_trailer1').subarray(0, 38)).toEqual(hex('file_trailer').subarray(0, 38));
  });
});
