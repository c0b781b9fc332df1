"""mdevs the project did not make (written by hand to a create file)."""
import os
import uuid

from tests.kernel.conftest import DEVICES
from tests.kernel.conftest import available
from tests.kernel.conftest import count_step
from tests.kernel.conftest import create_file
from tests.kernel.conftest import kernel_view
from tests.kernel.conftest import write_once
from vgpu_placement import model


def test_foreign_mdev_is_listed_and_counted(driver, reporter, host,
                                            check_inventories):
    reporter.report()
    before = check_inventories()
    u = str(uuid.uuid4())
    write_once(create_file('mbochs', 'mbochs-medium'), u + '\n')
    assert model.Mdev(u, 'mbochs-medium', 'mbochs') in \
        driver.discover().mdevs()

    result = reporter.report()
    assert [c.action for c in result.changes] == ['inventories']
    after = check_inventories()
    mbochs = '%s_mbochs' % host
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
