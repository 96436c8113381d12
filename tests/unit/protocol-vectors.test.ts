// The test vectors of docs/protocol.md section 5.4, read from the document: netkit's code must produce every one, and so must the formulas of section 5 written out with node:crypto alone.
import { describe, expect, test } from '@jest/globals';
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MAC_PLACEHOLDER, checkFrame, sealFrame } from '../../src/protocol/auth-frames.js';
import { deriveKey } from '../../src/protocol/auth.js';
import { encodeAuthQuery, sealReply, verifyReply } from '../../src/protocol/disk-auth.js';
import { Scope, encodeAnswer } from '../../src/protocol/disk-v1.js';
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
});
