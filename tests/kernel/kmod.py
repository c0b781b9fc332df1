"""Load and unload kernel modules from inside the kernel-tier guest.

The guest keeps the .ko files it booted with in the folder named by
VGPU_KERNEL_MODULES (set by tools/kernel-vm/run-tests), so a test can
simulate a host reboot of one driver:

    kmod.rmmod('mtty')          # the parent and all its mdevs vanish
    kmod.insmod('mtty')         # back, at full capacity

No kmod binaries are needed: the syscalls are called through ctypes
(x86-64 numbers; the guest is x86-64).
"""
import ctypes
import errno
import os
import time

SYS_FINIT_MODULE = 313
SYS_DELETE_MODULE = 176
O_NONBLOCK = 0o4000

_libc = ctypes.CDLL(None, use_errno=True)


def modules_dir():
    path = os.environ.get('VGPU_KERNEL_MODULES')
    if not path or not os.path.isdir(path):
        raise RuntimeError('VGPU_KERNEL_MODULES does not name the guest '
                           'modules folder (run under tools/kernel-vm)')
    return path


def is_loaded(name):
    """True if the module is loaded (a built-in has no initstate file)."""
    try:
        with open('/sys/module/%s/initstate' % name) as f:
            return f.read().strip() == 'live'
    except FileNotFoundError:
        return False


def insmod(name, params=''):
    """Load <modules_dir>/<name>.ko with module parameters ``params``
    (e.g. 'count=8'); EEXIST if it is loaded already."""
    path = os.path.join(modules_dir(), name + '.ko')
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syscall(SYS_FINIT_MODULE, fd, params.encode(), 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, 'insmod %s: %s' % (name, os.strerror(err)))
    finally:
        os.close(fd)


def rmmod(name, wait=5.0):
    """Unload a module; retries while it is still busy (EAGAIN/EBUSY)."""
    deadline = time.monotonic() + wait
    while True:
        if _libc.syscall(SYS_DELETE_MODULE, name.encode(), O_NONBLOCK) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EBUSY, errno.EWOULDBLOCK) or \
                time.monotonic() > deadline:
            raise OSError(err, 'rmmod %s: %s' % (name, os.strerror(err)))
        time.sleep(0.05)
