// Disk facts: statfs arithmetic, mount lookup, pseudo filesystems, and the real source against fs.statfs.
import { describe, expect, test } from '@jest/globals';
import { statfsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSystemFacts, figuresFromStatfs, mountFor, type MountEntry } from '../../src/services/disk/facts.js';
import { makedev, mountFilter, parseMountinfo } from '../../src/services/disk/mounts.js';

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

  test.each(['proc', 'sysfs', 'cgroup', 'cgroup2', 'devtmpfs', 'devpts', 'overlay', 'squashfs', 'SYSFS'])('%s is left out by default', (t) => {
    expect(mountFilter()({ mount: '/x', fstype: t })).toBe(false);
  });
  test.each(['ext4', 'xfs', 'btrfs', 'zfs', 'nfs4', 'vfat', 'tmpfs'])('%s is reported by default (tmpfs too, as node_exporter does)', (t) => {
    expect(mountFilter()({ mount: '/x', fstype: t })).toBe(true);
  });

  test('filters: default mount exclusions, globs to include and exclude types and mount points', () => {
    const def = mountFilter();
    expect(def({ mount: '/proc/sys/fs/binfmt_misc', fstype: 'ext4' })).toBe(false);
    expect(def({ mount: '/var/lib/docker/overlay2/abc/merged', fstype: 'xfs' })).toBe(false);
    expect(def({ mount: '/run/credentials/x.service', fstype: 'ramfs' })).toBe(false);
    expect(def({ mount: '/run', fstype: 'tmpfs' })).toBe(true);
    const f = mountFilter({ fsExclude: ['tmp*'], mountExclude: ['/boot/**', '/boot'], fsInclude: [], mountInclude: [] });
    expect(f({ mount: '/run', fstype: 'tmpfs' })).toBe(false);
    expect(f({ mount: '/boot/efi', fstype: 'vfat' })).toBe(false);
    expect(f({ mount: '/srv', fstype: 'ext4' })).toBe(true);
    const only = mountFilter({ fsInclude: ['overlay', 'ext*'] });
    expect(only({ mount: '/', fstype: 'overlay' })).toBe(true); // an include beats a default exclusion
    expect(only({ mount: '/srv', fstype: 'xfs' })).toBe(false); // and narrows the report to what it names
    const mounts = mountFilter({ mountInclude: ['/data/**'] });
    expect(mounts({ mount: '/data/a', fstype: 'ext4' })).toBe(true);
    expect(mounts({ mount: '/srv', fstype: 'ext4' })).toBe(false);
  });

  test('mountinfo: escapes, read-only from either option list, device numbers as st_dev, the mount on top wins', () => {
    const text = [
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard',
      '28 27 0:25 / /mnt/with\\040space ro,nosuid - tmpfs tmp\\040fs rw,size=4k',
      '29 27 8:17 / /data rw - xfs /dev/sdb1 ro,attr2',
      '30 27 0:40 / /data rw - nfs4 srv:/export rw',
      'garbage line',
    ].join('\n');
    const m = parseMountinfo(text);
    expect(m.map((x) => x.mount)).toEqual(['/', '/mnt/with space', '/data']);
    expect(m[1]).toEqual({ mount: '/mnt/with space', fstype: 'tmpfs', device: 'tmp fs', readonly: true, dev: makedev(0, 25) });
    expect(m[2]).toMatchObject({ fstype: 'nfs4', device: 'srv:/export', readonly: false });
    expect(makedev(254, 0)).toBe(65024);
    expect(makedev(259, 65536)).toBe(((65536 & 0xff) | ((259 & 0xfff) << 8)) + (65536 & ~0xff) * 0x1000);
  });

  test('the system source reads fs.statfs of the path; "all" skips pseudo filesystems and never hangs on a stuck mount list', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netkit-facts-'));
    try {
      const facts = await createSystemFacts({
        path: dir,
        listMounts: async () => [
          { mount: '/', fstype: 'ext4', device: '/dev/root' },
          { mount: '/proc', fstype: 'proc', device: 'proc' },
          { mount: '/dev/shm', fstype: 'tmpfs', device: 'tmpfs' },
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
        expect(all.filesystems.map((f) => f.mount)).not.toContain('/dev/shm'); // under /dev: excluded by default, as node_exporter does
        expect(fs.files).toBe(st.files);
        expect(typeof fs.readonly).toBe('boolean');
        expect(all.filesystems.map((f) => f.mount)).not.toContain('/definitely/not/mounted'); // statfs failed: left out
        expect(all.filesystems.filter((f) => f.served)).toHaveLength(1);
      } finally {
        facts.close();
      }
      // A mount listing that never finishes is given up on; the served path still works.
      const stuck = await createSystemFacts({ path: dir, mountTimeoutMs: 50, listMounts: () => new Promise(() => undefined) });
      try {
        expect((await stuck.read('all')).filesystems).toHaveLength(1);
      } finally {
        stuck.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a mount timeout shorter than a worker thread takes to start does not make the start fail', async () => {
    // 1 ms is far less than a thread's start-up; only the statfs call itself counts against it.
    const facts = await createSystemFacts({ path: tmpdir(), mountTimeoutMs: 1, listMounts: async () => [] });
    try {
      const snap = await facts.read('path');
      expect(snap.filesystems).toHaveLength(1);
      expect(snap.filesystems[0]!.total).toBeGreaterThan(0n);
    } finally {
      facts.close();
    }
  });

  test('a missing path is NOT_FOUND at start', async () => {
    await expect(createSystemFacts({ path: '/definitely/not/here' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
