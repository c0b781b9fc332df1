"""NVIDIA's privileged sysfs writes, run by the privsep daemon: an mdev's
``nvidia/vgpu_params`` and a virtual function's
``nvidia/current_vgpu_type``.

Each checks every argument again (the caller is not trusted) and builds
the one path it writes, as privsep/sysfs.py does for create and remove;
failures cross the privsep channel the same way.
"""
import os
import re

from vgpu_placement.drivers.nvidia import names
from vgpu_placement.model import discovered
from vgpu_placement import privsep
from vgpu_placement.sysfs import paths as sysfs_paths

# Placement's integers are 32-bit: a vendor parameter is never larger.
_PARAM_RANGE = range(-2 ** 31, 2 ** 31)
# A vendor-VFIO vGPU type id as current_vgpu_type takes it (0: none).
_VGPU_TYPE_RE = re.compile(r'0|[1-9][0-9]{0,9}')
_VGPU_TYPE_MAX = 2 ** 31 - 1


@privsep.sysfs_pctxt.entrypoint
def set_vgpu_params(root, mdev_uuid, params, parent=None):
    """Write "key=value ..." (sorted) to the mdev's nvidia/vgpu_params;
    keys from NVIDIA's allow-list, values integers."""
    sysfs_paths.checked_canonical_uuid(mdev_uuid)
    if parent is not None:
        sysfs_paths.checked_name(parent, 'parent')
    if not isinstance(params, dict) or not params:
        raise sysfs_paths.invalid('vgpu_params must be a non-empty mapping')
    unknown = sorted(set(params) - names.VGPU_PARAMS, key=str)
    if unknown:
        raise sysfs_paths.invalid('%r is not an NVIDIA vgpu_params key'
                                  % (unknown[0],))
    for key, value in params.items():
        if type(value) is not int or value not in _PARAM_RANGE:
            raise sysfs_paths.invalid('vgpu_params %s=%r is not an integer'
                                      % (key, value))
    real = sysfs_paths.real_root(root)
    mdev_dir = sysfs_paths.mdev_dir(root, real, mdev_uuid, parent)
    sysfs_paths.write_attribute(
        real, mdev_dir + '/nvidia/vgpu_params',
        ' '.join('%s=%d' % kv for kv in sorted(params.items())))


@privsep.sysfs_pctxt.entrypoint
def set_vgpu_type(root, vf, type_number):
    """Write type_number (a decimal id, or "0" to destroy) to the NVIDIA
    virtual function's bus/pci/devices/<vf>/nvidia/current_vgpu_type."""
    if not discovered.is_pci_address(vf):
        raise sysfs_paths.invalid('%r is not a PCI address' % (vf,))
    if not isinstance(type_number, str) or not _VGPU_TYPE_RE.fullmatch(
            type_number) or int(type_number) > _VGPU_TYPE_MAX:
        raise sysfs_paths.invalid('%r is not a vGPU type id' % (type_number,))
    real = sysfs_paths.real_root(root)
    link = os.path.join(root, 'bus', 'pci', 'devices', vf)
    if not os.path.lexists(link):
        raise sysfs_paths.invalid('no PCI device %s' % vf)
    device = os.path.realpath(link)
    if not sysfs_paths.inside(device, os.path.join(real, 'devices')):
        raise sysfs_paths.RefusedWrite('%s leads outside [sysfs] root %s'
                                       % (link, root))
    sysfs_paths.write_attribute(
        real, '/'.join((device, 'nvidia', 'current_vgpu_type')), type_number)
