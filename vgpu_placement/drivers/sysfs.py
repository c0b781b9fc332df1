"""The Linux mdev sysfs interface, as a 6.12 kernel implements it.

Reads tolerate devices that vanish mid-scan and files with garbage in them:
the entry is skipped with a warning, the rest of the host is still reported.
Writes validate every path component and go through os.open/os.write only.
"""
import errno
import logging
import os

from vgpu_placement.drivers import base
from vgpu_placement import exceptions
from vgpu_placement import model

LOG = logging.getLogger(__name__)

# Errors that mean "this entry went away while we looked at it".
_VANISHED = (errno.ENOENT, errno.ENODEV, errno.ENOTDIR)


class _Skip(Exception):
    """An entry that cannot be read; the message says why."""

    def __init__(self, message, absent=False):
        super().__init__(message)
        self.absent = absent        # not there (rather than unreadable)


def _read_text(path):
    try:
        with open(path, 'rb') as f:
            raw = f.read(4096)
    except OSError as e:
        if e.errno in _VANISHED:
            raise _Skip('%s vanished' % path, absent=True)
        raise _Skip('%s unreadable: %s' % (path, e.strerror))
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        raise _Skip('%s is not text' % path)


def _read_count(path):
    text = _read_text(path).strip()
    if not text.isdigit():
        raise _Skip('%s holds %r, not a count' % (path, text[:40]))
    return int(text)


def _listdir(path):
    return [name for name, _inode in _listdir_inodes(path)]


def _listdir_inodes(path):
    """Sorted (name, inode) of a directory; the inodes come with the
    listing (no stat)."""
    try:
        with os.scandir(path) as entries:
            return sorted((e.name, e.inode()) for e in entries)
    except OSError as e:
        if e.errno in _VANISHED:
            return []
        raise _Skip('%s unreadable: %s' % (path, e.strerror))


def _write(path, value, action, target):
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        raise exceptions.mdev_error_from_errno(e, action, target)
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise exceptions.mdev_error_from_errno(e, action, target)
    finally:
        os.close(fd)


def _read_static(type_dir, type_id):
    """(name, description, device_api, complete) of a type directory;
    complete is False when an optional file was there but unreadable
    (its stand-in is not to be remembered)."""
    device_api = _read_text(os.path.join(type_dir, 'device_api')).strip()
    complete = True
    try:
        name = _read_text(os.path.join(type_dir, 'name')).strip()
    except _Skip as e:
        name, complete = type_id, e.absent      # optional
    try:
        description = _read_text(
            os.path.join(type_dir, 'description')).strip()
    except _Skip as e:
        description = ''            # optional: mtty has none
        complete = complete and e.absent
    return name or type_id, description, device_api, complete


class SysfsDriver(base.Driver):
    """Mediated devices under ``[sysfs] root``/class/mdev_bus."""

    def __init__(self, conf):
        super().__init__(conf)
        self.root = conf.sysfs.root
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
        seen = {}                    # the next self._static
        try:
            names = _listdir(self.bus_dir)
        except _Skip as e:
            names = []
            warnings.append(str(e))
        for name in names:
            if not model.is_valid_name(name):
                warnings.append('skipped parent %r: not a device name' % name)
                continue
            parent = self._read_parent(name, warnings, seen)
            if parent is not None:
                parents.append(parent)
        self._static = seen          # vanished types forgotten
        for text in warnings:
            LOG.warning('sysfs: %s', text)
        return model.HostSnapshot(parents=tuple(parents),
                                  warnings=tuple(warnings))

    def _read_parent(self, name, warnings, seen):
        parent_dir = os.path.join(self.bus_dir, name)
        types_dir = os.path.join(parent_dir, 'mdev_supported_types')
        try:
            type_ids = _listdir_inodes(types_dir)
            entries = _listdir(parent_dir)
        except _Skip as e:
            warnings.append('skipped parent %s: %s' % (name, e))
            return None
        if not os.path.isdir(types_dir):
            # Vanished between the bus listing and now.
            warnings.append('skipped parent %s: it vanished' % name)
            return None
        types = []
        for type_id, inode in type_ids:
            if not model.is_valid_name(type_id):
                warnings.append('skipped type %r on %s: not a type id'
                                % (type_id, name))
                continue
            try:
                types.append(self._read_type(types_dir, type_id, inode,
                                             seen))
            except _Skip as e:
                warnings.append('skipped type %s on %s: %s'
                                % (type_id, name, e))
        mdevs = []
        for entry in entries:
            try:
                mdev_uuid = model.canonical_uuid(entry)
            except ValueError:
                continue
            link = os.path.join(parent_dir, entry, 'mdev_type')
            try:
                type_id = os.path.basename(os.readlink(link))
            except OSError:
                warnings.append('skipped mdev %s on %s: no mdev_type link'
                                % (entry, name))
                continue
            mdevs.append(model.Mdev(mdev_uuid, type_id, name))
        physfn = None
        try:
            physfn = os.path.basename(
                os.readlink(os.path.join(parent_dir, 'physfn')))
        except OSError:
            pass
        return model.ParentDevice(
            name=name, types=tuple(types),
            mdevs=tuple(sorted(mdevs, key=lambda m: m.uuid)), physfn=physfn)

    def _read_type(self, types_dir, type_id, inode, seen):
        type_dir = os.path.join(types_dir, type_id)
        available = _read_count(os.path.join(type_dir, 'available_instances'))
        static = self._static.get(type_dir)
        if static is None or static[0] != inode:
            *read, complete = _read_static(type_dir, type_id)
            # Incomplete: no inode, so it is read again next time.
            static = (inode if complete else None, *read)
        seen[type_dir] = static
        _inode, name, description, device_api = static
        return model.MdevType(type_id, name, description, device_api,
                              available)

    # -- changes ---------------------------------------------------------
    def create_mdev(self, parent, type_id, mdev_uuid):
        mdev_uuid = base.checked_uuid(mdev_uuid, 'create', 'mdev on %s'
                                      % parent)
        for what, value in (('parent', parent), ('type', type_id)):
            if not model.is_valid_name(value):
                raise exceptions.InvalidMdevRequest(
                    'create', '%s %r' % (what, value), 'not a device name')
        path = os.path.join(self.bus_dir, parent, 'mdev_supported_types',
                            type_id, 'create')
        _write(path, mdev_uuid, 'create',
               '%s of type %s on %s' % (mdev_uuid, type_id, parent))

    def remove_mdev(self, mdev_uuid):
        mdev_uuid = base.checked_uuid(mdev_uuid, 'remove', 'mdev')
        path = self._device_dir(mdev_uuid)
        _write(os.path.join(path, 'remove'), '1', 'remove', 'mdev ' + mdev_uuid)

    def boot_id(self):
        try:
            with open(self.conf.sysfs.boot_id_file) as f:
                return f.read().strip()
        except OSError as e:
            raise exceptions.HostStateError(
                'cannot read the boot id from %s: %s'
                % (self.conf.sysfs.boot_id_file, e.strerror))

    def vendor_param_keys(self, type_id):
        return base.NVIDIA_VGPU_PARAMS if base.is_nvidia_type(type_id) \
            else frozenset()

    def set_vendor_params(self, mdev_uuid, type_id, params):
        """NVIDIA: <mdev>/nvidia/vgpu_params takes "key=value key=value";
        keys and values were validated against the allow-list."""
        mdev_uuid = base.checked_uuid(mdev_uuid, 'set vendor parameters on',
                                      'mdev')
        if set(params) - self.vendor_param_keys(type_id):
            raise exceptions.InvalidMdevRequest(
                'set vendor parameters on', 'mdev ' + mdev_uuid,
                'not allowed for type %s' % type_id)
        value = ' '.join('%s=%d' % (k, int(v))
                         for k, v in sorted(params.items()))
        _write(os.path.join(self._device_dir(mdev_uuid), 'nvidia',
                            'vgpu_params'), value,
               'set vendor parameters on', 'mdev ' + mdev_uuid)

    def _device_dir(self, mdev_uuid):
        bus_path = os.path.join(self.root, 'bus', 'mdev', 'devices', mdev_uuid)
        if os.path.isdir(bus_path):
            return bus_path
        # A copied tree may lack bus/mdev: the device also sits under its
        # parent, as the kernel lays it out.
        try:
            names = _listdir(self.bus_dir)
        except _Skip:
            names = []
        for name in names:
            candidate = os.path.join(self.bus_dir, name, mdev_uuid)
            if model.is_valid_name(name) and os.path.isdir(candidate):
                return candidate
        return bus_path
