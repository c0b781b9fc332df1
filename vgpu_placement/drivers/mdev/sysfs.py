"""The Linux mdev sysfs interface, as a 6.12 kernel implements it.

Reads tolerate devices that vanish mid-scan and files with garbage in them:
the entry is skipped with a warning, the rest of the host is still reported.
A parent that exists but could not be read whole is named in the snapshot's
``unreadable``, so that nothing is concluded from what is missing there.
Reads and writes stay inside ``[sysfs] root`` (links are resolved and
checked, files opened without following a last link) and never block on
something that is not a regular file; they run in the agent's own process,
unprivileged. Writes (create, remove, vgpu_params) are validated here and
then done by the privileged entry points of vgpu_placement.privsep.sysfs,
which validate them again and return the kernel's errno unchanged: the
typed errors are the same as a direct write's.
"""
import logging
import os

from vgpu_placement.drivers import base
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement.drivers.nvidia import privileged as nvidia_privileged
from vgpu_placement import exceptions
from vgpu_placement.model import discovered
from vgpu_placement import privsep
from vgpu_placement.privsep import sysfs as priv_sysfs
from vgpu_placement.sysfs import paths as sysfs_paths
from vgpu_placement.sysfs import read as sysfs_read

LOG = logging.getLogger(__name__)

_WRITE_FLAGS = sysfs_paths.WRITE_FLAGS


def _read_static(type_dir, type_id):
    """(name, description, device_api, complete) of a type directory;
    complete is False when an optional file was there but unreadable
    (its stand-in is not to be remembered)."""
    device_api = sysfs_read.read_text(
        os.path.join(type_dir, 'device_api')).strip()
    complete = True
    try:
        name = sysfs_read.read_text(os.path.join(type_dir, 'name')).strip()
    except sysfs_read.Unreadable as e:
        name, complete = type_id, e.absent      # optional
    try:
        description = sysfs_read.read_text(
            os.path.join(type_dir, 'description')).strip()
    except sysfs_read.Unreadable as e:
        description = ''            # optional: mtty has none
        complete = complete and e.absent
    return name or type_id, description, device_api, complete


class SysfsDriver(nvidia_models.NvidiaGpus, base.Driver):
    """Mediated devices under ``[sysfs] root``/class/mdev_bus."""

    # mdev create/remove send add/bind and unbind/remove, parents
    # MDEV_STATE changes, VFs PCI add/remove (doc/source/reference/
    # kernel-mdev.rst, and the kernel tier's tests/kernel/test_uevents.py).
    host_changes_raise_uevents = True

    def __init__(self, conf):
        super().__init__(conf)
        self.root = conf.sysfs.root
        privsep.configure(conf)     # [privsep_sysfs]: who does the writes
        self.bus_dir = os.path.join(self.root, 'class', 'mdev_bus')
        # A type's name, description and device_api never change while its
        # directory lives; the kernel makes a new directory (a new inode,
        # never reused soon: kernfs numbers them cyclically) when a parent's
        # driver comes back. Remembered by directory and inode, so a
        # rescan opens only available_instances: 1 file per type, not 4.
        self._static = {}

    # -- discovery -------------------------------------------------------
    def discover(self):
        warnings = []
        parents = []
        unreadable = set()
        seen = {}                    # the next self._static
        real_root = self._check_root()
        for name in self._bus_names(real_root):
            if not discovered.is_valid_name(name):
                warnings.append('skipped parent %r: not a device name' % name)
                continue
            parent = self._read_parent(name, real_root, warnings, seen,
                                       unreadable)
            if parent is not None:
                parents.append(parent)
        self._static = seen          # vanished types forgotten
        for text in warnings:
            LOG.warning('sysfs: %s', text)
        return discovered.HostSnapshot(parents=tuple(parents),
                                       warnings=tuple(warnings),
                                       unreadable=frozenset(unreadable))

    def _check_root(self):
        """realpath of the root, or HostStateError: a root that is not a
        sysfs mount would otherwise read as a host with no parents."""
        root = self.root
        try:
            with os.scandir(root) as entries:
                empty = next(entries, None) is None
        except FileNotFoundError:
            raise exceptions.HostStateError(
                '[sysfs] root %s does not exist; point it at the sysfs '
                'mount' % root)
        except NotADirectoryError:
            raise exceptions.HostStateError(
                '[sysfs] root %s is not a directory; point it at the sysfs '
                'mount' % root)
        except OSError as e:
            raise exceptions.HostStateError(
                '[sysfs] root %s cannot be read: %s' % (root, e.strerror))
        if empty:
            raise exceptions.HostStateError(
                '[sysfs] root %s is empty; is sysfs mounted there?' % root)
        return os.path.realpath(root)

    def _bus_names(self, real_root):
        """Names in class/mdev_bus; none if it does not exist (the mdev
        module is not loaded), HostStateError if it cannot be listed."""
        bus = self.bus_dir
        if not sysfs_paths.inside(os.path.realpath(bus), real_root):
            raise exceptions.HostStateError(
                '%s leads outside [sysfs] root %s' % (bus, self.root))
        try:
            with os.scandir(bus) as entries:
                return sorted(e.name for e in entries)
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise exceptions.HostStateError(
                '%s is not a directory; is [sysfs] root %s a sysfs mount?'
                % (bus, self.root))
        except OSError as e:
            raise exceptions.HostStateError(
                '%s cannot be read: %s' % (bus, e.strerror))

    def _read_parent(self, name, real_root, warnings, seen, unreadable):
        """The parent as far as it could be read, None if it is gone (or
        not ours to read); its name joins unreadable if some of it is
        there but could not be read."""
        # The class entry is a link into devices/: resolved once here,
        # checked, and every path below is built on the resolved one.
        link = os.path.join(self.bus_dir, name)
        parent_dir = os.path.realpath(link)
        if not sysfs_paths.inside(parent_dir, real_root):
            warnings.append('skipped parent %s: %s leads outside [sysfs] '
                            'root' % (name, link))
            unreadable.add(name)
            return None
        types_dir = os.path.join(parent_dir, 'mdev_supported_types')
        types, mdevs = [], []
        entries = type_ids = ()
        try:
            entries = sysfs_read.scan_dir(parent_dir)
            is_link = {n: sym for n, _inode, sym in entries}.get(
                'mdev_supported_types')
            if is_link is None:
                raise sysfs_read.Unreadable('it vanished', absent=True)
            if is_link:
                raise sysfs_read.Unreadable(
                    'mdev_supported_types is a symbolic link')
            type_ids = sysfs_read.scan_dir(types_dir)
        except sysfs_read.Unreadable as e:
            if e.absent:
                warnings.append('skipped parent %s: %s' % (name, e))
                return None
            # Still reported (without what could not be read), so that
            # a virtual function's GPU is the one marked unreadable.
            warnings.append('parent %s not read whole: %s' % (name, e))
            unreadable.add(name)
        for type_id, inode, is_link in type_ids:
            if not discovered.is_valid_name(type_id):
                warnings.append('skipped type %r on %s: not a type id'
                                % (type_id, name))
                continue
            try:
                if is_link:         # the kernel makes real directories
                    raise sysfs_read.Unreadable('a symbolic link')
                types.append(self._read_type(types_dir, type_id, inode,
                                             seen))
            except sysfs_read.Unreadable as e:
                warnings.append('skipped type %s on %s: %s'
                                % (type_id, name, e))
                if not e.absent:
                    unreadable.add(name)
        for entry, _inode, is_link in entries:
            try:
                mdev_uuid = discovered.canonical_uuid(entry)
            except ValueError:
                continue
            try:
                if is_link:
                    raise sysfs_read.Unreadable('a symbolic link')
                type_id = self._mdev_type(parent_dir, entry)
            except sysfs_read.Unreadable as e:
                warnings.append('skipped mdev %s on %s: %s'
                                % (entry, name, e))
                if not e.absent:
                    unreadable.add(name)
                continue
            mdevs.append(discovered.Mdev(mdev_uuid, type_id, name))
        return discovered.ParentDevice(
            name=name, types=tuple(types),
            mdevs=tuple(sorted(mdevs, key=lambda m: m.uuid)),
            physfn=self._physfn(parent_dir, name, warnings, unreadable))

    @staticmethod
    def _mdev_type(parent_dir, entry):
        link = os.path.join(parent_dir, entry, 'mdev_type')
        try:
            type_id = os.path.basename(os.readlink(link))
        except OSError as e:
            raise sysfs_read.unreadable(link, e)
        if not discovered.is_valid_name(type_id):
            raise sysfs_read.Unreadable('%s names %r, not a type id'
                                        % (link, type_id))
        return type_id

    @staticmethod
    def _physfn(parent_dir, name, warnings, unreadable):
        """The physical function of an SR-IOV virtual function; read even
        when the rest of the parent was not, so that its GPU is the one
        marked unreadable."""
        link = os.path.join(parent_dir, 'physfn')
        try:
            physfn = os.path.basename(os.readlink(link))
        except OSError as e:
            if e.errno not in sysfs_read.VANISHED:
                warnings.append('%s: %s' % (
                    name, sysfs_read.unreadable(link, e)))
                unreadable.add(name)
            return None
        if not discovered.is_pci_address(physfn):
            # The kernel links ../<PCI address>: anything else is made up.
            warnings.append('%s: ignored its physfn %r, not a PCI address'
                            % (name, physfn))
            return None
        return physfn

    def _read_type(self, types_dir, type_id, inode, seen):
        type_dir = os.path.join(types_dir, type_id)
        available = sysfs_read.read_count(
            os.path.join(type_dir, 'available_instances'))
        static = self._static.get(type_dir)
        if static is None or static[0] != inode:
            *read, complete = _read_static(type_dir, type_id)
            # Incomplete: no inode, so it is read again next time.
            static = (inode if complete else None, *read)
        seen[type_dir] = static
        _inode, name, description, device_api = static
        return discovered.MdevType(type_id, name, description, device_api,
                                   available)

    # -- changes ---------------------------------------------------------
    @staticmethod
    def _privileged(write, action, target, *args):
        """Run one privileged write; its refusals and the kernel's errno
        become the typed errors (errno for errno)."""
        try:
            write(*args)
        except sysfs_paths.RefusedWrite as e:
            raise exceptions.MdevError(action, target, str(e))
        except OSError as e:
            raise exceptions.mdev_error_from_errno(e, action, target)

    def create_mdev(self, parent, type_id, mdev_uuid):
        mdev_uuid = base.checked_create(parent, type_id, mdev_uuid)
        self._privileged(priv_sysfs.create_mdev, 'create',
                         '%s of type %s on %s' % (mdev_uuid, type_id, parent),
                         os.path.abspath(self.root), parent, type_id,
                         mdev_uuid)

    def remove_mdev(self, mdev_uuid):
        mdev_uuid = base.checked_uuid(mdev_uuid, 'remove', 'mdev')
        self._privileged(priv_sysfs.remove_mdev, 'remove',
                         'mdev ' + mdev_uuid, os.path.abspath(self.root),
                         mdev_uuid, self._mdev_parent(mdev_uuid))

    def boot_id(self):
        try:
            with open(self.conf.sysfs.boot_id_file) as f:
                return f.read().strip()
        except OSError as e:
            raise exceptions.HostStateError(
                'cannot read the boot id from %s: %s'
                % (self.conf.sysfs.boot_id_file, e.strerror))

    def set_vendor_params(self, mdev_uuid, type_id, params):
        """NVIDIA: <mdev>/nvidia/vgpu_params takes "key=value key=value";
        keys and values were validated against the allow-list."""
        mdev_uuid = base.checked_uuid(mdev_uuid, 'set vendor parameters on',
                                      'mdev')
        if set(params) - self.vendor_param_keys(type_id):
            raise exceptions.InvalidMdevRequest(
                'set vendor parameters on', 'mdev ' + mdev_uuid,
                'not allowed for type %s' % type_id)
        self._privileged(nvidia_privileged.set_vgpu_params,
                         'set vendor parameters on', 'mdev ' + mdev_uuid,
                         os.path.abspath(self.root), mdev_uuid,
                         {k: int(v) for k, v in params.items()},
                         self._mdev_parent(mdev_uuid))

    def _mdev_parent(self, mdev_uuid):
        """None when bus/mdev/devices/<uuid> is there (the kernel's way);
        in a copied tree without it, the parent holding the mdev."""
        if os.path.isdir(os.path.join(self.root, 'bus', 'mdev', 'devices',
                                      mdev_uuid)):
            return None
        try:
            names = sorted(os.listdir(self.bus_dir))
        except OSError:
            names = []
        for name in names:
            if discovered.is_valid_name(name) and os.path.isdir(
                    os.path.join(self.bus_dir, name, mdev_uuid)):
                return name
        return None
