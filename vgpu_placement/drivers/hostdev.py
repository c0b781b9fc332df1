"""libvirt's <hostdev> element for a realized vGPU: an mdev, or the
virtual function the guest gets itself (NVIDIA's vendor-specific VFIO).
``Driver.hostdev_xml`` chooses between them; the CLI and the Nova driver
ask it."""
import re
from xml.sax import saxutils

from vgpu_placement import exceptions

_PCI_PARTS_RE = re.compile(r'([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])\.'
                           r'([0-7])')


def mdev_xml(mdev_uuid):
    """libvirt's <hostdev type='mdev'> for an mdev."""
    return ("<hostdev mode='subsystem' type='mdev' model='vfio-pci' "
            "managed='no'><source><address uuid=%s/></source></hostdev>"
            % saxutils.quoteattr(mdev_uuid))


def pci_xml(address):
    """libvirt's <hostdev type='pci'> for a VF (0000:41:00.4).

    managed='no': the VF stays bound to the nvidia driver, its VFIO
    provider (a vfio-pci probe fails with EINVAL), as nova and OpenNebula
    pass these VFs (doc/source/reference/nvidia-vgpu.rst).
    """
    # Stricter than discovered.is_pci_address: a slot is 5 bits.
    found = _PCI_PARTS_RE.fullmatch(address) if isinstance(address, str) \
        else None
    if found is None:
        raise exceptions.VgpuPlacementError(
            'virtual function %r is not a PCI address (0000:41:00.4): no '
            'hostdev for it' % (address,))
    return ("<hostdev mode='subsystem' type='pci' managed='no'><source>"
            "<address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>"
            "</source></hostdev>" % found.groups())
