"""NVIDIA's vendor-specific VFIO layout through nova-compute: the guest gets
its VF.

Each host here has no mdev bus: one L40S-like GPU (the project's
``nvidia-l40s-vfio`` profile, equal-size mode) whose virtual functions
are a directory tree of NVIDIA's layout (tests/nvidia_vfio_tree.py; only
the kernel module's reaction to a ``current_vgpu_type`` write is faked),
read and written by the project's ``nvidia_vfio`` driver; or, in
mixed-size mode (which needs NVML's placements), the simulated driver's
``nvidia-l40s-vfio-mixed`` host. After each
operation a test checks the guest XML (an unmanaged PCI hostdev of a VF),
what that VF's ``current_vgpu_type`` holds, the ledger and Placement. The
fake host refuses to start a guest given a VF that holds no vGPU.
"""
import json
import os

import fixtures
from nova import exception
from nova.tests.functional.api import client
from nova.virt.libvirt import driver as libvirt_driver
from oslo_utils import versionutils

from tests.nova import test_driver
from tests import nvidia_vfio_tree
from vgpu_placement.drivers.simulated import profile as sim_profile
from vgpu_placement import privsep

PF = '0000:41:00.0'
VFS = ['0000:41:00.%d' % f for f in range(4, 8)]
Q4, Q8 = 'nvidia-1150', 'nvidia-1152'      # L40S-4Q, L40S-8Q


class _Patcher:
    """FakeModule.install's monkeypatch, as a fixture of the test."""

    def __init__(self, test):
        self.test = test

    def setattr(self, target, name, value):
        self.test.useFixture(fixtures.MonkeyPatch(
            '%s.%s' % (target.__name__, name), value))


class VendorVfioTestBase(test_driver.DriverTestBase):

    def setUp(self):
        super().setUp()
        # The project's privileged writes run in this process (no daemon,
        # no root), as the unit and functional tiers do.
        privsep.sysfs_pctxt.set_client_mode(False)
        self.addCleanup(privsep.sysfs_pctxt.set_client_mode, True)
        [self.spec], _ = sim_profile.load_profile(
            sim_profile.find('nvidia-l40s-vfio'))
        self.trees, self.modules = {}, {}
        # {hostname: text added to its project config}
        self.host_conf = {}

    def start_host(self, hostname, gpus=(), compute_driver=None):
        self.make_host(hostname)
        compute = self.start_vgpu_compute(hostname, (), compute_driver)
        self._watch_vfs(hostname)
        return compute

    def make_host(self, hostname):
        """The GPU's VFs as a sysfs tree, read by the nvidia_vfio driver."""
        paths = self.write_host(hostname, 'nvidia_vfio',
                                self.host_conf.get(hostname, ''))
        tree = nvidia_vfio_tree.VfioTree(paths['sysfs'])
        tree.add_gpu(PF, VFS, nvidia_vfio_tree.HEADER)
        module = nvidia_vfio_tree.FakeModule(tree, self.spec, VFS)
        module.install(_Patcher(self))
        self.trees[hostname], self.modules[hostname] = tree, module

    def _watch_vfs(self, hostname):
        self.connection(hostname).vgpu_on = lambda vf: int(
            self.trees[hostname].read(vf, 'current_vgpu_type'))

    def restart_compute(self, hostname):
        compute = super().restart_compute(hostname)
        self._watch_vfs(hostname)
        return compute

    def reboot_host(self, hostname, **kwargs):
        """vGPUs do not survive a reboot: every VF's current_vgpu_type
        reads 0 again (and the boot id changes)."""
        module = self.modules[hostname]
        module.vgpus.clear()
        for vf in VFS:
            module.tree.write(vf, 'current_vgpu_type', '0\n')
        module.refresh()
        return super().reboot_host(hostname, **kwargs)

    # -- what a test reads --------------------------------------------------
    def vf_types(self, hostname):
        """{VF: the type number it holds} for the VFs holding one."""
        types = {vf: int(self.trees[hostname].read(vf, 'current_vgpu_type'))
                 for vf in VFS}
        return {vf: n for vf, n in types.items() if n}

    def guest_vfs(self, hostname, server_id):
        conn = self.connection(hostname)
        try:
            dom = conn.lookupByUUIDString(server_id)
        except Exception:
            return []
        return conn.guest_vfs(dom)

    def assert_server_vf(self, hostname, server, type_id, only_here=True):
        """The server's guest has one VF, holding the type, recorded in
        the ledger under the UUID derived from the server; its allocation
        is on the GPU's provider (``only_here``: on no other GPU); no mdev
        hostdev."""
        [vf] = self.guest_vfs(hostname, server['id'])
        self.assertEqual(int(type_id.split('-')[1]),
                         self.vf_types(hostname).get(vf))
        ledger = self.computes[hostname].driver.vgpu_host.ledger
        [record] = ledger.records(server['id'])
        self.assertEqual((self.expected(server['id'])[0], vf, PF, type_id),
                         (record.uuid, record.parent, record.device,
                          record.type))
        self.assertEqual([], self.guest_mdevs(hostname, server['id']))
        allocations = self.vgpu_allocations(server['id'])
        if not only_here:
            allocations = {rp: a for rp, a in allocations.items()
                           if rp == self.rp(hostname, PF)}
        self.assertEqual({self.rp(hostname, PF): self.resources(
            hostname, type_id)}, allocations)
        return vf

    def assert_nothing_left(self, hostname, server):
        """The server holds no vGPU on the host, and every VF holding a
        type there is one the ledger records (none left behind)."""
        ledger = self.computes[hostname].driver.vgpu_host.ledger
        self.assertEqual([], ledger.records(server['id']))
        self.assertEqual({r.parent for r in ledger.records()},
                         set(self.vf_types(hostname)))
        self.assertNotIn(self.rp(hostname, PF),
                         self.vgpu_allocations(server['id']))

    def assert_live_migration_refused(self, server, reason):
        """As Nova answers a failed pre-check of mdevs (its test_vgpu): 500
        NoValidHost, ``reason`` in the log; nothing moved."""
        vf = self.assert_server_vf('host1', server, Q4)
        error = self.assertRaises(
            client.OpenStackApiException, self.live_migrate, server,
            'host1', 'host2')
        self.assertEqual(500, error.response.status_code)
        self.assertIn('NoValidHost', str(error))
        self.assertIn(reason, self.stdlog.logger.output)
        server = self.api.get_server(server['id'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(vf, self.assert_server_vf('host1', server, Q4))
        self.assertEqual({}, self.vf_types('host2'))
        self.assertEqual([], self.computes['host2'].driver.vgpu_host.ledger
                         .records(server['id']))


class BootTest(VendorVfioTestBase):

    def test_boot_reboots_then_delete(self):
        self.start_host('host1')
        server = self.boot('host1', Q4)
        vf = self.assert_server_vf('host1', server, Q4)
        # The VF stays bound to the vendor's driver.
        conn = self.connection('host1')
        dom = conn.lookupByUUIDString(server['id'])
        [hostdev] = [h for h in dom._def['devices']['hostdevs']
                     if h['type'] == 'pci']
        self.assertEqual('no', hostdev['managed'])
        self._reboot_server(server, hard=False)
        self.assertEqual(vf, self.assert_server_vf('host1', server, Q4))
        self._reboot_server(server, hard=True)
        self.assertEqual(vf, self.assert_server_vf('host1', server, Q4))
        other = self.boot('host1', Q4)
        self.assertNotEqual(vf, self.assert_server_vf('host1', other, Q4))
        self._delete_server(server)
        self.assertEqual({}, self.server_allocations(server['id']))
        self.assertEqual([int(Q4.split('-')[1])],
                         list(self.vf_types('host1').values()))
        self._delete_server(other)
        self.assert_nothing_left('host1', other)

    def test_a_second_size_waits_for_the_first_to_go(self):
        """Equal-size mode: Placement closes the other sizes once one is
        there; they open again when the last vGPU of it goes."""
        self.start_host('host1')
        server = self.boot('host1', Q4)
        self.boot('host1', Q8, expected_state='ERROR')
        self._delete_server(server)
        self._run_periodics()
        other = self.boot('host1', Q8)
        self.assert_server_vf('host1', other, Q8)


class RestartTest(VendorVfioTestBase):

    def test_compute_restart_keeps_everything(self):
        self.start_host('host1')
        server = self.boot('host1', Q4)
        vf = self.assert_server_vf('host1', server, Q4)
        self.restart_compute('host1')
        self.assertEqual(vf, self.assert_server_vf('host1', server, Q4))

    def test_host_reboot_writes_the_type_back_before_the_guest_starts(self):
        self.start_host('host1')
        server = self.boot('host1', Q4)
        vf = self.assert_server_vf('host1', server, Q4)
        self.reboot_host('host1')
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(vf, self.assert_server_vf('host1', server, Q4))
        dom = self.connection('host1').lookupByUUIDString(server['id'])
        self.assertTrue(dom.isActive())


class MoveTest(VendorVfioTestBase):

    def setUp(self):
        super().setUp()
        self.start_host('host1')
        self.start_host('host2')

    def test_resize_to_another_host_then_confirm(self):
        server = self.boot('host1', Q4, host='host1')
        src_vf = self.assert_server_vf('host1', server, Q4)
        server = self._resize_server(server, self.flavor('host1', Q8))
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assert_server_vf('host2', server, Q8)
        # The source keeps its vGPU until the resize is confirmed.
        self.assertEqual({src_vf: int(Q4.split('-')[1])},
                         self.vf_types('host1'))
        self._confirm_resize(server)
        self.assert_nothing_left('host1', server)
        self.assert_server_vf('host2', server, Q8)

    def test_cold_migrate_then_revert(self):
        server = self.boot('host1', Q4, host='host1')
        src_vf = self.assert_server_vf('host1', server, Q4)
        server = self._migrate_server(server)
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assert_server_vf('host2', server, Q4)
        server = self._revert_resize(server)
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assert_nothing_left('host2', server)
        self.assertEqual(src_vf, self.assert_server_vf('host1', server, Q4))

    def test_live_migration_is_refused_where_the_type_is_not_migratable(
            self):
        server = self.boot('host1', Q4, host='host1')
        self.assert_live_migration_refused(server, (
            'the vGPUs of %s are virtual functions (NVIDIA vendor-specific '
            'VFIO) of type %s, not marked live_migratable in the source '
            'host' % (server['id'], Q4)))

    def test_shelve_offload_then_unshelve(self):
        server = self.boot('host1', Q4, host='host1')
        self.assert_server_vf('host1', server, Q4)
        self._shelve_server(server)
        self._wait_for_server_parameter(server, {
            'status': 'SHELVED_OFFLOADED', 'OS-EXT-SRV-ATTR:host': None})
        self.assert_nothing_left('host1', server)
        self.assertEqual({}, self.server_allocations(server['id']))
        server = self._unshelve_server(server)
        self.assert_server_vf(server['OS-EXT-SRV-ATTR:host'], server, Q4)

    def test_evacuate(self):
        server = self.boot('host1', Q4, host='host1')
        self.assert_server_vf('host1', server, Q4)
        service = self.admin_api.get_services(
            host='host1', binary='nova-compute')[0]
        self.computes['host1'].stop()
        self.admin_api.put_service(service['id'], {'forced_down': 'true'})
        server = self._evacuate_server(server, expected_host='host2')
        # Nova keeps the allocations on the old host, down, until it
        # cleans up there.
        self.assert_server_vf('host2', server, Q4, only_here=False)
        self.restart_compute('host1')
        self.admin_api.put_service(service['id'], {'forced_down': 'false'})
        # Its cleanup of the evacuated server frees the VF.
        self.assert_nothing_left('host1', server)
        self.assert_server_vf('host2', server, Q4)


LIVE_MIGRATABLE = '\n[mdev_%s]\nlive_migratable = true\n' % Q4


class LiveMigrationTest(VendorVfioTestBase):
    """Both hosts mark the type live_migratable and run libvirt and QEMU
    new enough for VFIO variant drivers' migration (Nova's
    MIN_VFIO_PCI_VARIANT_*)."""

    FAKE_LIBVIRT_VERSION = versionutils.convert_version_to_int(
        libvirt_driver.MIN_VFIO_PCI_VARIANT_LIBVIRT_VERSION)
    FAKE_QEMU_VERSION = versionutils.convert_version_to_int(
        libvirt_driver.MIN_VFIO_PCI_VARIANT_QEMU_VERSION)

    def setUp(self):
        super().setUp()
        self.host_conf = {'host1': LIVE_MIGRATABLE,
                          'host2': LIVE_MIGRATABLE}

    def start_both(self):
        self.start_host('host1')
        self.start_host('host2')
        return self.boot('host1', Q4, host='host1')

    def test_live_migrate_onto_a_vf_of_the_destination(self):
        server = self.start_both()
        self.assert_server_vf('host1', server, Q4)
        other = self.boot('host2', Q4, host='host2')
        taken = self.assert_server_vf('host2', other, Q4)
        server = self.live_migrate(server, 'host1', 'host2')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        # The guest on host2 runs on host2's own VF (one the other server
        # does not hold), which holds the type: Nova's XML update gave it
        # the VF host2 made before the migration started.
        vf = self.assert_server_vf('host2', server, Q4)
        self.assertNotEqual(taken, vf)
        self.assert_nothing_left('host1', server)
        self.assertEqual({}, self.vf_types('host1'))
        self.assertEqual(taken, self.assert_server_vf('host2', other, Q4))

    def test_failed_live_migration_leaves_both_hosts_as_they_were(self):
        server = self.start_both()
        src_vf = self.assert_server_vf('host1', server, Q4)
        allocations = self.server_allocations(server['id'])
        server, dest_vfs = self.failed_live_migration(
            server, 'host1', 'host2', lambda: self.vf_types('host2'))
        # The destination's VF held the type when the migration began.
        self.assertEqual([int(Q4.split('-')[1])], list(dest_vfs.values()))
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(src_vf, self.assert_server_vf('host1', server, Q4))
        self.assertEqual(allocations, self.server_allocations(server['id']))
        self.assertEqual({}, self.vf_types('host2'))
        self.assertEqual([], self.computes['host2'].driver.vgpu_host.ledger
                         .records(server['id']))

    def test_refused_where_the_destination_does_not_mark_the_type(self):
        self.host_conf['host2'] = ''
        server = self.start_both()
        self.assert_live_migration_refused(server, (
            'of type %s, not marked live_migratable in the destination '
            'host' % Q4))

    def test_refused_where_qemu_is_too_old(self):
        self.FAKE_QEMU_VERSION -= 1
        server = self.start_both()
        self.assert_live_migration_refused(server, (
            'the vGPUs of %s are virtual functions, which the source host '
            'can live-migrate only with libvirt 10.0.0 and QEMU 8.2.2 or '
            'newer' % server['id']))


class MixedSizeTest(VendorVfioTestBase):
    """Mixed-size mode: vGPUs of different sizes on one GPU, each a VF."""

    def make_host(self, hostname):
        """The simulated driver's mixed-size L40S-like host."""
        self.write_host(hostname, 'simulated', '\n[simulated]\n'
                        'profile = nvidia-l40s-vfio-mixed\n')

    def vf_types(self, hostname):
        """{VF: type number} as the simulated host's state holds them."""
        path = os.path.join(self._paths(hostname)['state'],
                            'simulated-host.json')
        with open(path) as f:
            return {m['parent']: int(m['type'].split('-')[1])
                    for m in json.load(f)['mdevs']}

    def _watch_vfs(self, hostname):
        self.connection(hostname).vgpu_on = lambda vf: self.vf_types(
            hostname).get(vf, 0)

    def reboot_host(self, hostname, **kwargs):
        self.computes[hostname].driver.vgpu_host.driver.reboot()
        return test_driver.DriverTestBase.reboot_host(
            self, hostname, **kwargs)

    def test_two_sizes_share_the_gpu_then_a_host_reboot(self):
        self.start_host('host1')
        small = self.boot('host1', Q4)
        large = self.boot('host1', Q8)
        vfs = {self.assert_server_vf('host1', small, Q4),
               self.assert_server_vf('host1', large, Q8)}
        self.assertEqual(2, len(vfs))
        self._reboot_server(large, hard=True)
        self.assert_server_vf('host1', large, Q8)
        self.reboot_host('host1')
        for server, type_id in ((small, Q4), (large, Q8)):
            server = self._wait_for_state_change(server, 'ACTIVE')
            self.assert_server_vf('host1', server, type_id)
        self._delete_server(small)
        self.assert_nothing_left('host1', small)
        self.assert_server_vf('host1', large, Q8)


class OneOwnerTest(VendorVfioTestBase):
    """nova-compute does not start while Nova's own PCI passthrough would
    hand out a VF whose vGPUs the project makes."""

    def setUp(self):
        super().setUp()
        # Nova asks the real sysfs whether an address in device_spec is a
        # physical function: the fake GPU's is.
        self.useFixture(fixtures.MockPatch(
            'nova.pci.utils.is_physical_function',
            side_effect=lambda domain, bus, slot, function: (
                '%s:%s:%s.%s' % (domain, bus, slot, function) == PF)))

    def assert_refused(self, spec, vf):
        self.flags(device_spec=[spec], group='pci')
        error = self.assertRaises(exception.InvalidConfiguration,
                                  self.start_host, 'host1')
        message = str(error)
        self.assertIn('[pci] device_spec', message)
        self.assertIn('virtual function %s' % vf, message)
        self.assertIn('GPU %s' % PF, message)
        self.assertNotIn('\n', message)

    def test_a_vf_by_address(self):
        self.assert_refused('{"address": "%s"}' % VFS[1], VFS[1])

    def test_the_gpu_by_address_covers_its_vfs(self):
        self.assert_refused('{"address": "%s"}' % PF, VFS[0])

    def test_by_vendor_and_product(self):
        self.assert_refused('{"vendor_id": "10de", "product_id": "26b9"}',
                            VFS[0])

    def test_other_devices_are_nova_s(self):
        self.flags(device_spec=['{"vendor_id": "8086", "product_id": '
                                '"1520"}', '{"address": "0000:81:00.1"}'],
                   group='pci')
        self.start_host('host1')
        server = self.boot('host1', Q4)
        self.assert_server_vf('host1', server, Q4)
