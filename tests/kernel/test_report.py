"""Reports to the embedded Placement follow the real kernel's numbers."""
import uuid

from tests.kernel.conftest import count_step
from tests.kernel.conftest import kernel_view
from tests.kernel.conftest import resource_class
from tests.kernel.conftest import type_totals
from vgpu_placement.placement import provider_tree
from vgpu_placement.service import standalone

CREATES = (('mtty', 'mtty-2'), ('mtty', 'mtty-1'), ('mtty', 'mtty-1'),
           ('mbochs', 'mbochs-large'), ('mbochs', 'mbochs-small'),
           ('mdpy', 'mdpy-hd'), ('mdpy', 'mdpy-vga'))


def test_inventories_match_existing_plus_available(
        reporter, driver, host, check_inventories, kconf):
    first = reporter.report()
    assert {c.action for c in first.changes} == {'create'}
    at_rest = check_inventories()
    assert sorted(at_rest) == ['%s_mbochs_mbochs' % host,
                               '%s_mdpy_mdpy' % host, '%s_mtty_mtty' % host]
    # At rest every type is there, at what the kernel offers.
    view = kernel_view()
    for parent, types in view['available'].items():
        assert at_rest[provider_tree.provider_name(host, parent)] == {
            resource_class(t): n for t, n in types.items()}

    for parent, type_id in CREATES:
        driver.create_mdev(parent, type_id, str(uuid.uuid4()))
        count_step()
    second = reporter.report()
    assert {c.action for c in second.changes} == {'inventories'}
    after = check_inventories()
    # Types share their parent's pool (mtty ports, mbochs memory, mdpy's
    # one counter): a create of one type lowers the others' totals.
    assert after['%s_mdpy_mdpy' % host] == {
        'CUSTOM_MDEV_MDPY_HD': 1 + 2, 'CUSTOM_MDEV_MDPY_VGA': 1 + 2,
        'CUSTOM_MDEV_MDPY_XGA': 0 + 2}
    assert after['%s_mtty_mtty' % host] == {
        'CUSTOM_MDEV_MTTY_1': 2 + 20, 'CUSTOM_MDEV_MTTY_2': 1 + 10}

    # The Reporter's own view of Placement agrees.
    seen = type_totals({name: p['inventories']
                        for name, p in reporter.placement_view(refresh=True)})
    assert seen == after

    again = reporter.report()
    assert again.changes == []
    assert again.requests.writes == 0
    # A new process (a new Reporter reading the cache file) writes nothing.
    fresh = standalone.reporter_for(kconf).report()
    assert fresh.changes == [] and fresh.requests.writes == 0
    count_step(2)


def test_a_type_with_nothing_left_offers_nothing_then_reopens(
        reporter, driver, host, check_inventories):
    reporter.report()
    made = []
    while int(open('/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/'
                   'available_instances').read()):
        made.append(str(uuid.uuid4()))
        driver.create_mdev('mtty', 'mtty-1', made[-1])
        count_step()
    assert len(made) == 24          # 24 ports, one each
    reporter.report()
    inventories = check_inventories()
    # mtty-2: no mdev and nothing available: total 0, which the check
    # above accepts only as no inventory or a closed one.
    assert inventories['%s_mtty_mtty' % host] == {'CUSTOM_MDEV_MTTY_1': 24}

    for u in made:
        driver.remove_mdev(u)
        count_step()
    reporter.report()
    assert check_inventories()['%s_mtty_mtty' % host] == {
        'CUSTOM_MDEV_MTTY_1': 24, 'CUSTOM_MDEV_MTTY_2': 12}
    assert reporter.report().requests.writes == 0
