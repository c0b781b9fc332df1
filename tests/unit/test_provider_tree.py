import uuid

import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement.conf import type_config
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement.placement import provider_tree


@pytest.mark.parametrize('device,name', [
    ('0000:84:00.0', 'cn1_pci_0000_84_00_0'),
    ('0000:00:02.0', 'cn1_pci_0000_00_02_0'),
    ('mtty', 'cn1_mtty_mtty')])
def test_provider_names_follow_nova(device, name):
    assert provider_tree.provider_name('cn1', device) == name


def build(tmp_path, tree_setup, owned_all=True, **options):
    """(snapshot, desired tree); owned_all: every mdev is one of ours
    (realizes a claim), else none is."""
    tree = sysfs_tree.kernel_samples(tmp_path)
    tree_setup(tree)
    conf = make_conf(sysfs__root=str(tmp_path), **options)
    snap = sysfs.SysfsDriver(conf).discover()
    owned = frozenset(m.uuid for m in snap.mdevs()) if owned_all else \
        frozenset()
    return snap, provider_tree.build_tree(
        'cn1', snap, type_config.load_policies(conf, snap), owned=owned,
        detectors=nvidia_models.DETECTORS)


def test_total_is_existing_plus_available(tmp_path):
    def setup(tree):
        for _ in range(2):
            tree.add_mdev('mtty', 'mtty-2', str(uuid.uuid4()))
        tree.set_available('mtty', 'mtty-2', 10)
        tree.set_available('mtty', 'mtty-1', 20)
    snap, tree = build(tmp_path, setup)
    for parent in snap.parents:
        child = tree.child(provider_tree.provider_name('cn1', parent.name))
        # Every mdev backs an allocation: nothing needs reserving.
        usages = {type_config.default_class(t.id): parent.count_mdevs(t.id)
                  for t in parent.types}
        for t in parent.types:
            inv = child.inventories(usages)[type_config.default_class(t.id)]
            expected = parent.count_mdevs(t.id) + t.available_instances
            assert inv.as_dict() == {
                'total': expected, 'reserved': 0, 'min_unit': 1,
                'max_unit': expected, 'step_size': 1,
                'allocation_ratio': 1.0}


def test_an_mdev_not_ours_is_never_taken_for_a_granted_claim(tmp_path):
    """The same usages, but the mdevs are someone else's: each granted
    claim is still to be made, besides the mdevs that exist."""
    def setup(tree):
        for _ in range(2):
            tree.add_mdev('mtty', 'mtty-2', str(uuid.uuid4()))
        tree.set_available('mtty', 'mtty-2', 10)    # as the kernel says
        tree.set_available('mtty', 'mtty-1', 20)
    snap, ours = build(tmp_path, setup)
    _snap, theirs = build(tmp_path / 'again', setup, owned_all=False)
    usages = {'CUSTOM_MDEV_MTTY_2': 2, 'CUSTOM_VGPU_UNITS_MTTY': 4}
    mtty = provider_tree.provider_name('cn1', 'mtty')
    assert ours.child(mtty).plan.pending(usages) == {'mtty-1': 0,
                                                     'mtty-2': 0}
    assert theirs.child(mtty).plan.pending(usages) == {'mtty-1': 0,
                                                       'mtty-2': 2}
    # 24 ports: 4 taken by the mdevs; 4 more by the two claims when the
    # mdevs are not theirs.
    free = lambda tree: tree.child(mtty).plan.offers(usages)['mtty-1'].free
    assert (free(ours), free(theirs)) == (20, 16)


def test_a_type_with_nothing_left_stays_closed_at_its_empty_size(tmp_path):
    def setup(tree):
        for _ in range(4):
            tree.add_mdev('mdpy', 'mdpy-vga', str(uuid.uuid4()))
        for t in ('mdpy-vga', 'mdpy-xga', 'mdpy-hd'):
            tree.set_available('mdpy', t, 0)
    _snap, tree = build(tmp_path, setup)
    inv = tree.child('cn1_mdpy_mdpy').inventories({})
    # mdpy's counter of 4 is taken: hd is closed (reserved == total).
    assert (inv['CUSTOM_MDEV_MDPY_HD'].total,
            inv['CUSTOM_MDEV_MDPY_HD'].reserved) == (4, 4)
    assert inv['CUSTOM_MDEV_MDPY_VGA'].total == 4


def test_disabled_types_and_parents_are_left_out(tmp_path):
    _snap, tree = build(tmp_path, lambda t: None,
                        devices__enabled_mdev_types=['mtty-2'])
    assert [c.name for c in tree.children] == ['cn1_mtty_mtty']
    assert sorted(tree.child('cn1_mtty_mtty').inventories({})) == [
        'CUSTOM_VGPU_UNITS_MTTY', 'VGPU']


def test_max_instances_caps_the_host_and_never_below_existing(tmp_path):
    def setup(tree):
        tree.add_parent('0000:84:00.4', {'nvidia-558': dict(available=0)})
        tree.add_mdev('0000:84:00.4', 'nvidia-558', str(uuid.uuid4()))
        for vf in range(5, 8):
            tree.add_parent('0000:84:00.%d' % vf,
                            {'nvidia-558': dict(available=1)})
    conf_text = '[devices]\nenabled_mdev_types = nvidia-558\n' \
                '[mdev_nvidia-558]\nmax_instances = 2\n'
    tree = sysfs_tree.kernel_samples(tmp_path)
    setup(tree)
    conf = make_conf(conf_text, sysfs__root=str(tmp_path))
    snap = sysfs.SysfsDriver(conf).discover()
    got = provider_tree.build_tree(
        'cn1', snap, type_config.load_policies(conf, snap),
        detectors=nvidia_models.DETECTORS)
    totals = {c.device: c.inventories({}).get('VGPU')
              for c in got.children}
    assert sum(i.total for i in totals.values() if i) == 2
    assert totals['0000:84:00.4'].total == 1     # its existing mdev


def test_keep_in_use_closes_classes_the_host_no_longer_offers():
    kept = provider_tree.keep_in_use(
        {'CUSTOM_A': provider_tree.Inventory(total=4, max_unit=4)},
        {'CUSTOM_A': 1, 'CUSTOM_B': 2, 'CUSTOM_C': 0},
        {'CUSTOM_B': {'total': 8}})
    assert kept['CUSTOM_A'].total == 4 and kept['CUSTOM_A'].reserved == 0
    assert (kept['CUSTOM_B'].total, kept['CUSTOM_B'].reserved) == (8, 8)
    assert 'CUSTOM_C' not in kept


def test_mdevs_nobody_claimed_are_reserved(tmp_path):
    def setup(tree):
        tree.add_mdev('mtty', 'mtty-2', str(uuid.uuid4()))
        tree.set_available('mtty', 'mtty-2', 11)
        tree.set_available('mtty', 'mtty-1', 22)
    _snap, tree = build(tmp_path, setup)
    inv = tree.child('cn1_mtty_mtty').inventories({})
    assert (inv['CUSTOM_MDEV_MTTY_2'].total,
            inv['CUSTOM_MDEV_MTTY_2'].reserved) == (12, 1)
    assert inv['CUSTOM_VGPU_UNITS_MTTY'].reserved == 2     # its two ports


def _vfio_tree(tmp_path, profile):
    from vgpu_placement.drivers.simulated import driver as simulated
    from vgpu_placement.model import discovered
    conf = make_conf(driver='simulated', simulated__profile=profile,
                     state_path=str(tmp_path))
    snap = discovered.group_virtual_functions(
        simulated.SimulatedDriver(conf).discover())
    [child] = provider_tree.build_tree(
        'cn1', snap, type_config.load_policies(conf, snap),
        detectors=nvidia_models.DETECTORS).children
    return child


def _free(inventories, usages):
    return {rc: inv.total - inv.reserved - usages.get(rc, 0)
            for rc, inv in inventories.items()}


@pytest.mark.parametrize('granted', [{}, {'nvidia-1154': 1},
                                     {'nvidia-1145': 2, 'nvidia-1152': 1}])
def test_mixed_size_counters_offer_the_burst_limits(
        tmp_path, granted):
    """Mixed-size GPU: the framebuffer and VF counters' free are the
    limits that keep any mix of claims granted before the next report
    creatable, below the plain free (48 slots, 32 VFs, less what is
    granted)."""
    from vgpu_placement.drivers.nvidia import mixed as nv_mixed
    child = _vfio_tree(tmp_path, 'nvidia-l40s-vfio-mixed')
    plan = child.plan
    [fb] = [c for c in plan.counters if c.pool == 'framebuffer']
    [vf] = [c for c in plan.counters if c.pool == 'slots']
    usages = {plan.classes[t]: n for t, n in granted.items()}
    usages[fb.resource_class] = sum(fb.costs[t] * n
                                    for t, n in granted.items())
    usages[vf.resource_class] = sum(granted.values())
    free = _free(child.inventories(usages), usages)
    offered = {t: free[rc] for t, rc in plan.classes.items()}
    plain = (fb.size - usages[fb.resource_class],
             vf.size - usages[vf.resource_class])
    limits = nv_mixed.mixed_burst_limits(
        plan.model, plan.pending(usages), offered, plain[1], plain[0])
    got = (free[fb.resource_class], free[vf.resource_class])
    assert got == limits and got != plain
    assert all(got[0] >= fb.costs[t] for t, n in offered.items() if n)
    # The types' own classes are as before: each offers what fits alone.
    assert offered == {t: o.free for t, o in plan.offers(usages).items()
                       if t in plan.classes}


def test_equal_size_counters_are_unchanged(tmp_path):
    child = _vfio_tree(tmp_path, 'nvidia-l40s-vfio')
    inventories = child.inventories({})
    assert {c.pool: (inventories[c.resource_class].total,
                     inventories[c.resource_class].reserved)
            for c in child.plan.counters} == {
        c.pool: (c.size, 0) for c in child.plan.counters}


# -- claims that pay their counters: Placement's accounting carries them ----

def _paid(plan, granted):
    """Usages of ``granted`` ({type: n}) claimed as flavor-spec asks."""
    usages = {}
    for type_id, n in granted.items():
        for rc, amount in plan.request(type_id).items():
            usages[rc] = usages.get(rc, 0) + amount * n
    return usages


def _mtty_plan(tmp_path, ours, theirs=0, **options):
    """The mtty child with ``ours`` mtty-2 mdevs in the ledger and
    ``theirs`` mtty-2 of another owner, as the kernel shows them."""
    def setup(tree):
        for i in range(ours + theirs):
            tree.add_mdev('mtty', 'mtty-2', str(uuid.UUID(int=i + 1)))
        tree.set_available('mtty', 'mtty-2', 12 - ours - theirs)
        tree.set_available('mtty', 'mtty-1', 24 - 2 * (ours + theirs))
    tree = sysfs_tree.kernel_samples(tmp_path)
    setup(tree)
    conf = make_conf(sysfs__root=str(tmp_path), **options)
    snap = sysfs.SysfsDriver(conf).discover()
    owned = frozenset(str(uuid.UUID(int=i + 1)) for i in range(ours))
    desired = provider_tree.build_tree(
        'cn1', snap, type_config.load_policies(conf, snap), owned=owned,
        claims_pay=conf.capacity.claims_pay_counters)
    return desired.child('cn1_mtty_mtty').plan


@pytest.mark.parametrize('ours,pending', [(0, 0), (0, 3), (3, 0), (2, 4),
                                          (12, 0)])
def test_paid_claims_change_no_inventory(tmp_path, ours, pending):
    """Granting, realizing or releasing claims that pay their counters
    leaves every inventory as on the empty parent; what a flavor can
    still get is Placement's arithmetic on the usages alone."""
    empty = _mtty_plan(tmp_path / 'empty', 0)
    plan = _mtty_plan(tmp_path / 'now', ours)
    usages = _paid(plan, {'mtty-2': ours + pending})
    assert plan.carried(usages)
    assert plan.inventories(usages) == empty.inventories({})
    held = 2 * (ours + pending)
    as_placement = {rc: inv.as_dict()
                    for rc, inv in plan.inventories(usages).items()}
    assert provider_tree.grantable(
        as_placement, usages, plan.request('mtty-1')) == 24 - held
    assert provider_tree.grantable(
        as_placement, usages, plan.request('mtty-2')) == (24 - held) // 2


def test_another_owners_mdevs_are_reserved_in_type_and_counter(tmp_path):
    plan = _mtty_plan(tmp_path, ours=1, theirs=2)
    usages = _paid(plan, {'mtty-2': 1})
    inv = plan.inventories(usages)
    assert (inv['CUSTOM_MDEV_MTTY_2'].total,
            inv['CUSTOM_MDEV_MTTY_2'].reserved) == (12, 2)
    assert inv['CUSTOM_VGPU_UNITS_MTTY'].reserved == 4      # their ports
    as_placement = {rc: i.as_dict() for rc, i in inv.items()}
    # 24 ports: 4 theirs, 2 ours: 18 left.
    assert provider_tree.grantable(
        as_placement, usages, plan.request('mtty-1')) == 18


def test_an_mdev_of_ours_whose_claim_is_gone_is_reserved(tmp_path):
    """A release that drops the allocation before the mdev goes: the mdev
    still takes its ports, which no allocation accounts for."""
    plan = _mtty_plan(tmp_path, ours=2)
    usages = _paid(plan, {'mtty-2': 1})
    assert plan.inventories(usages)['CUSTOM_VGPU_UNITS_MTTY'].reserved == 2


def test_a_claim_that_did_not_pay_makes_the_parent_track_claims(tmp_path):
    plan = _mtty_plan(tmp_path, ours=0)
    usages = dict(_paid(plan, {'mtty-2': 2}), CUSTOM_MDEV_MTTY_1=1)
    assert plan.unpaid(usages) == {'CUSTOM_VGPU_UNITS_MTTY': 1}
    assert not plan.carried(usages)
    assert plan.inventories(usages) == plan.tracking_inventories(usages)
    # mtty-2 may get 9 more: 24 ports less 4 paid and 1 owed, halved.
    inv = plan.inventories(usages)['CUSTOM_MDEV_MTTY_2']
    assert inv.total - inv.reserved - usages['CUSTOM_MDEV_MTTY_2'] == 9


def test_claims_pay_counters_off_tracks_every_claim(tmp_path):
    plan = _mtty_plan(tmp_path, ours=0,
                      capacity__claims_pay_counters=False)
    usages = _paid(plan, {'mtty-2': 2})
    assert not plan.carried(usages)
    assert plan.inventories(usages)['CUSTOM_MDEV_MTTY_1'].reserved == 4


def _t4_plan(tmp_path, mdevs=()):
    """A T4-like GPU (equal-size rule) with ``mdevs`` [(type, ours?)]."""
    from vgpu_placement.drivers.simulated import driver as simulated
    from vgpu_placement.model import discovered
    conf = make_conf(driver='simulated', simulated__profile='nvidia-t4',
                     state_path=str(tmp_path))
    driver = simulated.SimulatedDriver(conf)
    parent = driver.discover().parents[0].name
    owned = set()
    for i, (type_id, ours) in enumerate(mdevs):
        mdev = str(uuid.UUID(int=i + 1))
        driver.create_mdev(parent, type_id, mdev)
        if ours:
            owned.add(mdev)
    snap = discovered.group_virtual_functions(driver.discover())
    desired = provider_tree.build_tree(
        'cn1', snap, type_config.load_policies(conf, snap),
        owned=frozenset(owned), detectors=nvidia_models.DETECTORS)
    return next(c for c in desired.children if c.device == parent).plan


def test_equal_size_gpu_writes_only_at_its_first_and_last_size(tmp_path):
    plan = _t4_plan(tmp_path / 'empty')
    sizes = plan.model.sizes
    small = min(plan.classes, key=lambda t: sizes[t])
    large = max(plan.classes, key=lambda t: sizes[t])
    empty = plan.inventories({})
    # The first claim of a size closes every other size ...
    one = plan.inventories(_paid(plan, {small: 1}))
    assert one[plan.classes[large]].reserved == one[
        plan.classes[large]].total
    assert one[plan.classes[small]] == empty[plan.classes[small]]
    # ... and more of that size, granted or made, change nothing more.
    two = _t4_plan(tmp_path / 'two', [(small, True)] * 2)
    for n in (2, 3):
        assert two.inventories(_paid(two, {small: n})) == one
    # With none of it left, every size is open again.
    assert plan.inventories(_paid(plan, {})) == empty


def test_claims_whose_mdev_was_freed_keep_no_size_closed(tmp_path):
    """Nova reports after a server's mdevs are freed and before its
    allocations go: those claims wait for nothing, so the last vGPU of a
    size leaving reopens the other sizes in that very report."""
    import dataclasses
    plan = _t4_plan(tmp_path)
    sizes = plan.model.sizes
    small = min(plan.classes, key=lambda t: sizes[t])
    large = max(plan.classes, key=lambda t: sizes[t])
    usages = _paid(plan, {small: 2})
    closed = plan.inventories(usages)[plan.classes[large]]
    assert closed.reserved == closed.total
    one_freed = dataclasses.replace(plan, freed={small: 1})
    assert one_freed.inventories(usages) == plan.inventories(usages)
    both_freed = dataclasses.replace(plan, freed={small: 2})
    assert both_freed.inventories(usages) == plan.inventories({})


@pytest.mark.parametrize('usages, retired_for, delete_after, action', [
    ({'VGPU': 1}, 10 ** 6, 0, provider_tree.KEEP_CLOSED),   # in use
    ({'VGPU': 0}, 10 ** 6, None, provider_tree.KEEP_CLOSED),  # never
    ({}, 59, 60, provider_tree.KEEP_CLOSED),                # not yet
    ({}, 60, 60, provider_tree.DELETE),
    ({'VGPU': 0}, 0, 0, provider_tree.DELETE),              # at once
])
def test_a_retired_provider_is_deleted_only_unused_and_old_enough(
        usages, retired_for, delete_after, action):
    assert provider_tree.retire_action(usages, retired_for,
                                       delete_after) == action
