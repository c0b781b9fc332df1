"""Base class for the Nova tier: Nova's functional stack with vGPU hosts.

Runs only in Nova's virtualenv (``tools/nova-tier/run-tests``). Built on
nova 34.0.0's ``nova.tests.functional.libvirt.base.ServersTestBase`` (the
API -> conductor -> scheduler -> compute path, a real Placement through
``PlacementFixture``, fakelibvirt) and the setup of its
``test_vgpu.VGPUTestBase``, with two differences: Nova's ``_create_mdev`` is
NOT mocked (mdevs go through the libvirt node-device API of
``tests.nova.fakemdev.MdevConnection``, one per host), and each host's GPUs
are the project's simulated-host specs, so capacity shared between types
is what the host reports.

A test::

    class T(base.NovaVGPUTestCase):
        def test_x(self):
            self.enable_nova_mdev_types({'nvidia-11': ['0000:81:00.0']})
            self.start_vgpu_compute('host1', [
                base.independent_gpu('0000:81:00.0', {'nvidia-11': 4})])
            server = self.boot_vgpu_server({'resources:VGPU': '1'})
            self.host_mdevs('host1')              # on the fake host
            self.server_allocations(server['id']) # in Placement

``COMPUTE_DRIVER`` (or ``start_vgpu_compute(compute_driver=...)``) names
the class nova-compute loads, as ``[DEFAULT] compute_driver`` would.
"""
import os
import sys
import warnings

import fixtures
from oslo_utils import uuidutils
from sqlalchemy import exc as sqla_exc

import nova.conf
from nova.tests.functional.libvirt import base as libvirt_base
from nova.tests.functional.libvirt import test_vgpu

from tests.nova import fakemdev
from vgpu_placement.drivers.simulated import profile as sim_profile

CONF = nova.conf.CONF
STOCK_DRIVER = 'libvirt.LibvirtDriver'
IMAGE = '155d900f-4e14-4e4c-a73d-069cbf4541e6'  # in Nova's GlanceFixture
# The wheel installs etc/nova under the virtualenv, not beside the package
# where Nova's ConfFixture looks (its source tree layout).
API_PASTE = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')


# -- GPU specs (drivers.simulated.driver.ParentSpec) -------------------------

def _type(type_id, cost=None, max=0, size=0, name=None):
    return sim_profile.TypeSpec(id=type_id, name=name or type_id,
                                description='', cost=cost or {}, max=max,
                                size=size)


def _gpu(address, rule, types, pools=None):
    return sim_profile.ParentSpec(
        name=address, rule=rule, pools=pools or {}, max_instances=None,
        full_errno=28, types=tuple(sorted(types, key=lambda t: t.id)))


def independent_gpu(address, type_max):
    """Each type has its own maximum: {'nvidia-11': 16}."""
    return _gpu(address, 'independent',
                [_type(t, max=m) for t, m in type_max.items()])


def pool_gpu(address, pools, type_cost):
    """Types share pools: pools {'fb': 16}, type_cost {'a': {'fb': 1}}."""
    return _gpu(address, 'pool',
                [_type(t, cost=c) for t, c in type_cost.items()], pools)


def exclusive_gpu(address, type_size_max, names=None):
    """NVIDIA's equal-size rule: {'nvidia-231': (2048, 8)}; once one mdev
    exists only types of its size stay creatable. ``names``: {type: name
    as libvirt shows it}, e.g. 'GRID T4-2Q' (default: the type id)."""
    return _gpu(address, 'exclusive',
                [_type(t, max=m, size=s, name=(names or {}).get(t))
                 for t, (s, m) in type_size_max.items()])


def gpus_from_profile(path):
    """The PCI-addressed parents of a project host profile (YAML)."""
    parents, _ = sim_profile.load_profile(path)
    return [p for p in parents if p.rule != 'sriov' and ':' in p.name]


class NovaVGPUTestCase(libvirt_base.LibvirtMigrationMixin,
                       libvirt_base.ServersTestBase):
    """Nova's functional libvirt test base with vGPU hosts."""

    microversion = 'latest'
    ADMIN_API = True
    COMPUTE_DRIVER = STOCK_DRIVER
    # libvirt/QEMU new enough for mdev live migration (Nova 34's minimums).
    FAKE_LIBVIRT_VERSION = (
        test_vgpu.VGPULiveMigrationTests.FAKE_LIBVIRT_VERSION)
    FAKE_QEMU_VERSION = test_vgpu.VGPULiveMigrationTests.FAKE_QEMU_VERSION

    def setUp(self):
        self._gpus_for_next_host = ()
        self._host_drivers = {}
        super().setUp()
        # Nova's WarningsFixture makes SQLAlchemy deprecations raised from
        # nova errors; benches/nova-requirements.txt pins SQLAlchemy 2.1.9
        # (Nova's CI tests 2.0.x) where noload(), used by the live-migration
        # API path, is deprecated. Ignore that one warning (the fixture
        # restores the filters).
        warnings.filterwarnings(
            'ignore', message=r'The noload\(\) option is deprecated',
            category=sqla_exc.SADeprecationWarning)
        # As test_vgpu.VGPUTestBase, minus its _create_mdev mock: resize
        # reads disk info and renames the instance directory.
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.LibvirtDriver._get_instance_disk_info',
            return_value=[]))
        self.useFixture(fixtures.MockPatch('os.rename'))
        self.policy.set_rules({
            'os_compute_api:os-instance-actions:events': 'rule:admin_or_owner'
        }, overwrite=False)

    def _setup_services(self):
        # api_paste_config must be set before the API fixture loads it.
        self.flags(api_paste_config=API_PASTE, group='wsgi')
        super()._setup_services()

    # -- hosts --------------------------------------------------------------

    def _get_connection(self, host_info=None, pci_info=None, mdev_info=None,
                        vdpa_info=None, libvirt_version=None,
                        qemu_version=None, hostname=None):
        if not host_info:
            host_info = libvirt_base.fakelibvirt.HostInfo(
                cpu_nodes=2, cpu_sockets=1, cpu_cores=2, cpu_threads=2)
        return fakemdev.MdevConnection(
            'qemu:///system',
            version=libvirt_version or self.FAKE_LIBVIRT_VERSION,
            hv_version=qemu_version or self.FAKE_QEMU_VERSION,
            host_info=host_info, pci_info=pci_info, vdpa_info=vdpa_info,
            hostname=hostname, gpus=self._gpus_for_next_host)

    def enable_nova_mdev_types(self, type_addresses, mdev_class=None):
        """Stock Nova's config: [devices] enabled_mdev_types and
        [mdev_<type>] device_addresses ({type: [PCI addresses]})."""
        self.flags(enabled_mdev_types=list(type_addresses), group='devices')
        nova.conf.devices.register_dynamic_opts(CONF)
        for type_id, addresses in type_addresses.items():
            self.flags(device_addresses=addresses, group='mdev_%s' % type_id)
            if mdev_class:
                self.flags(mdev_class=mdev_class, group='mdev_%s' % type_id)

    def start_vgpu_compute(self, hostname, gpus, compute_driver=None):
        """Start nova-compute on a new fake host with ``gpus`` (ParentSpecs
        named by PCI address); returns the compute service."""
        driver = compute_driver or self.COMPUTE_DRIVER
        self._host_drivers[hostname] = driver
        self.flags(compute_driver=driver)
        self._gpus_for_next_host = tuple(gpus)
        try:
            self.start_compute(hostname=hostname)
        finally:
            self._gpus_for_next_host = ()
        return self.computes[hostname]

    def connection(self, hostname):
        return self.computes[hostname].driver._host.get_connection()

    def restart_compute(self, hostname):
        """Stop nova-compute and start a new one (new ComputeManager and
        driver, init_host runs) on the same fake host, state kept."""
        self.flags(compute_driver=self._host_drivers[hostname])
        return self.restart_compute_service(hostname)

    def reboot_host(self, hostname, autostart=False, resume_guests=True):
        """The host reboots: running guests stop and every mdev is gone
        (with autostart=True the defined autostart ones come back, as
        mdevctl does), then nova-compute starts again. resume_guests sets
        [DEFAULT] resume_guests_state_on_host_boot, so init_host restarts
        the guests that were running."""
        compute = self.computes[hostname]
        compute.stop()
        self.connection(hostname).reboot(autostart=autostart)
        self.flags(resume_guests_state_on_host_boot=resume_guests)
        return self.restart_compute(hostname)

    # -- servers ------------------------------------------------------------

    def boot_vgpu_server(self, extra_specs, host=None, expected_state='ACTIVE',
                         **flavor_args):
        """A new flavor with ``extra_specs`` and a server booted with it."""
        flavor = self._create_flavor(extra_spec=extra_specs, **flavor_args)
        return self._create_server(
            image_uuid=IMAGE, flavor_id=flavor, networks='none', host=host,
            expected_state=expected_state)

    def _migrate_stub(self, domain, destination, params, flags):
        super()._migrate_stub(domain, destination, params, flags)
        conn = self.src.driver._host.get_connection()
        conn.migrated_away(conn.lookupByUUIDString(self.server['id']))

    def live_migrate(self, server, src, dest, expected='completed'):
        """Live migrate with LibvirtMigrationMixin's stub: the guest XML Nova
        sends is started on ``dest``'s fake host (createXML), so a missing
        mdev there fails the migration."""
        self.server, self.src, self.dest = (
            server, self.computes[src], self.computes[dest])
        # As Nova 34's _live_migrate(host=...); older releases' helper
        # takes no host.
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': dest, 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, [expected])
        return self._wait_for_state_change(server, 'ACTIVE')

    def failed_live_migration(self, server, src, dest, look):
        """A live migration whose libvirt job fails once begun: (server
        after it, what ``look()`` read when the job began)."""
        seen = []

        def fail(domain, destination, params, flags):
            seen.append(look())
            conn = self.src.driver._host.get_connection()
            conn.lookupByUUIDString(self.server['id']).fail_job()

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.migrateToURI3', fail))
        server = self.live_migrate(server, src, dest, expected='failed')
        return server, seen[0]

    # -- what a test reads --------------------------------------------------

    def host_mdevs(self, hostname):
        """Active mdevs on the fake host: {uuid: {'parent': PCI address,
        'type': type id, 'defined': bool, 'autostart': bool}}."""
        return {m.uuid: {'parent': m.parent_address, 'type': m.type_id,
                         'defined': m.defined, 'autostart': m.autostart_flag}
                for m in self.connection(hostname).active_mdevs()}

    def defined_mdevs(self, hostname):
        """Persistent mdev definitions, active or not: {uuid: parent}."""
        return {m.uuid: m.parent_address
                for m in self.connection(hostname).mdevs.values()
                if m.defined}

    def guest_mdevs(self, hostname, server_id):
        """mdev UUIDs in the guest XML of a server on the fake host ([] if
        no domain)."""
        conn = self.connection(hostname)
        try:
            dom = conn.lookupByUUIDString(server_id)
        except libvirt_base.fakelibvirt.libvirtError:
            return []
        return conn.guest_mdev_uuids(dom)

    def available_instances(self, hostname, address):
        """{type: availableInstances} the fake GPU prints now."""
        gpu = self.connection(hostname).gpus()[fakemdev.libvirt_name(address)]
        return {t.id: gpu.available(t) for t in gpu.spec.types}

    def server_allocations(self, server_id):
        """Placement's allocations of a consumer: {rp uuid: {rc: n}}."""
        allocs = self._get_allocations_by_server_uuid(server_id)
        return {rp: a['resources'] for rp, a in allocs.items()}

    def provider_names(self, hostname):
        """{rp uuid: name} for the host's provider tree."""
        root = self.compute_rp_uuids[hostname]
        return {rp['uuid']: rp['name']
                for rp in self._get_all_rps_in_a_tree(root)}

    def provider_inventories(self, hostname):
        """{rp name: {rc: inventory record}} for the host's tree."""
        return {name: self._get_provider_inventory(rp)
                for rp, name in self.provider_names(hostname).items()}

    def provider_usages(self, hostname):
        """{rp name: {rc: used}} for the host's tree."""
        return {name: self._get_provider_usages(rp)
                for rp, name in self.provider_names(hostname).items()}

    @staticmethod
    def new_uuid():
        return uuidutils.generate_uuid()
