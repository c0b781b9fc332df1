"""Checked paths under a sysfs root, shared by the reads and the writes.

The sysfs driver reads with these helpers in the agent's own process; the
privileged entry points (vgpu_placement.privsep.sysfs) write with them in
the privsep daemon, and check every argument again there: a caller is not
trusted to have done it.

Contract of the write side: a write lands only on an attribute file named
by the entry point (``create``, ``remove``, ``nvidia/vgpu_params``) inside
``<root>/devices``, reached through the kernel's links (class/mdev_bus/
<parent>, bus/mdev/devices/<uuid>) that are resolved once and checked,
then walked again from the root one directory at a time without following
any link, so that nothing swapped in after the check is followed. The file
must be a regular file with one link (a hard link to another file is
refused). Refusals raise ``RefusedWrite`` (one message); bad arguments
raise ``OSError(EINVAL)`` as the kernel would; the kernel's own errors
come back as the OSError it raised, errno untouched.
"""
import errno
import os
import stat

from vgpu_placement.model import discovered

# A FIFO or device in place of an attribute must not block (nor become our
# controlling terminal); a link in its place is not followed.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
WRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RefusedWrite(Exception):
    """A write that would leave the root's mdev directories, or land on
    something that is not a plain attribute file. One argument: the
    message (it crosses the privsep channel as args)."""


def inside(path, real_root):
    """True if path (already resolved) is real_root or under it."""
    return path == real_root or path.startswith(
        real_root.rstrip(os.sep) + os.sep)


def invalid(what):
    """The kernel's EINVAL for an argument the kernel would refuse."""
    return OSError(errno.EINVAL, what)


def checked_name(value, what):
    """value if it is one safe path component (a device or type name)."""
    if not discovered.is_valid_name(value):
        raise invalid('%s %r is not a device name' % (what, value))
    return value


def checked_canonical_uuid(value):
    """value if it is a UUID in the kernel's lower-case dashed form."""
    try:
        if discovered.canonical_uuid(value) == value:
            return value
    except ValueError:
        pass
    raise invalid('%r is not a canonical UUID' % (value,))


def real_root(root):
    """The resolved root: an absolute, normalised path to a directory."""
    if (not isinstance(root, str) or not os.path.isabs(root)
            or os.path.normpath(root) != root.rstrip(os.sep) or
            not root.rstrip(os.sep)):
        raise invalid('sysfs root %r is not an absolute, normal path'
                      % (root,))
    real = os.path.realpath(root)
    if not os.path.isdir(real):
        raise RefusedWrite('sysfs root %s is not a directory' % root)
    return real


def _exists(link):
    """ENOENT, as the kernel gives it, for a link that is not there (a
    parent or mdev that is gone is not a path leading outside)."""
    if not os.path.lexists(link):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))


def parent_dir(root, real, parent):
    """The resolved directory of class/mdev_bus/<parent>, inside
    <root>/devices."""
    link = os.path.join(root, 'class', 'mdev_bus', parent)
    _exists(link)
    resolved = os.path.realpath(link)
    if not inside(resolved, os.path.join(real, 'devices')):
        raise RefusedWrite('%s leads outside [sysfs] root %s'
                           % (link, root))
    return resolved


def mdev_dir(root, real, mdev_uuid, parent=None):
    """The resolved directory of an mdev: bus/mdev/devices/<uuid>, or
    class/mdev_bus/<parent>/<uuid> for a tree without bus/mdev. It must
    sit directly in an mdev parent's directory inside <root>/devices."""
    if parent is None:
        link = os.path.join(root, 'bus', 'mdev', 'devices', mdev_uuid)
    else:
        link = os.path.join(parent_dir(root, real, parent), mdev_uuid)
    _exists(link)
    resolved = os.path.realpath(link)
    if not inside(resolved, os.path.join(real, 'devices')):
        raise RefusedWrite('%s leads outside [sysfs] root %s'
                           % (link, root))
    if os.path.basename(resolved) != mdev_uuid:
        raise RefusedWrite('%s leads to %s, not to mdev %s'
                           % (link, resolved, mdev_uuid))
    if not os.path.isdir(os.path.join(os.path.dirname(resolved),
                                      'mdev_supported_types')):
        raise RefusedWrite('%s is not under an mdev parent' % resolved)
    return resolved


def _is_link(name, dir_fd):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd,
                                    follow_symlinks=False).st_mode)
    except OSError:
        return False


def write_attribute(real, path, value):
    """One write(2) of value (str) to the attribute at path (resolved,
    inside real). Every directory from real down is opened without
    following a link; OSError from the kernel passes through unchanged."""
    if not inside(path, real) or path == real:
        raise RefusedWrite('%s is outside [sysfs] root %s' % (path, real))
    parts = os.path.relpath(path, real).split(os.sep)
    if any(p in ('', '.', '..') for p in parts):
        raise RefusedWrite('%s is not a plain path' % path)
    dir_fd = os.open(real, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as e:
                # O_DIRECTORY|O_NOFOLLOW on a link gives ENOTDIR (ELOOP
                # on some kernels): say which, a real ENOTDIR passes on.
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(
                        part, dir_fd):
                    raise RefusedWrite('%s: %s became a symbolic link'
                                       % (path, part))
                raise
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            fd = os.open(parts[-1], WRITE_FLAGS, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RefusedWrite('%s is a symbolic link' % path)
            raise
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedWrite('%s is not a regular file' % path)
        if st.st_nlink != 1:
            raise RefusedWrite('%s has %d links, an attribute has one'
                               % (path, st.st_nlink))
        os.write(fd, value.encode())
    finally:
        os.close(fd)
