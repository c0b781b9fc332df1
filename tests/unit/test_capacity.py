"""Capacity models: the arithmetic, the inference, the kernel check."""
import random
import uuid

import pytest

from tests.conftest import make_conf
from vgpu_placement.drivers.nvidia import mixed as nv_mixed
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement.drivers.simulated import driver as simulated
from vgpu_placement.drivers.simulated import profile as sim_profile
from vgpu_placement.model import base as model_base
from vgpu_placement.model import detect
from vgpu_placement.model import discovered
from vgpu_placement.model import exclusive
from vgpu_placement.model import independent
from vgpu_placement.model import pool as pool_model


def simulated_host(tmp_path, profile):
    return simulated.SimulatedDriver(make_conf(
        driver='simulated', simulated__profile=profile,
        state_path=str(tmp_path)))


def test_pool_free_after_is_the_minimum_over_pools_and_the_count_cap():
    pool = pool_model.Pool({'a': 10, 'b': 6}, {'x': {'a': 2, 'b': 1},
                                               'y': {'a': 1, 'b': 3}},
                           max_instances=4)
    assert pool.free_after({}, ['x', 'y']) == {'x': 4, 'y': 2}
    assert pool.free_after({'y': 1}, ['x', 'y']) == {'x': 3, 'y': 1}
    assert pool.free_after({'x': 3}, ['x', 'y']) == {'x': 1, 'y': 1}
    assert pool.free_after({'x': 3, 'y': 1}, ['x', 'y']) == {'x': 0, 'y': 0}
    # Over-consumption (more granted than fits) never goes negative.
    assert pool.free_after({'x': 9}, ['x']) == {'x': 0}


def test_exclusive_equal_size_rule_with_slots():
    nv = exclusive.Exclusive({'1q': 1, '2q': 2, '2b': 2},
                             {'1q': 16, '2q': 8, '2b': 8}, slots=6)
    assert nv.free_after({}, ['1q', '2q', '2b']) == {'1q': 6, '2q': 6,
                                                     '2b': 6}
    assert nv.free_after({'2q': 1}, ['1q', '2q', '2b']) == {
        '1q': 0, '2q': 5, '2b': 5}
    unbounded = exclusive.Exclusive({'1q': 1, '2q': 2}, {'1q': 16, '2q': 8})
    assert unbounded.free_after({'2q': 3}, ['1q', '2q']) == {'1q': 0,
                                                             '2q': 5}


def test_single_pool_inference_recovers_the_sample_drivers_rules():
    mtty = pool_model.infer_single_pool({'mtty-1': 24, 'mtty-2': 12})
    assert mtty.pools == {'units': 24}
    assert mtty.costs == {'mtty-1': {'units': 1}, 'mtty-2': {'units': 2}}
    mbochs = pool_model.infer_single_pool({'s': 64, 'm': 16, 'l': 4})
    assert mbochs.free_after({'l': 1, 'm': 1}, ['s', 'm', 'l']) == {
        's': 44, 'm': 11, 'l': 2}      # the kernel's 2/11/44
    assert pool_model.infer_single_pool({'a': 0}) is None


def test_known_pool_sizes_come_from_what_the_kernel_shows(tmp_path):
    host = simulated_host(tmp_path, 'kernel-samples')
    host.create_mdev('mbochs', 'mbochs-large', str(uuid.uuid4()))
    mbochs = host.discover().parent('mbochs')
    chosen, how = detect.choose_model(mbochs, vendor=nvidia_models.DETECTORS)
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
    models = {p.name: detect.choose_model(
        p, vendor=nvidia_models.DETECTORS)[0] for p in first.parents}
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
    mtty = pool_model.Pool({'ports': 24}, {'mtty-1': {'ports': 1},
                                           'mtty-2': {'ports': 2}})
    got = model_base.offers(mtty, existing={'mtty-2': 1},
                            pending={'mtty-1': 4},
                            available={'mtty-1': 22, 'mtty-2': 11})
    assert {t: o.free for t, o in got.items()} == {'mtty-1': 18,
                                                   'mtty-2': 9}
    assert model_base.disagreements(got) == []


def test_kernel_saying_less_wins_and_is_reported():
    mtty = pool_model.Pool({'ports': 24}, {'mtty-1': {'ports': 1},
                                           'mtty-2': {'ports': 2}})
    got = model_base.offers(mtty, {}, {'mtty-2': 1},
                            {'mtty-1': 20, 'mtty-2': 12})
    # Model: 24 and 12 now; the kernel shows 20 for mtty-1: 4 less.
    assert got['mtty-1'].free == 22 - 4
    assert got['mtty-2'].free == 11
    assert model_base.disagreements(got) == [('mtty-1', 24, 20)]


def test_unknown_costs_close_other_types_while_claims_are_pending():
    unknown = pool_model.Pool({}, {})
    idle = model_base.offers(unknown, {}, {}, {'a': 3, 'b': 5})
    assert {t: o.free for t, o in idle.items()} == {'a': 3, 'b': 5}
    busy = model_base.offers(unknown, {}, {'a': 1}, {'a': 3, 'b': 5})
    assert {t: o.free for t, o in busy.items()} == {'a': 0, 'b': 0}


def test_independent_trusts_the_kernel_per_type():
    got = model_base.offers(independent.Independent(), {'a': 1}, {'a': 2},
                            {'a': 3, 'b': 5})
    assert {t: o.free for t, o in got.items()} == {'a': 1, 'b': 5}


def test_choose_model_detection_and_override(tmp_path):
    demo = discovered.group_virtual_functions(
        simulated_host(tmp_path, 'demo-host').discover())
    kinds = {p.name: detect.choose_model(
        p, vendor=nvidia_models.DETECTORS)[0].kind for p in demo.parents}
    assert kinds == {'mtty': 'pool', 'mbochs': 'pool', 'mdpy': 'pool',
                     '0000:84:00.0': 'exclusive'}
    assert detect.choose_model(
        demo.parent('mtty'), 'independent',
        vendor=nvidia_models.DETECTORS)[0].kind == 'independent'
    a40 = discovered.group_virtual_functions(
        simulated_host(tmp_path / 'a40', 'nvidia-a40-sriov').discover())
    [gpu] = a40.parents
    assert len(gpu.members) == 32
    chosen = detect.choose_model(gpu, vendor=nvidia_models.DETECTORS)[0]
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
    alone = detect.choose_model(busy, vendor=nvidia_models.DETECTORS)[0]
    remembered = detect.choose_model(
        busy, empty_seen=empty_seen, vendor=nvidia_models.DETECTORS)[0]
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
    from vgpu_placement.conf import type_config
    from vgpu_placement.placement import provider_tree
    parent = discovered.ParentDevice('0000:84:00.0', tuple(types), ())
    sane = discovered.ParentDevice('mtty', (
        discovered.MdevType('mtty-1', 'x', '', 'vfio-pci', 24),
        discovered.MdevType('mtty-2', 'x', '', 'vfio-pci', 12)), ())
    snapshot = discovered.HostSnapshot((parent, sane))
    policies = type_config.load_policies(make_conf(), snapshot)
    tree = provider_tree.build_tree('h', snapshot, policies,
                                    detectors=nvidia_models.DETECTORS)
    assert {c.device for c in tree.children} == {parent.name, 'mtty'}
    for child in tree.children:
        for rc, inv in child.inventories({}).items():
            assert all(0 <= v <= model_base.PLACEMENT_INT_MAX for v in (
                inv.total, inv.reserved, inv.max_unit or 0)), (rc, inv)


# -- mixed-size mode: claims of different sizes between two reports ---------

def _mixed(shapes, mdevs=(), slots=None):
    """A Mixed model of hand-built shapes {type: (size, ids)} with vGPUs
    [(type, placement id)] made already."""
    occupied, existing = 0, {}
    for type_id, at in mdevs:
        occupied |= nv_mixed.placement_mask(at, shapes[type_id][0])
        existing[type_id] = existing.get(type_id, 0) + 1
    region = max(i + s for s, ids in shapes.values() for i in ids)
    return nv_mixed.Mixed({'framebuffer': region}, {
        t: {'framebuffer': s} for t, (s, _ids) in shapes.items()},
        shapes=shapes, occupied=occupied, existing=existing, slots=slots)


def _burst_figures(model, pending, slots):
    """(offered alone, free VFs, the framebuffer counter's plain free)."""
    consumed = {t: model.existing.get(t, 0) + pending.get(t, 0)
                for t in model.shapes}
    offered = model.free_after(consumed, sorted(model.shapes))
    used = sum(model.shapes[t][0] * n for t, n in consumed.items())
    vfs = None if slots is None else slots - sum(consumed.values())
    return offered, vfs, model.pools['framebuffer'] - used


def _fits(model, pending, x):
    order = sorted(model.shapes)
    return nv_mixed.fits_in_every_order(
        model.occupied, tuple(model.shapes[t] for t in order),
        tuple(pending.get(t, 0) + x.get(t, 0) for t in order), {},
        [10 ** 6])


def _grantable(model, offered, vfs, units):
    """Every x Placement grants between two reports: x[t] <= offered[t],
    sum(x) <= vfs, sum(size * x) <= units (each class checked alone)."""
    order = sorted(model.shapes)

    def grow(i, x, weight, count):
        if i == len(order):
            yield dict(x), weight
            return
        t = order[i]
        size, n = model.shapes[t][0], 0
        while n <= offered[t] and weight + size * n <= units and (
                vfs is None or count + n <= vfs):
            x[t] = n
            yield from grow(i + 1, x, weight + size * n, count + n)
            n += 1
        x.pop(t, None)
    return grow(0, {}, 0, 0)


def test_two_sizes_that_each_fit_alone_but_not_together_are_not_granted():
    """Four slots; the big type sits at 0 or 2, the small one only at 1.
    Either fits alone; made big first, the small one finds slot 1 taken.
    """
    model = _mixed({'big': (2, (0, 2)), 'small': (1, (1,))})
    offered, vfs, units = _burst_figures(model, {}, None)
    assert (offered, units) == ({'big': 2, 'small': 1}, 4)
    assert not _fits(model, {}, {'big': 1, 'small': 1})
    budget = nv_mixed.mixed_burst_budget(model, {}, offered, vfs, units)
    # The failing pair weighs 3: it is left out, and no more than it.
    assert budget < 2 + 1
    assert [x for x, w in _grantable(model, offered, vfs, budget)
            if not _fits(model, {}, x)] == []
    one_below = [x for x, w in _grantable(model, offered, vfs, budget)
                 if w == 2 + 1 - 1]
    assert one_below and all(_fits(model, {}, x) for x in one_below)


def _random_shapes(rng):
    """3 or 4 types on an eight-slot GPU: sizes 1-4, random placements."""
    shapes = {}
    for n in range(rng.randint(3, 4)):
        size = rng.choice((1, 2, 3, 4))
        ids = sorted(rng.sample(range(8 - size + 1),
                                rng.randint(1, 8 - size + 1)))
        shapes['t%d' % n] = (size, tuple(ids))
    return shapes


def test_mixed_burst_budget_is_the_least_failing_weight_less_one():
    """Random small GPUs (eight slots), a vGPU and a pending claim, against
    brute force: every grantable x fits, and B is the largest figure for
    which that holds (an x weighing B + 1 that does not fit is grantable
    without it)."""
    lowered = 0
    for seed in range(24):
        rng = random.Random('mixed-burst:%d' % seed)
        shapes = _random_shapes(rng)
        made = []
        t = rng.choice(sorted(shapes))
        at = nv_mixed.first_fit(shapes[t][1], shapes[t][0], 0)
        if rng.random() < 0.5 and at is not None:
            made.append((t, at))
        model = _mixed(shapes, made)
        t = rng.choice(sorted(shapes))
        pending = {t: 1} if _fits(model, {t: 1}, {}) else {}
        slots = rng.choice((None, 4))
        offered, vfs, units = _burst_figures(model, pending, slots)
        units = max(0, units)
        budget = nv_mixed.mixed_burst_budget(model, pending, offered, vfs,
                                             units)
        grantable = list(_grantable(model, offered, vfs, units))
        failing = [w for x, w in grantable if not _fits(model, pending, x)]
        assert budget == (min(failing) - 1 if failing else units), seed
        assert all(_fits(model, pending, x) for x, w in grantable
                   if w <= budget), seed
        lowered += budget < units
    assert lowered >= 6         # the cases exercise the budget


def test_mixed_burst_budget_on_the_l40s_profile_and_out_of_states():
    """The L40S-like card: two 16Q and a 1B each fit alone, not together
    (the 1B made first takes slot 0, the 16Qs then need 0 and 32). With
    too few states to search, the budget is smaller, never larger."""
    [spec], _ = sim_profile.load_profile(
        'etc/vgpu-placement/profiles/nvidia-l40s-vfio-mixed.yaml')
    model = _mixed({t.id: (t.placement_size, t.placement_ids)
                    for t in spec.types}, slots=spec.vfs)
    offered, vfs, units = _burst_figures(model, {}, spec.vfs)
    q16, b1, q48 = 'nvidia-1154', 'nvidia-1145', 'nvidia-1156'
    assert offered[q16] == 2 and offered[b1] >= 1 and offered[q48] == 1
    assert not _fits(model, {}, {q16: 2, b1: 1})
    exact = nv_mixed.mixed_burst_budget(model, {}, offered, vfs, units)
    assert exact < 2 * 16 + 1 <= units
    for states in (1, 10, 100, 1000):
        assert 0 <= nv_mixed.mixed_burst_budget(
            model, {}, offered, vfs, units, budget=states) <= exact
    # That budget alone would close the 48Q, which fits on the empty GPU:
    # the limits cap the count instead, as far as keeps it open.
    assert exact < 48
    fb, count = nv_mixed.mixed_burst_limits(model, {}, offered, vfs, units)
    assert fb >= 48 and 1 <= count < vfs
    assert nv_mixed.mixed_burst_budget(model, {}, offered, count + 1,
                                       units) < 48


def test_mixed_burst_limits_keep_every_type_open_and_every_mix_safe():
    """Random small GPUs with four virtual functions, against brute force:
    every x within both limits fits; each type offered alone stays within
    them; one more vGPU in the cap would close the costliest one."""
    capped = 0
    for seed in range(24):
        rng = random.Random('mixed-limits:%d' % seed)
        shapes = _random_shapes(rng)
        model = _mixed(shapes, slots=4)
        offered, vfs, units = _burst_figures(model, {}, 4)
        fb, count = nv_mixed.mixed_burst_limits(model, {}, offered, vfs,
                                                units)
        assert all(_fits(model, {}, x)
                   for x, w in _grantable(model, offered, count, fb)), seed
        need = max(shapes[t][0] for t, n in offered.items() if n)
        assert fb >= need and count >= 1, seed
        if count < vfs:
            capped += 1
            assert nv_mixed.mixed_burst_budget(
                model, {}, offered, count + 1, units) < need, seed
    assert capped >= 3          # the cases exercise the cap


def _nvidia_gpu(names, available, mdevs=()):
    """A GPU of NVIDIA types known by name only (no description)."""
    types = tuple(discovered.MdevType('nvidia-%d' % (i + 1), name, '',
                                      'vfio-pci', n)
                  for i, (name, n) in enumerate(zip(names, available)))
    return discovered.ParentDevice('0000:84:00.0', types, tuple(
        discovered.Mdev(str(uuid.UUID(int=i + 1)), t, '0000:84:00.0')
        for i, t in enumerate(mdevs)))


def test_nvidia_types_without_descriptions_keep_the_equal_size_rule():
    """Under driver = libvirt without [sysfs] descriptions: a T4 holding
    one 2Q, where the kernel lists every size with its count now. The
    sizes come from the names, the maxima from the T4's 16 GB."""
    gpu = _nvidia_gpu(['GRID T4-2Q', 'GRID T4-4Q', 'GRID T4-8Q'], [7, 0, 0],
                      mdevs=['nvidia-1'])
    model, how = detect.choose_model(gpu, vendor=nvidia_models.DETECTORS)
    assert isinstance(model, exclusive.Exclusive), how
    assert model.maxima == {'nvidia-1': 8, 'nvidia-2': 4, 'nvidia-3': 2}
    # One 2Q exists: 4Q and 8Q stay closed, 2Q takes 7 more.
    assert model.free_after({'nvidia-1': 1}, ['nvidia-1', 'nvidia-2',
                                              'nvidia-3']) == {
        'nvidia-1': 7, 'nvidia-2': 0, 'nvidia-3': 0}


def test_nvidia_types_of_an_unknown_board_are_never_a_pool_that_mixes():
    gpu = _nvidia_gpu(['NVIDIA X9-2Q', 'NVIDIA X9-4Q'], [8, 4])
    model, how = detect.choose_model(gpu, vendor=nvidia_models.DETECTORS)
    assert (model.pools, model.costs) == ({}, {}), how
    offers = model_base.offers(model, {}, {'nvidia-2': 1},
                               {'nvidia-1': 8, 'nvidia-2': 4})
    # A 4Q granted and not made yet closes every type, 2Q included.
    assert {t: o.free for t, o in offers.items()} == {'nvidia-1': 0,
                                                      'nvidia-2': 0}
