"""Each error the kernel gives surfaces as the project's typed error."""
import errno
import os
import uuid

import pytest

from tests.kernel.conftest import available
from tests.kernel.conftest import count_step
from tests.kernel.conftest import create_file
from tests.kernel.conftest import DEVICES
from tests.kernel.conftest import kernel_view
from tests.kernel.conftest import write_once
from vgpu_placement import exceptions

BAD_UUIDS = [
    'not-a-uuid',
    str(uuid.UUID(int=1)) + 'Z',      # 37 bytes: the kernel would take it
    '{%s}' % uuid.uuid4(),
    uuid.uuid4().hex,
    str(uuid.uuid4())[:-1] + 'g',
    '',
]
# 36 characters that are not a UUID, which uuid.UUID() still parses (it
# drops the dashes and hands the rest to int(x, 16), which allows a sign
# and white space): the driver writes a *different*, valid UUID.
LENIENT = [
    ' ' + str(uuid.UUID(int=0x7e2d6b83d1b4a94b43612bf0ac76c6a))[1:],
    '97e2d6b8-3d1b-4a94-b436-12bf0ac76c6 ',
    '+7e2d6b8-3d1b-4a94-b436-12bf0ac76c6a',
    '----f296100c48894029af185e07c3a894b7',
]


@pytest.fixture
def sysfs_writes(monkeypatch):
    """Paths the code under test opens for writing."""
    opened = []
    real_open = os.open

    def spy(path, flags, *args, **kw):
        if flags & (os.O_WRONLY | os.O_RDWR):
            if kw.get('dir_fd') is not None:    # opened below a directory
                path = os.path.join(os.readlink('/proc/self/fd/%d'
                                                % kw['dir_fd']), path)
            opened.append(str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, 'open', spy)
    return opened


def _assert_refused_before_write(driver, bad, sysfs_writes):
    before = kernel_view()
    with pytest.raises(exceptions.InvalidMdevRequest):
        driver.create_mdev('mtty', 'mtty-1', bad)
    assert [p for p in sysfs_writes if p.startswith('/sys/')] == []
    assert kernel_view() == before
    count_step()


@pytest.mark.parametrize('bad', BAD_UUIDS)
def test_bad_uuid_is_refused_before_the_write(driver, bad, sysfs_writes):
    _assert_refused_before_write(driver, bad, sysfs_writes)


@pytest.mark.parametrize('bad', LENIENT)
def test_lenient_non_uuid_is_refused_before_the_write(driver, bad,
                                                      sysfs_writes):
    _assert_refused_before_write(driver, bad, sysfs_writes)


@pytest.mark.parametrize('bad', ['not-a-uuid'])
def test_bad_uuid_is_a_typed_einval(driver, bad):
    with pytest.raises(exceptions.InvalidMdevRequest) as err:
        driver.create_mdev('mtty', 'mtty-1', bad)
    assert err.value.errno == errno.EINVAL


@pytest.mark.parametrize('garbage', [b'not-a-uuid\n', b'x' * 36,
                                     str(uuid.uuid4()).encode() + b'\n\n'])
def test_garbage_written_to_create_maps_to_invalid_request(garbage):
    with pytest.raises(OSError) as raised:
        write_once(create_file('mtty', 'mtty-1'), garbage)
    assert raised.value.errno == errno.EINVAL
    err = exceptions.mdev_error_from_errno(raised.value, 'create', 'mtty-1')
    assert type(err) is exceptions.InvalidMdevRequest
    assert err.errno == errno.EINVAL and '(EINVAL)' in str(err)
    assert kernel_view()['mdevs'] == {}
    count_step()


def test_same_uuid_twice_is_mdev_exists(driver):
    u = str(uuid.uuid4())
    driver.create_mdev('mtty', 'mtty-2', u)
    left = available('mtty', 'mtty-2')
    with pytest.raises(exceptions.MdevExists) as err:
        driver.create_mdev('mtty', 'mtty-2', u)
    assert err.value.errno == errno.EEXIST
    assert available('mtty', 'mtty-2') == left
    assert kernel_view()['mdevs'] == {u: ('mtty', 'mtty-2')}
    count_step(2)


@pytest.mark.parametrize('parent,type_id', [('mbochs', 'mbochs-small'),
                                            ('mdpy', 'mdpy-vga'),
                                            ('mtty', 'mtty-1')])
def test_same_uuid_on_another_parent_is_mdev_exists(driver, parent,
                                                    type_id):
    u = str(uuid.uuid4())
    first = ('mdpy', 'mdpy-hd') if parent == 'mtty' else ('mtty', 'mtty-1')
    driver.create_mdev(first[0], first[1], u)
    with pytest.raises(exceptions.MdevExists):
        driver.create_mdev(parent, type_id, u)
    assert kernel_view()['mdevs'] == {u: first}
    # Once removed, the UUID is free again, on any parent.
    driver.remove_mdev(u)
    driver.create_mdev(parent, type_id, u)
    assert kernel_view()['mdevs'] == {u: (parent, type_id)}
    count_step(4)


def _fill(driver, parent, type_id):
    """Create type_id until the kernel says none is left; return the UUIDs."""
    made = []
    while available(parent, type_id):
        made.append(str(uuid.uuid4()))
        driver.create_mdev(parent, type_id, made[-1])
        count_step()
    return made


def test_mtty_full_is_no_capacity(driver):
    made = _fill(driver, 'mtty', 'mtty-2')
    assert len(made) == 12
    for type_id in ('mtty-2', 'mtty-1'):
        with pytest.raises(exceptions.NoCapacity) as err:
            driver.create_mdev('mtty', type_id, str(uuid.uuid4()))
        # ENOSPC from the driver's probe, not the core's EUSERS.
        assert type(err.value) is exceptions.NoCapacity
        assert err.value.errno == errno.ENOSPC
        count_step()
    assert len(kernel_view()['mdevs']) == 12


def test_mbochs_full_is_no_capacity(driver):
    made = _fill(driver, 'mbochs', 'mbochs-large')
    assert len(made) == 4
    for type_id in ('mbochs-large', 'mbochs-small'):
        with pytest.raises(exceptions.NoCapacity) as err:
            driver.create_mdev('mbochs', type_id, str(uuid.uuid4()))
        assert type(err.value) is exceptions.NoCapacity
        assert err.value.errno == errno.ENOSPC
        count_step()
    # Room again after one remove.
    driver.remove_mdev(made[0])
    driver.create_mdev('mbochs', 'mbochs-medium', str(uuid.uuid4()))
    count_step(2)


def test_fifth_mdpy_is_too_many_instances(driver):
    for type_id in ('mdpy-vga', 'mdpy-xga', 'mdpy-hd', 'mdpy-vga'):
        driver.create_mdev('mdpy', type_id, str(uuid.uuid4()))
        count_step()
    for type_id in ('mdpy-vga', 'mdpy-xga', 'mdpy-hd'):
        assert available('mdpy', type_id) == 0
        with pytest.raises(exceptions.TooManyInstances) as err:
            driver.create_mdev('mdpy', type_id, str(uuid.uuid4()))
        assert err.value.errno == errno.EUSERS
        # Callers that only know "full" still catch it.
        assert isinstance(err.value, exceptions.NoCapacity)
        count_step()
    assert len(kernel_view()['mdevs']) == 4


def test_remove_of_a_removed_mdev_is_not_found(driver):
    u = str(uuid.uuid4())
    driver.create_mdev('mbochs', 'mbochs-small', u)
    driver.remove_mdev(u)
    assert not os.path.exists(os.path.join(DEVICES, u))
    with pytest.raises(exceptions.MdevNotFound) as err:
        driver.remove_mdev(u)
    assert err.value.errno == errno.ENOENT
    # Never created at all: the same.
    with pytest.raises(exceptions.MdevNotFound):
        driver.remove_mdev(str(uuid.uuid4()))
    count_step(4)


def test_second_remove_on_the_same_open_file_is_parent_gone():
    """The kernel's ENODEV (remove on a device already going away) maps to
    ParentGone: the errno mapping, checked on a real ENODEV."""
    u = str(uuid.uuid4())
    write_once(create_file('mtty', 'mtty-1'), u)
    fd = os.open(os.path.join(DEVICES, u, 'remove'), os.O_WRONLY)
    try:
        os.write(fd, b'1')
        with pytest.raises(OSError) as raised:
            os.write(fd, b'1')
    finally:
        os.close(fd)
    assert raised.value.errno == errno.ENODEV
    err = exceptions.mdev_error_from_errno(raised.value, 'remove', u)
    assert type(err) is exceptions.ParentGone
    count_step(2)
