"""Discovery on a real kernel: the driver reports what the kernel says."""
import os
import uuid

from tests.kernel.conftest import BUS
from tests.kernel.conftest import count_step
from tests.kernel.conftest import kernel_view
from tests.kernel.conftest import read
from tests.kernel.conftest import type_dir

# What the samples offer at rest with their default module parameters
# (doc/source/reference/kernel-mdev.rst, 'The kernel's sample drivers').
REFERENCE_AT_REST = {
    'mtty': {'mtty-1': 24, 'mtty-2': 12},
    'mbochs': {'mbochs-small': 64, 'mbochs-medium': 16, 'mbochs-large': 4},
    'mdpy': {'mdpy-vga': 4, 'mdpy-xga': 4, 'mdpy-hd': 4},
}


def optional(path):
    return read(path).strip() if os.path.exists(path) else None


def test_kernel_behaves_as_the_reference_says():
    """Hard-coded numbers on purpose: this is about the kernel (the figures
    of doc/source/reference/kernel-mdev.rst)."""
    view = kernel_view()
    assert view == {'available': REFERENCE_AT_REST, 'mdevs': {}}
    for parent, types in REFERENCE_AT_REST.items():
        for type_id in types:
            d = type_dir(parent, type_id)
            assert read(os.path.join(d, 'device_api')) == 'vfio-pci\n'
            if parent == 'mtty':        # mtty has no description at all
                assert not os.path.exists(os.path.join(d, 'description'))
            else:
                assert read(os.path.join(d, 'description')).startswith(
                    'virtual display, ')
    count_step()


def test_driver_finds_exactly_the_kernels_parents_and_types(driver):
    snapshot = driver.discover()
    assert snapshot.warnings == ()
    assert [p.name for p in snapshot.parents] == sorted(os.listdir(BUS))
    # Exactly the samples and the types kernel-mdev.rst lists...
    assert {p.name: sorted(t.id for t in p.types)
            for p in snapshot.parents} == {
        parent: sorted(types) for parent, types in REFERENCE_AT_REST.items()}
    # ...each with what the kernel's own files say (not the doc).
    for parent in snapshot.parents:
        on_disk = sorted(os.listdir(os.path.join(
            BUS, parent.name, 'mdev_supported_types')))
        assert [t.id for t in parent.types] == on_disk
        assert parent.mdevs == ()
        assert not parent.is_pci and parent.physfn is None
        for t in parent.types:
            d = type_dir(parent.name, t.id)
            assert t.available_instances == int(
                read(os.path.join(d, 'available_instances')))
            assert t.device_api == read(os.path.join(d, 'device_api')).strip()
            assert t.name == (optional(os.path.join(d, 'name')) or t.id)
            assert t.description == (
                optional(os.path.join(d, 'description')) or '')
    count_step()


def test_driver_lists_the_mdevs_it_created(driver):
    made = {}
    for parent, type_id in (('mtty', 'mtty-2'), ('mtty', 'mtty-1'),
                            ('mbochs', 'mbochs-medium'),
                            ('mdpy', 'mdpy-xga'), ('mdpy', 'mdpy-xga')):
        u = str(uuid.uuid4())
        driver.create_mdev(parent, type_id, u)
        made[u] = (parent, type_id)
        count_step()
    view = kernel_view()
    assert view['mdevs'] == made
    snapshot = driver.discover()
    assert {m.uuid: (m.parent, m.type_id) for m in snapshot.mdevs()} == made
    for parent in snapshot.parents:
        assert {t.id: t.available_instances for t in parent.types} == \
            view['available'][parent.name]
    # Each create lowered what the kernel offers.
    assert view['available']['mdpy'] == {
        'mdpy-vga': 2, 'mdpy-xga': 2, 'mdpy-hd': 2}
    assert view['available']['mtty'] == {'mtty-1': 21, 'mtty-2': 10}


def test_upper_case_uuid_is_created_and_listed_lower_case(driver):
    u = str(uuid.uuid4()).upper()
    driver.create_mdev('mbochs', 'mbochs-small', u)
    assert kernel_view()['mdevs'] == {u.lower(): ('mbochs', 'mbochs-small')}
    assert [m.uuid for m in driver.discover().mdevs()] == [u.lower()]
    driver.remove_mdev(u)
    assert kernel_view()['mdevs'] == {}
    count_step(2)
