"""The nvidia_vfio driver on real directory trees of the vendor-specific
VFIO layout (tests/nvidia_vfio_tree.py); only the kernel module's reaction
to a current_vgpu_type write is faked, errno for errno."""
import logging
import os
import types
import uuid

import pytest

from tests.conftest import make_conf
from tests import nvidia_vfio_tree
from tests import sysfs_tree
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement.drivers.nvidia import names as nvidia
from vgpu_placement.drivers.nvidia import nvml as nvml_mod
from vgpu_placement.drivers.nvidia import vfio as nvidia_vfio
from vgpu_placement.drivers.simulated import profile as sim_profile
from vgpu_placement import exceptions
from vgpu_placement.model import detect
from vgpu_placement.model import discovered

PF = '0000:26:00.0'
VFS = ['0000:26:00.4', '0000:26:00.5', '0000:26:00.6', '0000:26:00.7']
# doc/source/reference/nvidia-vgpu.rst: an L40S VF, byte-exact.
L40S_CAPTURE = '''ID    : vGPU Name
1145  : NVIDIA L40S-1B
1146  : NVIDIA L40S-2B
1147  : NVIDIA L40S-1Q
1148  : NVIDIA L40S-2Q
1149  : NVIDIA L40S-3Q
1150  : NVIDIA L40S-4Q
1151  : NVIDIA L40S-6Q
1152  : NVIDIA L40S-8Q
1153  : NVIDIA L40S-12Q
1154  : NVIDIA L40S-16Q
1155  : NVIDIA L40S-24Q
1156  : NVIDIA L40S-48Q
1157  : NVIDIA L40S-1A
1158  : NVIDIA L40S-2A
1159  : NVIDIA L40S-3A
1160  : NVIDIA L40S-4A
1161  : NVIDIA L40S-6A
1162  : NVIDIA L40S-8A
1163  : NVIDIA L40S-12A
1164  : NVIDIA L40S-16A
1165  : NVIDIA L40S-24A
1166  : NVIDIA L40S-48A
2164  : NVIDIA L40S-3B
'''


def no_nvml():
    def importer():
        raise ImportError('No module named pynvml')
    return nvml_mod.Nvml(importer)


def driver_for(tmp_path, nvml=None):
    boot = tmp_path / 'boot_id'
    if not boot.exists():
        boot.write_text('boot-1\n')
    return nvidia_vfio.NvidiaVfioDriver(make_conf(
        driver='nvidia_vfio', sysfs__root=str(tmp_path / 'sys'),
        sysfs__boot_id_file=str(boot), state_path=str(tmp_path / 'state')),
        nvml=nvml or no_nvml())


def l40s_host(tmp_path, profile='nvidia-l40s-vfio', monkeypatch=None):
    tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
    tree.add_gpu(PF, VFS, L40S_CAPTURE)
    [spec], _ = sim_profile.load_profile(sim_profile.find(profile))
    module = nvidia_vfio_tree.FakeModule(tree, spec, VFS)
    if monkeypatch is not None:
        module.install(monkeypatch)
    return tree, module


def test_capture_reads_as_one_gpu_with_every_type(tmp_path):
    tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
    tree.add_gpu(PF, VFS, L40S_CAPTURE)
    snap = discovered.group_virtual_functions(driver_for(tmp_path).discover())
    [gpu] = snap.parents
    assert gpu.name == PF and gpu.members == tuple(VFS)
    assert len(gpu.types) == 23
    t = gpu.type('nvidia-1154')
    # Four free VFs list it; the name says 16 GB; 48 GB is the largest.
    assert (t.name, t.available_instances) == ('NVIDIA L40S-16Q', 4)
    assert t.description == 'framebuffer=16384M, max_instance=3'
    model_, how = detect.choose_model(gpu, vendor=nvidia_models.DETECTORS)
    assert how == 'equal-size rule from type descriptions'
    assert model_.free_after({}, ['nvidia-1154', 'nvidia-1145']) == {
        'nvidia-1154': 3, 'nvidia-1145': 4}      # 4: the VFs
    assert snap.warnings == ()


def test_names_with_spaces_split_on_the_first_colon():
    text = ('ID    : vGPU Name\n1561  : NVIDIA RTX Pro 6000 Blackwell '
            'DC-1-24Q\n')
    assert nvidia_vfio.parse_creatable(text, 'vf') == {
        1561: 'NVIDIA RTX Pro 6000 Blackwell DC-1-24Q'}
    assert nvidia.framebuffer_gb(
        'NVIDIA RTX Pro 6000 Blackwell DC-1-24Q') == (24, True)


def test_garbled_list_makes_the_gpu_unreadable(tmp_path):
    tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
    tree.add_gpu(PF, VFS, L40S_CAPTURE)
    tree.write(VFS[2], 'creatable_vgpu_types', 'ID : vGPU Name\nbogus\n')
    snap = discovered.group_virtual_functions(driver_for(tmp_path).discover())
    assert snap.unreadable == frozenset([PF])
    assert any('not "ID : name"' in w for w in snap.warnings)


def test_create_and_remove_through_current_vgpu_type(tmp_path, monkeypatch):
    tree, module = l40s_host(tmp_path, monkeypatch=monkeypatch)
    driver = driver_for(tmp_path)
    mdev = str(uuid.uuid4())
    driver.create_mdev(VFS[0], 'nvidia-1150', mdev)
    assert tree.read(VFS[0], 'current_vgpu_type') == '1150\n'
    snap = discovered.group_virtual_functions(driver.discover())
    [gpu] = snap.parents
    assert [(m.uuid, m.type_id, m.parent) for m in gpu.mdevs] == [
        (mdev, 'nvidia-1150', VFS[0])]
    # Equal-size rule: only 4 GB types stay listed, on the free VFs; a
    # type that left the list (full-card state) is still known by name.
    assert gpu.type('nvidia-1150').available_instances == 3
    assert gpu.type('nvidia-1152').available_instances == 0
    # A second driver (another process) finds it by the same UUID.
    assert mdev in {m.uuid for m in driver_for(tmp_path).discover().mdevs()}
    driver.remove_mdev(mdev)
    assert tree.read(VFS[0], 'current_vgpu_type') == '0\n'
    assert driver.discover().mdevs() == []
    state = tmp_path / 'state' / 'nvidia-vfio.json'
    assert oct(os.stat(state).st_mode & 0o777) == '0o600'


def test_errors_map_errno_for_errno(tmp_path, monkeypatch):
    tree, module = l40s_host(tmp_path, monkeypatch=monkeypatch)
    driver = driver_for(tmp_path)
    first = str(uuid.uuid4())
    driver.create_mdev(VFS[0], 'nvidia-1150', first)
    # The resource manager refuses another size (EIO) ...
    with pytest.raises(exceptions.VgpuRefused) as err:
        driver.create_mdev(VFS[1], 'nvidia-1152', str(uuid.uuid4()))
    assert str(err.value).endswith('(EIO)')
    # ... a busy VF refuses a second vGPU (EPERM) ...
    with pytest.raises(exceptions.VfOccupied) as err:
        driver.create_mdev(VFS[0], 'nvidia-1150', str(uuid.uuid4()))
    assert str(err.value).endswith('(EPERM)')
    assert isinstance(err.value, exceptions.NoCapacity)
    # ... nothing failed is remembered, the first vGPU is intact.
    assert [m.uuid for m in driver.discover().mdevs()] == [first]
    with pytest.raises(exceptions.MdevExists):
        driver.create_mdev(VFS[1], 'nvidia-1150', first)
    with pytest.raises(exceptions.InvalidMdevRequest):
        driver.create_mdev(VFS[1], 'nvidia-x', str(uuid.uuid4()))
    with pytest.raises(exceptions.MdevNotFound):
        driver.remove_mdev(str(uuid.uuid4()))


def test_someone_elses_vgpu_is_consumed_capacity_with_a_stable_uuid(
        tmp_path, monkeypatch):
    tree, module = l40s_host(tmp_path, monkeypatch=monkeypatch)
    module.store(os.path.join(tree.device_dir(VFS[3]), 'nvidia',
                              'current_vgpu_type'), b'1154')
    a = driver_for(tmp_path).discover().mdevs()
    b = driver_for(tmp_path).discover().mdevs()
    assert [(m.type_id, m.parent) for m in a] == [('nvidia-1154', VFS[3])]
    assert a == b


def test_a_vgpu_made_where_ours_was_removed_behind_our_back_is_not_ours(
        tmp_path, monkeypatch):
    tree, module = l40s_host(tmp_path, monkeypatch=monkeypatch)
    driver = driver_for(tmp_path)
    ours = str(uuid.uuid4())
    driver.create_mdev(VFS[0], 'nvidia-1150', ours)
    attr = os.path.join(tree.device_dir(VFS[0]), 'nvidia',
                        'current_vgpu_type')
    # Someone writes 0, the scan sees it, then writes the same type again.
    module.store(attr, b'0')
    assert driver.discover().mdevs() == []
    module.store(attr, b'1150')
    [theirs] = driver_for(tmp_path).discover().mdevs()
    assert (theirs.type_id, theirs.parent) == ('nvidia-1150', VFS[0])
    assert theirs.uuid != ours
    # Ours is still found while its VF holds it, whatever the scans.
    mine = str(uuid.uuid4())
    driver.create_mdev(VFS[1], 'nvidia-1150', mine)
    for _ in range(2):
        assert mine in {m.uuid for m in driver_for(tmp_path).discover()
                        .mdevs()}


def test_a_vgpu_whose_uuid_was_lost_is_readopted_only_as_it_shows(
        tmp_path, monkeypatch):
    """readopt takes a vGPU back under its UUID only where the VF shows
    it under the UUID made up for lack of a record, and of the type."""
    tree, module = l40s_host(tmp_path, monkeypatch=monkeypatch)
    driver = driver_for(tmp_path)
    ours, other = str(uuid.uuid4()), str(uuid.uuid4())
    driver.create_mdev(VFS[0], 'nvidia-1150', ours)
    # On record: nothing to mend.
    assert not driver.readopt(VFS[0], 'nvidia-1150', other, ours)
    (tmp_path / 'state' / 'nvidia-vfio.json').unlink()
    [shown] = driver.discover().mdevs()
    assert shown.uuid != ours
    # Not the made-up UUID, or not the type the VF holds, or a VF
    # without a vGPU: refused.
    assert not driver.readopt(VFS[0], 'nvidia-1150', ours, other)
    assert not driver.readopt(VFS[0], 'nvidia-1152', ours, shown.uuid)
    assert not driver.readopt(VFS[1], 'nvidia-1150', ours, shown.uuid)
    assert driver.discover().mdevs() == [shown]
    assert driver.readopt(VFS[0], 'nvidia-1150', ours, shown.uuid)
    assert [m.uuid for m in driver_for(tmp_path).discover().mdevs()] == [
        ours]
    # The mdev drivers keep no UUIDs of their own: nothing to mend.
    assert not driver.readopt('mtty', 'mtty-1', ours, shown.uuid)


def test_mdev_parents_and_vfio_gpus_on_one_host(tmp_path):
    sysfs_tree.kernel_samples(tmp_path / 'sys')
    tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
    tree.add_gpu(PF, VFS, L40S_CAPTURE)
    names = [p.name for p in discovered.group_virtual_functions(
        driver_for(tmp_path).discover()).parents]
    assert names == [PF, 'mbochs', 'mdpy', 'mtty']


def test_without_nvml_it_is_said_once(tmp_path, caplog):
    tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
    tree.add_gpu(PF, VFS, L40S_CAPTURE)
    driver = driver_for(tmp_path)
    with caplog.at_level(logging.WARNING):
        driver.discover()
        driver.discover()
    said = [r.getMessage() for r in caplog.records if 'NVML' in
            r.getMessage()]
    assert len(said) == 1
    assert 'pip install nvidia-ml-py' in said[0]


class FakePynvml(types.SimpleNamespace):
    """NVML as its header documents it, for one L40S in mixed-size mode
    (the card cannot run here)."""


def fake_pynvml(spec):
    by_id = {int(t.id.split('-')[1]): t for t in spec.types}
    placements = {i: types.SimpleNamespace(
        placementSize=t.placement_size, placementIds=list(t.placement_ids),
        count=len(t.placement_ids)) for i, t in by_id.items()}
    return FakePynvml(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByPciBusId=lambda addr: 'h:' + addr,
        nvmlDeviceGetVgpuHeterogeneousMode=lambda h: types.SimpleNamespace(
            mode=1),
        nvmlDeviceGetMigMode=lambda h: (0, 0),
        nvmlDeviceGetSupportedVgpus=lambda h: sorted(by_id),
        nvmlVgpuTypeGetName=lambda i: by_id[i].name.encode(),
        nvmlVgpuTypeGetFramebufferSize=lambda i: by_id[i].size << 20,
        nvmlVgpuTypeGetMaxInstances=lambda h, i: by_id[i].max,
        nvmlVgpuTypeGetNumDisplayHeads=lambda i: 4,
        nvmlVgpuTypeGetResolution=lambda i, d: (7680, 4320),
        nvmlVgpuTypeGetFrameRateLimit=lambda i: 60,
        nvmlDeviceGetVgpuTypeSupportedPlacements=lambda h, i: placements[i])


def test_nvml_mixed_size_mode_gives_the_placement_model(tmp_path,
                                                        monkeypatch):
    tree, module = l40s_host(tmp_path, 'nvidia-l40s-vfio-mixed',
                             monkeypatch=monkeypatch)
    nvml = nvml_mod.Nvml(lambda: fake_pynvml(module.spec))
    driver = driver_for(tmp_path, nvml)
    driver.create_mdev(VFS[0], 'nvidia-1152', str(uuid.uuid4()))   # 8Q
    [gpu] = discovered.group_virtual_functions(driver.discover()).parents
    assert [m.placement_id for m in gpu.mdevs] == [0]
    chosen, how = detect.choose_model(gpu, vendor=nvidia_models.DETECTORS)
    assert how == 'mixed-size placements'
    free = chosen.free_after({'nvidia-1152': 1},
                             ['nvidia-1154', 'nvidia-1150', 'nvidia-1156'])
    # 16Q at 0 overlaps the 8Q: only 32 is left; 4Q: 6 of 8 IDs free,
    # capped by the 3 free VFs; 48Q: none.
    assert free == {'nvidia-1154': 1, 'nvidia-1150': 3, 'nvidia-1156': 0}
    # What the fake kernel lists agrees for the types it still lists.
    assert gpu.type('nvidia-1154').available_instances == 3
    assert gpu.type('nvidia-1156').available_instances == 0


def test_without_nvml_a_busy_gpu_is_sized_by_its_board():
    """An L40S first seen holding a 4Q lists only 4 GB types: 12 of them
    fit on its 48 GB, not the 1 the largest type listed would say."""
    types = nvidia_vfio.fallback_types({1: 'NVIDIA L40S-4Q',
                                        2: 'NVIDIA L40S-4A'})
    assert {i: info.max_instance for i, (_n, _d, info) in types.items()} \
        == {1: 12, 2: 12}
    # A board not in the table: the largest size listed, as before.
    unknown = nvidia_vfio.fallback_types({1: 'NVIDIA X9-4Q',
                                          2: 'NVIDIA X9-8Q'})
    assert {i: info.max_instance for i, (_n, _d, info) in unknown.items()} \
        == {1: 2, 2: 1}


@pytest.mark.parametrize('name,board', [
    ('GRID T4-4Q', 16), ('NVIDIA L40S-48Q', 48), ('NVIDIA A16-2B', 16),
    ('GRID RTX6000-4Q', 24), ('NVIDIA RTXA6000-8Q', 48),
    ('NVIDIA A100-3-20C', None), ('NVIDIA H100-4C', None), ('junk', None)])
def test_board_framebuffer_from_a_type_name(name, board):
    assert nvidia.board_framebuffer_gb(name) == board


def test_a_physfn_that_is_not_a_distinct_physical_function_is_refused(
        tmp_path):
    """A VF whose physfn link leads to itself (or to another VF) would
    stand for a second provider of the same GPU: skipped, said."""
    tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
    tree.add_gpu(PF, VFS, L40S_CAPTURE)
    for rogue, target in (('0000:41:01.0', '0000:41:01.0'),
                          ('0000:41:01.1', VFS[0])):
        d = tree.add_device(rogue)
        os.symlink('../' + target, os.path.join(d, 'physfn'))
        os.makedirs(os.path.join(d, 'nvidia'))
        tree.write(rogue, 'creatable_vgpu_types', L40S_CAPTURE)
        tree.write(rogue, 'current_vgpu_type', '0\n')
    snap = discovered.group_virtual_functions(driver_for(tmp_path).discover())
    assert [p.name for p in snap.parents] == [PF]
    assert sum('distinct physical function' in w
               for w in snap.warnings) == 2


def test_vfs_listing_absurd_numbers_of_types_are_bounded(tmp_path):
    tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
    tree.add_gpu(PF, VFS, L40S_CAPTURE)
    # One VF lists more types than any GPU has: that VF is not read.
    tree.write(VFS[0], 'creatable_vgpu_types', nvidia_vfio_tree.creatable_text(
        [(i, 'NVIDIA L40S-1B')
         for i in range(1, nvidia_vfio.MAX_TYPES_PER_VF + 2)]))
    snap = driver_for(tmp_path).discover()
    assert VFS[0] in snap.unreadable
    assert any('more than %d types' % nvidia_vfio.MAX_TYPES_PER_VF in w
               for w in snap.warnings)
    # Each VF within the bound, the GPU's distinct types beyond its own:
    # the GPU is not read (unknown), nothing remembered of them.
    per_vf = nvidia_vfio.MAX_TYPES_PER_GPU // len(VFS) + 1
    for n, vf in enumerate(VFS):
        tree.write(vf, 'creatable_vgpu_types', nvidia_vfio_tree.creatable_text(
            [(1000 + n * per_vf + i, 'NVIDIA L40S-1B')
             for i in range(per_vf)]))
    snap = driver_for(tmp_path).discover()
    assert PF in snap.unreadable and not snap.parents
