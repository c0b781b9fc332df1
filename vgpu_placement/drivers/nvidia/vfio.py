"""NVIDIA vGPUs on the vendor-specific VFIO layout, besides mdev.

Kernels with vfio-pci-core (Ubuntu 24.04, RHEL 10) give SR-IOV NVIDIA GPUs
no mdev_bus: each virtual function (VF) has
``/sys/bus/pci/devices/<VF>/nvidia/`` with ``creatable_vgpu_types`` (a
header line, then ``<ID> : <name>`` lines: what the whole GPU can take
now; only the header on a full GPU) and ``current_vgpu_type`` (``0``, or
the ID of the VF's one vGPU). A vGPU is made by writing its type ID there
and removed by writing 0 (doc/source/reference/nvidia-vgpu.rst).

This driver reports such a host in the same shape as the sysfs driver
reports an mdev one, and also reads ``class/mdev_bus`` through it (GPUs
without SR-IOV stay on mdev on the same host):

* each VF is a parent with ``physfn`` (the GPU is the provider, its VFs
  the slots); type ``<ID>`` is type ``nvidia-<ID>``, the name the same
  type has on the mdev layout, so flavors keep working when a host moves;
* every type the GPU supports is listed on each VF (NVML's list, or every
  name seen on the GPU, remembered), with 1 available on a free VF whose
  list shows it now, else 0;
* a VF with a type set is an mdev: the UUID it was created with (kept in
  ``$state_path/nvidia-vfio.json``, 0600, per boot; forgotten once the VF
  shows no vGPU or another type), or one derived from the VF, its type
  and the boot for a vGPU someone else made; the guest gets the VF itself
  (``guest_gets_parent``: a PCI hostdev, managed='no');
* counts come from NVML (drivers/nvml.py) when it can be used; else each
  type's framebuffer is read from its name (``L40S-4Q`` is 4 GB) and its
  maximum is its board's framebuffer over its own size (nvidia),
  or, for a board not known there, the GPU's largest time-sliced type
  over its own size (conservative: a GPU first seen busy shows fewer
  sizes); said once.

Errors of the write, as the R525 source gives them: EPERM on create (the
VF holds a vGPU) is VfOccupied, EIO (the resource manager refused the
type) VgpuRefused, EPERM on remove (no vGPU there) NoVgpuOnVf, EBUSY (in
use) VgpuInUse; EINVAL, ENOENT, ENODEV as for mdev.
"""
import errno
import logging
import os
import re
import uuid

from vgpu_placement.drivers import base
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement.drivers.nvidia import names as nvidia
from vgpu_placement.drivers.nvidia import nvml as nvml_mod
from vgpu_placement.drivers.nvidia import privileged as nvidia_privileged
from vgpu_placement import exceptions
from vgpu_placement.model import discovered
from vgpu_placement import state_file
from vgpu_placement.sysfs import paths as sysfs_paths
from vgpu_placement.sysfs import read as sysfs_read

LOG = logging.getLogger(__name__)

VGPU_NAMESPACE = uuid.UUID('3c0f5a8e-1d7b-5e42-8a6f-2b9c4d1e7f03')
_TYPE_ID_RE = re.compile(r'nvidia-([1-9][0-9]{0,9})')
_LINE_RE = re.compile(r'([0-9]{1,10})\s*:\s*(\S.{0,126})')
_MAX_ID = 2 ** 31 - 1
# Bounds on what a GPU may list (real ones list a few dozen types): more is
# a tree no driver makes, and would cost seconds per scan.
MAX_TYPES_PER_VF = 128
MAX_TYPES_PER_GPU = 256

_ERRORS = {
    ('create', errno.EPERM): exceptions.VfOccupied,
    ('create', errno.EIO): exceptions.VgpuRefused,
    ('remove', errno.EPERM): exceptions.NoVgpuOnVf,
}


def error_for(err, action, target):
    """The typed error of a current_vgpu_type write's errno."""
    cls = _ERRORS.get((action, err.errno))
    if cls is None and err.errno == errno.EBUSY:
        cls = exceptions.VgpuInUse
    if cls is not None:
        return cls(action, target)
    return exceptions.mdev_error_from_errno(err, action, target)


def parse_creatable(text, path):
    """{type ID: name} from a creatable_vgpu_types file (header skipped);
    sysfs_read.Unreadable for a line that is neither."""
    types = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('ID'):
            continue
        found = _LINE_RE.fullmatch(line)
        if not found or int(found.group(1)) in (0,) or \
                int(found.group(1)) > _MAX_ID:
            raise sysfs_read.Unreadable(
                '%s has a line %r that is not "ID : name"'
                % (path, line[:60]))
        types[int(found.group(1))] = found.group(2).strip()
        if len(types) > MAX_TYPES_PER_VF:
            raise sysfs_read.Unreadable('%s lists more than %d types'
                                        % (path, MAX_TYPES_PER_VF))
    return types


def fallback_types(names):
    """{ID: (name, description, VgpuInfo or None)} from names alone.

    A time-sliced type's maximum is its board's framebuffer over its own
    size (nvidia: 48 GB L40S, 4Q -> 12); for a board not in that
    table, the largest time-sliced size seen over its own (conservative:
    a GPU first seen busy lists fewer sizes). MIG-backed types get no
    figures (their capacity is the GPU instances, which only NVML shows).
    """
    sizes = {i: nvidia.framebuffer_gb(n) for i, n in names.items()}
    boards = {nvidia.board_framebuffer_gb(n) for n in names.values()}
    total = max((s[0] for s in sizes.values() if s and not s[1]), default=0)
    if len(boards) == 1 and None not in boards:
        total = max(total, boards.pop())
    out = {}
    for type_id, name in names.items():
        size = sizes[type_id]
        if size is None or size[1] or not total:
            out[type_id] = (name, '', None)
            continue
        most = total // size[0]
        out[type_id] = (name, 'framebuffer=%dM, max_instance=%d'
                        % (size[0] * 1024, most),
                        discovered.VgpuInfo(framebuffer_mb=size[0] * 1024,
                                            max_instance=most))
    return out


def _made_up_uuid(boot, vf, type_id):
    """The UUID of a vGPU this driver has no record of (someone else's,
    or ours with the record lost): stable for the VF, type and boot."""
    return str(uuid.uuid5(VGPU_NAMESPACE, '%s/%s/%s' % (boot, vf, type_id)))


class NvidiaVfioDriver(nvidia_models.NvidiaGpus, base.Driver):
    """mdev parents (via the sysfs driver) plus vendor-VFIO GPUs."""

    # A current_vgpu_type write is not known to send any uevent
    # (doc/source/reference/nvidia-vgpu.rst): scan every report.
    host_changes_raise_uevents = False

    def __init__(self, conf, nvml=None):
        super().__init__(conf)
        self.mdev = sysfs.SysfsDriver(conf)
        self.root = conf.sysfs.root
        self.devices_dir = os.path.join(self.root, 'bus', 'pci', 'devices')
        self.state_path = os.path.join(conf.state_path, 'nvidia-vfio.json')
        self.nvml = nvml or nvml_mod.Nvml()
        self._said = set()

    def _say_once(self, key, text, *args):
        if key not in self._said:
            self._said.add(key)
            LOG.warning(text, *args)

    # -- state: our vGPUs' UUIDs and the type names seen per GPU ----------
    def _state(self):
        state = state_file.read_checked(self.state_path, lambda d: (
            isinstance(d, dict) and isinstance(d.get('vgpus', {}), dict)
            and isinstance(d.get('names', {}), dict))) or {}
        state.setdefault('vgpus', {})
        state.setdefault('names', {})
        return state

    # -- discovery -------------------------------------------------------
    def discover(self):
        snapshot = self.mdev.discover()      # checks the root as well
        warnings = list(snapshot.warnings)
        unreadable = set(snapshot.unreadable)
        vfs = self._read_vfs(os.path.realpath(self.root), warnings,
                             unreadable)
        parents = list(snapshot.parents)
        if vfs:
            parents.extend(self._parents(vfs, warnings, unreadable))
        for text in warnings[len(snapshot.warnings):]:
            LOG.warning('nvidia_vfio: %s', text)
        return discovered.HostSnapshot(
            parents=tuple(sorted(parents, key=lambda p: p.name)),
            warnings=tuple(warnings), unreadable=frozenset(unreadable))

    def _read_vfs(self, real_root, warnings, unreadable):
        """[{name, physfn, listed, current, placement}] of every VF with
        an nvidia/ directory."""
        try:
            names = sorted(os.listdir(self.devices_dir))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise exceptions.HostStateError('%s cannot be read: %s'
                                            % (self.devices_dir, e.strerror))
        found = []
        for name in names:
            if not discovered.is_pci_address(name):
                continue
            device = os.path.realpath(os.path.join(self.devices_dir, name))
            if not sysfs_paths.inside(device, real_root):
                continue
            nvidia = os.path.join(device, 'nvidia')
            try:
                entries = {n: link for n, _i, link in
                           sysfs_read.scan_dir(device)}
            except sysfs_read.Unreadable:
                continue            # gone, or not ours to read
            if 'nvidia' not in entries:
                continue
            physfn = self._physfn(device, real_root)
            if entries['nvidia'] or physfn is None:
                # The driver makes nvidia/ on VFs only (is_virtfn).
                warnings.append('skipped %s: nvidia/ is a link, or not on a '
                                'virtual function of a distinct physical '
                                'function' % name)
                continue
            try:
                listed = parse_creatable(sysfs_read.read_text(os.path.join(
                    nvidia, 'creatable_vgpu_types')), name)
                current = sysfs_read.read_count(os.path.join(
                    nvidia, 'current_vgpu_type'))
            except sysfs_read.Unreadable as e:
                warnings.append('virtual function %s not read: %s'
                                % (name, e))
                if not e.absent:
                    unreadable.add(name)
                    found.append(dict(name=name, physfn=physfn, listed={},
                                      current=0, placement=None,
                                      unreadable=True))
                continue
            placement = None
            if current:
                try:
                    placement = sysfs_read.read_count(os.path.join(
                        nvidia, 'placement_id'))
                except sysfs_read.Unreadable:
                    pass            # older drivers; "Not Applicable"
            found.append(dict(name=name, physfn=physfn, listed=listed,
                              current=current, placement=placement))
        return found

    def _physfn(self, device, real_root):
        """The PCI address of the VF's physical function, or None unless
        ``physfn`` leads to a distinct device under the root that is not
        a virtual function itself (a link to itself would make the VF a
        second provider of the same GPU)."""
        try:
            physfn = os.path.basename(os.readlink(os.path.join(device,
                                                               'physfn')))
        except OSError:
            return None
        if not discovered.is_pci_address(physfn):
            return None
        pf = os.path.realpath(os.path.join(self.devices_dir, physfn))
        if pf == device or not sysfs_paths.inside(pf, real_root) or \
                not os.path.isdir(pf) or \
                os.path.lexists(os.path.join(pf, 'physfn')):
            return None
        return physfn

    def _catalogue(self, physfn, seen_names):
        """{ID: (name, description, VgpuInfo)} of one GPU."""
        gpu = self.nvml.gpu(physfn)
        if gpu is not None:
            return gpu.types
        self._say_once(('nvml',), 'NVML not used (%s): vGPU counts on '
                       'vendor-specific VFIO GPUs are read from type names '
                       'and their board (or the largest type, conservative)',
                       self.nvml.why_not or getattr(self.nvml, 'last_error',
                                                    'unknown'))
        return fallback_types(seen_names)

    def _parents(self, vfs, warnings, unreadable):
        with state_file.locked(self.state_path):
            state = self._state()
            boot = self.boot_id()
            by_gpu = {}
            for vf in vfs:
                by_gpu.setdefault(vf['physfn'], []).append(vf)
            changed = self._forget_gone(state, vfs)
            for physfn, members in list(by_gpu.items()):
                names = {int(i): n for i, n in
                         state['names'].get(physfn, {}).items()}
                for vf in members:
                    names.update(vf['listed'])
                if len(names) > MAX_TYPES_PER_GPU:
                    warnings.append(
                        'GPU %s not read: its virtual functions list more '
                        'than %d types' % (physfn, MAX_TYPES_PER_GPU))
                    unreadable.update([physfn] + [v['name']
                                                  for v in members])
                    del by_gpu[physfn]
                    continue
                if {str(i): n for i, n in names.items()} != \
                        state['names'].get(physfn):
                    state['names'][physfn] = {str(i): n
                                              for i, n in names.items()}
                    changed = True
            if changed:
                state_file.write_json(self.state_path, state)
        parents = []
        for physfn, members in sorted(by_gpu.items()):
            names = {int(i): n for i, n in state['names'][physfn].items()}
            catalogue = self._catalogue(physfn, names)
            for vf in members:
                parents.append(self._vf_parent(vf, catalogue, state['vgpus'],
                                               boot, warnings))
        return parents

    def _forget_gone(self, state, vfs):
        """Drop (under the state lock) the UUID of a vGPU whose VF now
        shows no vGPU or another type: it was removed behind our back (or
        lost to a reboot), and a vGPU someone makes there later must not
        inherit it. Re-read here, as a create may have run since the
        scan (creates hold this lock); True if anything was dropped."""
        read = {vf['name'] for vf in vfs if not vf.get('unreadable')}
        dropped = False
        for name, record in list(state['vgpus'].items()):
            if name not in read:
                continue            # gone or unreadable now: unknown
            try:
                current = sysfs_read.read_count(os.path.join(
                    self.devices_dir, name, 'nvidia', 'current_vgpu_type'))
            except sysfs_read.Unreadable:
                continue
            if record.get('type') != 'nvidia-%d' % current:
                del state['vgpus'][name]
                dropped = True
        return dropped

    def _vf_parent(self, vf, catalogue, ours, boot, warnings):
        busy = bool(vf['current'])
        types = tuple(discovered.MdevType(
            'nvidia-%d' % type_id, name, description, 'vfio-pci',
            int(not busy and type_id in vf['listed']), info)
            for type_id, (name, description, info) in sorted(
                catalogue.items()))
        mdevs = ()
        if busy:
            type_id = 'nvidia-%d' % vf['current']
            if vf['current'] not in catalogue:
                warnings.append('virtual function %s holds type %d, which '
                                'the GPU does not list' % (vf['name'],
                                                           vf['current']))
            record = ours.get(vf['name'])
            if record and record.get('type') == type_id and \
                    record.get('boot') == boot:
                mdev_uuid = record['uuid']
            else:
                mdev_uuid = _made_up_uuid(boot, vf['name'], type_id)
            mdevs = (discovered.Mdev(mdev_uuid, type_id, vf['name'],
                                     vf['placement']),)
        return discovered.ParentDevice(vf['name'], types, mdevs,
                                       physfn=vf['physfn'])

    # -- changes ---------------------------------------------------------
    def _attr(self, vf):
        return os.path.join(self.devices_dir, vf, 'nvidia',
                            'current_vgpu_type')

    def _write(self, vf, value, action, target):
        """The VF's current_vgpu_type written by the privileged entry point
        (which checks the VF, the value and every path component again);
        its refusals and the driver's errno become the typed errors."""
        try:
            nvidia_privileged.set_vgpu_type(self.root, vf, value)
        except sysfs_paths.RefusedWrite as e:
            raise exceptions.MdevError(action, target, str(e))
        except OSError as e:
            raise error_for(e, action, target)

    def _is_vfio_vf(self, parent):
        return discovered.is_pci_address(parent) and os.path.isdir(
            os.path.join(self.devices_dir, parent, 'nvidia'))

    def guest_gets_parent(self, parent):
        return self._is_vfio_vf(parent)

    def create_mdev(self, parent, type_id, mdev_uuid):
        if not self._is_vfio_vf(parent):
            return self.mdev.create_mdev(parent, type_id, mdev_uuid)
        target = '%s of type %s on %s' % (mdev_uuid, type_id, parent)
        mdev_uuid = base.checked_uuid(mdev_uuid, 'create', target)
        found = _TYPE_ID_RE.fullmatch(type_id or '')
        if not found:
            raise exceptions.InvalidMdevRequest(
                'create', target, 'vendor VFIO types are nvidia-<ID>')
        boot = self.boot_id()
        if mdev_uuid in {m.uuid for m in self.discover().mdevs()}:
            raise exceptions.MdevExists('create', target)
        with state_file.locked(self.state_path):
            state = self._state()
            # Recorded first: a crash after the write still finds the
            # vGPU under its UUID (a record whose VF shows another type,
            # or none, is ignored).
            previous = state['vgpus'].get(parent)
            state['vgpus'][parent] = {'uuid': mdev_uuid, 'type': type_id,
                                      'boot': boot}
            state_file.write_json(self.state_path, state)
            try:
                self._write(parent, found.group(1), 'create', target)
            except exceptions.MdevError:
                if previous is None:
                    state['vgpus'].pop(parent, None)
                else:
                    state['vgpus'][parent] = previous
                state_file.write_json(self.state_path, state)
                raise

    def remove_mdev(self, mdev_uuid):
        mdev_uuid = base.checked_uuid(mdev_uuid, 'remove', 'mdev')
        vf = next((m.parent for m in self.discover().mdevs()
                   if m.uuid == mdev_uuid and self._is_vfio_vf(m.parent)),
                  None)
        if vf is None:
            return self.mdev.remove_mdev(mdev_uuid)
        with state_file.locked(self.state_path):
            try:
                self._write(vf, '0', 'remove', 'vGPU %s on %s'
                            % (mdev_uuid, vf))
            except exceptions.NoVgpuOnVf:
                pass                # gone already: forget it below
            finally:
                state = self._state()
                if state['vgpus'].get(vf, {}).get('uuid') == mdev_uuid:
                    del state['vgpus'][vf]
                    state_file.write_json(self.state_path, state)

    def readopt(self, parent, type_id, mdev_uuid, shown_uuid):
        if not self._is_vfio_vf(parent):
            return self.mdev.readopt(parent, type_id, mdev_uuid, shown_uuid)
        mdev_uuid = base.checked_uuid(mdev_uuid, 'adopt', 'vGPU')
        boot = self.boot_id()
        if shown_uuid != _made_up_uuid(boot, parent, type_id):
            return False
        with state_file.locked(self.state_path):
            state = self._state()
            record = state['vgpus'].get(parent)
            if record and record.get('type') == type_id and \
                    record.get('boot') == boot:
                return False        # the VF's vGPU has a UUID on record
            try:
                current = sysfs_read.read_count(self._attr(parent))
            except sysfs_read.Unreadable:
                return False
            if 'nvidia-%d' % current != type_id:
                return False
            state['vgpus'][parent] = {'uuid': mdev_uuid, 'type': type_id,
                                      'boot': boot}
            state_file.write_json(self.state_path, state)
        return True

    def boot_id(self):
        return self.mdev.boot_id()

    def set_vendor_params(self, mdev_uuid, type_id, params):
        vf = next((m.parent for m in self.discover().mdevs()
                   if m.uuid == mdev_uuid and self._is_vfio_vf(m.parent)),
                  None)
        if vf is None:
            return self.mdev.set_vendor_params(mdev_uuid, type_id, params)
        # The VF's nvidia/vgpu_params is not documented enough to write
        # (doc/source/reference/nvidia-vgpu.rst): refused, nothing half done.
        raise exceptions.InvalidMdevRequest(
            'set vendor parameters on', 'vGPU %s on %s' % (mdev_uuid, vf),
            'not supported on the vendor-specific VFIO layout yet')
