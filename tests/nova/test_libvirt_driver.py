"""The project's libvirt driver against Nova's fakelibvirt.

nova 34.0.0's fakelibvirt (nova/tests/fixtures/libvirt.py) cannot carry
this driver alone. Missing, exactly:

- ``VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES`` (the constant) and its
  handling in ``Connection.listAllDevices``, which returns PCI, net and
  vDPA devices only (``CAP_MDEV`` too is defined but not listed);
- ``nodeDeviceCreateXML`` / ``nodeDeviceDefineXML`` are no-ops returning
  None;
- ``NodeDevice`` has no ``create``, ``destroy``, ``undefine``,
  ``setAutostart``, ``autostart``, ``isActive``, ``isPersistent``;
- ``Connection`` has no ``isAlive``, and the module no ``open`` (the
  driver uses ``openAuth``, which it has);
- ``availableInstances`` is fixed (16 for nvidia-11) whatever exists.

tests/nova/fakemdev.py (the Nova tier's extension of fakelibvirt) adds the
node-device calls, the active/inactive listing of mdevs and capacity that
follows the project's simulated GPU specs. This module adds the rest for
this driver, in the test tier: the ``mdev_types`` listing, ``isAlive`` and
a ``libvirt`` module that is fakelibvirt plus that constant, installed in
``sys.modules`` for the test (the driver imports ``libvirt`` when it is
loaded).

Run in Nova's virtualenv (no pytest there)::

    PYTHONPATH=. .cache/nova-venv/bin/python -m testtools.run \
        tests.nova.test_libvirt_driver
"""
import errno
import sys
import types
import uuid

import fixtures
from oslo_config import cfg
import testtools

from nova.tests.fixtures import libvirt as fakelibvirt

from tests.nova import fakemdev
from vgpu_placement import conf as conf_mod
from vgpu_placement.drivers.mdev import libvirt as lv_driver
from vgpu_placement.drivers.simulated import profile as sim_profile
from vgpu_placement import exceptions

# libvirt's virConnectListAllNodeDeviceFlags value (libvirt-domain...h):
# VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES = 1 << 13.
CAP_MDEV_TYPES = 1 << 13

GPU1, GPU2 = '0000:81:00.0', '0000:81:01.0'


def _gpu(address, rule, types_, pools=None):
    return sim_profile.ParentSpec(
        name=address, rule=rule, pools=pools or {}, max_instances=None,
        full_errno=errno.ENOSPC, types=tuple(types_))


def pool_gpu(address):
    """Two types sharing one pool of 4 units: nvidia-11 takes 1,
    nvidia-12 takes 2 (creating one shrinks the other)."""
    return _gpu(address, 'pool', [
        sim_profile.TypeSpec('nvidia-11', 'GRID M60-0B', '', {'fb': 1}, 0, 0),
        sim_profile.TypeSpec('nvidia-12', 'GRID M60-1B', '', {'fb': 2}, 0, 0),
    ], pools={'fb': 4})


class Connection(fakemdev.MdevConnection):
    """fakemdev's host, listing its GPUs by the mdev_types capability."""

    def isAlive(self):
        return 1

    def listAllDevices(self, flags):
        devices = super().listAllDevices(flags & ~CAP_MDEV_TYPES)
        if flags & CAP_MDEV_TYPES:
            devices.extend(fakelibvirt.NodeDevice(self, xml=gpu.XMLDesc(0))
                           for gpu in self.gpus().values())
        return devices


def libvirt_module(connection):
    """fakelibvirt as the ``libvirt`` module, with the missing constant and
    openAuth answering with ``connection``."""
    module = types.ModuleType('libvirt')
    module.__dict__.update(
        (k, v) for k, v in vars(fakelibvirt).items()
        if not k.startswith('__'))
    module.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES = CAP_MDEV_TYPES
    module.openAuth = lambda uri, auth, flags=0: connection
    return module


class LibvirtDriverTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conn = Connection('qemu:///system',
                               gpus=[pool_gpu(GPU1), pool_gpu(GPU2)])
        saved = sys.modules.get('libvirt')
        sys.modules['libvirt'] = libvirt_module(self.conn)
        self.addCleanup(self._restore, saved)
        conf = cfg.ConfigOpts()
        conf_mod.register_opts(conf)
        conf([], project='vgpu-placement', default_config_files=[],
             default_config_dirs=[])
        conf.set_override('driver', 'libvirt')
        conf.set_override('root', self.useFixture(fixtures.TempDir()).path,
                          group='sysfs')
        # Not through stevedore: with PYTHONPATH alone the project's entry
        # points are not installed (tests/unit covers loading by name).
        self.driver = lv_driver.LibvirtDriver(conf)

    @staticmethod
    def _restore(saved):
        if saved is None:
            sys.modules.pop('libvirt', None)
        else:
            sys.modules['libvirt'] = saved

    def available(self, snapshot, parent):
        return {t.id: t.available_instances
                for t in snapshot.parent(parent).types}

    def test_discovers_fakelibvirt_gpus_with_kernel_names(self):
        snap = self.driver.discover()
        self.assertEqual([GPU1, GPU2], [p.name for p in snap.parents])
        self.assertEqual({'nvidia-11': 4, 'nvidia-12': 2},
                         self.available(snap, GPU1))
        self.assertEqual((), snap.warnings)
        self.assertEqual(frozenset(), snap.unreadable)

    def test_create_rediscover_remove(self):
        mdev = str(uuid.uuid4())
        self.driver.create_mdev(GPU1, 'nvidia-12', mdev)
        fake = self.conn.mdevs[fakemdev.mdev_name(mdev, GPU1)]
        # Created, defined and autostarted, as Nova 34's _create_mdev.
        self.assertEqual((True, True, True),
                         (fake.active, fake.defined, fake.autostart_flag))
        snap = self.driver.discover()
        self.assertEqual([(mdev, 'nvidia-12', GPU1)],
                         [(m.uuid, m.type_id, m.parent)
                          for m in snap.mdevs()])
        # The other type shrank with it: one pool.
        self.assertEqual({'nvidia-11': 2, 'nvidia-12': 1},
                         self.available(snap, GPU1))
        self.driver.remove_mdev(mdev)
        self.assertEqual({}, self.conn.mdevs)
        snap = self.driver.discover()
        self.assertEqual([], snap.mdevs())
        self.assertEqual({'nvidia-11': 4, 'nvidia-12': 2},
                         self.available(snap, GPU1))

    def test_a_full_gpu_is_no_capacity(self):
        self.driver.create_mdev(GPU1, 'nvidia-12', str(uuid.uuid4()))
        self.driver.create_mdev(GPU1, 'nvidia-11', str(uuid.uuid4()))
        self.assertRaises(exceptions.NoCapacity, self.driver.create_mdev,
                          GPU1, 'nvidia-12', str(uuid.uuid4()))
        # The other GPU is untouched.
        self.driver.create_mdev(GPU2, 'nvidia-12', str(uuid.uuid4()))

    def test_mdevs_come_back_after_a_reboot_with_autostart(self):
        mdev = str(uuid.uuid4())
        self.driver.create_mdev(GPU2, 'nvidia-11', mdev)
        self.conn.reboot(autostart=True)
        self.assertEqual([(mdev, GPU2)], [
            (m.uuid, m.parent) for m in self.driver.discover().mdevs()])

    def test_a_definition_that_did_not_start_is_started_not_redefined(self):
        mdev = str(uuid.uuid4())
        self.driver.create_mdev(GPU2, 'nvidia-11', mdev)
        self.conn.reboot(autostart=False)
        snap = self.driver.discover()
        self.assertEqual([], snap.mdevs())
        self.assertEqual([(mdev, 'nvidia-11', GPU2)], [
            (m.uuid, m.type_id, m.parent)
            for m in self.driver.inactive_mdevs])
        self.driver.create_mdev(GPU2, 'nvidia-11', mdev)
        self.assertEqual([mdev], [m.uuid for m in
                                  self.driver.discover().mdevs()])
        self.assertEqual(1, len(self.conn.mdevs))

    def test_an_mdev_a_running_guest_uses_is_not_removed(self):
        mdev = str(uuid.uuid4())
        self.driver.create_mdev(GPU1, 'nvidia-11', mdev)
        self.conn.createXML(
            "<domain type='kvm'><name>guest</name>"
            "<uuid>%s</uuid><memory>1024</memory><vcpu>1</vcpu>"
            "<os><type>hvm</type></os><devices>"
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'>"
            "<source><address uuid='%s'/></source></hostdev>"
            "</devices></domain>" % (uuid.uuid4(), mdev), 0)
        self.assertRaises(exceptions.MdevError, self.driver.remove_mdev,
                          mdev)
        fake = self.conn.mdevs[fakemdev.mdev_name(mdev, GPU1)]
        self.assertEqual((True, True), (fake.active, fake.defined))

    def test_an_unknown_parent_is_gone(self):
        self.assertRaises(exceptions.ParentGone, self.driver.create_mdev,
                          '0000:82:00.0', 'nvidia-11', str(uuid.uuid4()))

    def test_remove_of_nothing_is_not_found(self):
        self.assertRaises(exceptions.MdevNotFound, self.driver.remove_mdev,
                          str(uuid.uuid4()))
