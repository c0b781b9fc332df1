"""Reporting a host to the real embedded Placement."""
import uuid

import pytest

from tests.functional.conftest import claim
from tests.functional.conftest import embedded_only
from tests.functional.conftest import tree_in_placement
from vgpu_placement.conf import type_config
from vgpu_placement import exceptions
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import embedded
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import traits as traits_mod
from vgpu_placement.service import standalone


def expected_totals(snapshot, host):
    """{provider name: {class: existing + available}} for every type > 0."""
    out = {}
    for parent in snapshot.parents:
        totals = {type_config.default_class(t.id):
                  parent.count_mdevs(t.id) + t.available_instances
                  for t in parent.types}
        out[provider_tree.provider_name(host, parent.name)] = {
            rc: n for rc, n in totals.items() if n}
    return out


def totals_in(tree):
    """Totals of the type classes (shared counters left out)."""
    return {name: {rc: inv['total'] for rc, inv in rp['inventories'].items()
                   if not rc.startswith('CUSTOM_VGPU_UNITS_')}
            for name, rp in tree.items()}


def test_first_report_creates_the_tree_by_the_formula(sim_conf, host,
                                                      placement):
    reporter = standalone.reporter_for(sim_conf())
    result = reporter.report()
    tree = tree_in_placement(placement, host)
    assert totals_in(tree) == expected_totals(reporter.driver.discover(),
                                              host)
    assert sorted(tree) == ['%s_mbochs_mbochs' % host, '%s_mdpy_mdpy' % host,
                            '%s_mtty_mtty' % host]
    for rp in tree.values():
        for inv in rp['inventories'].values():
            assert (inv['reserved'], inv['min_unit'], inv['step_size'],
                    inv['allocation_ratio']) == (0, 1, 1, 1.0)
            assert inv['max_unit'] == inv['total']
    assert {c.action for c in result.changes} == {'create'}
    assert result.requests.writes > 0


def test_second_report_in_a_new_process_makes_no_writes(sim_conf, host):
    standalone.reporter_for(sim_conf()).report()
    # A new Reporter reads the cache file as a new command would.
    result = standalone.reporter_for(sim_conf()).report()
    assert result.changes == []
    assert result.requests.as_dict() == {'reads': 1, 'writes': 0}


def test_a_claim_in_placement_reserves_what_it_will_take_from_others(
        sim_conf, host, placement):
    reporter = standalone.reporter_for(sim_conf())
    reporter.report()
    name = '%s_mtty_mtty' % host
    mtty = tree_in_placement(placement, host)[name]
    claim(placement, mtty['uuid'], {'CUSTOM_MDEV_MTTY_2': 1})
    result = reporter.report()
    # Only that provider is read again and written once.
    assert [(c.action, c.provider) for c in result.changes] == [
        ('inventories', name)]
    assert result.requests.writes == 1
    inv = tree_in_placement(placement, host)[name]['inventories']
    # The granted mtty-2 will take 2 of the 24 ports: mtty-1 may now only
    # get 22 (reserved 2); mtty-2 itself is not reduced beyond its claim;
    # the counter holds the 2 units the claim did not pay for.
    assert (inv['CUSTOM_MDEV_MTTY_1']['total'],
            inv['CUSTOM_MDEV_MTTY_1']['reserved']) == (24, 2)
    assert inv['CUSTOM_MDEV_MTTY_2']['reserved'] == 0
    assert inv['CUSTOM_VGPU_UNITS_MTTY']['reserved'] == 2
    view = dict(reporter.placement_view(refresh=False))
    assert view[name]['usages']['CUSTOM_MDEV_MTTY_2'] == 1
    # And the next report, nothing having changed, writes nothing; it
    # reads the tree and, while a claim waits to be realized there, that
    # provider's usages (a DELETE of the claim would not show otherwise).
    assert reporter.report().requests.as_dict() == {'reads': 2,
                                                    'writes': 0}


def test_created_mdev_changes_one_provider_with_one_write(sim_conf, host,
                                                          placement):
    reporter = standalone.reporter_for(sim_conf())
    reporter.report()
    reporter.driver.create_mdev('mtty', 'mtty-2', str(uuid.uuid4()))
    result = reporter.report()
    assert [(c.action, c.provider) for c in result.changes] == [
        ('inventories', '%s_mtty_mtty' % host)]
    assert result.requests.writes == 1
    tree = tree_in_placement(placement, host)
    assert totals_in(tree) == expected_totals(reporter.driver.discover(),
                                              host)
    # mtty-2 took two of the 24 ports: mtty-1 shows 22, mtty-2 1 + 11.
    assert totals_in(tree)['%s_mtty_mtty' % host] == {
        'CUSTOM_MDEV_MTTY_1': 22, 'CUSTOM_MDEV_MTTY_2': 12}


def test_parent_gone_without_usage_is_retired_then_deleted_on_request(
        sim_conf, host, placement):
    reporter = standalone.reporter_for(sim_conf())
    reporter.report()
    name = '%s_mdpy_mdpy' % host
    reporter.driver.unplug_parent('mdpy')
    result = reporter.report()
    assert [(c.action, c.provider) for c in result.changes] == [
        ('inventories', name), ('traits', name)]
    # Kept for caches like nova-compute's: empty, marked, still ours.
    kept = tree_in_placement(placement, host)[name]
    assert kept['inventories'] == {}
    assert {traits_mod.RETIRED, traits_mod.MANAGED} <= kept['traits']
    assert reporter.report().requests.writes == 0       # steady
    result = reporter.report(delete_retired=True)
    assert [(c.action, c.provider) for c in result.changes] == [
        ('delete', name)]
    assert name not in tree_in_placement(placement, host)


def test_a_retired_provider_is_deleted_after_the_age_set(sim_conf, host,
                                                         placement):
    reporter = standalone.reporter_for(sim_conf(
        delete_retired_providers_after=600))
    reporter.report()
    name = '%s_mdpy_mdpy' % host
    rp_uuid = tree_in_placement(placement, host)[name]['uuid']
    reporter.driver.unplug_parent('mdpy')
    reporter.report()
    assert name in tree_in_placement(placement, host)
    # As if 601 s went by since it was retired.
    reporter.cache.retire(rp_uuid, reporter.cache.retired_since(rp_uuid) - 601)
    result = reporter.report()
    assert [(c.action, c.provider) for c in result.changes] == [
        ('delete', name)]


def test_a_device_back_takes_its_retired_provider_back(sim_conf, host,
                                                       placement):
    reporter = standalone.reporter_for(sim_conf())
    reporter.report()
    before = tree_in_placement(placement, host)['%s_mdpy_mdpy' % host]
    reporter.driver.unplug_parent('mdpy')
    reporter.report()
    reporter.driver.plug_parent('mdpy')
    reporter.report()
    after = tree_in_placement(placement, host)['%s_mdpy_mdpy' % host]
    assert after['uuid'] == before['uuid']
    assert after['inventories'] == before['inventories']
    assert after['traits'] == before['traits']
    assert reporter.cache.retired == {}


def test_parent_gone_with_usage_keeps_used_inventory_closed(
        sim_conf, host, placement):
    reporter = standalone.reporter_for(sim_conf())
    reporter.report()
    name = '%s_mtty_mtty' % host
    mtty = tree_in_placement(placement, host)[name]
    consumer = claim(placement, mtty['uuid'], {'CUSTOM_MDEV_MTTY_1': 2})
    reporter.driver.unplug_parent('mtty')
    reporter.report()
    kept = tree_in_placement(placement, host)[name]
    assert list(kept['inventories']) == ['CUSTOM_MDEV_MTTY_1']
    inv = kept['inventories']['CUSTOM_MDEV_MTTY_1']
    assert inv['reserved'] == inv['total'] == 24       # closed, not shrunk
    assert kept['usages']['CUSTOM_MDEV_MTTY_1'] == 2
    assert placement.get('/allocations/%s' % consumer)['allocations']
    # Nothing can be claimed there any more.
    with pytest.raises(exceptions.PlacementConflict):
        claim(placement, mtty['uuid'], {'CUSTOM_MDEV_MTTY_1': 1})
    # The device comes back: the offer is whole again, usage untouched.
    reporter.driver.plug_parent('mtty')
    reporter.report()
    back = tree_in_placement(placement, host)[name]
    # The two granted mtty-1 will take 2 ports: mtty-2 keeps 11 of 12.
    assert {rc: (i['total'], i['reserved'])
            for rc, i in back['inventories'].items()} == {
        'CUSTOM_MDEV_MTTY_1': (24, 0), 'CUSTOM_MDEV_MTTY_2': (12, 1),
        'CUSTOM_VGPU_UNITS_MTTY': (24, 2)}
    assert back['usages']['CUSTOM_MDEV_MTTY_1'] == 2


def test_traits_from_type_descriptions(sim_conf, host, placement):
    # As in Nova, one listed type may go without device_addresses.
    conf = sim_conf('demo-host', '[mdev_mdpy-hd]\ndevice_addresses = mdpy\n',
                    devices__enabled_mdev_types=['nvidia-231', 'mdpy-hd'])
    reporter = standalone.reporter_for(conf)
    reporter.report()
    tree = tree_in_placement(placement, host)
    gpu = tree['%s_pci_0000_84_00_0' % host]
    assert gpu['traits'] == {
        'HW_GPU_MAX_DISPLAY_HEADS_4', 'HW_GPU_RESOLUTION_W7680H4320',
        'CUSTOM_VGPU_FRAMEBUFFER_2048MB', 'CUSTOM_MDEV_TYPE_NVIDIA_231',
        traits_mod.MANAGED}
    # The type (Nova's class) and the equal-size framebuffer counter.
    assert sorted(gpu['inventories']) == ['CUSTOM_VGPU_UNITS_NVIDIA', 'VGPU']
    assert 'HW_GPU_RESOLUTION_W1920H1080' in tree[
        '%s_mdpy_mdpy' % host]['traits']
    # In this host's tree (the session's Placement holds many hosts), a
    # flavor asking for VGPU lands on the T4 or on mdpy; with 4 heads
    # required, on the T4 only.
    root = reporter.cache.root_uuid

    def candidates(query):
        found = placement.get('/allocation_candidates?%s&in_tree=%s'
                              % (query, root))
        return sorted(
            (rp, a['resources']) for r in found['allocation_requests']
            for rp, a in r['allocations'].items())
    mdpy = tree['%s_mdpy_mdpy' % host]
    assert candidates('resources=VGPU:1') == sorted(
        [(gpu['uuid'], {'VGPU': 1}), (mdpy['uuid'], {'VGPU': 1})])
    assert candidates('resources=VGPU:1&required=HW_GPU_MAX_DISPLAY_HEADS_4'
                      ) == [(gpu['uuid'], {'VGPU': 1})]


class RacingClient(client_mod.PlacementClient):
    """Our client, with a scheduler's claim landing just before our first
    inventory write (so Placement answers 409 concurrent_update)."""

    def __init__(self, adapter, placement, target_name):
        super().__init__(adapter)
        self.placement, self.target_name = placement, target_name
        self.raced = False

    def put(self, path, body, **kw):
        if path.endswith('/inventories') and not self.raced:
            self.raced = True
            rp_uuid = path.split('/')[2]
            claim(self.placement, rp_uuid, {'CUSTOM_MDEV_MTTY_1': 1})
        return super().put(path, body, **kw)


def test_generation_conflict_is_refreshed_and_retried(sim_conf, host,
                                                      placement,
                                                      new_adapter):
    conf = sim_conf()
    standalone.reporter_for(conf).report()
    racing = RacingClient(new_adapter(), placement, host)
    reporter = standalone.reporter_for(conf, client=racing)
    reporter.driver.create_mdev('mtty', 'mtty-2', str(uuid.uuid4()))
    result = reporter.report()
    assert racing.raced
    # Read the tree, write (409), re-read the provider, write again.
    assert result.requests.writes == 2
    mtty = tree_in_placement(placement, host)['%s_mtty_mtty' % host]
    assert mtty['inventories']['CUSTOM_MDEV_MTTY_1']['total'] == 22
    assert mtty['usages']['CUSTOM_MDEV_MTTY_1'] == 1


def test_existing_root_is_reused_and_left_alone(sim_conf, host, placement):
    root = str(uuid.uuid4())
    placement.post('/resource_providers', {'name': host, 'uuid': root})
    placement.put('/resource_providers/%s/inventories' % root, {
        'resource_provider_generation': 0,
        'inventories': {'VCPU': {'total': 8}}})
    other = placement.post('/resource_providers', {
        'name': '%s_numa0' % host, 'parent_provider_uuid': root})
    reporter = standalone.reporter_for(sim_conf())
    reporter.report()
    reporter.driver.unplug_parent('mtty')
    reporter.report()
    assert placement.get('/resource_providers/%s/inventories' % root)[
        'inventories']['VCPU']['total'] == 8
    tree = tree_in_placement(placement, host)
    assert '%s_numa0' % host in tree           # not ours: never deleted
    assert other['uuid'] == tree['%s_numa0' % host]['uuid']
    assert tree['%s_numa0' % host]['traits'] == set()
    assert sorted(tree) == ['%s_mbochs_mbochs' % host, '%s_mdpy_mdpy' % host,
                            '%s_mtty_mtty' % host, '%s_numa0' % host]
    assert tree['%s_mtty_mtty' % host]['inventories'] == {}     # retired


def test_dry_run_writes_nothing(sim_conf, host, placement):
    result = standalone.reporter_for(sim_conf()).report(dry_run=True)
    assert result.requests.writes == 0
    assert [c.action for c in result.changes] == ['create'] * 4
    assert tree_in_placement(placement, host) is None


@embedded_only
def test_placement_down_then_back(tmp_path, host, placement_db):
    from tests.conftest import make_conf
    from vgpu_placement.service import loop as service_loop

    server = embedded.LoopbackServer(placement_db)
    port = server.port
    conf = make_conf(
        '[placement]\nauth_type = admin_token\nendpoint = %s\n'
        'token = admin\n' % server.url,
        driver='simulated', simulated__profile='kernel-samples',
        state_path=str(tmp_path), host=host, create_root_provider=True)
    with server:
        reporter = standalone.reporter_for(conf)
        reporter.report()
    loop = service_loop.ReportLoop(reporter, interval=30, max_backoff=120,
                                   wait=None)
    # Down: the loop keeps going and backs off; nothing is lost meanwhile.
    assert loop.run_once() == 30
    assert loop.run_once() == 60
    reporter.driver.create_mdev('mbochs', 'mbochs-large', str(uuid.uuid4()))
    with embedded.LoopbackServer(placement_db, port=port):
        assert loop.run_once() == 30
        assert loop.outage_delay is None
        view = dict(reporter.placement_view())
    assert view['%s_mbochs_mbochs' % host]['inventories'][
        'CUSTOM_MDEV_MBOCHS_SMALL']['total'] == 48


def test_kernel_disagreeing_with_the_model_is_believed_and_logged(
        tmp_path, host, placement_db, placement, caplog):
    from tests.conftest import make_conf
    from tests.functional.conftest import placement_ini
    from tests import sysfs_tree
    tree = sysfs_tree.kernel_samples(tmp_path / 'sys')
    # An mtty-2 created behind the model's back... and the kernel showing
    # mtty-1 at 20 where the port model says 22 (24 - 2).
    tree.add_mdev('mtty', 'mtty-2', str(uuid.uuid4()))
    tree.set_available('mtty', 'mtty-2', 11)
    tree.set_available('mtty', 'mtty-1', 20)
    conf = make_conf(placement_ini(placement_db), driver='sysfs',
                     sysfs__root=str(tmp_path / 'sys'), host=host,
                     state_path=str(tmp_path / 'state'))
    result = standalone.reporter_for(conf).report()
    assert result.disagreements == [('mtty', 'mtty-1', 22, 20)]
    assert 'parent mtty type mtty-1: the capacity model predicts 22 ' \
           'available, the kernel says 20' in caplog.text
    inv = tree_in_placement(placement, host)['%s_mtty_mtty' % host][
        'inventories']['CUSTOM_MDEV_MTTY_1']
    assert inv['total'] - inv['reserved'] == 20


def test_placement_that_lost_everything_is_rebuilt(sim_conf, host,
                                                   placement):
    """The tree deleted behind our back (a Placement database restored from
    an old backup, say): the next report notices and rebuilds it."""
    reporter = standalone.reporter_for(sim_conf())
    reporter.report()
    tree = tree_in_placement(placement, host)
    for rp in tree.values():
        placement.delete('/resource_providers/%s' % rp['uuid'])
    root = placement.get('/resource_providers?name=%s' % host)[
        'resource_providers'][0]['uuid']
    placement.delete('/resource_providers/%s' % root)
    reporter.report()
    assert totals_in(tree_in_placement(placement, host)) == totals_in(tree)
