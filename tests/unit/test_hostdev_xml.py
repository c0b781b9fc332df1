"""The libvirt <hostdev> elements a driver gives the guest: an mdev's, or
a VF's on NVIDIA's vendor-specific VFIO layout."""
import xml.etree.ElementTree as ET

import pytest

from vgpu_placement.drivers import base
from vgpu_placement.drivers import hostdev
from vgpu_placement import exceptions

UUID = '5ad7c6b6-1e0f-4b56-9a4e-2f2c9c3d8e01'


def test_an_mdev_is_an_mdev_hostdev():
    element = ET.fromstring(hostdev.mdev_xml(UUID))
    assert element.attrib == {'mode': 'subsystem', 'type': 'mdev',
                              'model': 'vfio-pci', 'managed': 'no'}
    assert element.find('source/address').attrib == {'uuid': UUID}


@pytest.mark.parametrize('vf, parts', [
    ('0000:41:00.4', ('0000', '41', '00', '4')),
    ('0001:c1:1f.7', ('0001', 'c1', '1f', '7')),
])
def test_a_vf_is_an_unmanaged_pci_hostdev(vf, parts):
    element = ET.fromstring(hostdev.pci_xml(vf))
    # managed='no': the VF stays bound to nvidia, its VFIO provider.
    assert element.attrib == {'mode': 'subsystem', 'type': 'pci',
                              'managed': 'no'}
    address = element.find('source/address').attrib
    assert address == dict(zip(('domain', 'bus', 'slot', 'function'),
                               ('0x' + p for p in parts)))


@pytest.mark.parametrize('bad', [
    '0000:41:20.4',                 # slot is 5 bits
    '0000:41:00.8',                 # function is 3 bits
    "0000:41:00.4' managed='yes",   # no way into the XML
    '0000:41:00.4\n', '0000:41:00', 'mtty', '', None,
    '0000:41:0A.4',                 # the kernel writes lower case
])
def test_what_is_not_a_pci_address_is_refused_in_one_line(bad):
    with pytest.raises(exceptions.VgpuPlacementError) as e:
        hostdev.pci_xml(bad)
    assert 'is not a PCI address' in str(e.value)
    assert len(str(e.value).splitlines()) == 1


class _Layout(base.Driver):
    """A driver whose guests get the parent VF itself, on VFs only."""
    discover = create_mdev = remove_mdev = boot_id = None

    def guest_gets_parent(self, parent):
        return parent.endswith('.4')


def test_the_driver_chooses_the_vf_or_the_mdev_for_the_guest():
    driver = _Layout(conf=None)
    assert "type='pci'" in driver.hostdev_xml(UUID, '0000:41:00.4')
    assert "type='mdev'" in driver.hostdev_xml(UUID, '0000:41:00.0')
    assert "type='mdev'" in driver.hostdev_xml(UUID, 'mtty')
