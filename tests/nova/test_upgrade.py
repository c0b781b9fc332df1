"""A compute host upgraded from one Nova release to the next keeps its
vGPUs: what the project wrote under one release is read unchanged under
the next.

Nova's functional framework runs one release per process and keeps
Nova's and Placement's databases in memory, so those cannot cross to the
next release's run. What crosses here is what the compute host itself
carries over an upgrade of its packages: the project's config and state
directory (the ledger), libvirt's mdevs (active, defined, autostart) and
the host's boot id (no reboot) and its node identity (Nova's
``compute_id``). Placement outlives a compute upgrade (it is the cloud's
service): the importing run writes the exported provider tree
(inventories, traits) and the servers' vGPU allocations back into its
Placement before its nova-compute starts, whose start and reports must
then keep every mdev, rewrite no ledger record and leave the tree's
figures as they were. The servers themselves are not in the new run's
Nova database, so nothing here boots, moves or deletes them under the
new release; only their vGPU allocations are written back (Nova's
resource tracker deletes allocations on the compute node of instances
its database does not know).

``.ci/run`` runs the Nova tier release after release (31, 32, 33, 34)
with, through tools/nova-tier/run-tests:

* ``VGPU_UPGRADE_EXPORT=<dir>``: UpgradeExportTest boots servers under
  this release, stops nova-compute and writes the host to ``<dir>``;
* ``VGPU_UPGRADE_IMPORT=<dir>[:<dir>...]``: UpgradeImportTest starts this
  release's nova-compute on each host written there (33 reads 32's and
  31's: the skip-level upgrade).

Without them both are skipped.
"""
import dataclasses
import json
import os
import shutil

from nova import version
from oslo_utils.fixture import uuidsentinel

from tests.nova import fakemdev
from tests.nova import test_driver

EXPORT, IMPORT = 'VGPU_UPGRADE_EXPORT', 'VGPU_UPGRADE_IMPORT'
GPUS = (test_driver.GPU1, test_driver.GPU2)


def _major():
    return int(version.version_string().split('.')[0])


class UpgradeTestBase(test_driver.DriverTestBase):

    def setUp(self):
        super().setUp()
        self._mdevs_for_next_host = ()

    def _get_connection(self, *args, **kwargs):
        """The fake host, with the mdevs the host had before (libvirt's
        state survives a package upgrade)."""
        conn = super()._get_connection(*args, **kwargs)
        for m in self._mdevs_for_next_host:
            mdev = fakemdev.FakeMdev(conn, m['uuid'], m['parent'], m['type'])
            mdev.defined, mdev.autostart_flag = m['defined'], m['autostart']
            conn._start_mdev(mdev)
        return conn

    def host_state(self, hostname):
        """What the test compares across the upgrade."""
        ledger = self.computes[hostname].driver.vgpu_host.ledger
        root = self.compute_rp_uuids[hostname]
        return {
            'mdevs': sorted((dict(m, uuid=u) for u, m in
                             self.host_mdevs(hostname).items()),
                            key=lambda m: m['uuid']),
            'ledger': [dataclasses.asdict(r) for r in ledger.records()],
            'usages': {name: self._get_provider_usages(rp)
                       for rp, name in self.provider_names(hostname).items()
                       if rp != root},
            'inventories': {
                name: self._get_provider_inventory(rp)
                for rp, name in self.provider_names(hostname).items()
                if rp != root}}


class UpgradeExportTest(UpgradeTestBase):

    def test_write_the_host_for_the_next_release(self):
        out = os.environ.get(EXPORT)
        if not out:
            self.skipTest('%s is not set (see tests/nova/test_upgrade.py)'
                          % EXPORT)
        hostname = 'upgraded-from-%d' % _major()
        self.start_host(hostname, [test_driver.acme_gpu(a) for a in GPUS])
        paths = self._paths(hostname)
        servers = [self.boot(hostname, 'acme-1'),
                   self.boot(hostname, 'acme-2'),
                   self.boot(hostname, 'acme-1', count=2)]
        allocations = {s['id']: self.vgpu_allocations(s['id'])
                       for s in servers}
        state = self.host_state(hostname)
        self.assertEqual(4, len(state['mdevs']))
        root = self.compute_rp_uuids[hostname]
        tree = [{'uuid': rp['uuid'], 'name': rp['name'],
                 'parent': rp['parent_provider_uuid'],
                 'inventories': self._get_provider_inventory(rp['uuid']),
                 'traits': self._get_provider_traits(rp['uuid'])}
                for rp in self._get_all_rps_in_a_tree(root)]
        # nova-compute stops for its upgrade; the host keeps running.
        self.computes[hostname].stop()
        if os.path.exists(out):
            shutil.rmtree(out)
        shutil.copytree(paths['state'], os.path.join(out, 'state'))
        shutil.copy(paths['boot_id'], os.path.join(out, 'boot_id'))
        with open(os.path.join(out, 'host.json'), 'w') as f:
            json.dump({'nova': version.version_string(),
                       'hostname': hostname, 'root': root, 'tree': tree,
                       'allocations': allocations, 'state': state}, f,
                      indent=1, sort_keys=True)


class UpgradeImportTest(UpgradeTestBase):

    def test_the_next_release_keeps_every_vgpu(self):
        dirs = [d for d in os.environ.get(IMPORT, '').split(':') if d]
        if not dirs:
            self.skipTest('%s is not set (see tests/nova/test_upgrade.py)'
                          % IMPORT)
        for exported in dirs:
            self._upgrade(exported)

    def _upgrade(self, exported):
        with open(os.path.join(exported, 'host.json')) as f:
            before = json.load(f)
        hostname = before['hostname']
        paths = self.write_host(hostname)
        shutil.copytree(os.path.join(exported, 'state'), paths['state'],
                        dirs_exist_ok=True)
        shutil.copy(os.path.join(exported, 'boot_id'), paths['boot_id'])
        self._restore_placement(before)
        # The host's node identity survives the upgrade ($state_path/
        # compute_id): Nova's functional base takes it from this sentinel.
        uuidsentinel._sentinels['node_%s' % hostname] = before['root']
        self._mdevs_for_next_host = before['state']['mdevs']
        try:
            self.start_vgpu_compute(hostname, [test_driver.acme_gpu(a)
                                               for a in GPUS])
        finally:
            self._mdevs_for_next_host = ()
        self.assertEqual(before['root'], self.compute_rp_uuids[hostname])
        # A periodic reconcile too, made due.
        node = self.computes[hostname].driver.vgpu_node
        now = node.clock()
        node.clock = lambda: now + node.reconcile_schedule.interval
        self._run_periodics()
        self.assertFalse(node.reconcile_schedule.due())
        after = self.host_state(hostname)
        what = 'Nova %s -> %s' % (before['nova'], version.version_string())
        self.assertEqual(before['state']['mdevs'], after['mdevs'], what)
        self.assertEqual(before['state']['ledger'], after['ledger'], what)
        self.assertEqual(before['state']['usages'], after['usages'], what)
        self.assertEqual(before['state']['inventories'],
                         after['inventories'], what)

    def _restore_placement(self, before):
        """The exported tree and vGPU allocations, as Placement held them
        when nova-compute stopped."""
        for rp in before['tree']:
            self.assertEqual(200, self.placement.post(
                '/resource_providers', {
                    'name': rp['name'], 'uuid': rp['uuid'],
                    'parent_provider_uuid': rp['parent']},
                version='1.20').status, rp['name'])
            for trait in rp['traits']:
                if trait.startswith('CUSTOM_'):
                    self.placement.put('/traits/%s' % trait, None,
                                       version='1.6')
            for rc in rp['inventories']:
                if rc.startswith('CUSTOM_'):
                    self.placement.put('/resource_classes/%s' % rc, None,
                                       version='1.7')
            self._set_provider_traits(rp['uuid'], rp['traits'])
            if rp['inventories']:
                self.assertEqual(200, self.placement.put(
                    '/resource_providers/%s/inventories' % rp['uuid'], {
                        'resource_provider_generation': self.placement.get(
                            '/resource_providers/%s' % rp['uuid']
                        ).body['generation'],
                        'inventories': rp['inventories']}).status,
                    rp['name'])
        for server, allocations in before['allocations'].items():
            self.assertEqual(204, self.placement.put(
                '/allocations/%s' % server, {
                    'allocations': {rp: {'resources': r}
                                    for rp, r in allocations.items()},
                    'consumer_generation': None, 'project_id': 'p',
                    'user_id': 'u', 'consumer_type': 'INSTANCE'},
                version='1.38').status, server)
