"""The privileged sysfs entry points check their own arguments, write only
inside the root's mdev directories, and hand back the kernel's errno.

Most tests call the entry points in-process (tests/conftest.py), as the
privsep daemon would run them; one runs them through a real forked privsep
daemon (no capability kept, so it needs no root) to show that errno and
refusals cross the channel unchanged.
"""
import errno
import os
import uuid

from oslo_config import cfg
from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context
import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement.drivers.nvidia import privileged as nv_priv
from vgpu_placement import exceptions
from vgpu_placement import privsep
from vgpu_placement.privsep import sysfs as priv
from vgpu_placement.sysfs import paths as sysfs_paths


def read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture
def tree(tmp_path):
    return sysfs_tree.kernel_samples(tmp_path / 'sys')


def create_file(tree, parent='mtty', type_id='mtty-1'):
    return os.path.join(tree.type_dir(parent, type_id), 'create')


def all_written(tree):
    """Every create/remove/vgpu_params file in the tree that holds
    something (the picture starts with all of them empty)."""
    out = {}
    for top, _dirs, files in os.walk(tree.root):
        for name in files:
            if name in ('create', 'remove', 'vgpu_params'):
                path = os.path.join(top, name)
                if read(path):
                    out[path] = read(path)
    return out


# -- arguments, checked by the entry points themselves ----------------------

@pytest.mark.parametrize('parent,type_id', [
    ('../../etc', 'mtty-1'), ('mtty', '../mtty-2'), ('mtty', ''),
    ('..', 'mtty-1'), ('mtty/x', 'mtty-1'), ('mtty', None)])
def test_create_refuses_names_that_are_not_one_component(tree, parent,
                                                         type_id):
    with pytest.raises(OSError) as err:
        priv.create_mdev(tree.root, parent, type_id, str(uuid.uuid4()))
    assert err.value.errno == errno.EINVAL
    assert all_written(tree) == {}


@pytest.mark.parametrize('bad', [
    str(uuid.uuid4()).upper(), uuid.uuid4().hex, '{%s}' % uuid.uuid4(),
    str(uuid.uuid4()) + '\n', '../' + str(uuid.uuid4())[3:], '', 42])
def test_entry_points_take_only_the_canonical_uuid(tree, bad):
    mdev = str(uuid.uuid4())
    tree.add_mdev('mtty', 'mtty-1', mdev)
    for call in (lambda: priv.create_mdev(tree.root, 'mtty', 'mtty-1', bad),
                 lambda: priv.remove_mdev(tree.root, bad),
                 lambda: nv_priv.set_vgpu_params(tree.root, bad,
                                                 {'disable_vnc': 1})):
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.EINVAL
    assert all_written(tree) == {}


@pytest.mark.parametrize('root', ['sys', '/tmp/../etc', '', None])
def test_root_must_be_an_absolute_normal_path(tree, root):
    with pytest.raises(OSError) as err:
        priv.create_mdev(root, 'mtty', 'mtty-1', str(uuid.uuid4()))
    assert err.value.errno == errno.EINVAL


@pytest.mark.parametrize('params', [
    {}, {'frame_rate_limiter': True}, {'frame_rate_limiter': '0'},
    {'frame_rate_limiter': 2 ** 31}, {'frame_rate_limiter': 0, 'x': 1},
    {'frame_rate_limiter=0 disable_vnc': 1}, ['disable_vnc']])
def test_vgpu_params_only_allow_listed_integers(tree, params):
    mdev = str(uuid.uuid4())
    mdev_dir = tree.add_mdev('mtty', 'mtty-1', mdev)
    os.mkdir(os.path.join(mdev_dir, 'nvidia'))
    tree.write(os.path.join(mdev_dir, 'nvidia'), 'vgpu_params', '')
    with pytest.raises(OSError) as err:
        nv_priv.set_vgpu_params(tree.root, mdev, params)
    assert err.value.errno == errno.EINVAL
    assert all_written(tree) == {}


def test_each_entry_point_writes_its_one_file(tree):
    mdev = str(uuid.uuid4())
    priv.create_mdev(tree.root, 'mbochs', 'mbochs-small', mdev)
    assert read(create_file(tree, 'mbochs', 'mbochs-small')) == mdev
    other = str(uuid.uuid4())
    mdev_dir = tree.add_mdev('mdpy', 'mdpy-hd', other)
    os.mkdir(os.path.join(mdev_dir, 'nvidia'))
    tree.write(os.path.join(mdev_dir, 'nvidia'), 'vgpu_params', '')
    nv_priv.set_vgpu_params(tree.root, other,
                            {'frame_rate_limiter': 0, 'disable_vnc': 1})
    assert read(os.path.join(mdev_dir, 'nvidia', 'vgpu_params')) == \
        'disable_vnc=1 frame_rate_limiter=0'
    priv.remove_mdev(tree.root, other)
    assert read(os.path.join(mdev_dir, 'remove')) == '1'
    assert len(all_written(tree)) == 3


# -- paths: inside the root's mdev directories, plain attribute files -------

def test_a_parent_linked_outside_the_devices_is_refused(tree, tmp_path):
    elsewhere = sysfs_tree.SysfsTree(tmp_path / 'elsewhere')
    elsewhere.add_parent('evil', {'evil-1': dict(available=1)})
    tree.link_parent('evil', elsewhere.device_dir('evil'))
    # Inside the root, but not a device: class/ is not devices/.
    os.makedirs(os.path.join(tree.root, 'class', 'x', 'mdev_supported_types',
                             'x-1'))
    tree.write(os.path.join(tree.root, 'class', 'x', 'mdev_supported_types',
                            'x-1'), 'create', '')
    tree.link_parent('x', '../x')
    for parent in ('evil', 'x'):
        with pytest.raises(sysfs_paths.RefusedWrite) as err:
            priv.create_mdev(tree.root, parent, parent + '-1',
                             str(uuid.uuid4()))
        assert 'leads outside' in str(err.value)
    assert all_written(tree) == {} and all_written(elsewhere) == {}


def test_an_mdev_link_must_lead_to_that_mdev_under_a_parent(tree):
    devices = os.path.join(tree.root, 'bus', 'mdev', 'devices')
    mdev, other = str(uuid.uuid4()), str(uuid.uuid4())
    other_dir = tree.add_mdev('mtty', 'mtty-1', other)
    # A link named mdev that leads to another mdev's directory.
    os.symlink(other_dir, os.path.join(devices, mdev))
    with pytest.raises(sysfs_paths.RefusedWrite) as err:
        priv.remove_mdev(tree.root, mdev)
    assert 'not to mdev' in str(err.value)
    # A directory with the right name that is not under an mdev parent.
    loose = os.path.join(tree.root, 'devices', 'virtual', 'net', other)
    os.makedirs(loose)
    tree.write(loose, 'remove', '')
    os.unlink(os.path.join(devices, other))
    os.symlink(loose, os.path.join(devices, other))
    with pytest.raises(sysfs_paths.RefusedWrite) as err:
        priv.remove_mdev(tree.root, other)
    assert 'not under an mdev parent' in str(err.value)
    assert all_written(tree) == {}


def test_a_hard_link_in_place_of_an_attribute_is_not_written(tree, tmp_path):
    precious = tmp_path / 'precious'
    precious.write_text('keep me')
    target = create_file(tree)
    os.unlink(target)
    os.link(precious, target)
    with pytest.raises(sysfs_paths.RefusedWrite) as err:
        priv.create_mdev(tree.root, 'mtty', 'mtty-1', str(uuid.uuid4()))
    assert '2 links' in str(err.value)
    assert precious.read_text() == 'keep me'


def test_a_fifo_or_link_in_place_of_an_attribute_is_refused(tree, tmp_path):
    target = create_file(tree)
    os.unlink(target)
    os.mkfifo(target)               # would block a plain open()
    with pytest.raises(OSError) as err:
        priv.create_mdev(tree.root, 'mtty', 'mtty-1', str(uuid.uuid4()))
    assert err.value.errno == errno.ENXIO       # O_NONBLOCK, no reader
    reader = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    try:                            # with a reader it opens: not written
        with pytest.raises(sysfs_paths.RefusedWrite) as err:
            priv.create_mdev(tree.root, 'mtty', 'mtty-1', str(uuid.uuid4()))
        assert 'not a regular file' in str(err.value)
        assert os.read(reader, 100) == b''
    finally:
        os.close(reader)
    os.unlink(target)
    decoy = tmp_path / 'decoy'
    decoy.write_text('')
    os.symlink(decoy, target)
    with pytest.raises(sysfs_paths.RefusedWrite) as err:
        priv.create_mdev(tree.root, 'mtty', 'mtty-1', str(uuid.uuid4()))
    assert 'symbolic link' in str(err.value)
    assert decoy.read_text() == ''


def test_a_directory_swapped_for_a_link_after_the_check_is_not_followed(
        tree, tmp_path):
    """The path was resolved and checked; the walk down from the root
    opens each directory without following a link, so a directory made
    a link between the check and the write leads nowhere."""
    real = os.path.realpath(tree.root)
    type_dir = tree.type_dir('mtty', 'mtty-1')
    decoy = tmp_path / 'decoy'
    decoy.mkdir()
    (decoy / 'create').write_text('')
    os.rename(type_dir, type_dir + '.gone')
    os.symlink(decoy, type_dir)
    with pytest.raises(sysfs_paths.RefusedWrite) as err:
        sysfs_paths.write_attribute(real, os.path.join(type_dir, 'create'),
                                    str(uuid.uuid4()))
    assert 'became a symbolic link' in str(err.value)
    assert (decoy / 'create').read_text() == ''
    with pytest.raises(sysfs_paths.RefusedWrite):
        sysfs_paths.write_attribute(real, str(decoy / 'create'), 'x')


# -- the kernel's errno, unchanged ------------------------------------------

def test_what_is_not_there_is_enoent(tree):
    for call in (
            lambda: priv.create_mdev(tree.root, 'mtty', 'mtty-9',
                                     str(uuid.uuid4())),
            lambda: priv.create_mdev(tree.root, 'gone', 'gone-1',
                                     str(uuid.uuid4())),
            lambda: priv.remove_mdev(tree.root, str(uuid.uuid4())),
            lambda: priv.remove_mdev(tree.root, str(uuid.uuid4()), 'mtty')):
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.ENOENT


@pytest.mark.parametrize('code,cls', [
    (errno.EINVAL, exceptions.InvalidMdevRequest),
    (errno.EEXIST, exceptions.MdevExists),
    (errno.ENOSPC, exceptions.NoCapacity),
    (errno.EUSERS, exceptions.TooManyInstances),
    (errno.ENODEV, exceptions.ParentGone),
    (errno.EAGAIN, exceptions.MdevBusy)])
def test_driver_maps_the_errno_the_write_gave(tree, monkeypatch, code, cls):
    """What os.write raised in the entry point is what the driver's caller
    sees, typed as before privsep."""
    def kernel_says_no(fd, data):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(sysfs_paths.os, 'write', kernel_says_no)
    driver = sysfs.SysfsDriver(make_conf(driver='sysfs',
                                         sysfs__root=tree.root))
    with pytest.raises(cls) as err:
        driver.create_mdev('mtty', 'mtty-1', str(uuid.uuid4()))
    assert errno.errorcode[code] in str(err.value)


# -- configuration handed to oslo.privsep -----------------------------------

def test_project_config_reaches_oslo_privsep(tmp_path):
    conf = make_conf(config_text='[privsep_sysfs]\nuser = nobody\n'
                                 'capabilities = CAP_DAC_OVERRIDE,'
                                 'CAP_SYS_ADMIN\n')
    privsep.configure(conf)
    section = cfg.CONF[privsep.GROUP]
    assert section.user == 'nobody'
    assert section.capabilities == [caps.CAP_DAC_OVERRIDE,
                                    caps.CAP_SYS_ADMIN]
    privsep.configure(make_conf())
    assert cfg.CONF[privsep.GROUP].capabilities == [caps.CAP_DAC_OVERRIDE]
    assert cfg.CONF[privsep.GROUP].user is None
    conf = make_conf(config_text='[privsep_sysfs]\n'
                                 'helper_command = my-helper --x\n')
    privsep.configure(conf)
    assert privsep.sysfs_pctxt.helper_command('/s')[:2] == ['my-helper',
                                                            '--x']


def test_default_helper_needs_sudo_only_when_not_root(tmp_path):
    conf = make_conf()
    conf.set_override('config_file', [str(tmp_path / 'a.conf')])
    as_root = privsep.default_helper_command(conf, euid=0).split()
    assert as_root[0].endswith('privsep-helper')
    assert as_root[1:] == ['--config-file', str(tmp_path / 'a.conf')]
    assert privsep.default_helper_command(conf, euid=1000).split() == \
        ['sudo'] + as_root


def test_a_real_daemon_returns_errno_and_refusals_unchanged(
        tree, tmp_path, monkeypatch):
    """Forked privsep daemon keeping no capability (so no root needed):
    the write it does lands, and failures come back as the same errno and
    the same refusal class."""
    cfg.CONF.set_override('capabilities', [], group=privsep.GROUP)
    ctx = privsep.sysfs_pctxt
    ctx.set_client_mode(True)
    try:
        ctx.start(priv_context.Method.FORK)

        def not_here(*args):
            raise AssertionError('written by the test process itself')
        # Only this process is patched: the daemon forked before it.
        monkeypatch.setattr(sysfs_paths, 'write_attribute', not_here)
        mdev = str(uuid.uuid4())
        priv.create_mdev(tree.root, 'mtty', 'mtty-2', mdev)
        assert read(create_file(tree, 'mtty', 'mtty-2')) == mdev
        with pytest.raises(OSError) as err:
            priv.remove_mdev(tree.root, str(uuid.uuid4()))
        assert err.value.errno == errno.ENOENT
        with pytest.raises(OSError) as err:
            priv.create_mdev(tree.root, 'mtty', '..', mdev)
        assert err.value.errno == errno.EINVAL
        tree.link_parent('evil', str(tmp_path))
        with pytest.raises(sysfs_paths.RefusedWrite) as err:
            priv.create_mdev(tree.root, 'evil', 'evil-1', mdev)
        assert 'leads outside' in str(err.value)
        driver = sysfs.SysfsDriver(make_conf(driver='sysfs',
                                             sysfs__root=tree.root))
        with pytest.raises(exceptions.MdevNotFound):
            driver.remove_mdev(str(uuid.uuid4()))
    finally:
        ctx.stop()
        ctx.set_client_mode(False)
        cfg.CONF.clear_override('capabilities', group=privsep.GROUP)


# -- the NVIDIA vendor-VFIO write: current_vgpu_type of a VF ------------------

VF = '0000:41:00.4'


@pytest.fixture
def vfio(tmp_path):
    from tests.nvidia_vfio_tree import VfioTree
    tree = VfioTree(tmp_path / 'sys')
    tree.add_gpu('0000:41:00.0', [VF], 'ID : vGPU Name\n')
    return tree


def test_set_vgpu_type_writes_the_vfs_one_file(vfio):
    nv_priv.set_vgpu_type(vfio.root, VF, '1155')
    assert vfio.read(VF, 'current_vgpu_type') == '1155'
    # One write(2) at offset 0, as sysfs takes it (a plain file keeps the
    # bytes beyond).
    nv_priv.set_vgpu_type(vfio.root, VF, '0')
    assert vfio.read(VF, 'current_vgpu_type')[0] == '0'


@pytest.mark.parametrize('vf,value', [
    ('../0000:41:00.4', '1'), ('0000:41:00.4/..', '1'), ('gpu0', '1'),
    (VF, '-1'), (VF, '01'), (VF, '1 '), (VF, '2147483648'), (VF, 1),
    (VF, '1\n0'), ('0000:41:00.5', '1')])
def test_set_vgpu_type_checks_the_vf_and_the_value_itself(vfio, vf, value):
    with pytest.raises(OSError) as err:
        nv_priv.set_vgpu_type(vfio.root, vf, value)
    assert err.value.errno == errno.EINVAL
    assert vfio.read(VF, 'current_vgpu_type') == '0\n'


def test_set_vgpu_type_refuses_a_vf_linked_outside_the_devices(vfio,
                                                               tmp_path):
    outside = tmp_path / 'elsewhere' / 'nvidia'
    outside.mkdir(parents=True)
    (outside / 'current_vgpu_type').write_text('0\n')
    link = os.path.join(vfio.root, 'bus', 'pci', 'devices', '0000:41:00.6')
    os.symlink(str(outside.parent), link)
    with pytest.raises(sysfs_paths.RefusedWrite):
        nv_priv.set_vgpu_type(vfio.root, '0000:41:00.6', '1')
    assert (outside / 'current_vgpu_type').read_text() == '0\n'
