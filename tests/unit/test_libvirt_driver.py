"""The libvirt driver: node-device XML, error mapping, validation.

libvirtd cannot run here, so the driver talks to FakeLibvirt below: a
stand-in for the libvirt-python module whose connection keeps node devices
(parents printed from real captures, mdevs in the format libvirt's
virNodeDeviceDefFormat prints) and behaves as libvirt 10 with mdevctl does
for what the driver calls: listAllDevices by capability, nodeDeviceCreateXML
/ DefineXML, and create / destroy / undefine / setAutostart on a device,
with mdevctl's error texts. It is a fake, not a mock: tests assert what the
driver reports after the fake changed, not which calls were made (except
where the call order is the contract: create, define, autostart).
tests/nova/test_libvirt_driver.py runs the driver against Nova's own
fakelibvirt.
"""
import errno
import os
import re
import sys
import types
import uuid

import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement import drivers
from vgpu_placement.drivers.mdev import libvirt as lv_driver
from vgpu_placement import exceptions

# -- captures -----------------------------------------------------------------
# libvirt's own test data, which its nodedevxml2xml test round-trips
# through the parser and virNodeDeviceDefFormat: the text libvirt prints.
# github.com/libvirt/libvirt, tests/nodedevschemadata/:
# pci_0000_02_10_7_mdev_types.xml
PCI_MDEV_TYPES = """<device>
  <name>pci_0000_02_10_7</name>
  <parent>pci_0000_00_04_0</parent>
  <capability type='pci'>
    <domain>0</domain>
    <bus>2</bus>
    <slot>16</slot>
    <function>7</function>
    <product id='0x10ca'>82576 Virtual Function</product>
    <vendor id='0x8086'>Intel Corporation</vendor>
    <capability type='mdev_types'>
      <type id='foo1'>
        <name>bar1</name>
        <deviceAPI>vfio-pci</deviceAPI>
        <availableInstances>1</availableInstances>
      </type>
      <type id='foo2'>
        <name>bar2</name>
        <deviceAPI>vfio-pci</deviceAPI>
        <availableInstances>2</availableInstances>
      </type>
    </capability>
    <iommuGroup number='31'>
      <address domain='0x0000' bus='0x02' slot='0x10' function='0x7'/>
    </iommuGroup>
    <numa node='0'/>
    <pci-express>
      <link validity='cap' port='0' speed='2.5' width='4'/>
      <link validity='sta' width='0'/>
    </pci-express>
  </capability>
</device>
"""
# pci_0000_02_10_7_sriov_pf_vfs_all.xml (a VF)
PCI_VF = """<device>
  <name>pci_0000_02_10_7</name>
  <parent>pci_0000_00_04_0</parent>
  <capability type='pci'>
    <class>0xffffff</class>
    <domain>0</domain>
    <bus>2</bus>
    <slot>16</slot>
    <function>7</function>
    <product id='0x10ca'>82576 Virtual Function</product>
    <vendor id='0x8086'>Intel Corporation</vendor>
    <capability type='phys_function'>
      <address domain='0x0000' bus='0x02' slot='0x00' function='0x1'/>
    </capability>
    <capability type='virt_functions' maxCount='7'>
      <address domain='0x0000' bus='0x02' slot='0x00' function='0x2'/>
      <address domain='0x0000' bus='0x02' slot='0x00' function='0x3'/>
    </capability>
  </capability>
</device>
"""
# tests/nodedevschemadata/css_0_0_fffe_mdev_types.xml (not PCI: s390)
CSS_MDEV_TYPES = """<device>
  <name>css_0_0_fffe</name>
  <path>/sys/devices/css0/0.0.fffe</path>
  <parent>computer</parent>
  <capability type='css'>
    <cssid>0x0</cssid>
    <ssid>0x0</ssid>
    <devno>0xfffe</devno>
    <capability type='mdev_types'>
      <type id='vfio_ccw-io'>
        <name>I/O subchannel (Non-QDIO)</name>
        <deviceAPI>vfio-ccw</deviceAPI>
        <availableInstances>1</availableInstances>
      </type>
    </capability>
  </capability>
</device>
"""
# tests/nodedevschemadata/mdev_d069d019_36ea_4111_8f0a_8c9a70e21366.xml
MDEV_GVTG = """<device>
  <name>mdev_d069d019_36ea_4111_8f0a_8c9a70e21366</name>
  <parent>pci_0000_00_02_0</parent>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_8'/>
    <uuid>d069d019-36ea-4111-8f0a-8c9a70e21366</uuid>
  </capability>
</device>
"""
# tests/nodedevschemadata/mdev_3627463d_b7f0_4fea_b468_f1da537d301b.xml:
# libvirt before 7.3 printed no <uuid>; a defined mdev whose parent is
# absent has the parent "computer".
MDEV_NO_UUID = """<device>
  <name>mdev_3627463d_b7f0_4fea_b468_f1da537d301b</name>
  <parent>computer</parent>
  <capability type='mdev'>
    <type id='mtty-1'/>
    <iommuGroup number='12'/>
  </capability>
</device>
"""
# tests/nodedevschemadata/mdev_autostart.xml (a defined, autostarted mdev)
MDEV_AUTOSTART = """<device>
  <name>mdev_9c4954d2_fa39_4973_9d66_d61c6c4d0100</name>
  <parent>pci_0000_00_02_0</parent>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_8'/>
    <attr name='example-attribute' value='attribute-value'/>
    <start type='auto'/>
    <uuid>9c4954d2-fa39-4973-9d66-d61c6c4d0100</uuid>
  </capability>
</device>
"""
# Nova 34.0.0 nova/tests/fixtures/libvirt_data.py, "pci_0000_06_00_1": an
# i915 type without <name>, which libvirt omits when sysfs has none.
PCI_GVTG_NO_NAME = """
    <device>
      <name>pci_0000_06_00_1</name>
      <path>/sys/devices/pci0000:00/0000:00:06.1</path>
      <parent></parent>
      <driver>
        <name>i915</name>
      </driver>
      <capability type="pci">
        <domain>0</domain>
        <bus>6</bus>
        <slot>0</slot>
        <function>1</function>
        <product id="0x591d">HD Graphics P630</product>
        <vendor id="0x8086">Intel Corporation</vendor>
        <capability type='mdev_types'>
          <type id='i915-GVTg_V5_8'>
            <deviceAPI>vfio-pci</deviceAPI>
            <availableInstances>2</availableInstances>
          </type>
        </capability>
      </capability>
    </device>"""


def nvidia_parent(bus, available=4, path=True, physfn=None):
    """An NVIDIA GPU as libvirt prints it (the layout of PCI_MDEV_TYPES,
    with a <path> and a T4's types, doc/source/reference/kernel-mdev.rst)."""
    pf = ("    <capability type='phys_function'>\n      <address "
          "domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>\n"
          "    </capability>\n" % physfn) if physfn is not None else ''
    return ("<device>\n  <name>pci_0000_%02x_00_0</name>\n" % bus +
            ("  <path>/sys/devices/pci0000:00/0000:%02x:00.0</path>\n" % bus
             if path else '') +
            "  <parent>pci_0000_00_03_0</parent>\n"
            "  <driver>\n    <name>nvidia</name>\n  </driver>\n"
            "  <capability type='pci'>\n    <class>0x030200</class>\n"
            "    <domain>0</domain>\n    <bus>%d</bus>\n    <slot>0</slot>\n"
            "    <function>0</function>\n"
            "    <product id='0x1eb8'>TU104GL [Tesla T4]</product>\n"
            "    <vendor id='0x10de'>NVIDIA Corporation</vendor>\n" % bus +
            pf +
            "    <capability type='mdev_types'>\n"
            "      <type id='nvidia-222'>\n        <name>GRID T4-1B</name>\n"
            "        <deviceAPI>vfio-pci</deviceAPI>\n"
            "        <availableInstances>%d</availableInstances>\n"
            "      </type>\n    </capability>\n  </capability>\n</device>\n"
            % available)


# -- the fake -----------------------------------------------------------------

class FakeLibvirtError(Exception):
    """libvirt-python's libvirtError: err = (code, domain, message, ...)."""

    def __init__(self, message, code):
        super().__init__(message)
        self.err = (code, 0, message, 2, None, None, None, 0, 0)

    def get_error_code(self):
        return self.err[0]

    def get_error_message(self):
        return self.err[2]


# Distinct error codes; the driver reads them from the module by name.
CODES = dict(VIR_ERR_INTERNAL_ERROR=1, VIR_ERR_INVALID_ARG=8,
             VIR_ERR_XML_ERROR=27, VIR_ERR_OPERATION_INVALID=55,
             VIR_ERR_NO_NODE_DEVICE=67, VIR_ERR_XML_DETAIL=350)


class FakeDevice:
    def __init__(self, host, name, kind, xml=None):
        self.host, self._name, self.kind, self._xml = host, name, kind, xml
        self.active, self.persistent, self.autostart_flag = True, False, False
        self.xml_error = None
        self.uuid = self.type_id = self.parent_name = None

    def name(self):
        return self._name

    def parent(self):
        return self.parent_name

    def XMLDesc(self, flags):
        if self.xml_error:
            raise self.xml_error
        if self.kind == 'parent':
            return self.host.render_parent(self)
        return self.host.render_mdev(self)

    def isActive(self):
        return self.active

    def isPersistent(self):
        return self.persistent

    def create(self, flags):
        self.host.calls.append(('start', self.uuid))
        self.host.start(self, self.type_id)
        self.active = True
        return 0

    def destroy(self):
        self.host.calls.append(('destroy', self.uuid))
        if not self.active:
            raise FakeLibvirtError("Device '%s' is not active" % self._name,
                                   CODES['VIR_ERR_OPERATION_INVALID'])
        if self.uuid in self.host.in_use:
            # libvirt's nodeDeviceDestroy when the vfio group is open.
            raise FakeLibvirtError("internal error: Unable to destroy '%s': "
                                   "device in use" % self._name,
                                   CODES['VIR_ERR_INTERNAL_ERROR'])
        self.active = False
        self.host.release(self)
        if not self.persistent:
            del self.host.devices[self._name]
        return 0

    def undefine(self):
        self.host.calls.append(('undefine', self.uuid))
        self.persistent = False
        if not self.active:
            del self.host.devices[self._name]
        return 0

    def setAutostart(self, flag):
        self.host.calls.append(('autostart', self.uuid))
        if self.host.autostart_error:
            raise self.host.autostart_error
        self.autostart_flag = bool(flag)
        return 0


class FakeHost:
    """What libvirt's node-device driver knows of one host."""

    def __init__(self, parents):
        self.devices = {}
        self.available = {}         # parent nodedev -> {type: count}
        self.calls = []
        self.in_use = set()
        self.create_error = self.define_error = self.autostart_error = None
        for xml in parents:
            name = re.search(r'<name>(.*?)</name>', xml).group(1)
            dev = FakeDevice(self, name, 'parent', xml)
            self.devices[name] = dev
            self.available[name] = {
                m.group(1): int(m.group(2)) for m in re.finditer(
                    r"<type id='([^']+)'>.*?<availableInstances>(\d+)<",
                    xml, re.S)}

    def render_parent(self, dev):
        counts = self.available[dev.name()]
        return re.sub(
            r"(<type id='([^']+)'>.*?<availableInstances>)(\d+)",
            lambda m: m.group(1) + str(counts[m.group(2)]), dev._xml,
            flags=re.S)

    def render_mdev(self, dev):
        if dev._xml is not None:
            return dev._xml
        # virNodeDeviceDefFormat + virNodeDeviceCapMdevDefFormat (libvirt
        # 10): path and driver only while the device exists in sysfs.
        parent = self.devices.get(dev.parent_name)
        addr = lv_driver.kernel_name(lv_driver.parse_xml(
            parent._xml)) if parent else 'unknown'
        live = ("  <path>/sys/devices/pci0000:00/%s/%s</path>\n" % (
            addr, dev.uuid) if dev.active else '')
        return ("<device>\n  <name>%s</name>\n%s  <parent>%s</parent>\n"
                "%s  <capability type='mdev'>\n    <type id='%s'/>\n"
                "    <uuid>%s</uuid>\n    <parent_addr>%s</parent_addr>\n"
                "    <iommuGroup number='0'/>\n  </capability>\n</device>\n"
                % (dev.name(), live, dev.parent_name,
                   "  <driver>\n    <name>vfio_mdev</name>\n  </driver>\n"
                   if dev.active else '', dev.type_id, dev.uuid, addr))

    def start(self, dev, type_id):
        counts = self.available[dev.parent_name]
        if counts.get(type_id) is None:
            raise FakeLibvirtError(
                'internal error: Unable to start mediated device: Error: '
                'Parent %s does not support mdev type %s' % (
                    dev.parent_name, type_id),
                CODES['VIR_ERR_INTERNAL_ERROR'])
        if counts[type_id] == 0:
            raise FakeLibvirtError(
                'internal error: Unable to start mediated device: Error: No '
                'available instances of %s on %s'
                % (type_id, dev.parent_name),
                CODES['VIR_ERR_INTERNAL_ERROR'])
        counts[type_id] -= 1

    def release(self, dev):
        self.available[dev.parent_name][dev.type_id] += 1

    def parse_request(self, xml):
        parent = re.search(r'<parent>(.*?)</parent>', xml).group(1)
        type_id = re.search(r"<type id=['\"](.*?)['\"]", xml).group(1)
        mdev_uuid = re.search(r'<uuid>(.*?)</uuid>', xml).group(1)
        if parent not in self.devices:
            raise FakeLibvirtError(
                "internal error: unable to find parent device '%s'" % parent,
                CODES['VIR_ERR_INTERNAL_ERROR'])
        return parent, type_id, mdev_uuid

    def add_mdev(self, parent, type_id, mdev_uuid, active=True,
                 persistent=False):
        name = 'mdev_%s_%s' % (mdev_uuid.replace('-', '_'), parent[4:])
        dev = FakeDevice(self, name, 'mdev')
        dev.uuid, dev.type_id, dev.parent_name = mdev_uuid, type_id, parent
        dev.active, dev.persistent = active, persistent
        if active:
            self.start(dev, type_id)
        self.devices[name] = dev
        return dev

    def mdev(self, mdev_uuid):
        return next((d for d in self.devices.values()
                     if d.kind == 'mdev' and d.uuid == mdev_uuid), None)


class FakeConnection:
    def __init__(self, host):
        self.host = host

    def isAlive(self):
        return 1

    def listAllDevices(self, flags):
        kind = {FakeLibvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES:
                'parent',
                FakeLibvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV: 'mdev'}[
                    flags]
        return [d for d in self.host.devices.values() if d.kind == kind]

    def nodeDeviceCreateXML(self, xml, flags):
        self.host.calls.append(('create_xml', xml))
        if self.host.create_error:
            raise self.host.create_error
        parent, type_id, mdev_uuid = self.host.parse_request(xml)
        if self.host.mdev(mdev_uuid) is not None:
            raise FakeLibvirtError(
                'internal error: Unable to start mediated device: Error: '
                'Device already exists', CODES['VIR_ERR_INTERNAL_ERROR'])
        return self.host.add_mdev(parent, type_id, mdev_uuid)

    def nodeDeviceDefineXML(self, xml, flags):
        self.host.calls.append(('define_xml', xml))
        if self.host.define_error:
            raise self.host.define_error
        _parent, _type_id, mdev_uuid = self.host.parse_request(xml)
        dev = self.host.mdev(mdev_uuid)
        dev.persistent = True
        return dev


class FakeLibvirt(types.ModuleType):
    """The parts of the libvirt-python module the driver uses."""
    libvirtError = FakeLibvirtError
    VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES = 1 << 13
    VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV = 1 << 14
    VIR_CRED_AUTHNAME, VIR_CRED_ECHOPROMPT, VIR_CRED_REALM = 2, 6, 8
    VIR_CRED_PASSPHRASE, VIR_CRED_NOECHOPROMPT, VIR_CRED_EXTERNAL = 5, 7, 9
    locals().update(CODES)

    def __init__(self, host):
        super().__init__('libvirt')
        self.host = host
        self.opened = []
        self.open_error = None

    def openAuth(self, uri, auth, flags):
        self.opened.append(uri)
        if self.open_error:
            raise self.open_error
        return FakeConnection(self.host)


@pytest.fixture
def host(monkeypatch):
    fake = FakeLibvirt(FakeHost([nvidia_parent(0x84), nvidia_parent(0x85)]))
    monkeypatch.setitem(sys.modules, 'libvirt', fake)
    return fake.host


def driver_for(tmp_path, **options):
    return lv_driver.LibvirtDriver(make_conf(
        driver='libvirt', sysfs__root=str(tmp_path), **options))


# -- XML ----------------------------------------------------------------------

def test_parses_a_pci_parent_as_libvirt_prints_it():
    info = lv_driver.parse_parent(PCI_MDEV_TYPES)
    assert (info['nodedev'], info['name'], info['path'], info['physfn']) == (
        'pci_0000_02_10_7', '0000:02:10.7', None, None)
    assert info['types'] == [
        dict(id='foo1', name='bar1', device_api='vfio-pci',
             available_instances=1),
        dict(id='foo2', name='bar2', device_api='vfio-pci',
             available_instances=2)]
    assert info['skipped'] == []


def test_a_type_without_name_is_named_by_its_id():
    info = lv_driver.parse_parent(PCI_GVTG_NO_NAME)
    assert info['name'] == '0000:06:00.1'
    assert info['types'] == [dict(id='i915-GVTg_V5_8', name='i915-GVTg_V5_8',
                                  device_api='vfio-pci',
                                  available_instances=2)]


def test_a_virtual_function_names_its_physical_function():
    info = lv_driver.parse_parent(PCI_VF)
    assert (info['name'], info['physfn'], info['types']) == (
        '0000:02:10.7', '0000:02:00.1', [])


def test_a_parent_that_is_not_pci_is_named_by_its_sysfs_directory():
    info = lv_driver.parse_parent(CSS_MDEV_TYPES)
    assert (info['name'], info['types'][0]['device_api']) == (
        '0.0.fffe', 'vfio-ccw')


@pytest.mark.parametrize('xml, expected', [
    (MDEV_GVTG, ('d069d019-36ea-4111-8f0a-8c9a70e21366', 'i915-GVTg_V5_8',
                 'pci_0000_00_02_0')),
    (MDEV_NO_UUID, ('3627463d-b7f0-4fea-b468-f1da537d301b', 'mtty-1',
                    'computer')),
    (MDEV_AUTOSTART, ('9c4954d2-fa39-4973-9d66-d61c6c4d0100',
                      'i915-GVTg_V5_8', 'pci_0000_00_02_0')),
])
def test_parses_mdevs_as_libvirt_prints_them(xml, expected):
    info = lv_driver.parse_mdev(xml)
    assert (info['uuid'], info['type_id'], info['parent']) == expected


def test_the_mdev_xml_is_the_one_nova_gives_libvirt():
    mdev_uuid = str(uuid.uuid4())
    xml = lv_driver.mdev_xml('pci_0000_84_00_0', 'nvidia-222', mdev_uuid)
    # Nova 34's LibvirtConfigNodeDevice for _create_mdev prints this.
    assert xml == ('<device><parent>pci_0000_84_00_0</parent><capability '
                   'type="mdev"><type id="nvidia-222" /><uuid>%s</uuid>'
                   '</capability></device>' % mdev_uuid)
    info = lv_driver.parse_mdev(xml)
    assert (info['uuid'], info['type_id'], info['parent']) == (
        mdev_uuid, 'nvidia-222', 'pci_0000_84_00_0')


@pytest.mark.parametrize('xml', [
    # An external entity: would read a file if it were resolved.
    '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<device><name>&x;</name></device>',
    # Entity expansion (billion laughs, shortened).
    '<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
    '<device><name>&b;</name></device>',
    '<device><name>x</name>',
    '<domain><name>x</name></domain>',
    '<device>' + ' ' * (1 << 20) + '</device>',
])
def test_xml_that_libvirt_never_prints_is_refused(xml):
    with pytest.raises(lv_driver.BadXML):
        lv_driver.parse_parent(xml)


@pytest.mark.parametrize('bad, problem', [
    ('<availableInstances>-1<', "holds '-1', not a count"),
    ('<availableInstances>2147483648<', 'not a count'),
    ('<deviceAPI>vfio-pci</deviceAPI>', 'no deviceAPI'),
])
def test_a_type_that_cannot_be_read_is_skipped_with_its_reason(bad, problem):
    good = {'<availableInstances>-1<': '<availableInstances>1<',
            '<availableInstances>2147483648<': '<availableInstances>1<',
            '<deviceAPI>vfio-pci</deviceAPI>':
            '<deviceAPI>vfio-pci</deviceAPI>'}[bad]
    xml = PCI_MDEV_TYPES.replace(good, bad if bad != good else '', 1)
    info = lv_driver.parse_parent(xml)
    assert [t['id'] for t in info['types']] == ['foo2']
    assert info['skipped'][0][0] == 'foo1'
    assert problem in info['skipped'][0][1]


# -- discovery ----------------------------------------------------------------

def test_discovers_parents_types_and_mdevs_with_kernel_names(host, tmp_path):
    mdev = str(uuid.uuid4())
    host.add_mdev('pci_0000_84_00_0', 'nvidia-222', mdev)
    snap = driver_for(tmp_path).discover()
    assert [p.name for p in snap.parents] == ['0000:84:00.0', '0000:85:00.0']
    gpu = snap.parent('0000:84:00.0')
    assert [(t.id, t.name, t.device_api, t.available_instances)
            for t in gpu.types] == [('nvidia-222', 'GRID T4-1B', 'vfio-pci',
                                     3)]
    assert [(m.uuid, m.type_id, m.parent) for m in gpu.mdevs] == [
        (mdev, 'nvidia-222', '0000:84:00.0')]
    assert snap.parent('0000:85:00.0').mdevs == ()
    assert (snap.warnings, snap.unreadable) == ((), frozenset())


def test_descriptions_come_from_sysfs_as_libvirt_does_not_print_them(
        host, tmp_path):
    tree = sysfs_tree.SysfsTree(tmp_path)
    text = ('num_heads=4, frl_config=45, framebuffer=1024M, '
            'max_resolution=5120x2880, max_instance=16')
    tree.add_parent('0000:84:00.0', {'nvidia-222': dict(
        available=4, name='GRID T4-1B', description=text)})
    snap = driver_for(tmp_path).discover()
    assert snap.parent('0000:84:00.0').type('nvidia-222').description == text
    # No sysfs entry for the second GPU here: no description, no warning.
    assert snap.parent('0000:85:00.0').type('nvidia-222').description == ''
    assert snap.warnings == ()


def test_defined_mdevs_not_started_are_listed_but_hold_no_capacity(
        host, tmp_path):
    active, defined = str(uuid.uuid4()), str(uuid.uuid4())
    host.add_mdev('pci_0000_84_00_0', 'nvidia-222', active, persistent=True)
    host.add_mdev('pci_0000_84_00_0', 'nvidia-222', defined, active=False,
                  persistent=True)
    driver = driver_for(tmp_path)
    gpu = driver.discover().parent('0000:84:00.0')
    assert [m.uuid for m in gpu.mdevs] == [active]
    assert gpu.type('nvidia-222').available_instances == 3
    assert [(m.uuid, m.parent) for m in driver.inactive_mdevs] == [
        (defined, '0000:84:00.0')]


def test_virtual_functions_carry_their_physical_function(monkeypatch,
                                                         tmp_path):
    fake = FakeLibvirt(FakeHost([
        nvidia_parent(0x41, available=1, physfn=0x40),
        nvidia_parent(0x42, available=1, physfn=0x40)]))
    monkeypatch.setitem(sys.modules, 'libvirt', fake)
    snap = driver_for(tmp_path).discover()
    assert [(p.name, p.physfn) for p in snap.parents] == [
        ('0000:41:00.0', '0000:40:00.0'), ('0000:42:00.0', '0000:40:00.0')]


def test_a_parent_whose_xml_cannot_be_read_is_unreadable_not_empty(
        host, tmp_path):
    host.devices['pci_0000_85_00_0'].xml_error = FakeLibvirtError(
        'internal error: cannot read', CODES['VIR_ERR_INTERNAL_ERROR'])
    snap = driver_for(tmp_path).discover()
    assert snap.unreadable == frozenset(['0000:85:00.0'])
    assert snap.parent('0000:85:00.0').types == ()
    assert any('cannot read' in w for w in snap.warnings)


def test_a_parent_that_vanished_while_listed_is_skipped(host, tmp_path):
    host.devices['pci_0000_85_00_0'].xml_error = FakeLibvirtError(
        "no node device with matching name 'pci_0000_85_00_0'",
        CODES['VIR_ERR_NO_NODE_DEVICE'])
    snap = driver_for(tmp_path).discover()
    assert [p.name for p in snap.parents] == ['0000:84:00.0']
    assert snap.unreadable == frozenset()


def test_a_bad_count_makes_the_parent_unreadable(monkeypatch, tmp_path):
    fake = FakeLibvirt(FakeHost([nvidia_parent(0x84).replace(
        '<availableInstances>4<', '<availableInstances>lots<')]))
    fake.host.available['pci_0000_84_00_0']['nvidia-222'] = 'lots'
    monkeypatch.setitem(sys.modules, 'libvirt', fake)
    snap = driver_for(tmp_path).discover()
    assert snap.parent('0000:84:00.0').types == ()
    assert snap.unreadable == frozenset(['0000:84:00.0'])


def test_an_mdev_that_cannot_be_read_makes_its_parent_unreadable(
        host, tmp_path):
    dev = host.add_mdev('pci_0000_84_00_0', 'nvidia-222', str(uuid.uuid4()))
    dev.xml_error = FakeLibvirtError('internal error: gone wrong',
                                     CODES['VIR_ERR_INTERNAL_ERROR'])
    snap = driver_for(tmp_path).discover()
    assert snap.unreadable == frozenset(['0000:84:00.0'])


def test_no_connection_is_one_line_naming_the_uri(host, tmp_path):
    sys.modules['libvirt'].open_error = FakeLibvirtError(
        'Failed to connect socket to \'/var/run/libvirt/virtqemud-sock\': '
        'No such file or directory', 38)
    driver = driver_for(tmp_path, libvirt__connection_uri='qemu:///system')
    with pytest.raises(exceptions.HostStateError) as e:
        driver.discover()
    assert 'qemu:///system' in str(e.value) and '\n' not in str(e.value)


def test_an_empty_uri_means_qemu_system(host, tmp_path):
    driver_for(tmp_path, libvirt__connection_uri='').discover()
    assert sys.modules['libvirt'].opened == ['qemu:///system']


# -- create and remove --------------------------------------------------------

def test_create_defines_and_autostarts_as_nova_does(host, tmp_path):
    driver = driver_for(tmp_path)
    mdev = str(uuid.uuid4())
    driver.create_mdev('0000:84:00.0', 'nvidia-222', mdev)
    assert [c[0] for c in host.calls] == [
        'create_xml', 'define_xml', 'autostart']
    assert "<parent>pci_0000_84_00_0</parent>" in host.calls[0][1]
    dev = host.mdev(mdev)
    assert (dev.active, dev.persistent, dev.autostart_flag) == (
        True, True, True)
    gpu = driver.discover().parent('0000:84:00.0')
    assert [m.uuid for m in gpu.mdevs] == [mdev]
    assert gpu.type('nvidia-222').available_instances == 3


def test_autostart_refused_is_not_fatal(host, tmp_path):
    host.autostart_error = FakeLibvirtError('internal error: no',
                                            CODES['VIR_ERR_INTERNAL_ERROR'])
    mdev = str(uuid.uuid4())
    driver_for(tmp_path).create_mdev('0000:84:00.0', 'nvidia-222', mdev)
    assert host.mdev(mdev).persistent


@pytest.mark.parametrize('message, error', [
    # mdevctl refusing before it writes, through libvirt.
    ('internal error: Unable to start mediated device: Error: No available '
     'instances of nvidia-222 on 0000:84:00.0', exceptions.NoCapacity),
    # The kernel refusing the write: mdevctl ends with Rust's io::Error.
    ('internal error: Unable to start mediated device: Error: Failed to '
     'create mdev x, type nvidia-222 on 0000:84:00.0\n\nCaused by:\n    No '
     'space left on device (os error 28)', exceptions.NoCapacity),
    ('internal error: Unable to start mediated device: Error: Failed to '
     'create mdev x\n\nCaused by:\n    Too many users (os error 87)',
     exceptions.TooManyInstances),
    ('internal error: Unable to start mediated device: Error: Failed to '
     'create mdev x\n\nCaused by:\n    No such device (os error 19)',
     exceptions.ParentGone),
    ('internal error: Unable to start mediated device: Error: Device '
     'exists under different parent', exceptions.MdevExists),
])
def test_create_errors_are_typed(host, tmp_path, message, error):
    host.create_error = FakeLibvirtError(message,
                                         CODES['VIR_ERR_INTERNAL_ERROR'])
    with pytest.raises(error) as e:
        driver_for(tmp_path).create_mdev('0000:84:00.0', 'nvidia-222',
                                         str(uuid.uuid4()))
    assert type(e.value) is error and '\n' not in str(e.value)


def test_a_full_parent_is_no_capacity(host, tmp_path):
    driver = driver_for(tmp_path)
    for _ in range(4):
        driver.create_mdev('0000:84:00.0', 'nvidia-222', str(uuid.uuid4()))
    with pytest.raises(exceptions.NoCapacity):
        driver.create_mdev('0000:84:00.0', 'nvidia-222', str(uuid.uuid4()))


def test_an_unknown_libvirt_error_is_quoted(host, tmp_path):
    host.create_error = FakeLibvirtError('operation failed: who knows',
                                         9999)
    with pytest.raises(exceptions.MdevError) as e:
        driver_for(tmp_path).create_mdev('0000:84:00.0', 'nvidia-222',
                                         str(uuid.uuid4()))
    assert type(e.value) is exceptions.MdevError
    assert 'who knows' in str(e.value)


def test_a_refused_define_leaves_no_transient_mdev(host, tmp_path):
    host.define_error = FakeLibvirtError(
        'internal error: Unable to define mediated device: Error: disk full',
        CODES['VIR_ERR_INTERNAL_ERROR'])
    driver = driver_for(tmp_path)
    mdev = str(uuid.uuid4())
    with pytest.raises(exceptions.MdevError) as e:
        driver.create_mdev('0000:84:00.0', 'nvidia-222', mdev)
    assert 'disk full' in str(e.value)
    assert host.mdev(mdev) is None
    assert driver.discover().parent('0000:84:00.0').mdevs == ()


@pytest.mark.parametrize('parent, type_id, mdev_uuid', [
    ('0000:84:00.0', 'nvidia-222', 'not-a-uuid'),
    ('0000:84:00.0', 'nvidia-222', '{%s}' % uuid.uuid4()),
    ('../../etc', 'nvidia-222', str(uuid.uuid4())),
    ('0000:84:00.0', "x'/><uuid>", str(uuid.uuid4())),
])
def test_bad_input_is_refused_before_libvirt_sees_it(host, tmp_path, parent,
                                                     type_id, mdev_uuid):
    with pytest.raises(exceptions.InvalidMdevRequest):
        driver_for(tmp_path).create_mdev(parent, type_id, mdev_uuid)
    assert host.calls == []


def test_an_unknown_parent_is_gone(host, tmp_path):
    with pytest.raises(exceptions.ParentGone):
        driver_for(tmp_path).create_mdev('0000:99:00.0', 'nvidia-222',
                                         str(uuid.uuid4()))


def test_an_unknown_type_is_refused(host, tmp_path):
    with pytest.raises(exceptions.InvalidMdevRequest) as e:
        driver_for(tmp_path).create_mdev('0000:84:00.0', 'nvidia-999',
                                         str(uuid.uuid4()))
    assert 'does not offer this type' in str(e.value)


def test_an_existing_uuid_is_refused(host, tmp_path):
    mdev = str(uuid.uuid4())
    host.add_mdev('pci_0000_84_00_0', 'nvidia-222', mdev)
    with pytest.raises(exceptions.MdevExists):
        driver_for(tmp_path).create_mdev('0000:84:00.0', 'nvidia-222', mdev)


def test_create_starts_our_definition_that_did_not_autostart(host, tmp_path):
    mdev = str(uuid.uuid4())
    host.add_mdev('pci_0000_84_00_0', 'nvidia-222', mdev, active=False,
                  persistent=True)
    driver = driver_for(tmp_path)
    driver.create_mdev('0000:84:00.0', 'nvidia-222', mdev)
    assert [c[0] for c in host.calls] == ['start', 'autostart']
    assert [m.uuid for m in driver.discover().mdevs()] == [mdev]


def test_a_definition_of_another_type_is_not_replaced(host, tmp_path):
    mdev = str(uuid.uuid4())
    host.add_mdev('pci_0000_85_00_0', 'nvidia-222', mdev, active=False,
                  persistent=True)
    with pytest.raises(exceptions.MdevExists) as e:
        driver_for(tmp_path).create_mdev('0000:84:00.0', 'nvidia-222', mdev)
    assert 'undefine it first' in str(e.value)
    assert host.mdev(mdev).persistent and not host.mdev(mdev).active


def test_remove_destroys_and_undefines(host, tmp_path):
    driver = driver_for(tmp_path)
    mdev = str(uuid.uuid4())
    driver.create_mdev('0000:84:00.0', 'nvidia-222', mdev)
    driver.remove_mdev(mdev)
    assert host.mdev(mdev) is None
    gpu = driver.discover().parent('0000:84:00.0')
    assert gpu.mdevs == () and gpu.type('nvidia-222').available_instances == 4
    assert driver.inactive_mdevs == ()


def test_remove_of_a_definition_not_started_undefines_it(host, tmp_path):
    mdev = str(uuid.uuid4())
    host.add_mdev('pci_0000_84_00_0', 'nvidia-222', mdev, active=False,
                  persistent=True)
    driver_for(tmp_path).remove_mdev(mdev)
    assert host.mdev(mdev) is None
    assert ('destroy', mdev) not in host.calls


def test_remove_of_a_transient_mdev_does_not_undefine(host, tmp_path):
    mdev = str(uuid.uuid4())
    host.add_mdev('pci_0000_84_00_0', 'nvidia-222', mdev)
    driver_for(tmp_path).remove_mdev(mdev)
    assert host.mdev(mdev) is None and ('undefine', mdev) not in host.calls


def test_remove_of_an_mdev_in_use_is_busy_and_keeps_it(host, tmp_path):
    driver = driver_for(tmp_path)
    mdev = str(uuid.uuid4())
    driver.create_mdev('0000:84:00.0', 'nvidia-222', mdev)
    host.in_use.add(mdev)
    with pytest.raises(exceptions.MdevBusy) as e:
        driver.remove_mdev(mdev)
    assert 'in use by a guest' in str(e.value)
    assert host.mdev(mdev).active and host.mdev(mdev).persistent


def test_remove_of_nothing_is_not_found(host, tmp_path):
    with pytest.raises(exceptions.MdevNotFound):
        driver_for(tmp_path).remove_mdev(str(uuid.uuid4()))
    with pytest.raises(exceptions.InvalidMdevRequest):
        driver_for(tmp_path).remove_mdev('../x')


# -- vendor parameters, boot id, loading --------------------------------------

def test_nvidia_vendor_params_are_written_through_sysfs(host, tmp_path):
    tree = sysfs_tree.SysfsTree(tmp_path)
    tree.add_parent('0000:84:00.0', {'nvidia-222': dict(available=4)})
    mdev = str(uuid.uuid4())
    mdev_dir = tree.add_mdev('0000:84:00.0', 'nvidia-222', mdev)
    os.makedirs(os.path.join(mdev_dir, 'nvidia'))
    tree.write(os.path.join(mdev_dir, 'nvidia'), 'vgpu_params', '')
    driver = driver_for(tmp_path)
    assert 'frame_rate_limiter' in driver.vendor_param_keys('nvidia-222')
    assert driver.vendor_param_keys('mtty-1') == frozenset()
    driver.set_vendor_params(mdev, 'nvidia-222', {'frame_rate_limiter': 0})
    with open(os.path.join(mdev_dir, 'nvidia', 'vgpu_params')) as f:
        assert f.read() == 'frame_rate_limiter=0'
    with pytest.raises(exceptions.InvalidMdevRequest):
        driver.set_vendor_params(mdev, 'nvidia-222', {'rm -rf': 1})


def test_boot_id_is_the_hosts(host, tmp_path):
    boot_id = tmp_path / 'boot_id'
    boot_id.write_text('5f0c8bd4-2f0e-4f4a-9f39-1b0a1c2d3e4f\n')
    driver = driver_for(tmp_path, sysfs__boot_id_file=str(boot_id))
    assert driver.boot_id() == '5f0c8bd4-2f0e-4f4a-9f39-1b0a1c2d3e4f'


def test_loaded_by_name_through_stevedore(host, tmp_path):
    conf = make_conf(driver='libvirt', sysfs__root=str(tmp_path))
    driver = drivers.load_driver('libvirt', conf)
    assert isinstance(driver, lv_driver.LibvirtDriver)
    assert [p.name for p in driver.discover().parents] == [
        '0000:84:00.0', '0000:85:00.0']


def test_without_libvirt_python_one_line_names_the_package(monkeypatch,
                                                           tmp_path):
    # None in sys.modules is what the import system reads as "not
    # installed".
    monkeypatch.setitem(sys.modules, 'libvirt', None)
    conf = make_conf(driver='libvirt', sysfs__root=str(tmp_path))
    with pytest.raises(exceptions.ConfigError) as e:
        drivers.load_driver('libvirt', conf)
    text = str(e.value)
    assert 'libvirt-python' in text and '[DEFAULT] driver' in text
    assert '\n' not in text


def test_errno_mapping_covers_every_typed_error():
    """Each errno the kernel gives create (doc/source/reference/
    kernel-mdev.rst) comes back as its class through mdevctl's text."""
    for number, cls in ((errno.EINVAL, exceptions.InvalidMdevRequest),
                        (errno.EEXIST, exceptions.MdevExists),
                        (errno.ENOSPC, exceptions.NoCapacity),
                        (errno.EUSERS, exceptions.TooManyInstances),
                        (errno.ENODEV, exceptions.ParentGone),
                        (errno.EAGAIN, exceptions.MdevBusy)):
        err = FakeLibvirtError(
            'internal error: Unable to start mediated device: Error: x\n\n'
            'Caused by:\n    %s (os error %d)'
            % (os.strerror(number), number), 1)
        got = lv_driver.mdev_error(FakeLibvirt(None), err, 'create', 'x')
        assert type(got) is cls
