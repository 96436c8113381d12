// Disk facts: statfs arithmetic, mount lookup, pseudo filesystems, and the real source against fs.statfs.
import { describe, expect, test } from '@jest/globals';
import { statfsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSystemFacts, figuresFromStatfs, isPseudoFs, mountFor, type MountEntry } from '../../src/services/disk/facts.js';

describe('disk facts', () => {
  test('figures are df\'s arithmetic in exact bytes', () => {
    expect(figuresFromStatfs({ bsize: 4096n, blocks: 1000n, bfree: 300n, bavail: 250n })).toEqual({ total: 4096000n, used: 2867200n, available: 1024000n, free: 1228800n });
    expect(figuresFromStatfs({ bsize: 4096n, blocks: 2n ** 50n, bfree: 0n, bavail: 0n }).total).toBe(2n ** 62n);
  });

  test('mountFor picks the longest mount point that contains the path, on path boundaries', () => {
    const m = (mount: string): MountEntry => ({ mount, fstype: 'ext4', device: 'd' });
    const mounts = [m('/'), m('/home'), m('/home/user/data'), m('/srv')];
    expect(mountFor('/home/user/data/x', mounts)?.mount).toBe('/home/user/data');
    expect(mountFor('/home/user/database', mounts)?.mount).toBe('/home');
    expect(mountFor('/srv', mounts)?.mount).toBe('/srv');
    expect(mountFor('/srvx', mounts)?.mount).toBe('/');
    expect(mountFor('/x', [m('/srv')])).toBeUndefined();
  });

  test.each(['proc', 'sysfs', 'cgroup', 'cgroup2', 'devtmpfs', 'devpts', 'tmpfs', 'overlay', 'squashfs', 'TMPFS'])('%s is a pseudo filesystem', (t) => {
    expect(isPseudoFs(t)).toBe(true);
  });
  test.each(['ext4', 'xfs', 'btrfs', 'zfs', 'nfs4', 'vfat'])('%s is a real filesystem', (t) => {
    expect(isPseudoFs(t)).toBe(false);
  });

  test('the system source reads fs.statfs of the path; "all" skips pseudo filesystems and never hangs on a stuck mount list', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netkit-facts-'));
    try {
      const facts = await createSystemFacts({
        path: dir,
        listMounts: async () => [
          { mount: '/', fstype: 'ext4', device: '/dev/root' },
          { mount: '/proc', fstype: 'proc', device: 'proc' },
          { mount: '/definitely/not/mounted', fstype: 'ext4', device: '/dev/gone' },
        ],
      });
      try {
        const before = Date.now();
        const snap = await facts.read('path');
        const st = statfsSync(dir, { bigint: true });
        expect(snap.time).toBeGreaterThanOrEqual(before);
        expect(snap.filesystems).toHaveLength(1);
        const fs = snap.filesystems[0]!;
        expect(fs.served).toBe(true);
        expect(fs.total).toBe(st.blocks * st.bsize);
        expect(fs.used + fs.free).toBe(fs.total);
        const all = await facts.read('all');
        expect(all.filesystems.map((f) => f.mount)).not.toContain('/proc');
        expect(all.filesystems.map((f) => f.mount)).not.toContain('/definitely/not/mounted'); // statfs failed: left out
        expect(all.filesystems.filter((f) => f.served)).toHaveLength(1);
      } finally {
        facts.close();
      }
      // A mount listing that never finishes is given up on; the served path still works.
      const stuck = await createSystemFacts({ path: dir, ioTimeoutMs: 50, listMounts: () => new Promise(() => undefined) });
      try {
        expect((await stuck.read('all')).filesystems).toHaveLength(1);
      } finally {
        stuck.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing path is NOT_FOUND at start', async () => {
    await expect(createSystemFacts({ path: '/definitely/not/here' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
