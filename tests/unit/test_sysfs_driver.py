import errno
import os
import uuid

import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement.drivers import sysfs
from vgpu_placement import exceptions


def driver_for(root):
    return sysfs.SysfsDriver(make_conf(driver='sysfs', sysfs__root=str(root)))


def test_discovers_parents_types_and_mdevs(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    mdev = str(uuid.uuid4())
    tree.add_mdev('mtty', 'mtty-2', mdev)
    snap = driver_for(tmp_path).discover()
    assert [p.name for p in snap.parents] == ['mbochs', 'mdpy', 'mtty']
    mtty = snap.parent('mtty')
    assert [(t.id, t.name, t.available_instances) for t in mtty.types] == [
        ('mtty-1', 'Single port serial', 24), ('mtty-2', 'Dual port serial', 12)]
    # mtty has no description file: reported as empty, not an error.
    assert mtty.type('mtty-1').description == ''
    assert [(m.uuid, m.type_id, m.parent) for m in mtty.mdevs] == [
        (mdev, 'mtty-2', 'mtty')]
    assert snap.parent('mbochs').type('mbochs-small').description == \
        'virtual display, 4 MB video memory'
    assert snap.warnings == ()


@pytest.mark.parametrize('make', ['missing', 'empty'])
def test_no_mdev_bus_means_no_parents(tmp_path, make):
    if make == 'empty':
        os.makedirs(tmp_path / 'class' / 'mdev_bus')
    snap = driver_for(tmp_path).discover()
    assert snap.parents == ()


def test_pci_parent_and_physfn(tmp_path):
    tree = sysfs_tree.SysfsTree(tmp_path)
    tree.add_parent('0000:84:00.4', {'nvidia-558': dict(available=1)},
                    physfn='0000:84:00.0')
    parent = driver_for(tmp_path).discover().parent('0000:84:00.4')
    assert parent.is_pci and parent.physfn == '0000:84:00.0'
    # No name file: the type id stands in for the name.
    assert parent.type('nvidia-558').name == 'nvidia-558'


@pytest.mark.parametrize('garbage', ['lots\n', '-1\n', '', b'\xff\xfe\n',
                                     '3 4\n'])
def test_garbage_available_instances_skips_that_type_only(tmp_path, garbage):
    tree = sysfs_tree.kernel_samples(tmp_path)
    tree.write(tree.type_dir('mtty', 'mtty-2'), 'available_instances',
               garbage)
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mtty').types] == ['mtty-1']
    assert len(snap.parent('mbochs').types) == 3
    assert len(snap.warnings) == 1 and 'mtty-2' in snap.warnings[0]


def test_parent_vanished_mid_scan_is_skipped(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    # The class link still exists but the device is gone (dangling link).
    os.rename(tree.device_dir('mdpy'), str(tmp_path / 'gone'))
    snap = driver_for(tmp_path).discover()
    assert [p.name for p in snap.parents] == ['mbochs', 'mtty']
    assert any('mdpy' in w for w in snap.warnings)


def test_type_without_available_instances_is_skipped(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    os.unlink(os.path.join(tree.type_dir('mbochs', 'mbochs-large'),
                           'available_instances'))
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mbochs').types] == [
        'mbochs-medium', 'mbochs-small']


def test_unsafe_names_in_sysfs_are_skipped(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    os.symlink('/etc', str(tmp_path / 'class' / 'mdev_bus' / '.hidden'))
    os.makedirs(os.path.join(tree.device_dir('mtty'), 'mdev_supported_types',
                             'bad name'))
    snap = driver_for(tmp_path).discover()
    assert [p.name for p in snap.parents] == ['mbochs', 'mdpy', 'mtty']
    assert len(snap.parent('mtty').types) == 2
    assert len(snap.warnings) == 2


def test_create_writes_the_uuid_to_the_type_create_file(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    mdev = str(uuid.uuid4())
    driver_for(tmp_path).create_mdev('mtty', 'mtty-2', mdev.upper())
    with open(os.path.join(tree.type_dir('mtty', 'mtty-2'), 'create')) as f:
        assert f.read() == mdev          # canonical lower-case form


@pytest.mark.parametrize('parent,type_id', [
    ('../../etc', 'mtty-1'), ('mtty', '../../../passwd'), ('mtty', ''),
    ('..', 'mtty-1')])
def test_create_refuses_path_components_before_writing(tmp_path, parent,
                                                       type_id):
    sysfs_tree.kernel_samples(tmp_path)
    with pytest.raises(exceptions.InvalidMdevRequest):
        driver_for(tmp_path).create_mdev(parent, type_id, str(uuid.uuid4()))


@pytest.mark.parametrize('bad', [
    'not-a-uuid', '', '{%s}' % uuid.uuid4(), uuid.uuid4().hex,
    # 36 characters that uuid.UUID() would quietly turn into another UUID
    '97e2d6b8-3d1b-4a94-b436-12bf0ac76c6 ',
    '+7e2d6b8-3d1b-4a94-b436-12bf0ac76c6a', '----' + uuid.uuid4().hex])
def test_create_refuses_invalid_uuid_before_writing(tmp_path, bad):
    tree = sysfs_tree.kernel_samples(tmp_path)
    with pytest.raises(exceptions.InvalidMdevRequest) as err:
        driver_for(tmp_path).create_mdev('mtty', 'mtty-1', bad)
    assert err.value.errno == errno.EINVAL
    with open(os.path.join(tree.type_dir('mtty', 'mtty-1'), 'create')) as f:
        assert f.read() == ''


def test_create_on_unknown_type_is_not_found(tmp_path):
    sysfs_tree.kernel_samples(tmp_path)
    with pytest.raises(exceptions.MdevNotFound):
        driver_for(tmp_path).create_mdev('mtty', 'mtty-9', str(uuid.uuid4()))


def test_remove_writes_1_and_unknown_is_not_found(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    mdev = str(uuid.uuid4())
    mdev_dir = tree.add_mdev('mbochs', 'mbochs-large', mdev)
    driver = driver_for(tmp_path)
    driver.remove_mdev(mdev)
    with open(os.path.join(mdev_dir, 'remove')) as f:
        assert f.read() == '1'
    with pytest.raises(exceptions.MdevNotFound) as err:
        driver.remove_mdev(str(uuid.uuid4()))
    assert 'ENOENT' in str(err.value)


@pytest.mark.parametrize('code,cls', [
    (errno.EINVAL, exceptions.InvalidMdevRequest),
    (errno.EEXIST, exceptions.MdevExists),
    (errno.ENOSPC, exceptions.NoCapacity),
    (errno.EUSERS, exceptions.TooManyInstances),
    (errno.ENOENT, exceptions.MdevNotFound),
    (errno.ENODEV, exceptions.ParentGone),
    (errno.EAGAIN, exceptions.MdevBusy)])
def test_kernel_errno_maps_to_typed_error(code, cls):
    err = exceptions.mdev_error_from_errno(
        OSError(code, os.strerror(code)), 'create', 'x on mtty')
    assert type(err) is cls
    assert errno.errorcode[code] in str(err) and 'create x on mtty' in str(err)


def test_unexpected_errno_is_still_one_clear_error():
    err = exceptions.mdev_error_from_errno(
        OSError(errno.EIO, 'Input/output error'), 'remove', 'mdev y')
    assert type(err) is exceptions.MdevError
    assert 'Input/output error' in str(err) and '\n' not in str(err)


def test_rescan_reads_only_available_instances_of_known_types(
        tmp_path, monkeypatch):
    tree = sysfs_tree.kernel_samples(tmp_path)
    driver = driver_for(tmp_path)
    first = driver.discover()
    opened = []
    real = sysfs._read_text
    monkeypatch.setattr(sysfs, '_read_text', lambda path: (
        opened.append(os.path.basename(path)), real(path))[1])
    tree.set_available('mtty', 'mtty-2', 7)
    again = driver.discover()
    assert set(opened) == {'available_instances'}
    assert again.parent('mtty').type('mtty-2').available_instances == 7
    assert [(t.id, t.name, t.description, t.device_api) for p in
            again.parents for t in p.types] == [
        (t.id, t.name, t.description, t.device_api) for p in
        first.parents for t in p.types]


def test_a_type_directory_made_again_is_read_again(tmp_path):
    """A parent's driver coming back makes new type directories (new
    inodes): what they say now is what is reported."""
    tree = sysfs_tree.kernel_samples(tmp_path)
    driver = driver_for(tmp_path)
    assert driver.discover().parent('mbochs').type(
        'mbochs-small').description == 'virtual display, 4 MB video memory'
    old = tree.type_dir('mbochs', 'mbochs-small')
    os.rename(old, old + '.gone')       # both exist: a different inode
    tree.add_type('mbochs', 'mbochs-small', 1, name='small',
                  description='virtual display, 8 MB video memory')
    assert driver.discover().parent('mbochs').type(
        'mbochs-small').description == 'virtual display, 8 MB video memory'


def test_an_unreadable_description_is_not_remembered(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    type_dir = tree.type_dir('mbochs', 'mbochs-small')
    tree.write(type_dir, 'description', b'\xff\xfe\n')
    driver = driver_for(tmp_path)
    assert driver.discover().parent('mbochs').type(
        'mbochs-small').description == ''
    tree.write(type_dir, 'description', 'virtual display, 4 MB video memory')
    assert driver.discover().parent('mbochs').type(
        'mbochs-small').description == 'virtual display, 4 MB video memory'
