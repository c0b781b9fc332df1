"""Realize, release and reconcile with the real nvidia_vfio driver, on a
directory tree of NVIDIA's vendor-specific VFIO layout
(tests/nvidia_vfio_tree.py: only the kernel module's reaction to a
current_vgpu_type write is faked), against the real embedded Placement.
No NVML here: counts come from the type names, as on a host without
nvidia-ml-py."""
import json
import os
import re
import stat
import subprocess
import sys
import uuid

import pytest

from tests.conftest import make_conf
from tests.functional.conftest import EXTERNAL
from tests.functional.conftest import placement_ini
from tests.functional.conftest import served_conf
from tests.functional.conftest import tree_in_placement
from tests import nvidia_vfio_tree
from vgpu_placement.drivers.simulated import profile as sim_profile
from vgpu_placement.host import facts as host_facts
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import reconcile as host_reconcile
from vgpu_placement.placement import embedded
from vgpu_placement.placement import flavor
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone

PF = '0000:41:00.0'
VFS = ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6', '0000:41:00.7']
TYPE = 'nvidia-1150'            # L40S-4Q


class VfioWorld:
    """One L40S-like GPU with four VFs, the agent's config, and a way to
    reboot the host."""

    def __init__(self, tmp_path, host, placement_db, monkeypatch):
        self.tree = nvidia_vfio_tree.VfioTree(tmp_path / 'sys')
        [spec], _ = sim_profile.load_profile(
            sim_profile.find('nvidia-l40s-vfio'))
        self.tree.add_gpu(PF, VFS, nvidia_vfio_tree.HEADER)
        self.module = nvidia_vfio_tree.FakeModule(self.tree, spec, VFS)
        self.module.install(monkeypatch)
        self.boot = tmp_path / 'boot_id'
        self.boot.write_text('boot-1\n')
        self.state = tmp_path / 'state'
        self.conf = make_conf(
            placement_ini(placement_db), driver='nvidia_vfio', host=host,
            sysfs__root=str(tmp_path / 'sys'),
            sysfs__boot_id_file=str(self.boot), state_path=str(self.state))
        self.reporter = standalone.reporter_for(self.conf)
        self.reporter.report()

    def host(self):
        """An MdevManager as a fresh process (CLI command, restarted agent)
        makes it."""
        return standalone.manager_for(standalone.reporter_for(self.conf))

    def reboot(self):
        """vGPUs do not survive a reboot: every VF's current_vgpu_type
        reads 0 again and the boot id changes."""
        self.module.vgpus.clear()
        for vf in VFS:
            self.tree.write(vf, 'current_vgpu_type', '0\n')
        self.module.refresh()
        self.boot.write_text('boot-2\n')

    def current(self):
        """{VF: type id written there} as the VFs show it (0: none)."""
        return {vf: int(self.tree.read(vf, 'current_vgpu_type'))
                for vf in VFS}

    def realized(self, h, n):
        """[(instance, its Realized)] for n instances, each claimed and
        realized on this GPU."""
        done = []
        for _ in range(n):
            consumer = str(uuid.uuid4())
            self.claim(h, consumer)
            [r] = h.realize(consumer)
            done.append((consumer, r))
        return done

    def claim(self, h, consumer):
        desired = h.tree.reporter.desired_tree(h.tree.reporter.discover())
        spec = flavor.extra_specs_for_type(desired, TYPE)
        return scheduler.claim(
            h.client, flavor.parse_extra_specs(spec['extra_specs']),
            consumer, 'p', 'u', in_tree=h.tree.reporter.cache.root_uuid)


@pytest.fixture
def vfio_world(tmp_path, host, placement_db, monkeypatch):
    return VfioWorld(tmp_path, host, placement_db, monkeypatch)


def gpu_usage(placement, h):
    """The GPU provider's usage of the type's class, read from Placement."""
    [(name, rp)] = [(n, rp) for n, rp in
                    tree_in_placement(placement, h.name).items()
                    if n.endswith('_pci_0000_41_00_0')]
    rc = 'CUSTOM_MDEV_' + TYPE.upper().replace('-', '_')
    return rp['usages'].get(rc, 0)


def test_realize_release_reconcile_after_reboot(vfio_world, placement):
    world = vfio_world
    h = world.host()
    done = dict(world.realized(h, 2))
    kept, gone = done
    # Each vGPU is a VF with the type written to it, under the UUID
    # derived from its instance.
    for consumer, r in done.items():
        assert r.uuid == host_facts.mdev_uuid_for(consumer, 0)
        assert r.type_id == TYPE and r.device == PF and r.parent in VFS
        assert world.current()[r.parent] == 1150
    assert done[kept].parent != done[gone].parent
    assert {m.uuid: m.parent for m in h.driver.discover().mdevs()} == {
        r.uuid: r.parent for r in done.values()}
    assert gpu_usage(placement, h) == 2
    # The guest gets the VF itself.
    vf = done[kept].parent
    assert h.driver.guest_gets_parent(vf)
    xml = h.driver.hostdev_xml(done[kept].uuid, vf)
    assert "type='pci' managed='no'" in xml
    assert "bus='0x%s' slot='0x%s' function='0x%s'" % (
        vf[5:7], vf[8:10], vf[11]) in xml
    # The driver's memory of its UUIDs is private and ours.
    memory = world.state / 'nvidia-vfio.json'
    assert stat.S_IMODE(os.stat(memory).st_mode) == 0o600

    freed, released = h.release(gone)
    assert freed == [done[gone].uuid] and released
    assert world.current()[done[gone].parent] == 0
    assert placement.get('/allocations/%s' % gone)['allocations'] == {}
    assert [r.uuid for r in h.ledger.records()] == [done[kept].uuid]
    assert gpu_usage(placement, h) == 1

    world.reboot()
    assert world.current() == {vf: 0 for vf in VFS}
    assert world.host().driver.discover().mdevs() == []
    summary = world.host().reconcile()
    assert summary['recreated'] == [done[kept].uuid]
    # Back on a VF under the same UUID, active in the ledger with the new
    # boot, its allocation untouched.
    h = world.host()
    [mdev] = h.driver.discover().mdevs()
    assert (mdev.uuid, mdev.type_id) == (done[kept].uuid, TYPE)
    assert world.current()[mdev.parent] == 1150
    assert sum(1 for t in world.current().values() if t) == 1
    [record] = h.ledger.records()
    assert (record.uuid, record.state, record.boot_id) == (
        done[kept].uuid, ledger_mod.ACTIVE, 'boot-2')
    assert gpu_usage(placement, h) == 1
    # Nothing more to do, and the last release empties the GPU.
    again = world.host().reconcile()
    assert not any(again.get(k) for k in host_reconcile.ACTIONS), again
    assert h.release(kept) == ([done[kept].uuid], True)
    assert world.current() == {vf: 0 for vf in VFS}
    assert gpu_usage(placement, h) == 0


@pytest.mark.parametrize('loss', ['deleted', 'corrupt'])
def test_a_lost_uuid_file_never_gives_a_guest_a_second_vgpu(
        vfio_world, placement, caplog, loss):
    """The driver's file of its vGPUs' UUIDs is deleted or corrupt while a
    guest runs: the host then shows the vGPU under a made-up UUID. It is
    found again as the guest's own (never made a second time on another
    VF), and the guest's release frees it, leaving the GPU empty."""
    world = vfio_world
    h = world.host()
    vfs = {c: r.parent for c, r in world.realized(h, 2)}
    running, deleted = vfs
    memory = world.state / 'nvidia-vfio.json'
    if loss == 'deleted':
        memory.unlink()
    else:
        memory.write_text('{"vgpus": [')
    shown = {m.uuid for m in world.host().driver.discover().mdevs()}
    assert host_facts.mdev_uuid_for(running, 0) not in shown
    # Meanwhile the other instance's allocation goes without a release.
    placement.delete('/allocations/%s' % deleted)

    summary = world.host().reconcile()
    # The running guest's vGPU is still the one on its VF, and only it;
    # the deleted instance's vGPU is removed, not left as no one's.
    assert summary['recreated'] == [] and summary['realized'] == []
    assert summary['removed'] == [host_facts.mdev_uuid_for(deleted, 0)]
    assert world.current() == {vf: 1150 if vf == vfs[running] else 0
                               for vf in VFS}
    h = world.host()
    assert {m.uuid: m.parent for m in h.driver.discover().mdevs()} == {
        host_facts.mdev_uuid_for(running, 0): vfs[running]}
    assert 'found again' in caplog.text
    assert h.release(running) == (
        [host_facts.mdev_uuid_for(running, 0)], True)
    assert world.current() == {vf: 0 for vf in VFS}
    assert gpu_usage(placement, h) == 0


def test_a_release_after_the_uuid_file_is_lost_frees_the_vf(vfio_world,
                                                            placement):
    """No reconcile between the loss and the release: the release finds
    the guest's vGPU all the same and frees its VF."""
    world = vfio_world
    [(consumer, r)] = world.realized(world.host(), 1)
    (world.state / 'nvidia-vfio.json').unlink()
    assert world.host().release(consumer) == ([r.uuid], True)
    assert world.current() == {vf: 0 for vf in VFS}
    assert world.host().driver.discover().mdevs() == []


@pytest.fixture
def served_vfio(placement_db, tmp_path, host):
    """A CLI config for the simulated L40S on vendor VFIO, its Placement
    on loopback HTTP (CLI processes cannot share the in-process one)."""
    server = None if EXTERNAL else embedded.LoopbackServer(placement_db)
    conf = served_conf(tmp_path, host, EXTERNAL or server.url,
                       'nvidia-l40s-vfio')
    if server is None:
        yield conf
        return
    with server:
        yield conf


def test_realize_prints_the_vf_as_a_pci_hostdev(served_vfio):
    h = standalone.manager_for(standalone.reporter_for(make_conf(
        served_vfio.read_text())))
    h.tree.reporter.report()
    consumer = str(uuid.uuid4())
    desired = h.tree.reporter.desired_tree(h.tree.reporter.discover())
    scheduler.claim(h.client, flavor.parse_extra_specs(
        flavor.extra_specs_for_type(desired, TYPE)['extra_specs']),
        consumer, 'p', 'u', in_tree=h.tree.reporter.cache.root_uuid)

    def realize(*more):
        proc = subprocess.run(
            [sys.executable, '-m', 'vgpu_placement.cmd.cli',
             '--config-file', str(served_vfio), 'realize', '--instance',
             consumer] + list(more), capture_output=True, text=True,
            timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    first, xml = realize().splitlines()
    vf = re.fullmatch(r'\S+  %s on (\S+)' % TYPE, first).group(1)
    [mdev] = h.driver.discover().mdevs()
    assert mdev.parent == vf and first.startswith(mdev.uuid)
    domain, bus, rest = vf.split(':')
    slot, function = rest.split('.')
    assert xml.strip() == (
        "<hostdev mode='subsystem' type='pci' managed='no'><source>"
        "<address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>"
        "</source></hostdev>" % (domain, bus, slot, function))
    # The same element in JSON; a retry finds the same vGPU.
    [data] = json.loads(realize('--format', 'json'))['mdevs']
    assert (data['uuid'], data['parent'], data['xml']) == (
        mdev.uuid, vf, xml.strip())
