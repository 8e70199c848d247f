#!/usr/bin/python3
"""A FUSE filesystem that forgets every write not yet fsynced, as a power cut
does (the idea of Jepsen's LazyFS, in one file).

    lazyfs.py BACKING MOUNTPOINT

mounts BACKING's files at MOUNTPOINT. Reads and writes go to a copy of each
file held in this process's memory; only `fsync` (and `fdatasync`) of a file
writes its changed pages and its size to BACKING and syncs them there. Kill
this process with SIGKILL and unmount: BACKING then holds exactly what was
synced, and whatever was written since each file's last sync is gone.
Creating, deleting and renaming files, and their modes, go to BACKING at once
(the directory is as a journaling filesystem leaves it). One flat directory;
Debian's python3-fusepy (libfuse2), run as root.
"""

import errno
import os
import stat
import sys
import threading

from fusepy import FUSE, FuseOSError, Operations

PAGE = 4096


class File:
    """One file's content as the programs using the mount see it."""

    def __init__(self, real):
        try:
            with open(real, "rb") as f:
                self.data = bytearray(f.read())
        except FileNotFoundError:
            self.data = bytearray()
        self.dirty = set()
        self.resized = False

    def write(self, buf, offset):
        end = offset + len(buf)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
            self.resized = True
        self.data[offset:end] = buf
        self.dirty.update(range(offset // PAGE, (end - 1) // PAGE + 1))

    def truncate(self, length):
        if length < len(self.data):
            del self.data[length:]
        else:
            self.data.extend(bytes(length - len(self.data)))
        self.resized = True

    def sync(self, real):
        fd = os.open(real, os.O_WRONLY)
        try:
            for page in sorted(self.dirty):
                start = page * PAGE
                if start < len(self.data):
                    os.pwrite(fd, bytes(self.data[start : start + PAGE]), start)
            os.ftruncate(fd, len(self.data))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.dirty.clear()
        self.resized = False


class Lazy(Operations):
    def __init__(self, root):
        self.root = root
        self.files = {}
        self.mutex = threading.RLock()

    def real(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def file(self, path):
        f = self.files.get(path)
        if f is None:
            f = self.files[path] = File(self.real(path))
        return f

    def __call__(self, op, *args):
        with self.mutex:
            try:
                return super().__call__(op, *args)
            except OSError as e:
                raise FuseOSError(e.errno or errno.EIO)

    def getattr(self, path, fh=None):
        st = os.lstat(self.real(path))
        attrs = {
            key: getattr(st, key)
            for key in ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")
        }
        if stat.S_ISREG(st.st_mode) and path in self.files:
            attrs["st_size"] = len(self.files[path].data)
        return attrs

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    def access(self, path, amode):
        if not os.access(self.real(path), amode):
            raise FuseOSError(errno.EACCES)

    def statfs(self, path):
        sv = os.statvfs(self.real(path))
        return {
            key: getattr(sv, key)
            for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        }

    def create(self, path, mode, fi=None):
        os.close(os.open(self.real(path), os.O_CREAT | os.O_WRONLY, mode))
        self.files[path] = File(self.real(path))
        return 0

    def open(self, path, flags):
        f = self.file(path)
        if flags & os.O_TRUNC:
            f.truncate(0)
        return 0

    def read(self, path, size, offset, fh):
        return bytes(self.file(path).data[offset : offset + size])

    def write(self, path, buf, offset, fh):
        self.file(path).write(buf, offset)
        return len(buf)

    def truncate(self, path, length, fh=None):
        self.file(path).truncate(length)

    def fsync(self, path, datasync, fh):
        self.file(path).sync(self.real(path))
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return 0

    def unlink(self, path):
        os.unlink(self.real(path))
        self.files.pop(path, None)

    def rename(self, old, new):
        os.rename(self.real(old), self.real(new))
        if old in self.files:
            self.files[new] = self.files.pop(old)
        else:
            self.files.pop(new, None)

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self.real(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self.real(path), times)

    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)

    def rmdir(self, path):
        os.rmdir(self.real(path))


if __name__ == "__main__":
    backing, mountpoint = sys.argv[1], sys.argv[2]
    FUSE(Lazy(os.path.abspath(backing)), mountpoint, foreground=True, use_ino=True, nothreads=False)
