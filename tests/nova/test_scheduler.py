"""The packing filter and weigher in nova-scheduler (vgpu_placement.nova.
scheduler), through Nova's whole stack.

Two hosts with one T4-like GPU each (equal-size rule: a GPU runs one size
at a time). Stock Nova spreads two 2Q servers over both hosts (its RAM,
CPU and disk weighers prefer the emptier host), and a 4Q server then
finds no GPU; with the filter and weigher the second 2Q joins the first
and the 4Q gets the other GPU.
"""
import types

import fixtures
import testtools

from tests.nova import test_driver
from vgpu_placement.nova import compat
from vgpu_placement.nova import scheduler
from vgpu_placement import once

GPU1, GPU2 = test_driver.GPU1, test_driver.GPU2
Q2, Q4 = 'nvidia-231', 'nvidia-232'
FILTER = 'vgpu_placement.nova.scheduler.VgpuPackingFilter'
WEIGHER = 'vgpu_placement.nova.scheduler.VgpuPackingWeigher'


class PackingTestBase(test_driver.DriverTestBase):

    FLAVOR = test_driver.InStepWithNovaTest.FLAVOR
    PACKING = False

    def _setup_scheduler_service(self):
        if self.PACKING:
            self.flags(available_filters=[
                'nova.scheduler.filters.all_filters', FILTER],
                group='filter_scheduler')
            self.ADDITIONAL_FILTERS = self.ADDITIONAL_FILTERS + [
                'VgpuPackingFilter']
            self.flags(weight_classes=[
                'nova.scheduler.weights.all_weighers', WEIGHER],
                group='filter_scheduler')
        return super()._setup_scheduler_service()

    def host_of(self, server):
        return server['OS-EXT-SRV-ATTR:host']

    def fill_then_large(self):
        """Two 2Q servers, then a 4Q: the 4Q server (ERROR when no GPU
        could take it) and the hosts of the 2Q servers."""
        self.start_host('host1', [test_driver.t4_gpu(GPU1)])
        self.start_host('host2', [test_driver.t4_gpu(GPU1)])
        small = [self.boot('host1', Q2) for _ in range(2)]
        large = self._create_server(
            image_uuid=test_driver.base.IMAGE,
            flavor_id=self.flavor('host1', Q4), networks='none',
            expected_state=('ACTIVE' if self.PACKING else 'ERROR'))
        return large, [self.host_of(s) for s in small]

    def refill_then_large(self):
        """One host, two GPUs, which Placement lists in a fixed order,
        ``first`` (where the first server goes) then ``second``: fill
        ``first`` with 2Q servers, the next goes to ``second``, delete
        those on ``first``, then one more 2Q and a 4Q. Returns the 4Q
        server (ERROR when no GPU took it), first and second."""
        self.start_host('host1', [test_driver.t4_gpu(GPU1),
                                  test_driver.t4_gpu(GPU2)])
        filling = [self.boot('host1', Q2) for _ in range(8)]
        [first] = [a for a in (GPU1, GPU2) if self.rp('host1', a) in
                   self.vgpu_allocations(filling[0]['id'])]
        second = GPU2 if first == GPU1 else GPU1
        for server in filling:
            self.assert_server_vgpus('host1', server, Q2, [first])
        kept = self.boot('host1', Q2)
        self.assert_server_vgpus('host1', kept, Q2, [second])
        for server in filling:
            self._delete_server(server)
        # Stock Nova takes Placement's first candidate, the empty GPU;
        # the filter puts the GPU running 2Q first.
        self.boot('host1', Q2)
        large = self._create_server(
            image_uuid=test_driver.base.IMAGE,
            flavor_id=self.flavor('host1', Q4), networks='none',
            expected_state=('ACTIVE' if self.PACKING else 'ERROR'))
        return large, first, second


class StockOrderTest(PackingTestBase):

    def test_stock_nova_spreads_the_small_type_and_strands_the_large(self):
        large, hosts = self.fill_then_large()
        self.assertEqual({'host1', 'host2'}, set(hosts))
        self.assertIn('No valid host', large['fault']['message'])

    def test_stock_nova_takes_the_empty_gpu_and_strands_the_large(self):
        large, first, second = self.refill_then_large()
        self.assertIn('No valid host', large['fault']['message'])


class PackingTest(PackingTestBase):

    PACKING = True

    def test_the_small_type_packs_and_the_large_fits(self):
        large, hosts = self.fill_then_large()
        self.assertEqual(1, len(set(hosts)), hosts)
        [other] = {'host1', 'host2'} - set(hosts)
        self.assertEqual(other, self.host_of(large))
        self.assert_server_vgpus(other, large, Q4, [GPU1])

    def test_within_a_host_the_gpu_running_the_type_comes_first(self):
        large, first, second = self.refill_then_large()
        self.assert_server_vgpus('host1', large, Q4, [first])

    def test_multi_gpu_flavors_still_fit(self):
        """K numbered groups with group_policy=isolate: one vGPU on each
        GPU of the host, the candidates ordered as any other."""
        self.start_host('host1', [test_driver.t4_gpu(GPU1),
                                  test_driver.t4_gpu(GPU2)])
        self.boot('host1', Q2)
        server = self.boot('host1', Q2, count=2)
        self.assert_server_vgpus('host1', server, Q2, [GPU1, GPU2])

    def test_a_request_without_vgpu_passes_untouched(self):
        self.start_host('host1', [test_driver.t4_gpu(GPU1)])
        flavor = self._create_flavor(**self.FLAVOR)
        server = self._create_server(
            image_uuid=test_driver.base.IMAGE, flavor_id=flavor,
            networks='none')
        self.assertEqual('host1', self.host_of(server))
        self.assertEqual({}, self.vgpu_allocations(server['id']))


class Host:
    """What the filter and weigher read of Nova's HostState."""

    def __init__(self, candidates, host='host1'):
        self.allocation_candidates = candidates
        self.host = host
        self.aggregates = []


def candidate(**gpus):
    """An allocation request: {provider: {class: n}} as Placement gives
    it, the root's classes on 'root'."""
    allocations = {rp: {'resources': r} for rp, r in gpus.items()}
    allocations['root'] = {'resources': {'VCPU': 1, 'MEMORY_MB': 256}}
    return {'allocations': allocations, 'mappings': {}}


def summary(used, capacity=8, rc='CUSTOM_T'):
    return {'resources': {rc: {'capacity': capacity, 'used': used}},
            'traits': [], 'root_provider_uuid': 'root',
            'parent_provider_uuid': 'root'}


class RobustnessTest(testtools.TestCase):
    """Inputs the filter and weigher cannot read pass through untouched,
    said once in the log; nothing raises inside nova-scheduler."""

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='vgpu_placement.nova.scheduler'))
        self.useFixture(fixtures.MonkeyPatch(
            'vgpu_placement.nova.scheduler._say_once',
            once.SayOnce(scheduler.LOG.logger)))
        self.filter = scheduler.VgpuPackingFilter()
        self.weigher = scheduler.VgpuPackingWeigher()

    def seen(self, summaries):
        summaries.setdefault('root', {
            'resources': {'VCPU': {'capacity': 8, 'used': 0}},
            'root_provider_uuid': 'root'})
        compat._saw_candidates(types.SimpleNamespace(request_id='req-1'),
                               ([], summaries, '1.36'))
        self.addCleanup(setattr, compat._local, 'scheduling', None)

    def test_orders_by_the_packing_rule(self):
        self.seen({'gpu1': summary(0), 'gpu2': summary(5)})
        host = Host([candidate(gpu1={'CUSTOM_T': 1}),
                     candidate(gpu2={'CUSTOM_T': 1})])
        self.assertTrue(self.filter.host_passes(host, None))
        self.assertEqual(['gpu2', 'gpu1'], [
            next(rp for rp in c['allocations'] if rp != 'root')
            for c in host.allocation_candidates])

    def test_a_candidate_naming_an_unknown_provider_is_left_as_it_is(self):
        self.seen({'gpu1': summary(0)})
        candidates = [candidate(gpu1={'CUSTOM_T': 1}),
                      candidate(gpu9={'CUSTOM_T': 1})]
        host = Host(list(candidates))
        self.assertTrue(self.filter.host_passes(host, None))
        self.assertEqual(candidates, host.allocation_candidates)
        self.assertEqual(0.0, self.weigher._weigh_object(host, None))
        self.assertTrue(self.filter.host_passes(Host(list(candidates)),
                                                None))
        self.assertEqual(1, self.log.output.count(
            'VgpuPackingFilter found candidates naming providers the '
            'summaries lack (gpu9)'))

    def test_malformed_candidates_pass_and_no_summaries_is_said_once(self):
        for bad in ([{'allocations': None}], [{'nothing': 1}], [42],
                    [candidate(gpu1={'CUSTOM_T': 'x'})]):
            self.seen({'gpu1': summary(0)})
            host = Host(list(bad))
            self.assertTrue(self.filter.host_passes(host, None))
            self.assertEqual(bad, host.allocation_candidates)
            self.assertEqual(0.0, self.weigher._weigh_object(host, None))
        compat._local.scheduling = None
        for _ in range(3):
            host = Host([candidate(gpu1={'CUSTOM_T': 1})])
            self.assertTrue(self.filter.host_passes(host, None))
        self.assertEqual(1, self.log.output.count(
            'VgpuPackingFilter found no provider summaries'))

    def test_a_host_without_vgpu_candidates_has_no_weight(self):
        self.seen({})
        host = Host([{'allocations': {'root': {'resources': {'VCPU': 1}}},
                      'mappings': {}}])
        self.assertTrue(self.filter.host_passes(host, None))
        self.assertEqual(0.0, self.weigher._weigh_object(host, None))

    def test_pack_weighs_the_type_already_there_then_the_fullest(self):
        self.seen({'a': summary(0), 'b': summary(6), 'c': summary(0),
                   'd': summary(2, rc='CUSTOM_OTHER')})
        weights = {name: self.weigher._weigh_object(Host(
            [candidate(**{name: {'CUSTOM_T': 1}})]), None)
            for name in 'abc'}
        self.assertGreater(weights['b'], weights['a'])
        self.assertEqual(weights['a'], weights['c'])
        # Claims taken in this request count (multi-create).
        compat._took_claim(types.SimpleNamespace(request_id='req-1'),
                           candidate(a={'CUSTOM_T': 7}), True)
        self.assertGreater(self.weigher._weigh_object(Host(
            [candidate(a={'CUSTOM_T': 1})]), None), weights['b'])
