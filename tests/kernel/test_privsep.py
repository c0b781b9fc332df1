"""The sysfs writes through a real privsep daemon, on the real kernel.

The daemon is started as the agent starts it when it runs as root:
``privsep-helper --config-file <the agent's file>`` (no sudo, no fork of
the test process), told to run as ``nobody`` keeping CAP_DAC_OVERRIDE
only. The test process itself is patched so that it cannot write: every
mdev created or removed here was written by the daemon.
"""
import os
import uuid

from oslo_config import cfg
import pytest

from tests.kernel.conftest import count_step
from tests.kernel.conftest import kernel_view
from vgpu_placement import conf as conf_mod
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement import exceptions
from vgpu_placement import privsep
from vgpu_placement.sysfs import paths as sysfs_paths

CONTEXT = privsep.sysfs_pctxt.pypath.encode()
CAP_DAC_OVERRIDE = 1 << 1


def conf_file(tmp_path, privsep_lines):
    path = tmp_path / 'vgpu-placement.conf'
    path.write_text('[DEFAULT]\ndriver = sysfs\nstate_path = %s\n'
                    '[sysfs]\nroot = /sys\n[privsep_sysfs]\n%s'
                    % (tmp_path, privsep_lines))
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf(['--config-file', str(path)], project='vgpu-placement',
         default_config_files=[], default_config_dirs=[])
    return conf


def daemons():
    """{pid: (real uid, effective capabilities)} of the live privsep
    daemons of our context, from /proc."""
    out = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if CONTEXT not in f.read().split(b'\0'):
                    continue
            with open('/proc/%s/status' % pid) as f:
                status = dict(line.split(':', 1) for line in f)
        except OSError:
            continue                # gone meanwhile
        if status['State'].split()[0] != 'Z':
            out[int(pid)] = (int(status['Uid'].split()[0]),
                             int(status['CapEff'], 16))
    return out


@pytest.fixture
def privsep_daemon(monkeypatch):
    """Client mode for the test; the test process cannot write sysfs."""
    def not_here(*args):
        raise AssertionError('the test process wrote sysfs itself')
    monkeypatch.setattr(sysfs_paths, 'write_attribute', not_here)
    ctx = privsep.sysfs_pctxt
    assert ctx.channel is None and not daemons()
    ctx.set_client_mode(True)
    yield ctx
    ctx.stop()
    ctx.set_client_mode(False)


def test_mdevs_created_and_removed_by_an_unprivileged_daemon(
        tmp_path, privsep_daemon):
    conf = conf_file(tmp_path, 'user = nobody\ngroup = nogroup\n')
    driver = sysfs.SysfsDriver(conf)
    assert cfg.CONF.privsep_sysfs.helper_command.split()[1:3] == [
        '--config-file', str(tmp_path / 'vgpu-placement.conf')]
    mdev = str(uuid.uuid4())
    driver.create_mdev('mtty', 'mtty-2', mdev)
    assert kernel_view()['mdevs'] == {mdev: ('mtty', 'mtty-2')}
    # Started on the first write, as nobody with one capability.
    assert list(daemons().values()) == [(65534, CAP_DAC_OVERRIDE)]
    with pytest.raises(exceptions.MdevExists):         # EEXIST, as before
        driver.create_mdev('mdpy', 'mdpy-vga', mdev)
    with pytest.raises(exceptions.InvalidMdevRequest):
        driver.create_mdev('mtty', '..', str(uuid.uuid4()))
    assert driver.discover().parent('mtty').mdevs[0].uuid == mdev
    driver.remove_mdev(mdev)
    assert kernel_view()['mdevs'] == {}
    with pytest.raises(exceptions.MdevNotFound):        # ENOENT
        driver.remove_mdev(mdev)
    count_step(5)

    # Without the capability, nobody cannot write: it is what writes need.
    privsep_daemon.stop()
    conf = conf_file(tmp_path, 'user = nobody\ngroup = nogroup\n'
                               'capabilities =\n')
    driver = sysfs.SysfsDriver(conf)
    before = kernel_view()
    with pytest.raises(exceptions.MdevError) as err:
        driver.create_mdev('mtty', 'mtty-1', str(uuid.uuid4()))
    assert 'Permission denied' in str(err.value)
    assert kernel_view() == before
    count_step()
