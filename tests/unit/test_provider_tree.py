import uuid

import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement.drivers import sysfs
from vgpu_placement import provider_tree
from vgpu_placement import type_config


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
        'cn1', snap, type_config.load_policies(conf, snap), owned=owned)


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
        'cn1', snap, type_config.load_policies(conf, snap))
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
    from vgpu_placement import discovered
    from vgpu_placement.drivers import simulated
    conf = make_conf(driver='simulated', simulated__profile=profile,
                     state_path=str(tmp_path))
    snap = discovered.group_virtual_functions(
        simulated.SimulatedDriver(conf).discover())
    [child] = provider_tree.build_tree(
        'cn1', snap, type_config.load_policies(conf, snap)).children
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
    from vgpu_placement import capacity
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
    limits = capacity.mixed_burst_limits(
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
