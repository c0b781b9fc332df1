"""The simulated host behaves as the kernel was measured to behave
(doc/source/reference/kernel-mdev.rst)."""
import os
import stat
import uuid

import pytest

from tests.conftest import make_conf
from vgpu_placement.drivers.simulated import driver as simulated
from vgpu_placement import exceptions


def host(tmp_path, profile='kernel-samples'):
    return simulated.SimulatedDriver(make_conf(
        driver='simulated', simulated__profile=profile,
        state_path=str(tmp_path)))


def available(driver, parent):
    return {t.id: t.available_instances
            for t in driver.discover().parent(parent).types}


def new():
    return str(uuid.uuid4())


def test_mtty_port_pool(tmp_path):
    h = host(tmp_path)
    assert available(h, 'mtty') == {'mtty-1': 24, 'mtty-2': 12}
    h.create_mdev('mtty', 'mtty-2', new())
    assert available(h, 'mtty') == {'mtty-1': 22, 'mtty-2': 11}
    for _ in range(9):
        h.create_mdev('mtty', 'mtty-2', new())
    assert available(h, 'mtty') == {'mtty-1': 4, 'mtty-2': 2}
    h.create_mdev('mtty', 'mtty-2', new())
    h.create_mdev('mtty', 'mtty-1', new())
    assert available(h, 'mtty') == {'mtty-1': 1, 'mtty-2': 0}
    with pytest.raises(exceptions.NoCapacity) as err:
        h.create_mdev('mtty', 'mtty-2', new())
    assert not isinstance(err.value, exceptions.TooManyInstances)
    h.create_mdev('mtty', 'mtty-1', new())
    with pytest.raises(exceptions.NoCapacity):
        h.create_mdev('mtty', 'mtty-1', new())


def test_mbochs_memory_pool_sequence(tmp_path):
    h = host(tmp_path)
    order = ('mbochs-large', 'mbochs-medium', 'mbochs-small')
    seen = []
    for type_id in order:
        h.create_mdev('mbochs', type_id, new())
        a = available(h, 'mbochs')
        seen.append(tuple(a[t] for t in order))
    assert seen == [(3, 12, 48), (2, 11, 44), (2, 10, 43)]


def test_mdpy_counter_is_shared_and_fails_with_eusers(tmp_path):
    h = host(tmp_path)
    for type_id in ('mdpy-vga', 'mdpy-xga', 'mdpy-hd', 'mdpy-vga'):
        h.create_mdev('mdpy', type_id, new())
    assert set(available(h, 'mdpy').values()) == {0}
    with pytest.raises(exceptions.TooManyInstances):
        h.create_mdev('mdpy', 'mdpy-hd', new())


def test_duplicate_uuid_is_refused_across_parents(tmp_path):
    h = host(tmp_path)
    mdev = new()
    h.create_mdev('mtty', 'mtty-1', mdev)
    with pytest.raises(exceptions.MdevExists):
        h.create_mdev('mbochs', 'mbochs-small', mdev)
    h.remove_mdev(mdev)
    h.create_mdev('mbochs', 'mbochs-small', mdev)   # reusable once removed


def test_remove_unknown_and_bad_uuid(tmp_path):
    h = host(tmp_path)
    with pytest.raises(exceptions.MdevNotFound):
        h.remove_mdev(new())
    with pytest.raises(exceptions.InvalidMdevRequest):
        h.create_mdev('mtty', 'mtty-1', 'garbage')
    with pytest.raises(exceptions.MdevNotFound):
        h.create_mdev('mtty', 'mtty-7', new())


def test_state_is_shared_between_driver_instances_and_0600(tmp_path):
    mdev = new()
    host(tmp_path).create_mdev('mtty', 'mtty-2', mdev)
    snap = host(tmp_path).discover()
    assert [m.uuid for m in snap.mdevs()] == [mdev]
    state = tmp_path / 'simulated-host.json'
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600


def test_equal_size_rule_on_the_t4_like_card(tmp_path):
    h = host(tmp_path, 'demo-host')
    gpu = '0000:84:00.0'
    before = available(h, gpu)
    assert before['nvidia-230'] == 16 and before['nvidia-234'] == 1
    h.create_mdev(gpu, 'nvidia-231', new())          # one 2 GB 2Q
    after = available(h, gpu)
    # Same size (2B, 2A, 2Q) stays, each up to its own max minus what exists.
    assert after['nvidia-223'] == after['nvidia-226'] == \
        after['nvidia-231'] == 7
    assert {t: n for t, n in after.items() if n} == {
        'nvidia-223': 7, 'nvidia-226': 7, 'nvidia-231': 7}
    with pytest.raises(exceptions.NoCapacity):
        h.create_mdev(gpu, 'nvidia-230', new())


def test_unplug_removes_parent_and_its_mdevs(tmp_path):
    h = host(tmp_path)
    h.create_mdev('mtty', 'mtty-1', new())
    h.unplug_parent('mtty')
    snap = h.discover()
    assert snap.parent('mtty') is None and snap.mdevs() == []
    h.plug_parent('mtty')
    assert available(h, 'mtty') == {'mtty-1': 24, 'mtty-2': 12}


@pytest.mark.parametrize('content,needle', [
    ('parents: [', 'not valid YAML'),
    ('hello: 1', "needs a 'parents' list"),
    ('parents: [{name: x, capacity: {rule: magic}}]', 'capacity rule'),
    ('parents: [{name: x, capacity: {pools: {a: 2}}, types: [{id: t, '
     'cost: {b: 1}}]}]', 'cost must name pools'),
    ('parents: [{name: "../x"}]', 'invalid parent name'),
    ('parents: [{name: x, capacity: {pools: {a: -1}}}]', 'integer'),
])
def test_bad_profiles_say_where(tmp_path, content, needle):
    path = tmp_path / 'bad.yaml'
    path.write_text(content)
    with pytest.raises(exceptions.HostStateError) as err:
        host(tmp_path, str(path))
    assert needle in str(err.value) and str(path) in str(err.value)


def test_missing_profile_and_corrupt_state(tmp_path):
    with pytest.raises(exceptions.HostStateError):
        host(tmp_path, str(tmp_path / 'nope.yaml'))
    (tmp_path / 'simulated-host.json').write_text('{not json')
    with pytest.raises(exceptions.HostStateError) as err:
        host(tmp_path).discover()
    assert 'delete it' in str(err.value)
