"""Errors the project raises on purpose.

Every error carries a one-line message that says what is wrong and where,
so that a command can print it as is and exit non-zero.
"""
import errno
import re


class VgpuPlacementError(Exception):
    """Base class: a failure the user can act on, described in one line."""


class ConfigError(VgpuPlacementError):
    """A configuration value is wrong; the message names the option."""

    def __init__(self, option, problem, fix):
        self.option = option
        super().__init__('%s: %s; %s' % (option, problem, fix))


_LOCATION_RE = re.compile(r" from LocationInfo\(location=<[^>]*>, "
                          r"detail='([^']*)'\)")


def config_text(error):
    """oslo.config's error on one line, with the file it came from said
    plainly ("in /etc/x.conf", not its LocationInfo(...) repr)."""
    return _LOCATION_RE.sub(r" (in \1)", ' '.join(str(error).split()))


class DriverNotFound(VgpuPlacementError):
    pass


class HostStateError(VgpuPlacementError):
    """The host description (profile, state file) cannot be used."""


# -- mediated device operations: one class per kernel errno ---------------

class MdevError(VgpuPlacementError):
    """A create or remove was refused by the kernel (or its simulation).

    ``msg_fmt`` is what the user reads when the refusal comes without a
    detail of its own (as Nova's exceptions carry theirs); docstrings are
    for developers.
    """

    errno = None
    msg_fmt = 'refused'

    def __init__(self, action, target, detail=None):
        self.action, self.target = action, target
        text = '%s %s failed: %s' % (action, target, detail or self.msg_fmt)
        if self.errno is not None:
            text += ' (%s)' % errno.errorcode[self.errno]
        super().__init__(text)


class InvalidMdevRequest(MdevError):
    msg_fmt = ('the kernel rejected the value written (not a valid UUID or '
               'number)')
    errno = errno.EINVAL


class MdevExists(MdevError):
    msg_fmt = 'an mdev with this UUID already exists on the host'
    errno = errno.EEXIST


class NoCapacity(MdevError):
    msg_fmt = 'the parent device has no room left for this type'
    errno = errno.ENOSPC


class TooManyInstances(NoCapacity):
    msg_fmt = 'the parent device reached its instance limit'
    errno = errno.EUSERS


class MdevNotFound(MdevError):
    msg_fmt = 'the device does not exist (any more)'
    errno = errno.ENOENT


class ParentGone(MdevError):
    msg_fmt = 'the parent device is being removed'
    errno = errno.ENODEV


class MdevBusy(MdevError):
    msg_fmt = 'the device is being removed concurrently'
    errno = errno.EAGAIN


_BY_ERRNO = {cls.errno: cls for cls in (
    InvalidMdevRequest, MdevExists, NoCapacity, TooManyInstances,
    MdevNotFound, ParentGone, MdevBusy)}


def mdev_error_from_errno(err, action, target):
    """Map an OSError's errno to the typed error (generic MdevError if new)."""
    cls = _BY_ERRNO.get(err.errno)
    if cls is None:
        return MdevError(action, target, '%s (errno %s)' % (
            err.strerror or 'unexpected error', err.errno))
    return cls(action, target)


# -- Placement -----------------------------------------------------------

class PlacementError(VgpuPlacementError):
    """Placement answered with an error we cannot recover from here."""

    def __init__(self, method, url, status, code=None, detail=None):
        self.status, self.code, self.detail = status, code, detail or ''
        # A query can be as long as a flavor makes it: its start names it.
        shown = url if len(url) <= 120 else url[:117] + '...'
        super().__init__('Placement %s %s -> %s %s: %s' % (
            method, shown, status, code or '', (detail or '').strip()))


class PlacementConflict(PlacementError):
    """409: a generation race or capacity (placement.consumers tells)."""


class PlacementUnavailable(VgpuPlacementError):
    """Placement could not be reached at all."""


class PlacementTooOld(VgpuPlacementError):
    """406 to the project's microversion: the service predates it."""

    def __init__(self, needed, offered, oldest_release):
        self.needed, self.offered = needed, offered
        super().__init__(
            'Placement does not speak microversion %s (it offers up to %s): '
            'vgpu-placement needs openstack-placement %s or later'
            % (needed, offered or 'an unknown version', oldest_release))


class RootProviderMissing(VgpuPlacementError):
    """Placement has no root provider for this host, and we may not create
    it (nova-compute does, for its compute node)."""

    def __init__(self, name):
        self.name = name
        super().__init__(
            'Placement has no root provider named %s yet: nova-compute '
            'creates it for its compute node (start it, or check that '
            '[DEFAULT] host is its hypervisor hostname); on a host '
            'without Nova set [DEFAULT] create_root_provider = true'
            % name)


# -- NVIDIA vendor-specific VFIO: nvidia/current_vgpu_type of a VF -------
# The same errno means different things on create and on remove there,
# hence classes of their own (see drivers/nvidia/vfio.py).

class VfOccupied(NoCapacity):
    msg_fmt = 'the virtual function already holds a vGPU'
    errno = errno.EPERM


class NoVgpuOnVf(MdevNotFound):
    msg_fmt = 'the virtual function holds no vGPU'
    errno = errno.EPERM


class VgpuRefused(NoCapacity):
    msg_fmt = 'the NVIDIA driver cannot create this type on the GPU now'
    errno = errno.EIO


class VgpuInUse(MdevError):
    msg_fmt = 'the vGPU is in use (its VFIO device is open)'
    errno = errno.EBUSY
