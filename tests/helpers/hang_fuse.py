# A FUSE filesystem whose statfs never returns (until this process dies); everything else answers.
# For tests of hung mounts: run it in a private mount namespace (unshare -m) so nothing else sees it.
#
#   python3 hang_fuse.py MOUNTPOINT -f -o fsname=NAME
import errno
import stat
import threading

import fuse

fuse.fuse_python_api = (0, 2)


class Hang(fuse.Fuse):
    def getattr(self, path):
        if path != '/':
            return -errno.ENOENT
        st = fuse.Stat()
        st.st_mode = stat.S_IFDIR | 0o755
        st.st_nlink = 2
        return st

    def readdir(self, path, offset):
        for name in ('.', '..'):
            yield fuse.Direntry(name)

    def statfs(self):
        threading.Event().wait()  # never returns: a dead NFS server, as seen by statfs(2)


def main():
    fs = Hang(version='%prog ' + fuse.__version__, usage='hang_fuse.py MOUNTPOINT', dash_s_do='setsingle')
    fs.multithreaded = True
    fs.parse(values=fs, errex=1)
    fs.main()


if __name__ == '__main__':
    main()
