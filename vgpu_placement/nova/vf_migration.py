"""Live migration of vGPUs that are their virtual function (NVIDIA's
vendor-specific VFIO) through nova-compute: the decisions, without Nova.

Nova (31.0, spec "migrate-vfio-devices-using-kernel-variant-drivers")
live-migrates a VF bound to a VFIO variant driver when its ``[pci]
device_spec`` entry is tagged ``live_migratable`` and the host runs
libvirt 10.0.0 and QEMU 8.2.2 or newer (``MIN_VFIO_PCI_VARIANT_*`` in
nova/virt/libvirt/driver.py). The project's VFs are not Nova's PCI
devices: the tag is ``[mdev_<type>] live_migratable`` of the project's
file, and both hosts must say it of the type.

The source names each of its VF vGPUs in Nova's ``source_mdev_types`` by
the VF's PCI address (an mdev is named there by its UUID); the
destination makes its own vGPUs before the migration starts and pairs
them by type, answering ``target_mdevs`` {source mdev: its mdev} for the
mdevs and ``pci_dev_map_src_dst`` {source VF: its VF} for the VFs, which
Nova's migration XML update applies to the guest's PCI hostdevs
(nova/virt/libvirt/migration.py ``_update_pci_dev_xml``).
"""
from vgpu_placement.model import discovered

MIN_LIBVIRT = (10, 0, 0)
MIN_QEMU = (8, 2, 2)


def _version(numbers):
    return '.'.join(str(n) for n in numbers)


def is_vf_key(key):
    """True for a ``source_mdev_types`` key that names a VF (its PCI
    address), not an mdev (its UUID)."""
    return discovered.is_pci_address(key)


def refusal(consumer, type_ids, policies, versions_ok, side):
    """Why the ``side`` host ('source' or 'destination') cannot
    live-migrate the VF vGPUs of ``type_ids`` of ``consumer``, or None.
    ``policies``: {type id: type_config.TypePolicy} of that host;
    ``versions_ok``: its libvirt and QEMU are new enough."""
    if not type_ids:
        return None
    closed = sorted(t for t in set(type_ids)
                    if not getattr(policies.get(t), 'live_migratable',
                                   False))
    if closed:
        return ('vgpu-placement: the vGPUs of %s are virtual functions '
                '(NVIDIA vendor-specific VFIO) of type %s, not marked '
                'live_migratable in the %s host\'s [mdev_<type>] groups; '
                'cold-migrate or resize it instead' % (
                    consumer, ', '.join(closed), side))
    if not versions_ok:
        return ('vgpu-placement: the vGPUs of %s are virtual functions, '
                'which the %s host can live-migrate only with libvirt %s '
                'and QEMU %s or newer' % (consumer, side,
                                          _version(MIN_LIBVIRT),
                                          _version(MIN_QEMU)))
    return None


def pair(source_types, realized, gets_parent):
    """Each source vGPU paired with one realized here of the same type and
    kind: ``source_types`` {mdev uuid or VF address: type id};
    ``realized``: host.facts.Realized of the consumer here;
    ``gets_parent(parent)``: the guest gets that VF (Driver.
    guest_gets_parent). Returns ({source mdev: mdev here}, {source VF:
    VF here}), or None when one cannot be paired."""
    free = list(realized)
    mdevs, vfs = {}, {}
    for key, type_id in sorted(source_types.items()):
        is_vf = is_vf_key(key)
        match = next((r for r in free if r.type_id == type_id and
                      gets_parent(r.parent) == is_vf), None)
        if match is None:
            return None
        free.remove(match)
        if is_vf:
            vfs[key] = match.parent
        else:
            mdevs[key] = match.uuid
    return mdevs, vfs
