"""mdevs the project did not make (written by hand to a create file)."""
import os
import uuid

from tests.kernel.conftest import available
from tests.kernel.conftest import count_step
from tests.kernel.conftest import create_file
from tests.kernel.conftest import DEVICES
from tests.kernel.conftest import kernel_view
from tests.kernel.conftest import write_once
from vgpu_placement.model import discovered
from vgpu_placement.service import standalone


def test_foreign_mdev_is_listed_and_counted(driver, reporter, host,
                                            check_inventories):
    reporter.report()
    before = check_inventories()
    u = str(uuid.uuid4())
    write_once(create_file('mbochs', 'mbochs-medium'), u + '\n')
    assert discovered.Mdev(u, 'mbochs-medium', 'mbochs') in \
        driver.discover().mdevs()

    result = reporter.report()
    assert [c.action for c in result.changes] == ['inventories']
    after = check_inventories()
    mbochs = '%s_mbochs_mbochs' % host
    assert after[mbochs]['CUSTOM_MDEV_MBOCHS_MEDIUM'] == \
        1 + available('mbochs', 'mbochs-medium')
    assert after[mbochs] != before[mbochs]      # its memory is taken
    # Reporting never touches it; the driver can remove it.
    assert os.path.isdir(os.path.join(DEVICES, u))
    driver.remove_mdev(u)
    assert kernel_view()['mdevs'] == {}
    count_step(3)


def test_foreign_mdevs_in_odd_spellings_are_listed_canonically(
        driver, reporter, check_inventories):
    """The kernel takes upper case and a 37th byte; it names the device
    by the lower-case UUID, and so does the driver."""
    upper = str(uuid.uuid4()).upper()
    tail = str(uuid.uuid4())
    write_once(create_file('mtty', 'mtty-2'), upper)
    write_once(create_file('mdpy', 'mdpy-hd'), tail + 'Z')
    made = {upper.lower(): ('mtty', 'mtty-2'), tail: ('mdpy', 'mdpy-hd')}
    assert kernel_view()['mdevs'] == made
    assert {m.uuid: (m.parent, m.type_id)
            for m in driver.discover().mdevs()} == made
    reporter.report()
    check_inventories()
    count_step(3)


def test_claims_pending_beside_a_hand_made_mdev_all_realize(reporter):
    """A hand-made mtty-2 takes 2 of the 24 ports; mtty-1 and mtty-2 are
    claimed in turn (the host reporting between claims, realizing none)
    until both are refused. Placement must have granted no more than the
    kernel can create: every claim then realizes, none fails late."""
    from tests.kernel.test_realize import claim_here
    from tests.kernel.test_realize import spec
    from vgpu_placement.placement import scheduler
    foreign = str(uuid.uuid4())
    write_once(create_file('mtty', 'mtty-2'), foreign)
    ports = available('mtty', 'mtty-1')
    desired = reporter.report().desired
    granted, refused = [], set()
    while refused != {'mtty-1', 'mtty-2'}:
        for type_id in sorted({'mtty-1', 'mtty-2'} - refused):
            consumer = str(uuid.uuid4())
            try:
                claim_here(reporter, spec(desired, type_id), consumer)
            except scheduler.NoValidHost:
                refused.add(type_id)
                continue
            granted.append((consumer, type_id))
            desired = reporter.report().desired
    units = sum(2 if t == 'mtty-2' else 1 for _c, t in granted)
    assert units == ports
    count_step()
    h = standalone.manager_for(reporter)
    for consumer, _type_id in granted:
        h.realize(consumer)
    view = kernel_view()
    assert foreign in view['mdevs'] and len(view['mdevs']) == \
        len(granted) + 1
    assert available('mtty', 'mtty-1') == 0
    count_step()
