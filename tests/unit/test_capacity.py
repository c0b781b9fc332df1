"""Capacity models: the arithmetic, the inference, the kernel check."""
import uuid

import pytest

from tests.conftest import make_conf
from vgpu_placement import capacity
from vgpu_placement import discovered
from vgpu_placement.drivers import simulated


def simulated_host(tmp_path, profile):
    return simulated.SimulatedDriver(make_conf(
        driver='simulated', simulated__profile=profile,
        state_path=str(tmp_path)))


def test_pool_free_after_is_the_minimum_over_pools_and_the_count_cap():
    pool = capacity.Pool({'a': 10, 'b': 6}, {'x': {'a': 2, 'b': 1},
                                             'y': {'a': 1, 'b': 3}},
                         max_instances=4)
    assert pool.free_after({}, ['x', 'y']) == {'x': 4, 'y': 2}
    assert pool.free_after({'y': 1}, ['x', 'y']) == {'x': 3, 'y': 1}
    assert pool.free_after({'x': 3}, ['x', 'y']) == {'x': 1, 'y': 1}
    assert pool.free_after({'x': 3, 'y': 1}, ['x', 'y']) == {'x': 0, 'y': 0}
    # Over-consumption (more granted than fits) never goes negative.
    assert pool.free_after({'x': 9}, ['x']) == {'x': 0}


def test_exclusive_equal_size_rule_with_slots():
    nv = capacity.Exclusive({'1q': 1, '2q': 2, '2b': 2},
                            {'1q': 16, '2q': 8, '2b': 8}, slots=6)
    assert nv.free_after({}, ['1q', '2q', '2b']) == {'1q': 6, '2q': 6,
                                                     '2b': 6}
    assert nv.free_after({'2q': 1}, ['1q', '2q', '2b']) == {
        '1q': 0, '2q': 5, '2b': 5}
    unbounded = capacity.Exclusive({'1q': 1, '2q': 2}, {'1q': 16, '2q': 8})
    assert unbounded.free_after({'2q': 3}, ['1q', '2q']) == {'1q': 0,
                                                             '2q': 5}


def test_single_pool_inference_recovers_the_sample_drivers_rules():
    mtty = capacity.infer_single_pool({'mtty-1': 24, 'mtty-2': 12})
    assert mtty.pools == {'units': 24}
    assert mtty.costs == {'mtty-1': {'units': 1}, 'mtty-2': {'units': 2}}
    mbochs = capacity.infer_single_pool({'s': 64, 'm': 16, 'l': 4})
    assert mbochs.free_after({'l': 1, 'm': 1}, ['s', 'm', 'l']) == {
        's': 44, 'm': 11, 'l': 2}      # the kernel's 2/11/44
    assert capacity.infer_single_pool({'a': 0}) is None


def test_known_pool_sizes_come_from_what_the_kernel_shows(tmp_path):
    host = simulated_host(tmp_path, 'kernel-samples')
    host.create_mdev('mbochs', 'mbochs-large', str(uuid.uuid4()))
    mbochs = host.discover().parent('mbochs')
    chosen, how = capacity.choose_model(mbochs)
    assert 'mbochs' in how
    assert chosen.pools == {'mbytes': 256}     # 64 held + 3 x 64 left
    assert chosen.costs['mbochs-small'] == {'mbytes': 4}


@pytest.mark.parametrize('profile', ['kernel-samples', 'gvt-g', 'nvidia-t4',
                                     'nvidia-a40-sriov'])
def test_model_predicts_the_simulated_kernel_step_by_step(tmp_path,
                                                          profile):
    """Fill each parent type by type; after every create the model's
    prediction from the first snapshot equals available_instances."""
    host = simulated_host(tmp_path, profile)
    first = discovered.group_virtual_functions(host.discover())
    models = {p.name: capacity.choose_model(p)[0] for p in first.parents}
    steps = 0
    for parent in first.parents:
        for t in parent.types:
            for _ in range(3):
                snap = discovered.group_virtual_functions(host.discover())
                now = snap.parent(parent.name)
                if now.type(t.id).available_instances == 0:
                    break
                target = next(
                    (vf.name for vf in host.discover().parents
                     if vf.name in now.members and not vf.mdevs),
                    parent.name)
                host.create_mdev(target, t.id, str(uuid.uuid4()))
                after = discovered.group_virtual_functions(
                    host.discover()).parent(parent.name)
                consumed = {x.id: after.count_mdevs(x.id)
                            for x in after.types}
                predicted = models[parent.name].free_after(
                    consumed, [x.id for x in after.types])
                observed = {x.id: x.available_instances for x in after.types}
                if profile == 'gvt-g':
                    # Conservative: sizes inferred as the smallest that fit.
                    assert all(predicted[k] <= observed[k] for k in observed)
                else:
                    assert predicted == observed
                steps += 1
    assert steps >= 2


def test_offers_subtract_pending_claims_of_every_type():
    mtty = capacity.Pool({'ports': 24}, {'mtty-1': {'ports': 1},
                                         'mtty-2': {'ports': 2}})
    got = capacity.offers(mtty, existing={'mtty-2': 1},
                          pending={'mtty-1': 4},
                          available={'mtty-1': 22, 'mtty-2': 11})
    assert {t: o.free for t, o in got.items()} == {'mtty-1': 18,
                                                   'mtty-2': 9}
    assert capacity.disagreements(got) == []


def test_kernel_saying_less_wins_and_is_reported():
    mtty = capacity.Pool({'ports': 24}, {'mtty-1': {'ports': 1},
                                         'mtty-2': {'ports': 2}})
    got = capacity.offers(mtty, {}, {'mtty-2': 1},
                          {'mtty-1': 20, 'mtty-2': 12})
    # Model: 24 and 12 now; the kernel shows 20 for mtty-1: 4 less.
    assert got['mtty-1'].free == 22 - 4
    assert got['mtty-2'].free == 11
    assert capacity.disagreements(got) == [('mtty-1', 24, 20)]


def test_unknown_costs_close_other_types_while_claims_are_pending():
    unknown = capacity.Pool({}, {})
    idle = capacity.offers(unknown, {}, {}, {'a': 3, 'b': 5})
    assert {t: o.free for t, o in idle.items()} == {'a': 3, 'b': 5}
    busy = capacity.offers(unknown, {}, {'a': 1}, {'a': 3, 'b': 5})
    assert {t: o.free for t, o in busy.items()} == {'a': 0, 'b': 0}


def test_independent_trusts_the_kernel_per_type():
    got = capacity.offers(capacity.Independent(), {'a': 1}, {'a': 2},
                          {'a': 3, 'b': 5})
    assert {t: o.free for t, o in got.items()} == {'a': 1, 'b': 5}


def test_choose_model_detection_and_override(tmp_path):
    demo = discovered.group_virtual_functions(
        simulated_host(tmp_path, 'demo-host').discover())
    kinds = {p.name: capacity.choose_model(p)[0].kind for p in demo.parents}
    assert kinds == {'mtty': 'pool', 'mbochs': 'pool', 'mdpy': 'pool',
                     '0000:84:00.0': 'exclusive'}
    assert capacity.choose_model(demo.parent('mtty'), 'independent')[
        0].kind == 'independent'
    a40 = discovered.group_virtual_functions(
        simulated_host(tmp_path / 'a40', 'nvidia-a40-sriov').discover())
    [gpu] = a40.parents
    assert len(gpu.members) == 32
    chosen = capacity.choose_model(gpu)[0]
    assert chosen.kind == 'exclusive' and chosen.slots == 32
    # Each VF shows 1: summed, 1Q shows 32 and 48Q too; the model knows
    # 48Q fits once.
    assert gpu.type('nvidia-563').available_instances == 32
    assert chosen.free_after({}, ['nvidia-563'])['nvidia-563'] == 1


def test_gvt_pools_remembered_from_the_empty_parent_are_tighter(tmp_path):
    host = simulated_host(tmp_path, 'gvt-g')
    gpu = '0000:00:02.0'
    empty = host.discover().parent(gpu)
    empty_seen = {t.id: t.available_instances for t in empty.types}
    host.create_mdev(gpu, 'i915-GVTg_V5_1', str(uuid.uuid4()))
    busy = host.discover().parent(gpu)
    alone = capacity.choose_model(busy)[0]
    remembered = capacity.choose_model(busy, empty_seen=empty_seen)[0]
    # One V5_1 leaves hidden memory binding every type: the 20 fences
    # still free are invisible now, but the empty parent showed all 28
    # (7 x 4; the profile's true value).
    assert alone.pools['fence'] == 8
    assert remembered.pools['fence'] == 28
    assert all(remembered.pools[p] >= n for p, n in alone.pools.items())
    consumed = {t.id: busy.count_mdevs(t.id) for t in busy.types}
    observed = {t.id: t.available_instances for t in busy.types}
    assert remembered.free_after(consumed, list(observed)) == observed


@pytest.mark.parametrize('types', [
    # A description claiming an absurd framebuffer (or maximum).
    [discovered.MdevType('nvidia-1', 'x', 'framebuffer=99999999999999M, '
                         'max_instance=4', 'vfio-pci', 4)],
    [discovered.MdevType('nvidia-1', 'x', 'framebuffer=1048576M, '
                         'max_instance=4096', 'vfio-pci', 4)],
    # mbochs-like video memory beyond what Placement can count.
    [discovered.MdevType('mbochs-x', 'x', '3000000000 MB video memory',
                         'vfio-pci', 1)],
    # Counts whose least common multiple is beyond it.
    [discovered.MdevType('odd-%d' % n, 'x', '', 'vfio-pci', n) for n in
     (2147483629, 2147483587)],
], ids=['framebuffer', 'framebuffer-times-max', 'mbochs', 'lcm'])
def test_a_parent_with_absurd_figures_still_reports_within_placement_ints(
        types):
    from vgpu_placement import provider_tree
    from vgpu_placement import type_config
    parent = discovered.ParentDevice('0000:84:00.0', tuple(types), ())
    sane = discovered.ParentDevice('mtty', (
        discovered.MdevType('mtty-1', 'x', '', 'vfio-pci', 24),
        discovered.MdevType('mtty-2', 'x', '', 'vfio-pci', 12)), ())
    snapshot = discovered.HostSnapshot((parent, sane))
    policies = type_config.load_policies(make_conf(), snapshot)
    tree = provider_tree.build_tree('h', snapshot, policies)
    assert {c.device for c in tree.children} == {parent.name, 'mtty'}
    for child in tree.children:
        for rc, inv in child.inventories({}).items():
            assert all(0 <= v <= capacity.PLACEMENT_INT_MAX for v in (
                inv.total, inv.reserved, inv.max_unit or 0)), (rc, inv)
