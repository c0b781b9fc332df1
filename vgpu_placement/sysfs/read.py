"""Safe reads of sysfs attributes and directories, for every driver.

Contract: a read opens only what it is given, never follows a link in
the last component, reads only a regular file and at most 4096 bytes
(so a FIFO or device in place of an attribute never blocks, nor becomes a
controlling terminal), and turns every failure into :class:`Unreadable`
naming the path and why; its ``absent`` is True when the entry is not
there (it vanished while the host was read) rather than unreadable.
Whether a path stays inside the sysfs root is ``sysfs_paths.inside``'s to
say, before the read.
"""
import errno
import os
import stat

from vgpu_placement.model import parse
from vgpu_placement.sysfs import paths as sysfs_paths

# Errors that mean "this entry went away while we looked at it".
VANISHED = (errno.ENOENT, errno.ENODEV, errno.ENOTDIR)
MAX_READ = 4096


class Unreadable(Exception):
    """An entry that cannot be read; the message says why."""

    def __init__(self, message, absent=False):
        super().__init__(message)
        self.absent = absent        # not there (rather than unreadable)


def unreadable(path, err):
    """The Unreadable an OSError on ``path`` means."""
    if err.errno in VANISHED:
        return Unreadable('%s vanished' % path, absent=True)
    if err.errno == errno.ELOOP:        # O_NOFOLLOW met a link
        return Unreadable('%s is a symbolic link' % path)
    return Unreadable('%s unreadable: %s' % (path, err.strerror))


def read_text(path):
    """The UTF-8 text of a regular file, at most MAX_READ bytes."""
    try:
        fd = os.open(path, sysfs_paths.READ_FLAGS)
    except OSError as e:
        raise unreadable(path, e)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Unreadable('%s is not a regular file' % path)
        raw = os.read(fd, MAX_READ)
    except OSError as e:
        raise unreadable(path, e)
    finally:
        os.close(fd)
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        raise Unreadable('%s is not text' % path)


def read_count(path):
    """The count a file holds (parse.count): a decimal Placement can
    hold."""
    text = read_text(path).strip()
    value = parse.count(text)
    if value is None:
        raise Unreadable('%s holds %r, not a count Placement can hold'
                         % (path, text[:40]))
    return value


def scan_dir(path):
    """Sorted (name, inode, is_symlink) of a directory: what the listing
    gives without a stat (d_type)."""
    try:
        with os.scandir(path) as entries:
            return sorted((e.name, e.inode(), e.is_symlink())
                          for e in entries)
    except OSError as e:
        raise unreadable(path, e)
