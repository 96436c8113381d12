// The FS value's sub-fields (inodes, read-only, error): round trips, old readers, and the hex example in docs/protocol.md.
import { describe, expect, test } from '@jest/globals';
import { MsgType, decodeReply, encodeAnswer, type FsFigures } from '../../src/protocol/disk-v1.js';
import { decodeFsValue, encodeFsValue } from '../../src/protocol/disk-fs.js';
import { docHex } from '../helpers/doc-hex.js';

const ROOT: FsFigures = { mount: '/', fstype: 'ext4', device: '/dev/sda1', total: 1000000000000n, used: 400000000000n, available: 550000000000n, free: 600000000000n, served: true, files: 61054976n, filesFree: 60000000n, readonly: false };
const NFS: FsFigures = { mount: '/mnt/nfs', fstype: 'nfs4', device: 'srv:/export', total: 0n, used: 0n, available: 0n, free: 0n, served: false, readonly: false, error: { code: 1, message: 'timeout' } };

describe('FS sub-fields', () => {
  test('round trip with and without sub-fields', () => {
    for (const fs of [ROOT, NFS, { ...ROOT, readonly: true, files: undefined, filesFree: undefined }]) {
      const clean = Object.fromEntries(Object.entries(fs).filter(([, v]) => v !== undefined));
      expect(decodeFsValue(encodeFsValue(fs))).toEqual(clean);
    }
  });

  test('a reader that stops after device (as before the sub-fields) still reads the figures', () => {
    const v = encodeFsValue(ROOT);
    const plain = encodeFsValue({ ...ROOT, files: undefined, filesFree: undefined, readonly: undefined });
    expect(v.length).toBeGreaterThan(plain.length);
    expect(v.subarray(0, plain.length)).toEqual(plain);
  });

  test('unknown sub-fields are skipped; duplicates and wrong lengths are protocol errors', () => {
    const base = encodeFsValue({ ...ROOT, files: undefined, filesFree: undefined, readonly: undefined });
    expect(decodeFsValue(Buffer.concat([base, Buffer.from([0x7f, 0, 2, 1, 2])]))).toEqual(decodeFsValue(base));
    expect(() => decodeFsValue(Buffer.concat([base, Buffer.from([2, 0, 1, 1, 2, 0, 1, 0])]))).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
    expect(() => decodeFsValue(Buffer.concat([base, Buffer.from([1, 0, 2, 0, 0])]))).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
    expect(() => decodeFsValue(Buffer.concat([base, Buffer.from([2, 0, 9, 1])]))).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
  });

  test('an error message is cut to 32 bytes', () => {
    const long = decodeFsValue(encodeFsValue({ ...NFS, error: { code: 2, message: 'x'.repeat(300) } }));
    expect(long.error).toEqual({ code: 2, message: 'x'.repeat(32) });
  });

  test('docs/protocol.md: the hex example with sub-fields is what netkit encodes, and decodes back', () => {
    const doc = docHex('answer-with-subfields');
    const ours = encodeAnswer(42, { host: 'nas', time: 1700000000000, filesystems: [ROOT, NFS] });
    expect(doc.toString('hex')).toBe(ours.toString('hex'));
    const r = decodeReply(doc);
    expect(r.type === MsgType.ANSWER && r.answer.filesystems).toEqual([ROOT, NFS]);
  });
});
