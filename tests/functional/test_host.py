"""Claim, realize, release and reconcile against the real embedded
Placement and the simulated host."""
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import make_conf
from tests.functional.conftest import claim as raw_claim
from tests.functional.conftest import embedded_only
from tests.functional.conftest import EXTERNAL
from tests.functional.conftest import served_conf
from tests.functional.conftest import tree_in_placement
from vgpu_placement import exceptions
from vgpu_placement.host import context as host_context
from vgpu_placement.host import facts as host_facts
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import reconcile as host_reconcile
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import consumers
from vgpu_placement.placement import embedded
from vgpu_placement.placement import flavor
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone


def new():
    return str(uuid.uuid4())


def mtty2():
    return flavor.parse_extra_specs({
        'resources1:CUSTOM_MDEV_MTTY_2': '1',
        'resources1:CUSTOM_VGPU_UNITS_MTTY': '2'})


@pytest.fixture
def world(sim_conf):
    def make(profile='kernel-samples'):
        reporter = standalone.reporter_for(sim_conf(profile))
        reporter.report()
        return standalone.manager_for(reporter)
    return make


def conf_with(sim_conf, host, text, profile):
    return sim_conf(profile, config_text=text)


def claim_here(h, request, consumer, client=None):
    """Claim on this test's host only (the session's Placement holds many
    hosts; a cloud scheduler would pick among them all)."""
    return scheduler.claim(client or h.client, request, consumer, 'p', 'u',
                           in_tree=h.tree.reporter.cache.root_uuid)


def host_mdevs(h):
    return {m.uuid: m for m in h.driver.discover().mdevs()}


def agree(h, placement):
    """Placement's vGPU usage per type equals the consumer-owned mdevs."""
    tree = tree_in_placement(placement, h.name)
    records = h.ledger.records()
    assert all(r.state == ledger_mod.ACTIVE for r in records)
    mdevs = host_mdevs(h)
    assert {r.uuid for r in records} <= set(mdevs)
    for child in h.tree.reporter.desired_tree(
            h.tree.reporter.discover()).children:
        usages = tree[child.name]['usages']
        for type_id, rc in child.plan.classes.items():
            owned = [r for r in records if r.type == type_id and
                     r.device == child.device]
            assert usages.get(rc, 0) == len(owned), (child.name, rc)


def placement_reflects_the_host(h, placement):
    """Placement already shows the host as it is now: what Placement holds
    (read with a client of its own) is what a further report would write,
    and that report finds nothing to change."""
    before = tree_in_placement(placement, h.name)
    result = standalone.reporter_for(h.tree.reporter.conf).report()
    assert result.changes == []
    assert tree_in_placement(placement, h.name) == before


def test_claim_realize_release_round_trip(world, placement):
    h = world()
    consumer = new()
    got = claim_here(h, mtty2(), consumer)
    assert got.attempts == 1
    [done] = h.realize(consumer)
    assert done.uuid == host_facts.mdev_uuid_for(consumer, 0)
    assert host_mdevs(h)[done.uuid].type_id == 'mtty-2'
    assert "<address uuid=\"%s\"/>" % done.uuid in h.driver.hostdev_xml(
        done.uuid, done.parent)
    agree(h, placement)
    # Realize again (a retry): the same mdev, nothing new.
    assert h.realize(consumer) == [done]
    assert len(host_mdevs(h)) == 1
    freed, released = h.release(consumer)
    assert freed == [done.uuid] and released
    assert host_mdevs(h) == {} and h.ledger.records() == []
    assert placement.get('/allocations/%s' % consumer)['allocations'] == {}
    assert h.ledger.releases_owed() == []


def test_claims_move_no_inventory_and_free_room_at_once(world, placement):
    """Claims that pay their counters are carried by Placement alone:
    claiming, realizing and releasing three mtty-2 writes no inventory,
    a mtty-1 flavor sees six ports fewer, and all of them again as soon
    as the allocations go."""
    h = world()
    name = '%s_mtty_mtty' % h.name
    reporter = h.tree.reporter
    plan = reporter.desired_tree(reporter.discover()).child(name).plan
    mtty1 = plan.request('mtty-1')

    def seen():
        tree = tree_in_placement(placement, h.name)[name]
        return tree['inventories'], provider_tree.grantable(
            tree['inventories'], tree['usages'], mtty1)
    inventories, before = seen()
    consumers = [new() for _ in range(3)]
    for c in consumers:
        claim_here(h, mtty2(), c)
        h.realize(c)
    assert seen() == (inventories, before - 6)
    for c in consumers:
        h.release(c)
    assert seen() == (inventories, before)


def test_no_valid_host_and_claim_is_idempotent(world):
    h = world()
    request = flavor.parse_extra_specs({'resources1:CUSTOM_MDEV_MDPY_HD': '5'})
    with pytest.raises(scheduler.NoValidHost):
        claim_here(h, request, new())
    consumer = new()
    first = claim_here(h, mtty2(), consumer)
    again = claim_here(h, mtty2(), consumer)
    assert again.allocations == first.allocations
    assert again.attempts == 1        # one PUT, refused: it already holds


class RacedClient(client_mod.PlacementClient):
    """A scheduler whose candidates go stale: another scheduler claims
    right after each candidates query."""

    def __init__(self, adapter, rival, rival_request):
        super().__init__(adapter)
        self.rival, self.rival_request = rival, rival_request
        self.rival_wins = 0

    def get(self, path, **kw):
        found = super().get(path, **kw)
        if path.startswith('/allocation_candidates') and self.rival_wins < 1:
            self.rival_wins += 1
            scheduler.claim(self.rival, self.rival_request, new(), 'p', 'u',
                            in_tree=self.root)
        return found


def test_409_race_between_two_schedulers(world, new_adapter):
    h = world()
    last_three = flavor.parse_extra_specs({'resources1:CUSTOM_MDEV_MDPY_VGA':
                                           '3'})
    # A rival takes 3 of mdpy's 4 just after we asked: our candidate (4
    # free) is stale, Placement answers 409 and we try again.
    one = flavor.parse_extra_specs({'resources1:CUSTOM_MDEV_MDPY_XGA': '1'})
    raced = RacedClient(new_adapter(), h.client,
                        last_three)
    raced.root = h.tree.reporter.cache.root_uuid
    got = claim_here(h, one, new(), client=raced)
    assert raced.rival_wins == 1 and got.allocations
    # The last slot is gone now: the next one is refused cleanly.
    raced.rival_wins = 0
    with pytest.raises(scheduler.NoValidHost):
        claim_here(h, one, new(), client=raced)


def test_reboot_brings_the_same_uuids_back(world, placement):
    h = world()
    consumers = [new(), new()]
    uuids = []
    for c in consumers:
        claim_here(h, mtty2(), c)
        uuids += [r.uuid for r in h.realize(c)]
    realized = tree_in_placement(placement, h.name)
    h.driver.reboot()
    assert host_mdevs(h) == {}
    summary = standalone.manager_for(h.tree.reporter).reconcile()
    assert sorted(summary['recreated']) == sorted(uuids)
    assert sorted(host_mdevs(h)) == sorted(uuids)
    agree(h, placement)
    # Reconcile reported the host once the mdevs were back (its report
    # before them showed two claims waiting for mdevs): Placement shows
    # what it showed before the reboot, with no report since.
    assert tree_in_placement(placement, h.name) == realized
    placement_reflects_the_host(h, placement)


def test_foreign_mdevs_are_counted_never_touched(world, placement):
    h = world()
    foreign = new()
    h.driver.create_mdev('mtty', 'mtty-2', foreign)
    consumer = new()
    claim_here(h, mtty2(), consumer)
    h.realize(consumer)
    h.reconcile()
    h.release(consumer)
    h.reconcile()
    assert list(host_mdevs(h)) == [foreign]
    inv = tree_in_placement(placement, h.name)[
        '%s_mtty_mtty' % h.name]['inventories']
    assert inv['CUSTOM_VGPU_UNITS_MTTY']['reserved'] == 2   # its 2 ports


def test_orphans_removed_and_missing_realized(world, placement):
    h = world()
    gone, waiting = new(), new()
    claim_here(h, mtty2(), gone)
    [orphan] = h.realize(gone)
    # The instance was deleted behind our back; another was scheduled.
    placement.delete('/allocations/%s' % gone)
    claim_here(h, mtty2(), waiting)
    summary = h.reconcile()
    assert summary['removed'] == [orphan.uuid]
    assert summary['realized'] == [host_facts.mdev_uuid_for(waiting, 0)]
    agree(h, placement)
    placement_reflects_the_host(h, placement)


def test_reconcile_reports_the_mdevs_it_removed(world, placement):
    """Reconcile's own report comes before it acts (it reads the tree
    through it): after removing an orphan it must report again, or
    Placement keeps offering the host without the orphan's capacity."""
    h = world()
    name = '%s_mtty_mtty' % h.name
    gone = new()
    claim_here(h, mtty2(), gone)
    [orphan] = h.realize(gone)
    # Dropped as Nova drops an instance's allocations (a PUT of none,
    # guarded by the consumer generation), the next report sees it.
    held = placement.get('/allocations/%s' % gone)
    consumers.put(placement, gone, {}, held['project_id'], held['user_id'],
                  held['consumer_generation'])
    h.tree.reporter.report()
    inventories = tree_in_placement(placement, h.name)[name][
        'inventories']
    # The orphan's two ports, which no allocation accounts for any more.
    assert inventories['CUSTOM_VGPU_UNITS_MTTY']['reserved'] == 2
    assert h.reconcile()['removed'] == [orphan.uuid]
    assert host_mdevs(h) == {}
    inventories = tree_in_placement(placement, h.name)[name][
        'inventories']
    # All 24 ports free again: 24 mtty-1 or 12 mtty-2, nothing reserved.
    assert {rc: (inv['total'], inv['reserved'])
            for rc, inv in inventories.items()} == {
        'CUSTOM_MDEV_MTTY_1': (24, 0), 'CUSTOM_MDEV_MTTY_2': (12, 0),
        'CUSTOM_VGPU_UNITS_MTTY': (24, 0)}
    placement_reflects_the_host(h, placement)


def realized_t4(sim_conf, host, vendor_params):
    """(host, consumer, its Realized) for one nvidia-231 on a T4-like card
    whose type has these operator vendor parameters."""
    conf = conf_with(sim_conf, host, '[mdev_nvidia-231]\nvendor_params = '
                     '%s\n' % vendor_params, 'nvidia-t4')
    h = standalone.manager_for(standalone.reporter_for(conf))
    h.tree.reporter.report()
    consumer = new()
    claim_here(h, flavor.parse_extra_specs(
        {'resources1:CUSTOM_MDEV_NVIDIA_231': '1'}), consumer)
    [done] = h.realize(consumer)
    return h, consumer, done


def test_operator_vendor_params_are_applied(sim_conf, host):
    h, _consumer, done = realized_t4(sim_conf, host,
                                     'frame_rate_limiter=0, disable_vnc=1')
    assert h.driver.vendor_params(done.uuid) == {'frame_rate_limiter': 0,
                                                 'disable_vnc': 1}


def test_vendor_params_come_back_on_an_mdev_persisted_over_a_reboot(
        sim_conf, host):
    """libvirt's autostart (or mdevctl) makes the mdev again at boot,
    without the per-boot vendor parameters: reconcile sets them again."""
    h, _consumer, done = realized_t4(sim_conf, host,
                                     'frame_rate_limiter=0, disable_vnc=1')
    h.driver.reboot(persisted=True)
    assert done.uuid in host_mdevs(h)
    assert h.driver.vendor_params(done.uuid) == {}
    summary = h.reconcile()
    assert h.driver.vendor_params(done.uuid) == {'frame_rate_limiter': 0,
                                                 'disable_vnc': 1}
    assert summary['failed'] == [] and summary['removed'] == []
    [record] = h.ledger.records()
    assert record.boot_id == h.driver.boot_id()


def test_realize_again_leaves_the_active_mdev_alone(sim_conf, host,
                                                    monkeypatch):
    """A retried realize finds the consumer's mdev active in the ledger and
    returns it as it is: no record written again (never back to creating),
    no set-up again. So a host that now refuses the set-up cannot make a
    retry tear down the mdev the instance is using."""
    h, consumer, done = realized_t4(sim_conf, host, 'frame_rate_limiter=0')
    [record] = h.ledger.records(consumer)
    assert record.state == ledger_mod.ACTIVE

    written = []
    put = h.ledger.put
    monkeypatch.setattr(h.ledger, 'put',
                        lambda r: (written.append(r.state), put(r))[1])

    def refused(mdev_uuid, type_id, params):
        raise exceptions.InvalidMdevRequest(
            'set vendor parameters on', 'mdev ' + mdev_uuid, 'refused now')
    monkeypatch.setattr(h.driver, 'set_vendor_params', refused)
    assert h.realize(consumer) == [done]
    assert written == []
    assert h.ledger.records(consumer) == [record]
    assert list(host_mdevs(h)) == [done.uuid]
    assert h.driver.vendor_params(done.uuid) == {'frame_rate_limiter': 0}


@pytest.mark.parametrize('text,words', [
    ('[mdev_nvidia-231]\nvendor_params = rm_rf=1\n', 'not an allowed'),
    ('[mdev_nvidia-231]\nvendor_params = frame_rate_limiter=off\n',
     'not an integer'),
])
def test_bad_vendor_params_stop_start_up(sim_conf, host, text, words):
    conf = conf_with(sim_conf, host, text, 'nvidia-t4')
    reporter = standalone.reporter_for(conf)
    with pytest.raises(exceptions.ConfigError) as err:
        reporter.desired_tree(reporter.discover())
    assert str(err.value).startswith('[mdev_nvidia-231] vendor_params:')
    assert words in str(err.value)


# -- several processes, crashes, outages: real processes on one host -------

@pytest.fixture
def served(placement_db, tmp_path, host):
    """Placement on loopback HTTP, and a config for CLI processes (several
    processes cannot share the embedded, in-process one)."""
    server = None if EXTERNAL else embedded.LoopbackServer(placement_db)
    conf = served_conf(tmp_path, host, EXTERNAL or server.url)
    if server is None:
        yield None, conf
        return
    with server:
        yield server, conf


def cli(conf, *args, env=None):
    return subprocess.run(
        [sys.executable, '-m', 'vgpu_placement.cmd.cli', '--config-file',
         str(conf)] + list(args), capture_output=True, text=True,
        timeout=300, env=dict(os.environ, **(env or {})))


def conf_of(conf_path):
    return make_conf(conf_path.read_text())


def test_concurrent_realize_in_several_processes(served):
    _server, conf = served
    h = standalone.manager_for(standalone.reporter_for(conf_of(conf)))
    h.tree.reporter.report()
    consumers = [new() for _ in range(6)]
    spec = flavor.parse_extra_specs({'resources1:CUSTOM_MDEV_MTTY_1': '1'})
    for c in consumers:
        claim_here(h, spec, c)
    # Six realizes and a duplicate of the first, all at once.
    procs = [subprocess.Popen(
        [sys.executable, '-m', 'vgpu_placement.cmd.cli', '--config-file',
         str(conf), 'realize', '--instance', c],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in consumers + consumers[:1]]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 7, outs
    mdevs = host_mdevs(h)
    assert sorted(mdevs) == sorted(host_facts.mdev_uuid_for(c, 0)
                                   for c in consumers)
    assert {r.consumer for r in h.ledger.records()} == set(consumers)


REALIZE_POINTS = [p for p in host_context.CRASH_POINTS
                  if p.startswith('realize:')]
RELEASE_POINTS = [p for p in host_context.CRASH_POINTS
                  if not p.startswith('realize:')]


@pytest.mark.parametrize('point', REALIZE_POINTS)
def test_crash_during_realize_then_reconcile(served, point, placement):
    _server, conf = served
    h = standalone.manager_for(standalone.reporter_for(conf_of(conf)))
    h.tree.reporter.report()
    consumer = new()
    claim_here(h, mtty2(), consumer)
    crashed = cli(conf, 'realize', '--instance', consumer,
                  env={'VGPU_PLACEMENT_CRASH_AT': point})
    assert crashed.returncode == 99, crashed.stderr
    assert cli(conf, 'reconcile').returncode == 0
    assert list(host_mdevs(h)) == [host_facts.mdev_uuid_for(consumer, 0)]
    agree(h, placement)


@pytest.mark.parametrize('point', RELEASE_POINTS)
def test_crash_during_release_then_reconcile(served, point, placement):
    _server, conf = served
    h = standalone.manager_for(standalone.reporter_for(conf_of(conf)))
    h.tree.reporter.report()
    consumer, keeper = new(), new()
    for c in (consumer, keeper):
        claim_here(h, mtty2(), c)
        h.realize(c)
    crashed = cli(conf, 'release', '--instance', consumer,
                  env={'VGPU_PLACEMENT_CRASH_AT': point})
    assert crashed.returncode == 99, crashed.stderr
    assert cli(conf, 'reconcile').returncode == 0
    assert list(host_mdevs(h)) == [host_facts.mdev_uuid_for(keeper, 0)]
    assert placement.get('/allocations/%s' % consumer)['allocations'] == {}
    agree(h, placement)


@embedded_only
def test_placement_down_during_release_loses_nothing(served, placement_db,
                                                     placement):
    server, conf = served
    h = standalone.manager_for(standalone.reporter_for(conf_of(conf)))
    h.tree.reporter.report()
    consumer = new()
    claim_here(h, mtty2(), consumer)
    h.realize(consumer)
    server.__exit__(None, None, None)              # Placement goes down
    proc = cli(conf, 'release', '--instance', consumer)
    assert proc.returncode == 1 and 'reconcile will release' in proc.stdout
    assert host_mdevs(h) == {}
    assert h.ledger.releases_owed() == [consumer]
    with embedded.LoopbackServer(placement_db, port=server.port):
        assert cli(conf, 'reconcile').returncode == 0
    assert h.ledger.releases_owed() == []
    assert placement.get('/allocations/%s' % consumer)['allocations'] == {}


def test_claim_cli_errors_are_one_line(served):
    _server, conf = served
    # The host's classes exist in Placement (not left to earlier tests).
    assert cli(conf, 'report').returncode == 0
    for args, words in (
            (['claim', '--instance', new(), 'resources1:VGPUX=1'],
             'unknown resource class'),
            (['claim', '--instance', 'nope', 'resources1:VGPU=1'],
             'not a UUID'),
            (['claim', '--instance', new(), 'vgpu:params=x',
              'resources1:VGPU=1'], 'vendor parameters'),
            (['claim', '--instance', new(),
              'resources1:CUSTOM_MDEV_MDPY_HD=9'], 'no host can give'),
            (['realize', '--instance', new()], 'no vGPU allocations')):
        proc = cli(conf, *args)
        assert proc.returncode == 1
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert words in proc.stderr and 'Traceback' not in proc.stderr


class AlwaysRacedClient(client_mod.PlacementClient):
    """Every inventory write of ours loses to a scheduler's claim."""

    def __init__(self, adapter, rival):
        super().__init__(adapter)
        self.rival = rival

    def put(self, path, body, **kw):
        if path.endswith('/inventories'):
            raw_claim(self.rival, path.split('/')[2],
                      {'CUSTOM_MDEV_MTTY_1': 1})
        return super().put(path, body, **kw)


def test_realize_and_release_survive_a_report_that_keeps_losing_races(
        world, new_adapter, placement, caplog):
    h = world()
    consumer = new()
    # A claim of the type alone: the parent then follows each claim, so
    # realizing it rewrites inventories (claims that pay their counters
    # write none, and so cannot lose this race).
    claim_here(h, flavor.parse_extra_specs(
        {'resources1:CUSTOM_MDEV_MTTY_2': '1'}), consumer)
    h.tree.reporter.client = h.client = AlwaysRacedClient(new_adapter(),
                                                          placement)
    [done] = h.realize(consumer)
    assert done.uuid in host_mdevs(h)
    freed, released = h.release(consumer)
    assert freed == [done.uuid] and released
    assert placement.get('/allocations/%s' % consumer)['allocations'] == {}
    assert 'deferred to the agent' in caplog.text


def test_an_mdev_another_tool_made_for_a_consumer_is_adopted(world,
                                                             placement):
    """Adopted (stock Nova's, on a host taken over): the consumer's from
    then on, as the vGPU its allocation asks for; nothing made anew."""
    h = world()
    consumer, bystander = new(), new()
    claim_here(h, mtty2(), consumer)
    made, wrong_type = new(), new()
    h.driver.create_mdev('mtty', 'mtty-2', made)
    h.driver.create_mdev('mtty', 'mtty-1', wrong_type)
    # No allocation asks for them: nothing to adopt.
    assert h.adopt(bystander, [made]) == []
    assert h.adopt(consumer, [made, wrong_type, new()]) == [made]
    assert [(r.uuid, r.consumer, r.state) for r in h.ledger.records()] == [
        (made, consumer, ledger_mod.ACTIVE)]
    # Its one vGPU has its mdev now: nothing more, for it or anyone.
    assert h.adopt(consumer, [wrong_type]) == []
    assert h.adopt(bystander, [made]) == []
    [done] = h.realize(consumer)
    assert done.uuid == made
    assert sorted(host_mdevs(h)) == sorted([made, wrong_type])
    summary = h.reconcile()
    assert not any(summary[k] for k in host_reconcile.ACTIONS), summary
    # Recreated with its UUID after a reboot; the other tool's is not ours.
    h.driver.reboot()
    assert h.reconcile()['recreated'] == [made]
    assert list(host_mdevs(h)) == [made]
    agree(h, placement)
    freed, released = h.release(consumer)
    assert (freed, released) == ([made], True)
    assert host_mdevs(h) == {}


TWO_T4 = """parents:
%s"""
T4_PARENT = """  - name: "%s"
    capacity: {rule: exclusive, errno: ENOSPC}
    types:
      - {id: nvidia-231, name: GRID T4-2Q, size: 2048, max: 8,
         description: "framebuffer=2048M, max_instance=8"}
      - {id: nvidia-232, name: GRID T4-4Q, size: 4096, max: 4,
         description: "framebuffer=4096M, max_instance=4"}
      - {id: nvidia-234, name: GRID T4-16Q, size: 16384, max: 1,
         description: "framebuffer=16384M, max_instance=1"}
"""
GPU_A, GPU_B = '0000:84:00.0', '0000:85:00.0'


def test_a_size_clash_moves_the_claim_to_another_gpu_of_the_host(
        sim_conf, tmp_path, placement, caplog):
    """Two sizes granted on one empty equal-size GPU in one report window:
    the second is refused there, and realize moves its claim to the other
    GPU (its other allocations untouched) and creates it there. With no
    GPU left, one clear error and the claim stays where it was."""
    profile = tmp_path / 'two-t4.yaml'
    profile.write_text(TWO_T4 % ''.join(
        T4_PARENT % gpu for gpu in (GPU_A, GPU_B)))
    reporter = standalone.reporter_for(sim_conf(str(profile)))
    desired = reporter.report().desired
    h = standalone.manager_for(reporter)
    root = reporter.cache.root_uuid
    placement.put('/resource_providers/%s/inventories' % root, {
        'resource_provider_generation': placement.get(
            '/resource_providers/%s' % root)['generation'],
        'inventories': {'MEMORY_MB': {'total': 4096}}})
    rp = {c.device: c.uuid for c in desired.children}
    plan = {c.device: c.plan for c in desired.children}

    def claim_on(gpu, type_id, memory=0):
        consumer = new()
        allocations = {rp[gpu]: {'resources': plan[gpu].request(type_id)}}
        if memory:
            allocations[root] = {'resources': {'MEMORY_MB': memory}}
        placement.put('/allocations/%s' % consumer, {
            'allocations': allocations, 'consumer_generation': None,
            'project_id': 'p', 'user_id': 'u', 'consumer_type': 'INSTANCE'})
        return consumer

    def held(consumer):
        return {u: a['resources'] for u, a in placement.get(
            '/allocations/%s' % consumer)['allocations'].items()}
    four, two = claim_on(GPU_A, 'nvidia-232'), claim_on(GPU_A, 'nvidia-231',
                                                        memory=512)
    [done4] = h.realize(four)
    [done2] = h.realize(two)
    assert (done4.device, done2.device) == (GPU_A, GPU_B)
    assert {m.uuid: m.parent for m in host_mdevs(h).values()} == {
        done4.uuid: GPU_A, done2.uuid: GPU_B}
    assert held(two) == {rp[GPU_B]: plan[GPU_B].request('nvidia-231'),
                         root: {'MEMORY_MB': 512}}
    assert 'claim moved to %s' % GPU_B in caplog.text
    # Released as any other: its vGPU and its claim on B go.
    h.release(two)
    assert held(two) == {root: {'MEMORY_MB': 512}}
    assert done2.uuid not in host_mdevs(h)
    # Again on an empty A, with GPU B taken whole by another owner:
    # nowhere to go.
    h.release(four)
    h.driver.create_mdev(GPU_B, 'nvidia-234', new())
    reporter.report()
    four = claim_on(GPU_A, 'nvidia-232')
    third = claim_on(GPU_A, 'nvidia-231', memory=256)
    h.realize(four)
    before = held(third)
    with pytest.raises(exceptions.NoCapacity, match='no GPU of host'):
        h.realize(third)
    assert held(third) == before
    assert not h.ledger.records(third)


def test_a_freed_vgpu_keeps_no_size_closed_while_its_claim_stands(
        sim_conf, placement):
    """Nova's order: the server's mdev is freed, the host reports, and
    only then are its allocations deleted. That report already reopens
    the other sizes of the equal-size GPU; the note is forgotten once
    Placement drops the claim."""
    reporter = standalone.reporter_for(sim_conf('nvidia-t4'))
    desired = reporter.report().desired
    h = standalone.manager_for(reporter)
    [child] = desired.children
    view = {}

    def grantable(type_id):
        view.update(tree_in_placement(placement, h.name)[child.name])
        return provider_tree.grantable(view['inventories'], view['usages'],
                                       child.plan.request(type_id))
    empty = grantable('nvidia-232')
    consumer = new()
    claim_here(h, flavor.parse_extra_specs(flavor.extra_specs_for_type(
        desired, 'nvidia-231')['extra_specs']), consumer)
    h.realize(consumer)
    assert grantable('nvidia-232') == 0          # 2Q there: 4Q closed
    h.free(consumer)
    reporter.report()
    # Open again, less the framebuffer the standing claim still holds.
    assert 0 < grantable('nvidia-232') < empty
    assert view['usages'][child.plan.classes['nvidia-231']] == 1
    assert [n.consumer for n in h.ledger.freed()] == [consumer]
    held = placement.get('/allocations/%s' % consumer)
    consumers.put(placement, consumer, {}, held['project_id'],
                  held['user_id'], held['consumer_generation'])
    assert reporter.report().requests.writes == 0
    assert h.ledger.freed() == []
    assert grantable('nvidia-232') == empty


def test_reconcile_realizes_only_consumers_said_to_be_here(world):
    """realize_for (nova-compute: servers on this host or moving here)
    keeps reconcile from making mdevs for a claim of a build that never
    reached the host; a consumer whose guest left (the ledger's
    departed) gets none either, until it holds nothing here."""
    h = world()
    lost, left = new(), new()
    claim_here(h, mtty2(), lost)
    claim_here(h, mtty2(), left)
    h.ledger.note_departed(left)
    summary = h.reconcile(realize_for=lambda consumer: consumer != lost)
    assert sorted(summary['not_here']) == sorted(
        host_facts.mdev_uuid_for(c, 0) for c in (lost, left))
    assert host_mdevs(h) == {}
    h.client.delete('/allocations/%s' % left)
    summary = h.reconcile()
    assert summary['realized'] == [host_facts.mdev_uuid_for(lost, 0)]
    assert h.ledger.departed() == []


class AnswerLostClient(client_mod.PlacementClient):
    """Placement applies the allocation PUT, then the answer is a 500
    (or the connection drops): no answer says it went through."""

    def put(self, path, body, **kw):
        got = super().put(path, body, **kw)
        if path.startswith('/allocations/'):
            raise exceptions.PlacementUnavailable(
                'Placement PUT %s answered 500: lost' % path)
        return got


def test_a_claim_whose_answer_was_lost_is_checked_before_it_fails(
        world, new_adapter, placement):
    h = world()
    consumer = new()
    got = claim_here(h, mtty2(), consumer,
                     client=AnswerLostClient(new_adapter()))
    held = placement.get('/allocations/%s' % consumer)['allocations']
    assert {rp: a['resources'] for rp, a in held.items()} == \
        got.allocations
    assert got.attempts == 1


def test_a_wiped_state_directory_is_noticed_from_the_host(world, sim_conf):
    """The ledger, its marker and the whole state directory gone: the
    host still runs an mdev whose UUID the project derived for an
    instance holding its allocation. Realize and reconcile refuse, as
    for a lost ledger, until the loss is accepted."""
    h = world()
    consumer = new()
    claim_here(h, mtty2(), consumer)
    [done] = h.realize(consumer)
    state = h.state_path
    for name in os.listdir(state):
        if name.startswith('ledger.sqlite'):
            os.remove(os.path.join(state, name))
    fresh = standalone.manager_for(h.tree.reporter)
    with pytest.raises(ledger_mod.LedgerLost, match='derives'):
        fresh.reconcile()
    with pytest.raises(ledger_mod.LedgerLost):
        fresh.realize(consumer)
    assert done.uuid in host_mdevs(h)               # nothing removed
    accepted = standalone.manager_for(
        h.tree.reporter, ledger=ledger_mod.Ledger(ledger_mod.path_in(state),
                                                  accept_loss=True))
    accepted.reconcile()
    assert [r.uuid for r in accepted.ledger.records()] == [done.uuid]
