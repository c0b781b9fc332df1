"""State files and locks: private modes; corrupt files rebuilt, not fatal."""
import contextlib
import json
import logging
import os
import stat
import subprocess
import sys

import pytest

from tests.conftest import make_conf
from vgpu_placement.host import empty_parents
from vgpu_placement.placement import cache as placement_cache
from vgpu_placement.service import standalone
from vgpu_placement import state_file

SECRET_URL = 'http://user:s3cret@127.0.0.1:1/placement'


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- lock files and the state directory ---------------------------------------

def test_locked_makes_a_0600_lock_file(tmp_path):
    path = tmp_path / 'state' / 'simulated-host.json'
    with umask(0o022), state_file.locked(str(path)):
        assert mode(str(path) + '.lock') == 0o600
    assert mode(tmp_path / 'state') == 0o700


def test_external_lock_makes_a_0600_lock_file_in_a_0700_dir(tmp_path):
    lock_path = tmp_path / 'locks'
    with umask(0o022):
        with state_file.external_lock('parent-0000:84:00.0', str(lock_path)):
            assert sorted(os.listdir(lock_path)) == ['parent-0000:84:00.0']
            assert mode(lock_path / 'parent-0000:84:00.0') == 0o600
        # An existing lock file is used as it is.
        with state_file.external_lock('parent-0000:84:00.0', str(lock_path)):
            pass
    assert mode(lock_path) == 0o700


def test_a_lock_file_left_0644_by_an_older_release_is_made_0600(tmp_path):
    lock_path = tmp_path / 'locks'
    lock_path.mkdir()
    (lock_path / 'x').write_text('')
    os.chmod(lock_path / 'x', 0o644)
    with state_file.external_lock('x', str(lock_path)):
        assert mode(lock_path / 'x') == 0o600


def test_external_lock_does_not_follow_a_symlink(tmp_path):
    lock_path = tmp_path / 'locks'
    lock_path.mkdir()
    (lock_path / 'x').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(OSError):
        with state_file.external_lock('x', str(lock_path)):
            pass
    assert not (tmp_path / 'elsewhere').exists()


def test_an_existing_state_dir_of_ours_is_tightened(tmp_path):
    state = tmp_path / 'state'
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    state_file.tighten_dir(str(state))
    assert mode(state) == 0o700


def test_a_missing_state_dir_is_left_to_be_made(tmp_path):
    state_file.tighten_dir(str(tmp_path / 'state'))
    assert not (tmp_path / 'state').exists()


def test_a_shared_sticky_dir_is_left_alone_with_one_warning(tmp_path,
                                                            caplog):
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with caplog.at_level(logging.WARNING, logger='vgpu_placement'):
        state_file.tighten_dir(str(shared))
        state_file.tighten_dir(str(shared))
    assert mode(shared) == 0o1777
    assert caplog.text.count(str(shared)) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason='needs chown')
def test_a_dir_of_another_user_is_left_alone_with_a_warning(tmp_path,
                                                            caplog):
    other = tmp_path / 'other'
    other.mkdir(mode=0o755)
    os.chmod(other, 0o755)
    os.chown(other, 4321, 4321)
    with caplog.at_level(logging.WARNING, logger='vgpu_placement'):
        state_file.tighten_dir(str(other))
    assert mode(other) == 0o755
    assert str(other) in caplog.text


# -- corrupt placement-cache.json and empty-parents.json ----------------------

class StubClient:
    """Only what Reporter() reads at start: the endpoint."""

    def __init__(self, endpoint):
        self.endpoint = endpoint


def reporter(tmp_path, endpoint='http://placement:8778'):
    conf = make_conf(driver='simulated', simulated__profile='kernel-samples',
                     state_path=str(tmp_path), host='h1')
    return standalone.reporter_for(conf, client=StubClient(endpoint))


GOOD_CACHE = {
    'endpoint': 'http://placement:8778',
    'root': {'name': 'h1', 'uuid': 'r'},
    'classes': ['CUSTOM_MDEV_MTTY_1'], 'traits': [], 'retired': {},
    'providers': {
        'r': {'name': 'h1', 'parent': None, 'generation': 1},
        'c': {'name': 'h1_mtty_mtty', 'parent': 'r', 'generation': 2,
              'inventories': {}, 'traits': [], 'usages': {}}}}


def test_a_good_cache_is_kept(tmp_path):
    (tmp_path / 'placement-cache.json').write_text(json.dumps(GOOD_CACHE))
    assert reporter(tmp_path).cache.to_json() == GOOD_CACHE


@pytest.mark.parametrize('content', [
    '[]', '"x"', '5', 'null', '{"providers": 5}', '{"providers": {"u": 5}}',
    '{"providers": {"u": {"parent": null}}}', '{"classes": "CUSTOM_X"}',
    '{"traits": {}}', '{"root": []}', '{"root": {"name": 1, "uuid": "u"}}',
    '{"endpoint": 5}', '{"providers": {"c": {"name": "h1_mtty_mtty", '
    '"parent": "r", "generation": 2, "inventories": []}}}', '{not json',
])
def test_a_cache_of_the_wrong_shape_is_discarded_with_a_warning(
        tmp_path, caplog, content):
    path = tmp_path / 'placement-cache.json'
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger='vgpu_placement'):
        got = reporter(tmp_path)
    assert got.cache.to_json() == placement_cache.ProviderCache(
        'http://placement:8778').to_json()
    assert got.cache.root_uuid is None and len(got.cache) == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()


def test_the_cache_keeps_no_password(tmp_path):
    first = reporter(tmp_path, SECRET_URL)
    assert first.cache.endpoint == 'http://user:***@127.0.0.1:1/placement'
    first.cache = placement_cache.ProviderCache.from_json(
        dict(GOOD_CACHE, endpoint=first.cache.endpoint), SECRET_URL)
    first.save_cache()
    assert 's3cret' not in (tmp_path / 'placement-cache.json').read_text()
    # The next command finds it is the same Placement: the cache is kept.
    assert reporter(tmp_path, SECRET_URL).cache.to_json()['providers'] == \
        GOOD_CACHE['providers']


@pytest.mark.parametrize('content', [
    '[]', '"x"', '{"mtty": 5}', '{"mtty": ["mtty-1"]}',
    '{"mtty": {"mtty-1": "24"}}', '{"mtty": {"mtty-1": null}}', '{bad',
])
def test_empty_parents_of_the_wrong_shape_are_rebuilt(tmp_path, caplog,
                                                      content):
    path = tmp_path / 'empty-parents.json'
    path.write_text(content)
    got = reporter(tmp_path)
    with caplog.at_level(logging.WARNING, logger='vgpu_placement'):
        seen = empty_parents.remember(str(path), got.discover())
    assert seen['mtty'] == {'mtty-1': 24, 'mtty-2': 12}
    assert json.loads(path.read_text()) == seen
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()


def test_report_command_rebuilds_corrupt_state_from_placement(tmp_path):
    """End to end, in its own process (its own embedded Placement)."""
    state = tmp_path / 'state'
    state.mkdir()
    (state / 'placement-cache.json').write_text('{"providers": 5}')
    (state / 'empty-parents.json').write_text('[]')
    conf = tmp_path / 'vgpu-placement.conf'
    conf.write_text('[DEFAULT]\nhost = corrupt-state\ndriver = simulated\n'
                    'state_path = %s\n[simulated]\nprofile = kernel-samples\n'
                    '[embedded_placement]\nenabled = true\n' % state)
    proc = subprocess.run(
        [sys.executable, '-m', 'vgpu_placement.cmd.cli', '--config-file',
         str(conf), 'report', '--format', 'json'],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'placement-cache.json' in proc.stderr
    assert 'empty-parents.json' in proc.stderr
    assert json.loads(proc.stdout)['requests']['writes'] > 0
    cache = json.loads((state / 'placement-cache.json').read_text())
    assert sorted(p['name'] for p in cache['providers'].values()) == [
        'corrupt-state', 'corrupt-state_mbochs_mbochs',
        'corrupt-state_mdpy_mdpy', 'corrupt-state_mtty_mtty']


def test_write_json_syncs_the_directory_after_the_rename(tmp_path,
                                                         monkeypatch):
    import stat as stat_mod
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat_mod.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)
    monkeypatch.setattr(os, 'fsync', fsync)
    state_file.write_json(str(tmp_path / 'x.json'), {'a': 1})
    # The file's data, then the directory holding its new name.
    assert synced == [False, True]


def test_a_directory_that_is_not_ours_keeps_its_mode(tmp_path, caplog):
    # state_path = /var/lib by mistake: warned about, never chmod'ed.
    shared = tmp_path / 'lib'
    shared.mkdir()
    (shared / 'dpkg').mkdir()
    shared.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        state_file.tighten_dir(str(shared))
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755
    assert 'use a directory of its own' in caplog.text
