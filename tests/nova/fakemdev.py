"""fakelibvirt extended with mdev-capable GPUs that behave like a host.

Nova's fakelibvirt (nova/tests/fixtures/libvirt.py, nova 34.0.0) prints a
fixed ``availableInstances`` (16 for nvidia-11, 8 for nvidia-12) that never
changes, turns ``nodeDeviceCreateXML``/``nodeDeviceDefineXML`` into no-ops
and starts a guest whatever mdev its XML names; Nova's own vGPU tests mock
``LibvirtDriver._create_mdev`` instead. This module keeps fakelibvirt and
adds, per fake host (one ``MdevConnection`` each):

- GPUs described by the project's simulated-host specs
  (``drivers.simulated.driver.ParentSpec``): ``availableInstances``
  of every type is what that kernel driver would print given the mdevs that
  exist, so creating one type can shrink another (pool, equal-size rules);
- the libvirt node-device API for mdevs: create (transient), define
  (persistent), start, destroy, undefine, autostart, list (active and
  inactive), lookup by name; create fails like the kernel when the parent
  is full, destroy fails while a running guest uses the mdev;
- guests that refuse to start when an mdev of their XML is not there;
- ``reboot()``: active mdevs and running guests are gone, definitions stay.

Names follow libvirt >= 7.7: ``mdev_<uuid with _>_<parent PCI address>``.
"""
import errno
import os

from lxml import etree

from nova.tests.fixtures import libvirt as fakelibvirt

from vgpu_placement.drivers.simulated import rules as sim_rules

# libvirt's virConnectListAllNodeDeviceFlags (fakelibvirt lacks the first).
LIST_ACTIVE = 1 << 30
LIST_INACTIVE = fakelibvirt.VIR_CONNECT_LIST_NODE_DEVICES_INACTIVE
LIST_CAP_MDEV = fakelibvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV
# libvirt's VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES, which fakelibvirt
# lacks (the project's libvirt driver lists parents with it; tests set the
# constant on fakelibvirt with fakelibvirt_constants()).
LIST_CAP_MDEV_TYPES = 1 << 13


def libvirt_name(address):
    """'0000:81:00.0' -> 'pci_0000_81_00_0' (libvirt's node device name)."""
    return 'pci_' + address.replace(':', '_').replace('.', '_')


def pci_address(name):
    """'pci_0000_81_00_0' -> '0000:81:00.0'."""
    domain, bus, slot, function = name[len('pci_'):].split('_')
    return '%s:%s:%s.%s' % (domain, bus, slot, function)


def mdev_name(mdev_uuid, parent_address):
    return 'mdev_%s_%s' % (mdev_uuid.replace('-', '_'),
                           parent_address.replace(':', '_').replace('.', '_'))


def _error(message, code, domain=fakelibvirt.VIR_FROM_NODEDEV):
    return fakelibvirt.make_libvirtError(
        fakelibvirt.libvirtError, message, error_code=code,
        error_domain=domain)


class FakeGPU(fakelibvirt.FakePCIDevice):
    """An mdev-capable PCI device whose types follow a ParentSpec.

    ``spec.name`` must be a PCI address ('0000:81:00.0').
    """

    def __init__(self, connection, spec, iommu_group, numa_node=0):
        domain_bus, _, devfn = spec.name.rpartition(':')
        slot, function = devfn.split('.')
        self.connection = connection
        self.spec = spec
        super().__init__(
            dev_type='MDEV_TYPES', bus=int(domain_bus.split(':')[1], 16),
            slot=int(slot, 16), function=int(function, 16),
            iommu_group=iommu_group, numa_node=numa_node)

    def generate_xml(self, skip_capability=False):
        # The mdev_types capability is built per call in XMLDesc.
        super().generate_xml(skip_capability=True)

    def available(self, type_spec):
        existing = [m.type_id for m in self.connection.active_mdevs()
                    if m.parent_address == self.spec.name]
        return sim_rules.available_instances(self.spec, existing, type_spec)

    def XMLDesc(self, flags):
        root = etree.fromstring(self.pci_device)
        pci_cap = root.find("./capability[@type='pci']")
        cap = etree.SubElement(pci_cap, 'capability', type='mdev_types')
        for t in self.spec.types:
            type_el = etree.SubElement(cap, 'type', id=t.id)
            etree.SubElement(type_el, 'name').text = t.name
            etree.SubElement(type_el, 'deviceAPI').text = 'vfio-pci'
            etree.SubElement(type_el, 'availableInstances').text = str(
                self.available(t))
        return etree.tostring(root, encoding='unicode')


class FakeMdev(fakelibvirt.NodeDevice):
    """One mdev: active (exists on the host) and/or defined (persistent)."""

    def __init__(self, connection, mdev_uuid, parent_address, type_id):
        self.uuid = mdev_uuid
        self.parent_address = parent_address
        self.type_id = type_id
        self.active = False
        self.defined = False
        self.autostart_flag = False
        super().__init__(connection, xml=self._xml())

    def _xml(self):
        return (
            "<device><name>%(name)s</name>"
            "<path>/sys/devices/pci0000:80/0000:80:01.0/%(parent)s/%(uuid)s"
            "</path><parent>%(parent_name)s</parent>"
            "<driver><name>vfio_mdev</name></driver>"
            "<capability type='mdev'><type id='%(type)s'/>"
            "<uuid>%(uuid)s</uuid><iommuGroup number='12'/></capability>"
            "</device>" % {
                'name': mdev_name(self.uuid, self.parent_address),
                'parent': self.parent_address,
                'parent_name': libvirt_name(self.parent_address),
                'uuid': self.uuid, 'type': self.type_id})

    def listCaps(self):
        return ['mdev']

    # virNodeDevice API ---------------------------------------------------
    def create(self, flags=0):
        if self.active:
            raise _error('Requested operation is not valid: Device is '
                         'already active',
                         fakelibvirt.VIR_ERR_OPERATION_INVALID)
        self._connection._start_mdev(self)
        return 0

    def destroy(self):
        if not self.active:
            raise _error('Requested operation is not valid: Device %s is not '
                         'active' % self.name(),
                         fakelibvirt.VIR_ERR_OPERATION_INVALID)
        users = self._connection.guests_using(self.uuid)
        if users:
            # The kernel refuses to remove an mdev a VM holds open (EBUSY).
            raise _error('internal error: Unable to destroy %s: %s (used by '
                         'running guest %s)' % (self.name(),
                                                os.strerror(errno.EBUSY),
                                                ', '.join(users)),
                         fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        self.active = False
        self._connection._forget_if_gone(self)
        return 0

    def undefine(self):
        if not self.defined:
            raise _error('Requested operation is not valid: Device %s is not '
                         'defined' % self.name(),
                         fakelibvirt.VIR_ERR_OPERATION_INVALID)
        self.defined = False
        self.autostart_flag = False
        self._connection._forget_if_gone(self)
        return 0

    def setAutostart(self, autostart):
        if not self.defined:
            raise _error('Requested operation is not valid: cannot set '
                         'autostart for transient device',
                         fakelibvirt.VIR_ERR_OPERATION_INVALID)
        self.autostart_flag = bool(autostart)
        return 0

    def autostart(self):
        return int(self.autostart_flag)

    def isActive(self):
        return int(self.active)

    def isPersistent(self):
        return int(self.defined)


class MdevConnection(fakelibvirt.Connection):
    """A fakelibvirt connection whose host has ``gpus`` (ParentSpecs)."""

    def __init__(self, *args, gpus=(), **kwargs):
        kwargs['pci_info'] = kwargs.get('pci_info') or \
            fakelibvirt.HostPCIDevicesInfo(num_pci=0, num_pfs=0, num_vfs=0)
        super().__init__(*args, **kwargs)
        self.mdevs = {}             # name -> FakeMdev (active or defined)
        # fakelibvirt's own view: LibvirtDriver lists names from here.
        self.mdev_info = fakelibvirt.HostMdevDevicesInfo(devices={})
        for i, spec in enumerate(gpus):
            gpu = FakeGPU(self, spec, iommu_group=40 + i, numa_node=i % 2)
            self.pci_info.devices[libvirt_name(spec.name)] = gpu

    # helpers for tests ---------------------------------------------------
    def gpus(self):
        return {name: dev for name, dev in self.pci_info.devices.items()
                if isinstance(dev, FakeGPU)}

    def active_mdevs(self):
        return [m for m in self.mdevs.values() if m.active]

    def guests_using(self, mdev_uuid):
        return [dom.name() for dom in self._running_vms.values()
                if mdev_uuid in self.guest_mdev_uuids(dom)]

    def migrated_away(self, dom):
        """A live migration of ``dom`` completed: QEMU on this (source)
        host exits, so the domain no longer runs and holds no mdev.
        fakelibvirt's migration leaves it running; no lifecycle event
        (libvirt sends none Nova acts on while it migrates)."""
        dom._state = fakelibvirt.VIR_DOMAIN_SHUTOFF
        dom._id = -1
        for key, running in list(self._running_vms.items()):
            if running is dom:
                del self._running_vms[key]

    @staticmethod
    def guest_mdev_uuids(dom):
        return [h['address_uuid'] for h in dom._def['devices']['hostdevs']
                if h['type'] == 'mdev']

    def reboot(self, autostart=False, definitions=True):
        """The host reboots: running guests stop, active mdevs vanish.

        Definitions (libvirt/mdevctl config on disk) stay; with
        ``autostart=True`` the autostart ones come back, as mdevctl starts
        them at boot. ``definitions=False``: they are lost too (a host
        reinstalled, mdevctl's config wiped).
        """
        for dom in list(self._vms.values()):
            # No lifecycle event: the compute service that would get it is
            # down while the host reboots.
            dom._state = fakelibvirt.VIR_DOMAIN_SHUTOFF
            dom._id = -1
            if dom._transient:
                del self._vms[dom.name()]
        self._running_vms.clear()
        for mdev in list(self.mdevs.values()):
            mdev.active = False
            if not definitions:
                mdev.defined = mdev.autostart_flag = False
            self._forget_if_gone(mdev)
        if autostart:
            for mdev in list(self.mdevs.values()):
                if mdev.autostart_flag:
                    self._start_mdev(mdev)

    # internals -----------------------------------------------------------
    def _parse_mdev_xml(self, xml):
        try:
            root = etree.fromstring(xml)
        except etree.XMLSyntaxError as e:
            raise _error('XML error: %s' % e, fakelibvirt.VIR_ERR_XML_DETAIL)
        parent = root.findtext('parent')
        type_el = root.find("./capability[@type='mdev']/type")
        mdev_uuid = root.findtext("./capability[@type='mdev']/uuid")
        gpu = self.pci_info.devices.get(parent)
        if not isinstance(gpu, FakeGPU):
            raise _error("device not found: could not find parent device "
                         "'%s'" % parent, fakelibvirt.VIR_ERR_NO_NODE_DEVICE)
        if type_el is None or gpu.spec.type(type_el.get('id')) is None:
            raise _error("internal error: type '%s' is not supported by %s"
                         % (None if type_el is None else type_el.get('id'),
                            parent), fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        if not mdev_uuid:
            raise _error('XML error: mdev without uuid',
                         fakelibvirt.VIR_ERR_XML_DETAIL)
        name = mdev_name(mdev_uuid, gpu.spec.name)
        mdev = self.mdevs.get(name)
        if mdev is None:
            mdev = FakeMdev(self, mdev_uuid, gpu.spec.name, type_el.get('id'))
        return mdev

    def _start_mdev(self, mdev):
        gpu = self.pci_info.devices[libvirt_name(mdev.parent_address)]
        if any(m.uuid == mdev.uuid for m in self.active_mdevs()):
            raise _error('internal error: Unable to start mediated device '
                         '%s: %s' % (mdev.name(), os.strerror(errno.EEXIST)),
                         fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        existing = [m.type_id for m in self.active_mdevs()
                    if m.parent_address == mdev.parent_address]
        refused = sim_rules.refuse_create(
            gpu.spec, existing, gpu.spec.type(mdev.type_id))
        if refused:
            # What mdevctl/libvirt print when the kernel's create fails.
            raise _error('internal error: Unable to start mediated device '
                         '%s: %s' % (mdev.name(), os.strerror(refused)),
                         fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        mdev.active = True
        self.mdevs[mdev.name()] = mdev
        self.mdev_info.devices[mdev.name()] = mdev

    def _forget_if_gone(self, mdev):
        if not mdev.active:
            self.mdev_info.devices.pop(mdev.name(), None)
        if not mdev.active and not mdev.defined:
            self.mdevs.pop(mdev.name(), None)

    # ``vgpu_on(address)``: what the vendor-specific VFIO host's VF holds
    # (its current_vgpu_type, 0 for none), set by a test with such a host;
    # None: no such VFs here.
    vgpu_on = None

    @staticmethod
    def guest_vfs(dom):
        """PCI addresses of the unmanaged PCI hostdevs of a guest (the
        VFs a vendor-specific VFIO host gives it)."""
        return ['%04x:%02x:%02x.%x' % tuple(int(h[k], 16) for k in (
            'domain', 'bus', 'slot', 'function'))
            for h in dom._def['devices']['hostdevs']
            if h['type'] == 'pci' and h['managed'] == 'no']

    def _check_guest_mdevs(self, xml_or_dom):
        dom = xml_or_dom
        if self.vgpu_on is not None:
            # The project's check, not a measured libvirt message: a guest
            # must never be given a VF that holds no vGPU (its type is
            # written first; reference: nvidia-vgpu.rst, creating).
            empty = [vf for vf in self.guest_vfs(dom) if not
                     self.vgpu_on(vf)]
            if empty:
                raise _error('internal error: virtual function %s holds no '
                             'vGPU' % empty[0],
                             fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        uuids = self.guest_mdev_uuids(dom)
        active = {m.uuid for m in self.active_mdevs()}
        missing = [u for u in uuids if u not in active]
        if missing:
            # What libvirt says (quoted in Nova 34's driver.py,
            # _start_inactive_mediated_devices).
            raise _error("device not found: mediated device '%s' not found"
                         % missing[0], fakelibvirt.VIR_ERR_DEVICE_MISSING,
                         fakelibvirt.VIR_FROM_QEMU)

    # virConnect API ------------------------------------------------------
    def nodeDeviceCreateXML(self, xml, flags=0):
        mdev = self._parse_mdev_xml(xml)
        self._start_mdev(mdev)
        return mdev

    def nodeDeviceDefineXML(self, xml, flags=0):
        mdev = self._parse_mdev_xml(xml)
        mdev.defined = True
        self.mdevs[mdev.name()] = mdev
        return mdev

    def nodeDeviceLookupByName(self, name):
        if isinstance(name, str) and name.startswith('mdev'):
            if name in self.mdevs:
                return self.mdevs[name]
            raise _error('Node device not found: no node device with '
                         'matching name %s' % name,
                         fakelibvirt.VIR_ERR_NO_NODE_DEVICE)
        return super().nodeDeviceLookupByName(name)

    def listDevices(self, cap, flags=0):
        if cap == 'mdev':
            return [m.name() for m in self.active_mdevs()]
        return super().listDevices(cap, flags)

    def isAlive(self):
        return 1

    def listAllDevices(self, flags):
        devices = super().listAllDevices(flags & ~LIST_CAP_MDEV_TYPES)
        if flags & LIST_CAP_MDEV_TYPES:
            devices.extend(fakelibvirt.NodeDevice(self, xml=gpu.XMLDesc(0))
                           for gpu in self.gpus().values())
        if flags & LIST_CAP_MDEV:
            want_active = bool(flags & LIST_ACTIVE)
            want_inactive = bool(flags & LIST_INACTIVE)
            if not (want_active or want_inactive):
                want_active = want_inactive = True
            devices.extend(m for m in self.mdevs.values()
                           if (m.active and want_active) or
                           (not m.active and want_inactive))
        return devices

    def createXML(self, xml, flags):
        # Parse first: fakelibvirt marks the domain running in __init__.
        probe = fakelibvirt.Domain(self, xml, running=False, transient=True)
        self._check_guest_mdevs(probe)
        return super().createXML(xml, flags)

    def _mark_running(self, dom):
        if hasattr(dom, '_def'):
            self._check_guest_mdevs(dom)
        super()._mark_running(dom)
