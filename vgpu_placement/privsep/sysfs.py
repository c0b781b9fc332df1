"""The privileged mdev writes (create, remove): with a vendor's own
(drivers/nvidia/privileged.py), the only code the privsep daemon runs.

Each entry point takes plain values (the sysfs root, names, a UUID),
checks all of them again here (the caller is not trusted to have done
it: see vgpu_placement.sysfs.paths for the rules),
builds the one path it writes, and returns None. Failures cross the
privsep channel as exceptions rebuilt from their args:

* ``OSError`` with the kernel's errno (EINVAL for an argument the kernel
  would refuse), mapped by the driver to the same typed MdevError;
* ``sysfs_paths.RefusedWrite`` for a path that leaves the root's mdev
  directories or is not a plain attribute file.
"""
from vgpu_placement import privsep
from vgpu_placement.sysfs import paths as sysfs_paths


@privsep.sysfs_pctxt.entrypoint
def create_mdev(root, parent, type_id, mdev_uuid):
    """Write mdev_uuid to <parent>/mdev_supported_types/<type_id>/create."""
    sysfs_paths.checked_name(parent, 'parent')
    sysfs_paths.checked_name(type_id, 'type')
    sysfs_paths.checked_canonical_uuid(mdev_uuid)
    real = sysfs_paths.real_root(root)
    parent_dir = sysfs_paths.parent_dir(root, real, parent)
    sysfs_paths.write_attribute(
        real, '/'.join((parent_dir, 'mdev_supported_types', type_id,
                        'create')), mdev_uuid)


@privsep.sysfs_pctxt.entrypoint
def remove_mdev(root, mdev_uuid, parent=None):
    """Write 1 to the mdev's remove (found under bus/mdev/devices, or
    under its parent's directory when parent is given)."""
    sysfs_paths.checked_canonical_uuid(mdev_uuid)
    if parent is not None:
        sysfs_paths.checked_name(parent, 'parent')
    real = sysfs_paths.real_root(root)
    mdev_dir = sysfs_paths.mdev_dir(root, real, mdev_uuid, parent)
    sysfs_paths.write_attribute(real, mdev_dir + '/remove', '1')
