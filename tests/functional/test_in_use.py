"""Never destroy what is in use: reconcile, release and realize against the
real embedded Placement and the simulated host, with the faults that made
them do it (issue 13)."""
import json
import logging
import os
import random
import subprocess
import sys
import uuid

import pytest

from tests.functional.conftest import tree_in_placement
from tests.functional.test_host import claim_here
from tests.functional.test_host import conf_of
from tests.functional.test_host import host_mdevs
from tests.functional.test_host import mtty2
from tests.functional.test_host import served  # noqa: F401 (fixture)
from vgpu_placement import exceptions
from vgpu_placement.host import facts as host_facts
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import mdev_manager
from vgpu_placement.host import reconcile as host_reconcile
from vgpu_placement.placement import consumers
from vgpu_placement.service import standalone


def new():
    return str(uuid.uuid4())


@pytest.fixture
def world(sim_conf):
    def make(profile='kernel-samples', config_text=''):
        h = standalone.manager_for(standalone.reporter_for(sim_conf(
            profile, config_text=config_text)))
        h.tree.reporter.report()
        return h
    return make


def realized(h, consumer, request=None):
    claim_here(h, request or mtty2(), consumer)
    return [r.uuid for r in h.realize(consumer)]


def owned(h):
    return {r.uuid: r for r in h.ledger.records()}


@pytest.mark.parametrize('unreadable', [('mtty', 'mtty-2'), ('mtty', None)],
                         ids=['type', 'parent'])
def test_unreadable_for_one_scan_keeps_mdevs_and_records(world, placement,
                                                         unreadable):
    h = world()
    consumer = new()
    [mdev] = realized(h, consumer)
    tree_before = tree_in_placement(placement, h.name)
    h.driver.fail_reads(*unreadable)
    summary = h.reconcile()
    h.driver.restore_reads()
    assert mdev in host_mdevs(h) and mdev in owned(h)
    assert summary['removed'] == [] and summary['rolled_back'] == []
    # Placement's view of the parent was left as it was, not retired.
    assert tree_in_placement(placement, h.name) == tree_before
    # Readable again: nothing to do, the instance still has its vGPU.
    assert not any(h.reconcile()[k] for k in host_reconcile.ACTIONS)
    assert owned(h)[mdev].state == ledger_mod.ACTIVE


def test_report_never_retires_an_unreadable_parent(world, placement):
    h = world()
    name = '%s_mbochs_mbochs' % h.name
    assert name in tree_in_placement(placement, h.name)
    h.driver.fail_reads('mbochs')
    h.tree.reporter.report()
    assert name in tree_in_placement(placement, h.name)


def test_type_dropped_from_config_keeps_its_mdevs_and_says_so_once(
        world, sim_conf, caplog):
    h = world()
    consumer = new()
    [mdev] = realized(h, consumer)
    # The operator stops reporting mtty-2 while an instance uses one.
    later = standalone.manager_for(standalone.reporter_for(sim_conf(
        config_text=('[devices]\nenabled_mdev_types = mtty-1\n'
                     '[mdev_mtty-1]\nmdev_class = CUSTOM_MDEV_MTTY_1\n'))))
    with caplog.at_level(logging.WARNING,
                         logger='vgpu_placement.host.mdev_manager'):
        first = later.reconcile()
        second = later.reconcile()
    assert first['kept'] == [mdev] and first['removed'] == []
    assert second['removed'] == []
    assert mdev in host_mdevs(later) and mdev in owned(later)
    assert caplog.text.count('not what the host reports now') == 1
    # Its own release still frees it.
    freed, released = later.release(consumer)
    assert freed == [mdev] and released and host_mdevs(later) == {}


def test_reconcile_does_not_undo_a_realize_that_finished_meanwhile(world):
    h = world()
    consumer = new()
    other = standalone.manager_for(h.tree.reporter)
    read_facts = h.allocations_here

    def facts_then_realize(providers):
        facts = read_facts(providers)
        # Between reconcile's read and its actions, an instance is
        # scheduled and realized by another process.
        realized(other, consumer)
        return facts
    h.allocations_here = facts_then_realize
    summary = h.reconcile()
    mdev = host_facts.mdev_uuid_for(consumer, 0)
    assert summary['removed'] == []
    assert mdev in host_mdevs(h) and owned(h)[mdev].state == \
        ledger_mod.ACTIVE


def test_reconcile_does_not_redo_a_release_that_finished_meanwhile(
        world, placement):
    h = world()
    consumer = new()
    [mdev] = realized(h, consumer)
    other = standalone.manager_for(h.tree.reporter)
    read_facts = h.allocations_here

    def facts_then_release(providers):
        facts = read_facts(providers)
        other.release(consumer)
        return facts
    h.allocations_here = facts_then_release
    summary = h.reconcile()
    assert summary['realized'] == [] and summary['recreated'] == []
    assert mdev not in host_mdevs(h) and owned(h) == {}
    assert placement.get('/allocations/%s' % consumer)['allocations'] == {}


class DownForReleases:
    """A client whose allocation writes fail as if Placement were down."""

    def __init__(self, client):
        self.client, self.down = client, True

    def __getattr__(self, name):
        return getattr(self.client, name)

    def put(self, path, body, **kw):
        if self.down and path.startswith('/allocations/'):
            raise exceptions.PlacementUnavailable('Placement is down')
        return self.client.put(path, body, **kw)


def test_an_owed_release_is_void_once_the_consumer_is_realized_again(
        world, placement):
    h = world()
    consumer = new()
    [mdev] = realized(h, consumer)
    flaky = DownForReleases(h.client)
    h.client = flaky
    freed, released = h.release(consumer)
    assert freed == [mdev] and not released
    assert h.ledger.releases_owed() == [consumer]
    flaky.down = False
    # The instance is started again (its allocations were never dropped).
    claim_here(h, mtty2(), consumer)
    assert [r.uuid for r in h.realize(consumer)] == [mdev]
    summary = h.reconcile()
    assert summary['released'] == [] and summary['removed'] == []
    assert mdev in host_mdevs(h)
    assert placement.get('/allocations/%s' % consumer)['allocations']


def test_release_frees_only_what_the_project_claimed(world, placement):
    h = world()
    root = h.tree.reporter.cache.root_uuid
    # Nova's compute node inventory on the root, and an instance holding
    # CPU and memory there besides its vGPU on our child.
    inv = placement.get('/resource_providers/%s/inventories' % root)
    placement.put('/resource_providers/%s/inventories' % root, {
        'resource_provider_generation': inv['resource_provider_generation'],
        'inventories': {'VCPU': {'total': 8}, 'MEMORY_MB': {'total': 4096}}})
    consumer = new()
    child = next(uuid_ for uuid_, (c, _t) in h.our_providers().items()
                 if c.device == 'mtty')
    placement.put('/allocations/%s' % consumer, {
        'allocations': {
            root: {'resources': {'VCPU': 2, 'MEMORY_MB': 512}},
            child: {'resources': {'CUSTOM_MDEV_MTTY_2': 1,
                                  'CUSTOM_VGPU_UNITS_MTTY': 2}}},
        'consumer_generation': None, 'project_id': 'p', 'user_id': 'u',
        'consumer_type': 'INSTANCE'})
    [mdev] = [r.uuid for r in h.realize(consumer)]
    freed, released = h.release(consumer)
    assert freed == [mdev] and released
    left = placement.get('/allocations/%s' % consumer)
    assert {rp: a['resources'] for rp, a in left['allocations'].items()} \
        == {root: {'VCPU': 2, 'MEMORY_MB': 512}}
    assert left['project_id'] == 'p' and left['user_id'] == 'u'


# -- reconcile, realize and release in separate processes, at once ---------

def cli_proc(conf, *args):
    return subprocess.Popen(
        [sys.executable, '-m', 'vgpu_placement.cmd.cli', '--config-file',
         str(conf)] + list(args), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def check_agreement(h, placement, instances):
    """Host, ledger and Placement agree: every consumer holding vGPU
    allocations here has exactly its mdevs, owned and active; no other
    mdev of ours exists."""
    ours = h.our_providers()
    mdevs = host_mdevs(h)
    records = owned(h)
    expected = set()
    for consumer in instances:
        held = consumers.allocations(placement, consumer)[
            'allocations']
        expected |= {w.uuid for w in host_facts.wanted(consumer, held, ours)}
    assert set(records) == expected
    assert set(mdevs) == expected
    assert all(r.state == ledger_mod.ACTIVE for r in records.values())
    assert h.ledger.releases_owed() == []


def test_reconcile_races_realize_and_release_in_processes(served,  # noqa: F811
                                                          placement):
    _server, conf = served
    h = standalone.manager_for(standalone.reporter_for(conf_of(conf)))
    h.tree.reporter.report()
    rng = random.Random(13)
    consumers = [new() for _ in range(4)]
    claimed = set()
    for round_ in range(8):
        # Claims happen on the scheduler side, before the host acts.
        for consumer in consumers:
            if consumer not in claimed and rng.random() < 0.6:
                claim_here(h, mtty2(), consumer)
                claimed.add(consumer)
        ops = [('reconcile',)]
        for consumer in rng.sample(consumers, 2):
            verb = 'release' if consumer in claimed and \
                rng.random() < 0.5 else 'realize'
            if verb == 'release':
                claimed.discard(consumer)
            ops.append((verb, '--instance', consumer))
        rng.shuffle(ops)
        procs = [cli_proc(conf, *op) for op in ops]
        outs = [p.communicate(timeout=120) for p in procs]
        for op, p, (_out, err) in zip(ops, procs, outs):
            # A realize of an instance released meanwhile, or never
            # claimed, is refused cleanly; nothing else may fail.
            assert p.returncode == 0 or (
                op[0] == 'realize' and 'no vGPU allocations' in err), (
                round_, op, err)
        check_agreement(h, placement, consumers)


def test_ledger_lost_stops_host_work_until_accepted(world):
    h = world()
    [mdev] = realized(h, new())
    path = h.ledger.path
    with open(path, 'w'):
        pass                    # truncated
    again = standalone.manager_for(h.tree.reporter)
    with pytest.raises(ledger_mod.LedgerLost) as err:
        again.reconcile()
    assert path in str(err.value)
    assert mdev in host_mdevs(h)   # nothing was touched
    accepted = standalone.manager_for(
        h.tree.reporter, ledger=ledger_mod.Ledger(path, accept_loss=True))
    summary = accepted.reconcile()
    # Its allocation names it: adopted again, never removed.
    assert summary['realized'] == [mdev] and summary['removed'] == []
    assert mdev in host_mdevs(h)


def test_cli_says_the_ledger_is_lost_and_accepts_the_loss(
        served):  # noqa: F811
    from tests.functional.test_host import cli
    _server, conf = served
    h = standalone.manager_for(standalone.reporter_for(conf_of(conf)))
    h.tree.reporter.report()
    [mdev] = realized(h, new())
    os.unlink(h.ledger.path)
    refused = cli(conf, 'reconcile')
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert h.ledger.path in line and '--accept-lost-ledger' in line
    accepted = cli(conf, 'reconcile', '--accept-lost-ledger', '--format',
                   'json')
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)['realized'] == [mdev]
    assert cli(conf, 'reconcile').returncode == 0


def test_allocations_not_told_apart_make_no_new_mdev(world, placement):
    """One instance with a vGPU on mdpy and one on mtty, not realized yet,
    when mdpy goes away. Its mdevs' UUIDs count every vGPU of the instance
    (mdpy's first): none may be made from a reading that misses one, or
    mtty's would take mdpy's UUID and the next realize would find it on
    the wrong GPU."""
    h = world()
    consumer = new()
    by_device = {c.device: u for u, (c, _t) in h.our_providers().items()}
    placement.put('/allocations/%s' % consumer, {
        'allocations': {
            by_device['mdpy']: {'resources': {'CUSTOM_MDEV_MDPY_HD': 1,
                                              'CUSTOM_VGPU_UNITS_MDPY': 1}},
            by_device['mtty']: {'resources': {'CUSTOM_MDEV_MTTY_2': 1,
                                              'CUSTOM_VGPU_UNITS_MTTY': 2}}},
        'consumer_generation': None, 'project_id': 'p', 'user_id': 'u',
        'consumer_type': 'INSTANCE'})
    h.driver.unplug_parent('mdpy')
    h.tree.reporter.report()                 # mdpy's provider retired
    assert h.reconcile()['realized'] == []
    with pytest.raises(exceptions.VgpuPlacementError) as err:
        h.realize(consumer)
    assert 'cannot all be told apart' in str(err.value)
    assert host_mdevs(h) == {}
    h.driver.plug_parent('mdpy')
    summary = h.reconcile()
    first, second = (host_facts.mdev_uuid_for(consumer, i) for i in (0, 1))
    assert sorted(summary['realized']) == sorted([first, second])
    assert {u: (m.parent, m.type_id) for u, m in host_mdevs(h).items()} == {
        first: ('mdpy', 'mdpy-hd'), second: ('mtty', 'mtty-2')}


class MovingTree(standalone.ReportedTree):
    """A tree whose consumer ``holder`` holds for ``owner`` (as a Nova
    migration holds its instance's allocations on a resize's source)."""

    def __init__(self, reporter, holder, owner):
        super().__init__(reporter)
        self.holder, self.owner = holder, owner

    def stand_ins(self):
        return {self.holder: self.owner}


def move_allocations(placement, from_consumer, to_consumer):
    """What Nova does on a resize's source: the instance's allocations
    go to the migration's consumer."""
    held = consumers.allocations(placement, from_consumer)
    consumers.put(placement, to_consumer, held['allocations'],
                  held['project_id'], held['user_id'], None)
    consumers.put(placement, from_consumer, {}, held['project_id'],
                  held['user_id'], held['consumer_generation'])


@pytest.mark.parametrize('told', [True, False], ids=['stand-in known',
                                                     'stand-in unknown'])
def test_allocations_a_stand_in_holds_keep_the_owners_mdevs(world, placement,
                                                            told):
    h = world()
    instance, migration = new(), new()
    [mdev] = realized(h, instance)
    move_allocations(placement, instance, migration)
    if told:
        h = mdev_manager.MdevManager(h.name, h.driver, MovingTree(
            h.tree.reporter, migration, instance), h.client, h.state_path)
    summary = h.reconcile()
    if told:
        # Kept for the instance (a revert needs it), none made for the
        # migration's consumer.
        assert set(host_mdevs(h)) == {mdev} and set(owned(h)) == {mdev}
        assert not any(summary[key] for key in host_reconcile.ACTIONS)
    else:
        # Nobody said whose the migration's allocation is: the mdev is an
        # orphan of the instance, and the migration's consumer gets its own.
        assert mdev in summary['removed']
        assert mdev not in host_mdevs(h)
        assert {r.consumer for r in owned(h).values()} == {migration}
