import builtins
import errno
import os
import threading
import uuid

import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement import exceptions
from vgpu_placement.model import discovered
from vgpu_placement.sysfs import read as sysfs_read


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
        ('mtty-1', 'Single port serial', 24),
        ('mtty-2', 'Dual port serial', 12)]
    # mtty has no description file: reported as empty, not an error.
    assert mtty.type('mtty-1').description == ''
    assert [(m.uuid, m.type_id, m.parent) for m in mtty.mdevs] == [
        (mdev, 'mtty-2', 'mtty')]
    assert snap.parent('mbochs').type('mbochs-small').description == \
        'virtual display, 4 MB video memory'
    assert snap.warnings == ()


def deny(monkeypatch, name, path, module=os):
    """module.<name> raises EACCES for path (the tests may run as root,
    where a chmod would not stop a read)."""
    real = getattr(module, name)
    target = os.path.realpath(path)

    def call(p, *args, **kw):
        if os.path.realpath(p) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), p)
        return real(p, *args, **kw)
    monkeypatch.setattr(module, name, call)


@pytest.mark.parametrize('make', ['missing', 'empty'])
def test_no_mdev_bus_means_no_parents(tmp_path, make):
    """A sysfs-like root without the mdev module (no class/mdev_bus), or
    with it but no parent yet: legitimately no parents."""
    os.makedirs(tmp_path / 'devices')
    if make == 'empty':
        os.makedirs(tmp_path / 'class' / 'mdev_bus')
    snap = driver_for(tmp_path).discover()
    assert snap.parents == () and snap.unreadable == frozenset()


@pytest.mark.parametrize('make,says', [
    ('missing', 'does not exist'), ('empty', 'is empty'),
    ('file', 'is not a directory')])
def test_unusable_root_is_one_clear_error(tmp_path, make, says):
    root = tmp_path / 'sys'
    if make == 'empty':
        os.makedirs(root)
    elif make == 'file':
        root.write_text('')
    with pytest.raises(exceptions.HostStateError) as err:
        driver_for(root).discover()
    text = str(err.value)
    assert text.startswith('[sysfs] root %s %s' % (root, says))
    assert '\n' not in text


@pytest.mark.parametrize('make,says', [
    ('file', 'is not a directory'), ('denied', 'Permission denied')])
def test_unusable_mdev_bus_is_one_clear_error(tmp_path, monkeypatch, make,
                                              says):
    bus = tmp_path / 'class' / 'mdev_bus'
    if make == 'file':
        os.makedirs(bus.parent)
        bus.write_text('')
    else:
        sysfs_tree.kernel_samples(tmp_path)
        deny(monkeypatch, 'scandir', bus)
    with pytest.raises(exceptions.HostStateError) as err:
        driver_for(tmp_path).discover()
    assert str(bus) in str(err.value) and says in str(err.value)
    assert '\n' not in str(err.value)


def test_pci_parent_and_physfn(tmp_path):
    tree = sysfs_tree.SysfsTree(tmp_path)
    tree.add_parent('0000:84:00.4', {'nvidia-558': dict(available=1)},
                    physfn='0000:84:00.0')
    parent = driver_for(tmp_path).discover().parent('0000:84:00.4')
    assert parent.is_pci and parent.physfn == '0000:84:00.0'
    # No name file: the type id stands in for the name.
    assert parent.type('nvidia-558').name == 'nvidia-558'


@pytest.mark.parametrize('target', ['../..', '../0000:84:00.0/..', '..',
                                    '../../../etc', '../0000:84:00.0 ',
                                    '../0000:84:00.0\n'])
def test_crafted_physfn_link_is_ignored(tmp_path, target):
    tree = sysfs_tree.SysfsTree(tmp_path)
    tree.add_parent('0000:84:00.4', {'nvidia-558': dict(available=1)})
    os.symlink(target, os.path.join(tree.device_dir('0000:84:00.4'),
                                    'physfn'))
    snap = driver_for(tmp_path).discover()
    parent = snap.parent('0000:84:00.4')
    assert parent.physfn is None and len(parent.types) == 1
    assert len(snap.warnings) == 1 and 'physfn' in snap.warnings[0]
    # Reported as itself, not under a made-up physical function.
    assert [p.name for p in discovered.group_virtual_functions(snap).parents] \
        == ['0000:84:00.4']


@pytest.mark.parametrize('denied', ['mdev_supported_types', '.'])
def test_unreadable_virtual_function_is_still_grouped(tmp_path, monkeypatch,
                                                      denied):
    """A VF that cannot be listed is named unreadable, and its physfn is
    still read so that its GPU is the one marked."""
    tree = sysfs_tree.SysfsTree(tmp_path)
    for vf in ('0000:84:00.4', '0000:84:00.5'):
        tree.add_parent(vf, {'nvidia-558': dict(available=1)},
                        physfn='0000:84:00.0')
    tree.add_parent('0000:85:00.0', {'nvidia-35': dict(available=4)})
    deny(monkeypatch, 'scandir', os.path.join(
        tree.device_dir('0000:84:00.5'), denied))
    snap = driver_for(tmp_path).discover()
    assert snap.unreadable == {'0000:84:00.5'}
    assert snap.parent('0000:84:00.5').physfn == '0000:84:00.0'
    assert len(snap.warnings) == 1 and '0000:84:00.5' in snap.warnings[0]
    grouped = discovered.group_virtual_functions(snap)
    assert grouped.unreadable == {'0000:84:00.0'}
    assert grouped.parent('0000:85:00.0').type('nvidia-35') is not None


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
    # Nothing may be concluded from mtty-2 missing: it is there.
    assert snap.unreadable == {'mtty'}


@pytest.mark.parametrize('value', [
    '\u00b2',          # str.isdigit() takes it, int() does not
    '\u0663',          # ARABIC-INDIC DIGIT THREE: int() would take it
    '2147483648',       # 2**31: above Placement's integer limit
    '9' * 40])
def test_non_ascii_or_absurd_count_skips_the_type(tmp_path, value):
    tree = sysfs_tree.kernel_samples(tmp_path)
    tree.set_available('mtty', 'mtty-2', value)
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mtty').types] == ['mtty-1']
    assert len(snap.warnings) == 1 and 'mtty-2' in snap.warnings[0]
    assert snap.unreadable == {'mtty'}


def test_largest_placement_integer_is_a_count(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    tree.set_available('mtty', 'mtty-2', 2 ** 31 - 1)
    snap = driver_for(tmp_path).discover()
    assert snap.parent('mtty').type('mtty-2').available_instances == \
        2 ** 31 - 1
    assert snap.warnings == () and snap.unreadable == frozenset()


def test_fifo_in_place_of_a_file_does_not_block_discovery(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    fifo = os.path.join(tree.type_dir('mtty', 'mtty-2'),
                        'available_instances')
    os.unlink(fifo)
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        snap=driver_for(tmp_path).discover()), daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():
        # Stuck in open(): a writer lets it go, so the suite goes on.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join()
        pytest.fail('discover() blocked on a FIFO')
    snap = result['snap']
    assert [t.id for t in snap.parent('mtty').types] == ['mtty-1']
    assert len(snap.warnings) == 1 and 'not a regular file' in \
        snap.warnings[0]
    assert snap.unreadable == {'mtty'}


def test_parent_link_leading_outside_the_root_is_not_read(tmp_path):
    root = tmp_path / 'sys'
    tree = sysfs_tree.kernel_samples(root)
    # A whole parent, readable, but outside the tree.
    outside = sysfs_tree.SysfsTree(tmp_path / 'elsewhere')
    outside.add_parent('evil', {'evil-1': dict(available=3)})
    tree.link_parent('evil', outside.device_dir('evil'))
    tree.link_parent('rel', os.path.relpath(outside.device_dir('evil'),
                                            root / 'class' / 'mdev_bus'))
    snap = driver_for(root).discover()
    assert [p.name for p in snap.parents] == ['mbochs', 'mdpy', 'mtty']
    assert snap.unreadable == {'evil', 'rel'}
    assert len(snap.warnings) == 2 and all(
        'outside' in w for w in snap.warnings)
    assert len(snap.parent('mbochs').types) == 3


def test_symlinked_type_directory_is_not_read(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    real = tree.type_dir('mtty', 'mtty-1')
    os.symlink(real, tree.type_dir('mtty', 'mtty-3'))
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mtty').types] == ['mtty-1', 'mtty-2']
    assert len(snap.warnings) == 1 and 'mtty-3' in snap.warnings[0]
    assert snap.unreadable == {'mtty'}


def test_symlinked_file_is_not_followed(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    secret = tmp_path / 'secret'
    secret.write_text('5\n')
    path = os.path.join(tree.type_dir('mtty', 'mtty-2'),
                        'available_instances')
    os.unlink(path)
    os.symlink(str(secret), path)
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mtty').types] == ['mtty-1']
    assert len(snap.warnings) == 1 and 'mtty-2' in snap.warnings[0]
    assert snap.unreadable == {'mtty'}


def test_directory_in_place_of_a_file_skips_the_type(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    path = os.path.join(tree.type_dir('mtty', 'mtty-2'), 'device_api')
    os.unlink(path)
    os.makedirs(path)
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mtty').types] == ['mtty-1']
    assert 'not a regular file' in snap.warnings[0]
    assert snap.unreadable == {'mtty'}


@pytest.mark.parametrize('target', ['../mdev_supported_types/..', '..',
                                    '../mdev_supported_types/bad name',
                                    '../mdev_supported_types/'])
def test_mdev_with_a_crafted_type_link_is_skipped(tmp_path, target):
    tree = sysfs_tree.kernel_samples(tmp_path)
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    tree.add_mdev('mtty', 'mtty-2', good)
    link = os.path.join(tree.add_mdev('mtty', 'mtty-1', bad), 'mdev_type')
    os.unlink(link)
    os.symlink(target, link)
    snap = driver_for(tmp_path).discover()
    assert [m.uuid for m in snap.mdevs()] == [good]
    assert len(snap.warnings) == 1 and bad in snap.warnings[0]
    assert snap.unreadable == {'mtty'}


def test_parent_vanished_mid_scan_is_skipped(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    # The class link still exists but the device is gone (dangling link).
    os.rename(tree.device_dir('mdpy'), str(tmp_path / 'gone'))
    snap = driver_for(tmp_path).discover()
    assert [p.name for p in snap.parents] == ['mbochs', 'mtty']
    assert any('mdpy' in w for w in snap.warnings)
    # Gone is gone: not unreadable.
    assert snap.unreadable == frozenset()


def test_type_without_available_instances_is_skipped(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    os.unlink(os.path.join(tree.type_dir('mbochs', 'mbochs-large'),
                           'available_instances'))
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mbochs').types] == [
        'mbochs-medium', 'mbochs-small']
    assert snap.unreadable == frozenset()


def test_unreadable_count_marks_the_parent(tmp_path, monkeypatch):
    tree = sysfs_tree.kernel_samples(tmp_path)
    path = os.path.join(tree.type_dir('mbochs', 'mbochs-large'),
                        'available_instances')
    deny(monkeypatch, 'open', path)
    deny(monkeypatch, 'open', path, builtins)     # however it is opened
    snap = driver_for(tmp_path).discover()
    assert [t.id for t in snap.parent('mbochs').types] == [
        'mbochs-medium', 'mbochs-small']
    assert snap.unreadable == {'mbochs'}


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


def test_writes_do_not_leave_the_root(tmp_path):
    """bus/mdev/devices/<uuid> and class/mdev_bus/<parent> are links: one
    leading out of the tree is refused before anything is written."""
    root = tmp_path / 'sys'
    tree = sysfs_tree.kernel_samples(root)
    outside = sysfs_tree.SysfsTree(tmp_path / 'elsewhere')
    outside.add_parent('evil', {'evil-1': dict(available=3)})
    tree.link_parent('evil', outside.device_dir('evil'))
    mdev = str(uuid.uuid4())
    mdev_dir = outside.add_mdev('evil', 'evil-1', mdev)
    os.symlink(mdev_dir, os.path.join(root, 'bus', 'mdev', 'devices', mdev))
    driver = driver_for(root)
    with pytest.raises(exceptions.MdevError) as err:
        driver.remove_mdev(mdev)
    assert 'outside' in str(err.value)
    with pytest.raises(exceptions.MdevError) as err:
        driver.create_mdev('evil', 'evil-1', str(uuid.uuid4()))
    assert 'outside' in str(err.value)
    with open(os.path.join(mdev_dir, 'remove')) as f:
        assert f.read() == ''
    with open(os.path.join(outside.type_dir('evil', 'evil-1'),
                           'create')) as f:
        assert f.read() == ''


def test_remove_through_a_parent_when_bus_mdev_is_missing(tmp_path):
    """A copied tree without bus/mdev: the device is found under its
    parent (through the class link, inside the tree)."""
    tree = sysfs_tree.kernel_samples(tmp_path)
    mdev = str(uuid.uuid4())
    mdev_dir = tree.add_mdev('mdpy', 'mdpy-hd', mdev)
    os.unlink(os.path.join(tmp_path, 'bus', 'mdev', 'devices', mdev))
    driver_for(tmp_path).remove_mdev(mdev)
    with open(os.path.join(mdev_dir, 'remove')) as f:
        assert f.read() == '1'


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
    real = sysfs_read.read_text
    monkeypatch.setattr(sysfs_read, 'read_text', lambda path: (
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
