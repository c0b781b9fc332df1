"""Unloading and loading a sample driver: a reboot of one parent device."""
import os
import uuid

from tests.kernel.conftest import BUS
from tests.kernel.conftest import count_step
from tests.kernel.conftest import kernel_view
from tests.kernel import kmod


def test_rmmod_takes_the_parent_and_its_mdevs_insmod_brings_it_back(
        driver, reporter, host, check_inventories):
    at_rest = kernel_view()['available']
    for type_id in ('mtty-2', 'mtty-2', 'mtty-1'):
        driver.create_mdev('mtty', type_id, str(uuid.uuid4()))
    kept = str(uuid.uuid4())
    driver.create_mdev('mbochs', 'mbochs-small', kept)
    reporter.report()
    check_inventories()

    kmod.rmmod('mtty')
    assert 'mtty' not in os.listdir(BUS)
    assert kernel_view()['mdevs'] == {kept: ('mbochs', 'mbochs-small')}
    assert driver.discover().parent('mtty') is None
    result = reporter.report()
    # Retired, not deleted: nova-compute may have it cached.
    assert [(c.action, c.provider) for c in result.changes] == [
        ('inventories', '%s_mtty_mtty' % host),
        ('traits', '%s_mtty_mtty' % host)]
    assert '%s_mtty_mtty' % host not in check_inventories()

    kmod.insmod('mtty')
    assert kernel_view()['available']['mtty'] == at_rest['mtty']
    result = reporter.report()
    assert [(c.action, c.provider) for c in result.changes] == [
        ('inventories', '%s_mtty_mtty' % host),
        ('traits', '%s_mtty_mtty' % host)]
    check_inventories()
    count_step(4)


def test_module_parameter_sets_what_the_kernel_offers(driver, reporter,
                                                      host,
                                                      check_inventories):
    """mdpy count=2: the driver and the report follow the kernel's files."""
    reporter.report()
    try:
        kmod.rmmod('mdpy')
        kmod.insmod('mdpy', 'count=2')
        mdpy = kernel_view()['available']['mdpy']
        assert set(mdpy.values()) == {2}
        parent = driver.discover().parent('mdpy')
        assert {t.id: t.available_instances for t in parent.types} == mdpy
        reporter.report()
        assert check_inventories()['%s_mdpy_mdpy' % host] == {
            'CUSTOM_MDEV_MDPY_HD': 2, 'CUSTOM_MDEV_MDPY_VGA': 2,
            'CUSTOM_MDEV_MDPY_XGA': 2}
        count_step(2)
    finally:
        kmod.rmmod('mdpy')
        kmod.insmod('mdpy')
    assert set(kernel_view()['available']['mdpy'].values()) == {4}
