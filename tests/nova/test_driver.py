"""The project's compute driver in nova-compute, through Nova's whole stack.

Each test runs servers through Nova's API, scheduler, conductor and
nova-compute with ``[DEFAULT] compute_driver =
vgpu_placement.VgpuPlacementLibvirtDriver`` and a project config of its
own per host (``driver = libvirt`` on Nova's fake libvirt connection), and
checks after each operation the mdevs on the fake host(s) and the
allocations in Placement. Flavors are what ``vgpu-placement flavor-spec``
prints (vgpu_placement.placement.flavor).

GPUs: one pool of 4 units per GPU; acme-1 takes 1 unit, acme-2 takes 2
(the capacity is inferred from the empty GPU: acme-1 shows 4, acme-2
shows 2), so creating one type shrinks the other.
"""
import functools
import os
import sys
import types
from unittest import mock

import fixtures
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.scheduler.client import report
from nova import version
from nova.virt.libvirt import driver as libvirt_driver
from oslo_utils import uuidutils

from tests.nova import base
from tests.nova import fakemdev
from vgpu_placement.host import facts as host_facts
import vgpu_placement.nova
from vgpu_placement.placement import flavor as flavor_mod
from vgpu_placement.placement import provider_tree

GPU1, GPU2 = '0000:81:00.0', '0000:81:01.0'


def acme_gpu(address):
    return base.pool_gpu(address, {'fb': 4},
                         {'acme-1': {'fb': 1}, 'acme-2': {'fb': 2}})


CONFIG = """[DEFAULT]
driver = %(driver)s
state_path = %(state)s

[sysfs]
root = %(sysfs)s
boot_id_file = %(boot_id)s
"""


class DriverTestBase(base.NovaVGPUTestCase):

    COMPUTE_DRIVER = vgpu_placement.nova.COMPUTE_DRIVER
    FLAVOR = {}         # _create_flavor's arguments besides extra specs

    def setUp(self):
        vgpu_placement.nova.register()
        super().setUp()
        # Fills count GPUs, not Nova's default quota of 10 servers.
        self.flags(instances=-1, cores=-1, ram=-1, group='quota')
        # fakelibvirt lacks the flag the project's libvirt driver lists
        # parents with (fakemdev.MdevConnection answers it).
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.'
            'VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES',
            fakemdev.LIST_CAP_MDEV_TYPES))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.flavors = {}

    # -- hosts ---------------------------------------------------------------
    def _paths(self, hostname):
        top = os.path.join(self.tmp, hostname)
        return {'conf': os.path.join(top, 'vgpu-placement.conf'),
                'state': os.path.join(top, 'state'),
                'sysfs': os.path.join(top, 'sys'),
                'boot_id': os.path.join(top, 'boot_id')}

    def _use_config(self, hostname):
        self.flags(config_file=self._paths(hostname)['conf'],
                   group='vgpu_placement')

    def write_host(self, hostname, driver='libvirt', more=''):
        """The host's boot id and project config (``driver``, then the
        text ``more``), used by the next nova-compute started."""
        paths = self._paths(hostname)
        os.makedirs(paths['sysfs'], exist_ok=True)
        with open(paths['boot_id'], 'w') as f:
            f.write(uuidutils.generate_uuid() + '\n')
        with open(paths['conf'], 'w') as f:
            f.write(CONFIG % dict(paths, driver=driver) + more)
        self._use_config(hostname)
        return paths

    def start_host(self, hostname, gpus, compute_driver=None):
        self.write_host(hostname)
        return self.start_vgpu_compute(hostname, gpus, compute_driver)

    def restart_compute(self, hostname):
        self._use_config(hostname)
        return super().restart_compute(hostname)

    def reboot_host(self, hostname, definitions=True, **kwargs):
        """As base.reboot_host, with a new boot id and (definitions=False)
        the mdev definitions lost too."""
        with open(self._paths(hostname)['boot_id'], 'w') as f:
            f.write(uuidutils.generate_uuid() + '\n')
        conn = self.connection(hostname)
        real = conn.reboot
        conn.reboot = lambda autostart=False: real(
            autostart=autostart, definitions=definitions)
        try:
            return super().reboot_host(hostname, **kwargs)
        finally:
            del conn.reboot

    # -- flavors -------------------------------------------------------------
    def flavor(self, hostname, type_id, count=1):
        """A flavor with the extra specs flavor-spec prints for the type
        on ``hostname``'s tree."""
        key = (type_id, count)
        if key not in self.flavors:
            tree = self.computes[hostname].driver.vgpu_host.tree
            builder = tree.builder
            desired = builder.desired_tree(builder.discover())
            specs = flavor_mod.extra_specs_for_type(
                desired, type_id, count=count)['extra_specs']
            self.flavors[key] = self._create_flavor(
                extra_spec=specs, name='%s-x%d' % (type_id, count),
                **self.FLAVOR)
        return self.flavors[key]

    def boot(self, hostname, type_id, count=1, host=None,
             expected_state='ACTIVE'):
        return self._create_server(
            image_uuid=base.IMAGE, flavor_id=self.flavor(
                hostname, type_id, count), networks='none', host=host,
            expected_state=expected_state)

    # -- what a test reads ---------------------------------------------------
    def rp(self, hostname, address):
        return self._get_provider_uuid_by_name(
            '%s_%s' % (hostname, fakemdev.libvirt_name(address)))

    def mdevs_of(self, hostname):
        """{uuid: (parent, type)} active on the fake host."""
        return {u: (m['parent'], m['type'])
                for u, m in self.host_mdevs(hostname).items()}

    def vgpu_allocations(self, server_id):
        """{rp uuid: {class: n}} of the server's allocations on GPUs."""
        gpus = {rp for h in self.computes for rp in
                self.provider_names(h) if rp != self.compute_rp_uuids[h]}
        return {rp: r for rp, r in self.server_allocations(
            server_id).items() if rp in gpus}

    def expected(self, server_id, n=1):
        return [host_facts.mdev_uuid_for(server_id, i) for i in range(n)]

    def resources(self, hostname, type_id):
        """{class: n} one vGPU of the type takes (its flavor's group)."""
        tree = self.computes[hostname].driver.vgpu_host.tree
        desired = tree.builder.desired_tree(tree.builder.discover())
        out = flavor_mod.extra_specs_for_type(desired, type_id)
        return {k.split(':', 1)[1]: int(v)
                for k, v in out['extra_specs'].items()
                if k.startswith('resources')}

    def assert_server_vgpus(self, hostname, server, type_id, addresses):
        """The server's mdevs are on the host, in its guest XML, with the
        UUIDs derived from it, and its allocations are on those GPUs."""
        want = self.expected(server['id'], len(addresses))
        mdevs = self.mdevs_of(hostname)
        self.assertEqual(sorted(want), sorted(
            u for u in mdevs if u in want), mdevs)
        self.assertEqual(sorted(addresses), sorted(
            mdevs[u][0] for u in want))
        self.assertEqual({type_id}, {mdevs[u][1] for u in want})
        self.assertEqual(sorted(want), sorted(
            self.guest_mdevs(hostname, server['id'])))
        per_gpu = self.resources(hostname, type_id)
        self.assertEqual(
            {self.rp(hostname, a): per_gpu for a in addresses},
            self.vgpu_allocations(server['id']))


class BootDeleteTest(DriverTestBase):

    def test_one_vgpu_then_two_on_different_gpus_then_delete(self):
        self.start_host('host1', [acme_gpu(GPU1), acme_gpu(GPU2)])
        one = self.boot('host1', 'acme-2')
        (address,), = [[m[0] for m in self.mdevs_of('host1').values()]]
        self.assert_server_vgpus('host1', one, 'acme-2', [address])
        # Defined and autostarted, as Nova's own mdevs.
        self.assertEqual({(True, True)}, {
            (m['defined'], m['autostart'])
            for m in self.host_mdevs('host1').values()})

        two = self.boot('host1', 'acme-1', count=2)
        self.assert_server_vgpus('host1', two, 'acme-1', [GPU1, GPU2])
        self.assertEqual(3, len(self.mdevs_of('host1')))

        self._delete_server(one)
        self.assertEqual({}, self.server_allocations(one['id']))
        self.assertEqual(sorted(self.expected(two['id'], 2)),
                         sorted(self.mdevs_of('host1')))
        self._delete_server(two)
        self.assertEqual({}, self.mdevs_of('host1'))
        # Undefined too: nothing comes back at the next boot.
        self.assertEqual({}, self.defined_mdevs('host1'))
        self.assertEqual({}, self.server_allocations(two['id']))
        for usages in self.provider_usages('host1').values():
            self.assertEqual({}, {rc: n for rc, n in usages.items() if n})
        # The root's traits are what Nova's resource tracker sets there
        # (from Nova 34 on, OWNER_NOVA, which its scheduler requires).
        root = self.compute_rp_uuids['host1']
        traits = set(self._get_provider_traits(root))
        novas = {'COMPUTE_NODE'} | (
            {'OWNER_NOVA'} if int(version.version_string().split('.')[0])
            >= 34 else set())
        self.assertLessEqual(novas, traits)
        self.assertEqual(set(), {t for t in traits if 'VGPU' in t or
                                 t.startswith('CUSTOM_')})

    def test_reboots_keep_the_mdevs(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        server = self.boot('host1', 'acme-1')
        before = self.mdevs_of('host1')
        self._reboot_server(server, hard=False)
        self.assertEqual(before, self.mdevs_of('host1'))
        self._reboot_server(server, hard=True)
        self.assertEqual(before, self.mdevs_of('host1'))
        self.assert_server_vgpus('host1', server, 'acme-1', [GPU1])


class FillOneGPUTest(DriverTestBase):

    def _build_events(self, server):
        events = []
        for action in self.api.get_instance_actions(server['id']):
            details = self.api.get_instance_action_details(
                server['id'], action['request_id'])
            events += [e['event'] for e in details.get('events', [])]
        return events

    def test_mixed_types_fill_the_gpu_without_reschedules(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        rp = self.rp('host1', GPU1)
        # 4 units: one acme-2 (2 units) and two acme-1 (1 unit each).
        servers = [self.boot('host1', 'acme-2'), self.boot('host1', 'acme-1'),
                   self.boot('host1', 'acme-1')]
        for server, type_id in zip(servers, ('acme-2', 'acme-1', 'acme-1')):
            self.assert_server_vgpus('host1', server, type_id, [GPU1])
        self.assertEqual({'acme-1': 0, 'acme-2': 0},
                         self.available_instances('host1', GPU1))
        # Placement refuses the next one of either type: NoValidHost.
        for type_id in ('acme-1', 'acme-2'):
            failed = self.boot('host1', type_id, expected_state='ERROR')
            self.assertIn('No valid host', failed['fault']['message'])
            # Refused by the scheduler, never tried on the compute.
            self.assertNotIn('compute__do_build_and_run_instance',
                             self._build_events(failed))
            self.assertEqual({}, self.server_allocations(failed['id']))
        # Every server was built once, on its first try.
        for server in servers:
            self.assertEqual(1, self._build_events(server).count(
                'compute__do_build_and_run_instance'))
        self.assertEqual(3, len(self.mdevs_of('host1')))
        self._run_periodics()
        self.assertEqual(3, len(self.mdevs_of('host1')))
        name = 'host1_' + fakemdev.libvirt_name(GPU1)
        inventory = self.provider_inventories('host1')[name]
        usages = self._get_provider_usages(rp)
        # Nothing left to claim: no flavor of either type fits any more.
        tree = self.computes['host1'].driver.vgpu_host.tree.builder
        plan = tree.desired_tree(tree.discover()).child(name).plan
        for type_id in ('acme-1', 'acme-2'):
            self.assertEqual(0, provider_tree.grantable(
                inventory, usages, plan.request(type_id)),
                (type_id, inventory, usages))


class InStepWithNovaTest(DriverTestBase):
    """Claims are carried by Placement's accounting: no inventory write per
    build, delete or move, and room freed by Nova is offered at once
    (Nova reports before it deletes a server's allocations, and nothing
    reports again until the next periodic)."""

    # Small enough that the GPUs, not CPU, memory or disk, fill first.
    FLAVOR = {'vcpu': 1, 'memory_mb': 256, 'disk': 1, 'ephemeral': 0}

    def setUp(self):
        super().setUp()
        self.inventory_writes = []
        real = report.SchedulerReportClient.put

        def put(client, url, *args, **kwargs):
            if url.endswith('/inventories'):
                self.inventory_writes.append(url.split('/')[2])
            return real(client, url, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.scheduler.client.report.SchedulerReportClient.put', put))

    def gpu_writes(self, *hostnames):
        gpus = {self.rp(h, GPU1) for h in hostnames}
        return [rp for rp in self.inventory_writes if rp in gpus]

    def test_delete_then_refill_at_once(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        written = len(self.gpu_writes('host1'))
        servers = [self.boot('host1', 'acme-1') for _ in range(4)]
        self.assertEqual({'acme-1': 0, 'acme-2': 0},
                         self.available_instances('host1', GPU1))
        self.boot('host1', 'acme-2', expected_state='ERROR')
        for server in servers[:2]:
            self._delete_server(server)
        # No periodic in between: the two freed units take an acme-2.
        refill = self.boot('host1', 'acme-2')
        self.assert_server_vgpus('host1', refill, 'acme-2', [GPU1])
        self.assertEqual([], self.gpu_writes('host1')[written:])

    def test_confirm_and_revert_then_refill_at_once(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        self.start_host('host2', [acme_gpu(GPU1)])
        written = len(self.gpu_writes('host1', 'host2'))
        moved = self.boot('host1', 'acme-2', host='host1')
        stays = self.boot('host1', 'acme-2', host='host1')
        moved = self._migrate_server(moved)
        self.assertEqual('host2', moved['OS-EXT-SRV-ATTR:host'])
        self._confirm_resize(moved)
        # The source's two units are free as soon as the confirm is done.
        refill = self.boot('host1', 'acme-2', host='host1')
        self.assert_server_vgpus('host1', refill, 'acme-2', [GPU1])
        # A revert gives the destination's units back at once too.
        stays = self._migrate_server(stays)
        self.assertEqual('host2', stays['OS-EXT-SRV-ATTR:host'])
        self._revert_resize(stays)
        other = self.boot('host2', 'acme-2', host='host2')
        self.assert_server_vgpus('host2', other, 'acme-2', [GPU1])
        self.assertEqual([], self.gpu_writes('host1', 'host2')[written:])

    def test_restart_with_a_build_in_flight_makes_no_mdev_for_it(self):
        """The scheduler claimed for a build whose request never reached
        this host when nova-compute restarts: reconcile makes no mdev for
        it (Nova errors the build out); the servers here keep theirs."""
        self.start_host('host1', [acme_gpu(GPU1)])
        server = self.boot('host1', 'acme-1')
        lost = self.new_uuid()
        self.placement.put('/allocations/%s' % lost, {
            'allocations': {self.rp('host1', GPU1): {
                'resources': self.resources('host1', 'acme-2')}},
            'consumer_generation': None, 'project_id': 'p', 'user_id': 'u',
            'consumer_type': 'INSTANCE'}, version='1.38')
        before = self.mdevs_of('host1')
        self.restart_compute('host1')
        self.assertEqual(before, self.mdevs_of('host1'))
        self.assert_server_vgpus('host1', server, 'acme-1', [GPU1])
        # Nova gives up the claim: the room is there at once.
        self.placement.delete('/allocations/%s' % lost)
        self.assert_server_vgpus('host1', self.boot('host1', 'acme-2'),
                                 'acme-2', [GPU1])

    def multi_create(self, hostname, type_id, count):
        """One create request for ``count`` servers (Nova's multi-create):
        the conductor schedules and builds them together."""
        body = self._build_server(
            image_uuid=base.IMAGE, networks='none',
            flavor_id=self.flavor(hostname, type_id))
        body.update(min_count=count, max_count=count,
                    return_reservation_id=True)
        return self.api.post_server({'server': body})['reservation_id']

    def test_concurrent_multi_creates_fill_two_hosts(self):
        gpus = [acme_gpu(GPU1), acme_gpu(GPU2)]
        self.start_host('host1', gpus)
        self.start_host('host2', gpus)
        hosts = ('host1', 'host2')
        gpu_rps = {self.rp(h, a) for h in hosts for a in (GPU1, GPU2)}
        written = [rp for rp in self.inventory_writes if rp in gpu_rps]
        # Two multi-creates in flight at once. Nova claims each host's
        # first candidate, which it computed once for the whole request:
        # sizes that fit on any one GPU of each host whatever the order.
        reservations = [self.multi_create('host1', 'acme-2', 2),
                        self.multi_create('host1', 'acme-1', 4)]
        servers = [s for r in reservations for s in self.api.get_servers(
            search_opts={'reservation_id': r})]
        servers = [self._wait_for_state_change(s, 'ACTIVE') for s in servers]
        self.assertEqual(6, len(servers))
        # The 8 units left take exactly 8 more acme-1, then no more.
        servers += [self.boot('host1', 'acme-1') for _ in range(8)]
        self.boot('host1', 'acme-1', expected_state='ERROR')
        for server in servers:
            self.assertEqual(1, FillOneGPUTest._build_events(
                self, server).count('compute__do_build_and_run_instance'))
        self.assertEqual(14, sum(len(self.mdevs_of(h)) for h in hosts))
        self.assertEqual(written, [rp for rp in self.inventory_writes
                                   if rp in gpu_rps])


def t4_gpu(address):
    """A T4-like GPU (16 GB, equal-size rule) as libvirt shows it: types
    with NVIDIA's names and no description (under driver = libvirt the
    descriptions come from [sysfs] root, empty here): sizes and maxima
    come from the names and the board."""
    return base.exclusive_gpu(
        address, {'nvidia-231': (2048, 8), 'nvidia-232': (4096, 4)},
        names={'nvidia-231': 'GRID T4-2Q', 'nvidia-232': 'GRID T4-4Q'})


class EqualSizeTest(DriverTestBase):
    """Equal-size GPUs: what counters cannot carry (one size per GPU) is
    repaired on the host, on another GPU of the same host."""

    FLAVOR = InStepWithNovaTest.FLAVOR

    def first_candidate_gpu(self, hostname, type_id):
        """The GPU of Placement's first candidate for the type's flavor
        (nova-scheduler claims the first candidate of a host)."""
        query = 'resources1=' + ','.join('%s:%d' % kv for kv in sorted(
            self.resources(hostname, type_id).items()))
        found = self.placement.get('/allocation_candidates?%s' % query,
                                   version='1.36').body
        self.assertIn('allocation_requests', found, found)
        [gpu] = [rp for rp in found['allocation_requests'][0]['allocations']
                 if rp != self.compute_rp_uuids[hostname]]
        return {self.rp(hostname, a): a for a in (GPU1, GPU2)}[gpu]

    def test_an_operators_mdev_just_before_a_boot(self):
        self.start_host('host1', [t4_gpu(GPU1), t4_gpu(GPU2)])
        first = self.first_candidate_gpu('host1', 'nvidia-232')
        other = GPU2 if first == GPU1 else GPU1
        # An operator makes a 2Q there; no report before the boot.
        theirs = self.new_uuid()
        self.connection('host1').nodeDeviceCreateXML(
            "<device><parent>%s</parent><capability type='mdev'><type "
            "id='nvidia-231'/><uuid>%s</uuid></capability></device>"
            % (fakemdev.libvirt_name(first), theirs))
        server = self.boot('host1', 'nvidia-232')
        # Placement chose the first GPU; the host took it on the other.
        self.assert_server_vgpus('host1', server, 'nvidia-232', [other])
        self.assertEqual(1, FillOneGPUTest._build_events(
            self, server).count('compute__do_build_and_run_instance'))
        self.assertEqual((first, 'nvidia-231'),
                         self.mdevs_of('host1')[theirs])

    def test_other_sizes_open_at_once_when_the_last_vgpu_goes(self):
        """Nova reports before it deletes a server's allocations, and not
        again until the next periodic: the report after the last 2Q of
        each GPU is destroyed must already reopen the other sizes, or a
        2 x 4Q flavor is NoValidHost on two empty GPUs."""
        self.start_host('host1', [t4_gpu(GPU1), t4_gpu(GPU2)])
        small = self.boot('host1', 'nvidia-231', count=2)
        self.assert_server_vgpus('host1', small, 'nvidia-231', [GPU1, GPU2])
        self._delete_server(small)
        large = self.boot('host1', 'nvidia-232', count=2)
        self.assert_server_vgpus('host1', large, 'nvidia-232', [GPU1, GPU2])

    def test_two_sizes_fill_two_empty_gpus(self):
        self.start_host('host1', [t4_gpu(GPU1), t4_gpu(GPU2)])
        # 4 x 4Q fill one GPU, 8 x 2Q the other, in any order of arrival.
        servers = [self.boot('host1', t) for t in ['nvidia-232',
                                                   'nvidia-231'] * 4]
        servers += [self.boot('host1', 'nvidia-231') for _ in range(4)]
        for type_id in ('nvidia-232', 'nvidia-231'):
            self.boot('host1', type_id, expected_state='ERROR')
        for server in servers:
            self.assertEqual(1, FillOneGPUTest._build_events(
                self, server).count('compute__do_build_and_run_instance'))
        by_gpu = {}
        for parent, type_id in self.mdevs_of('host1').values():
            by_gpu.setdefault(parent, set()).add(type_id)
        self.assertEqual(sorted([{'nvidia-231'}, {'nvidia-232'}]),
                         sorted(by_gpu.values(), key=sorted))


class MoveTest(DriverTestBase):

    def setUp(self):
        super().setUp()
        self.start_host('host1', [acme_gpu(GPU1)])
        self.start_host('host2', [acme_gpu(GPU1)])

    def migration_allocations(self, server):
        migrations = self.api.get_migrations()
        mig = [m for m in migrations if m['instance_uuid'] == server['id']]
        return self.server_allocations(mig[-1]['uuid'])

    def test_resize_to_another_host_then_confirm(self):
        server = self.boot('host1', 'acme-1', host='host1')
        src = self.expected(server['id'])
        server = self._resize_server(server, self.flavor('host1', 'acme-2'))
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assert_server_vgpus('host2', server, 'acme-2', [GPU1])
        # The source keeps its mdev (a revert needs it), held by the
        # migration's allocations.
        self.assertEqual({src[0]: (GPU1, 'acme-1')}, self.mdevs_of('host1'))
        self.assertIn(self.rp('host1', GPU1),
                      self.migration_allocations(server))
        self._confirm_resize(server)
        self.assertEqual({}, self.mdevs_of('host1'))
        self.assertEqual({}, self.defined_mdevs('host1'))
        self.assert_server_vgpus('host2', server, 'acme-2', [GPU1])
        self.assertEqual({}, self.migration_allocations(server))

    def test_cold_migrate_then_revert(self):
        server = self.boot('host1', 'acme-2', host='host1')
        before = self.mdevs_of('host1')
        server = self._migrate_server(server)
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assert_server_vgpus('host2', server, 'acme-2', [GPU1])
        self.assertEqual(before, self.mdevs_of('host1'))
        server = self._revert_resize(server)
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual({}, self.mdevs_of('host2'))
        self.assertEqual({}, self.defined_mdevs('host2'))
        self.assertEqual(before, self.mdevs_of('host1'))
        self.assert_server_vgpus('host1', server, 'acme-2', [GPU1])

    def test_source_restart_while_a_resize_waits_keeps_its_mdevs(self):
        """The migration holds the server's allocation on the source until
        confirm or revert: a restart's reconcile must keep the mdev."""
        server = self.boot('host1', 'acme-2', host='host1')
        before = self.mdevs_of('host1')
        server = self._migrate_server(server)
        self.assertEqual({}, self.vgpu_allocations(server['id']).get(
            self.rp('host1', GPU1), {}))
        self.restart_compute('host1')
        self.assertEqual(before, self.mdevs_of('host1'))
        server = self._revert_resize(server)
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(before, self.mdevs_of('host1'))
        self.assert_server_vgpus('host1', server, 'acme-2', [GPU1])

    def test_cold_migrate_then_confirm(self):
        server = self.boot('host1', 'acme-1', host='host1')
        server = self._migrate_server(server)
        self._confirm_resize(server)
        self.assertEqual({}, self.mdevs_of('host1'))
        self.assert_server_vgpus('host2', server, 'acme-1', [GPU1])

    def test_live_migrate(self):
        server = self.boot('host1', 'acme-2', host='host1')
        server = self.live_migrate(server, 'host1', 'host2')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual({}, self.mdevs_of('host1'))
        self.assertEqual({}, self.defined_mdevs('host1'))
        self.assert_server_vgpus('host2', server, 'acme-2', [GPU1])

    def test_restart_between_the_two_halves_of_a_live_migration(self):
        """nova-compute stops on the source after
        post_live_migration_at_source, before the cleanup that frees the
        server's mdev there: its migration still reads as running and
        holds the source's allocation, which alone would keep the mdev.
        The next start frees it: the ledger remembers the guest left."""
        server = self.boot('host1', 'acme-2', host='host1')
        source = self.rp('host1', GPU1)
        held = self.server_allocations(server['id'])[source]
        driver = self.computes['host1'].driver
        with mock.patch.object(driver, 'cleanup', functools.partial(
                libvirt_driver.LibvirtDriver.cleanup, driver)):
            server = self.live_migrate(server, 'host1', 'host2')
        self.assertEqual(self.expected(server['id']),
                         list(self.mdevs_of('host1')))
        [mig] = [m for m in self.api.get_migrations()
                 if m['instance_uuid'] == server['id']]
        context = nova_context.get_admin_context()
        migration = objects.Migration.get_by_id(context, mig['id'])
        migration.status = 'running'
        migration.save()
        self.placement.put('/allocations/%s' % migration.uuid, {
            'allocations': {source: {'resources': held}},
            'consumer_generation': None, 'project_id': server['tenant_id'],
            'user_id': server['user_id'], 'consumer_type': 'MIGRATION'},
            version='1.38')
        self.restart_compute('host1')
        self.assertEqual({}, self.mdevs_of('host1'))
        self.assertEqual({}, self.defined_mdevs('host1'))
        self.assert_server_vgpus('host2', server, 'acme-2', [GPU1])

    def test_failed_live_migration_leaves_both_hosts_as_they_were(self):
        server = self.boot('host1', 'acme-2', host='host1')
        before = {h: self.mdevs_of(h) for h in ('host1', 'host2')}
        allocations = self.server_allocations(server['id'])
        server, dest_mdevs = self.failed_live_migration(
            server, 'host1', 'host2', lambda: self.mdevs_of('host2'))
        # The destination's mdev was made before the migration began.
        self.assertEqual(
            {host_facts.mdev_uuid_for(server['id'], 0): (GPU1, 'acme-2')},
            dest_mdevs)
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(before, {h: self.mdevs_of(h)
                                  for h in ('host1', 'host2')})
        self.assertEqual({}, self.defined_mdevs('host2'))
        self.assertEqual(allocations, self.server_allocations(server['id']))
        self.assert_server_vgpus('host1', server, 'acme-2', [GPU1])

    def test_shelve_offload_then_unshelve(self):
        server = self.boot('host1', 'acme-1', host='host1')
        # [DEFAULT] shelved_offload_time = 0: offloaded at once.
        self._shelve_server(server)
        self._wait_for_server_parameter(server, {
            'status': 'SHELVED_OFFLOADED', 'OS-EXT-SRV-ATTR:host': None})
        self.assertEqual({}, self.mdevs_of('host1'))
        self.assertEqual({}, self.server_allocations(server['id']))
        server = self._unshelve_server(server)
        host = server['OS-EXT-SRV-ATTR:host']
        self.assert_server_vgpus(host, server, 'acme-1', [GPU1])
        other = {'host1': 'host2', 'host2': 'host1'}[host]
        self.assertEqual({}, self.mdevs_of(other))


class ComputeRestartTest(DriverTestBase):

    def test_restart_keeps_everything(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        server = self.boot('host1', 'acme-2')
        before = (self.mdevs_of('host1'),
                  self.server_allocations(server['id']))
        self.restart_compute('host1')
        self.assertEqual(before, (self.mdevs_of('host1'),
                                  self.server_allocations(server['id'])))
        self.assert_server_vgpus('host1', server, 'acme-2', [GPU1])

    def test_host_reboot_recreates_the_mdevs_with_the_same_uuids(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        server = self.boot('host1', 'acme-1')
        other = self.boot('host1', 'acme-2')
        before = self.mdevs_of('host1')
        # mdevctl's definitions lost too: only the ledger knows them.
        self.reboot_host('host1', definitions=False)
        self.assertEqual(before, self.mdevs_of('host1'))
        for srv, type_id in ((server, 'acme-1'), (other, 'acme-2')):
            srv = self._wait_for_state_change(srv, 'ACTIVE')
            self.assert_server_vgpus('host1', srv, type_id, [GPU1])
            dom = self.connection('host1').lookupByUUIDString(srv['id'])
            self.assertTrue(dom.isActive())

    def test_host_reboot_with_definitions_kept(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        server = self.boot('host1', 'acme-2')
        before = self.mdevs_of('host1')
        self.reboot_host('host1', definitions=True)
        self.assertEqual(before, self.mdevs_of('host1'))
        self.assert_server_vgpus('host1', server, 'acme-2', [GPU1])


class PeriodicReconcileTest(DriverTestBase):

    def test_an_mdev_nobody_holds_is_removed_at_the_next_reconcile(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        server = self.boot('host1', 'acme-1')
        driver = self.computes['host1'].driver
        # What a live migration that failed after the destination's check
        # and before Nova's rollback leaves: an mdev for a server that
        # holds nothing here.
        stray = self.new_uuid()
        acme1 = {rc: n for rc, n in self.resources('host1', 'acme-1').items()
                 if 'ACME_1' in rc}
        [made] = driver.vgpu_host.realize(stray, {
            self.rp('host1', GPU1): acme1})
        self._run_periodics()
        self.assertIn(made.uuid, self.mdevs_of('host1'))   # not due yet
        node = driver.vgpu_node
        now = node.clock()
        node.clock = lambda: now + node.reconcile_schedule.interval
        self._run_periodics()
        self.assertNotIn(made.uuid, self.mdevs_of('host1'))
        self.assertEqual([], driver.vgpu_host.ledger.records(stray))
        self.assert_server_vgpus('host1', server, 'acme-1', [GPU1])


class EvacuateTest(DriverTestBase):

    def setUp(self):
        super().setUp()
        self.start_host('host1', [acme_gpu(GPU1)])
        self.start_host('host2', [acme_gpu(GPU1)])

    def test_evacuate_then_the_old_host_comes_back(self):
        server = self.boot('host1', 'acme-2', host='host1')
        old = self.mdevs_of('host1')
        service = self.admin_api.get_services(
            host='host1', binary='nova-compute')[0]
        self.computes['host1'].stop()
        self.admin_api.put_service(service['id'], {'forced_down': 'true'})
        # Microversion latest (>= 2.95): evacuated servers arrive stopped.
        server = self._evacuate_server(server, expected_host='host2')
        self.assertEqual(old, self.mdevs_of('host2'))
        self.assertEqual(list(old), self.guest_mdevs('host2', server['id']))
        # The old host is down: its mdev is still there, and Nova keeps
        # the server's allocations there until that host cleans up.
        self.assertEqual(old, self.mdevs_of('host1'))
        self.assertEqual({self.rp('host1', GPU1), self.rp('host2', GPU1)},
                         set(self.vgpu_allocations(server['id'])))
        self.restart_compute('host1')
        self.admin_api.put_service(service['id'], {'forced_down': 'false'})
        # Its cleanup of the evacuated server frees the mdev.
        self.assertEqual({}, self.mdevs_of('host1'))
        self.assertEqual({}, self.defined_mdevs('host1'))
        self.assert_server_vgpus('host2', server, 'acme-2', [GPU1])


class TakeoverTest(DriverTestBase):
    """A host running stock Nova's vGPU support with servers on it
    switches to the project's driver: nothing lost, nothing recreated."""

    STOCK_GPUS = [GPU1, GPU2]      # where stock Nova has acme-1

    def setUp(self):
        super().setUp()
        self.enable_nova_mdev_types({'acme-1': self.STOCK_GPUS})
        self.start_host('host1', [acme_gpu(GPU1), acme_gpu(GPU2)],
                        compute_driver=base.STOCK_DRIVER)
        self.stock = [self.boot_vgpu_server({'resources:VGPU': '1'})
                      for _ in range(2)]
        # What stock Nova made: random UUIDs, only in the guest XML.
        self.nova_mdevs = {s['id']: self.guest_mdevs('host1', s['id'])
                           for s in self.stock}
        self.before = {s['id']: self.server_allocations(s['id'])
                       for s in self.stock}

    def type_class(self, hostname, type_id):
        tree = self.computes[hostname].driver.vgpu_host.tree
        desired = tree.builder.desired_tree(tree.builder.discover())
        return desired.children[0].plan.classes[type_id]

    def switch(self):
        """The operator unsets [devices] and sets the project's driver."""
        self.flags(enabled_mdev_types=[], group='devices')
        self._host_drivers['host1'] = self.COMPUTE_DRIVER
        self.restart_compute('host1')

    def test_allocations_move_and_nova_mdevs_are_adopted(self):
        on_host = self.mdevs_of('host1')
        self.assertEqual(2, len(on_host))
        self.switch()
        acme1_class = self.type_class('host1', 'acme-1')
        for server in self.stock:
            # The same provider, the project's class instead of VGPU, the
            # rest of the server's allocations as they were.
            before = self.before[server['id']]
            after = self.server_allocations(server['id'])
            self.assertEqual(set(before), set(after))
            for rp, resources in before.items():
                if 'VGPU' in resources:
                    self.assertEqual({acme1_class: 1}, after[rp])
                else:
                    self.assertEqual(resources, after[rp])
        for name, inventory in self.provider_inventories('host1').items():
            self.assertNotIn('VGPU', inventory, name)
        # Nothing made anew: the mdevs are Nova's, in the guests' XML.
        self.assertEqual(on_host, self.mdevs_of('host1'))
        for server in self.stock:
            self.assertEqual(self.nova_mdevs[server['id']],
                             self.guest_mdevs('host1', server['id']))
        # Adopted on the next report, as each server's.
        self._run_periodics()
        ledger = self.computes['host1'].driver.vgpu_host.ledger
        self.assertEqual(
            {u: s for s, uuids in self.nova_mdevs.items() for u in uuids},
            {r.uuid: r.consumer for r in ledger.records()})

        # The project's own server beside them. (Costs of GPUs the project
        # never saw empty are unknown: no counter, so a flavor of the type
        # class alone, the one flavor-spec refuses to print for them.)
        mine = self.boot_vgpu_server(
            {'resources:%s' % self.type_class('host1', 'acme-2'): '1'})
        self.assertEqual(self.expected(mine['id']),
                         self.guest_mdevs('host1', mine['id']))
        # Delete frees the adopted mdev (stock Nova would have left it).
        gone, kept = self.stock
        self._delete_server(gone)
        self.assertNotIn(self.nova_mdevs[gone['id']][0],
                         self.mdevs_of('host1'))
        self.assertNotIn(self.nova_mdevs[gone['id']][0],
                         self.defined_mdevs('host1'))
        self.assertEqual({}, self.server_allocations(gone['id']))
        # A host reboot brings the adopted mdev back with its UUID.
        self.reboot_host('host1', definitions=False)
        self.assertIn(self.nova_mdevs[kept['id']][0], self.mdevs_of('host1'))
        self._wait_for_state_change(kept, 'ACTIVE')
        self.assertEqual(self.nova_mdevs[kept['id']],
                         self.guest_mdevs('host1', kept['id']))
        self.assertTrue(self.connection('host1').lookupByUUIDString(
            kept['id']).isActive())

    def test_deleted_before_any_report_still_frees_the_nova_mdev(self):
        self.switch()
        server = self.stock[0]
        (mdev_uuid,) = self.nova_mdevs[server['id']]
        self._delete_server(server)
        self.assertNotIn(mdev_uuid, self.mdevs_of('host1'))
        self.assertEqual({}, self.server_allocations(server['id']))


class TakeoverOfGPUsNotReportedTest(TakeoverTest):
    """Stock Nova had acme-1 on GPU2 only; the project is told to report
    acme-1 on GPU1 only, as VGPU (Nova's own [devices] lines, moved to
    the project's file): GPU2's Nova provider must not be claimed."""

    STOCK_GPUS = [GPU2]

    def switch(self):
        with open(self._paths('host1')['conf'], 'a') as f:
            f.write('[devices]\nenabled_mdev_types = acme-1\n'
                    '[mdev_acme-1]\ndevice_addresses = %s\n' % GPU1)
        super().switch()

    def test_allocations_move_and_nova_mdevs_are_adopted(self):
        self.skipTest('GPU2 is not reported here: nothing moves')

    def test_deleted_before_any_report_still_frees_the_nova_mdev(self):
        self.skipTest('GPU2 is not reported here: nothing is adopted')

    def test_its_provider_is_closed_while_in_use_then_removed(self):
        on_host = self.mdevs_of('host1')
        self.switch()
        gpu2 = self.rp('host1', GPU2)
        for server in self.stock:
            self.assertEqual(self.before[server['id']],
                             self.server_allocations(server['id']))
        inventory = self._get_provider_inventory(gpu2)['VGPU']
        self.assertEqual(inventory['total'], inventory['reserved'])
        # The next VGPU server goes to GPU1, with the project's mdev.
        mine = self.boot_vgpu_server({'resources:VGPU': '1'})
        self.assertEqual({self.rp('host1', GPU1): {'VGPU': 1}},
                         self.vgpu_allocations(mine['id']))
        self.assertEqual(self.expected(mine['id']),
                         self.guest_mdevs('host1', mine['id']))
        # Nova's mdevs are not the project's to adopt or remove.
        self._run_periodics()
        self.assertEqual([], [r for r in self.computes['host1'].driver
                              .vgpu_host.ledger.records()
                              if r.consumer != mine['id']])
        for server in self.stock:
            self._delete_server(server)
        self.assertEqual(on_host, {u: m for u, m in self.mdevs_of(
            'host1').items() if u in on_host})
        # Left behind and not ours: reports do not read every guest for
        # them again and again.
        driver = self.computes['host1'].driver
        guest_reads = []
        real = driver._get_all_assigned_mediated_devices
        driver._get_all_assigned_mediated_devices = lambda *a: (
            guest_reads.append(a) or real(*a))
        self._run_periodics()
        self._run_periodics()
        self.assertEqual([], guest_reads)
        self.assertNotIn(gpu2, self.provider_names('host1'))


class TakeoverKeepingVGPUTest(TakeoverTest):
    """The operator keeps Nova's class: [devices] moved to the project's
    file, acme-1 on every GPU as VGPU. Nothing moves; Nova's mdevs are
    adopted all the same."""

    def switch(self):
        with open(self._paths('host1')['conf'], 'a') as f:
            f.write('[devices]\nenabled_mdev_types = acme-1\n')
        super().switch()

    def test_allocations_move_and_nova_mdevs_are_adopted(self):
        self.skipTest('VGPU is the project\'s class here: nothing moves')

    def test_allocations_stay_and_nova_mdevs_are_adopted(self):
        on_host = self.mdevs_of('host1')
        self.switch()
        self.assertEqual('VGPU', self.type_class('host1', 'acme-1'))
        for server in self.stock:
            self.assertEqual(self.before[server['id']],
                             self.server_allocations(server['id']))
        self._run_periodics()
        ledger = self.computes['host1'].driver.vgpu_host.ledger
        self.assertEqual(
            {u: s for s, uuids in self.nova_mdevs.items() for u in uuids},
            {r.uuid: r.consumer for r in ledger.records()})
        self.assertEqual(on_host, self.mdevs_of('host1'))
        gone = self.stock[0]
        self._delete_server(gone)
        self.assertNotIn(self.nova_mdevs[gone['id']][0],
                         self.mdevs_of('host1'))


class ReleaseTest(DriverTestBase):
    """A Nova release the Nova tier has not run is refused at start, in
    one line naming it and the releases supported."""

    def test_the_driver_refuses_another_release(self):
        self.useFixture(fixtures.MockPatch('nova.version.version_string',
                                           return_value='30.2.0'))
        error = self.assertRaises(
            exception.InvalidConfiguration, self.start_host, 'host1',
            [acme_gpu(GPU1)])
        self.assertIn('Nova 30.2.0 is not supported', str(error))
        self.assertIn('31.x (2025.1 Epoxy)', str(error))
        self.assertIn('34.x (2026.2 Hibiscus)', str(error))
        self.assertNotIn('\n', str(error))

    def test_the_command_refuses_it_before_nova_starts(self):
        from vgpu_placement.nova import compute
        self.useFixture(fixtures.MockPatch('nova.version.version_string',
                                           return_value='35.0.0'))
        # nova.cmd sets up Nova's concurrency mode when imported, which a
        # test process cannot do again: its nova-compute is a stand-in.
        cmd = types.ModuleType('nova.cmd')
        cmd.compute = types.ModuleType('nova.cmd.compute')
        started = cmd.compute.main = mock.Mock(return_value=0)
        modules = mock.patch.dict(sys.modules, {
            'nova.cmd': cmd, 'nova.cmd.compute': cmd.compute})
        modules.start()
        self.addCleanup(modules.stop)
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        self.assertEqual(2, compute.main())
        stderr.seek(0)
        self.assertIn('Nova 35.0.0 is not supported', stderr.read())
        started.assert_not_called()

    def test_the_running_release_is_supported(self):
        self.start_host('host1', [acme_gpu(GPU1)])
        server = self.boot('host1', 'acme-1')
        self.assert_server_vgpus('host1', server, 'acme-1', [GPU1])
