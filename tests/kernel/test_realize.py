"""Claim, realize, release and reconcile through the project's own code
against the real kernel.

Claims go to the session's embedded Placement with the extra specs
``flavor-spec`` gives (the type's class, its cost in its parent's shared
counter, the type trait), restricted to this test's host; the host side is
``vgpu_placement.host.mdev_manager.MdevManager``. What the kernel then shows is
read straight from sysfs (``kernel_view``), and what Placement holds with a
client of the test's own.

The random walk's seed and length: VGPU_KERNEL_REALIZE_SEED and
VGPU_KERNEL_REALIZE_STEPS (10 rounds by default: 12 claims, 3 of them
refused, 8 realizes, 6 releases). Placement requests are what costs under
TCG (a tenth of a second or more each): the walk's checks read the one
provider that changed, and all of Placement at the end.
"""
import ctypes
import os
import random
import subprocess
import sys
import uuid

import pytest

from tests.kernel.conftest import available
from tests.kernel.conftest import BUS
from tests.kernel.conftest import count_step
from tests.kernel.conftest import create_file
from tests.kernel.conftest import DEVICES
from tests.kernel.conftest import kernel_view
from tests.kernel.conftest import resource_class
from tests.kernel.conftest import write_once
from tests.kernel import kmod
from vgpu_placement.host import facts as host_facts
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import reconcile as host_reconcile
from vgpu_placement.placement import embedded
from vgpu_placement.placement import flavor
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone

DEFAULT_SEED = 396
SEED = int(os.environ.get('VGPU_KERNEL_REALIZE_SEED', DEFAULT_SEED))
STEPS = int(os.environ.get('VGPU_KERNEL_REALIZE_STEPS', '10'))
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Units each type takes from its parent's one pool (mtty: ports; mbochs:
# MB of video memory; mdpy: the mdev core's instance counter). Written
# here, not taken from the project.
COST = {'mtty': {'mtty-1': 1, 'mtty-2': 2},
        'mbochs': {'mbochs-small': 4, 'mbochs-medium': 16,
                   'mbochs-large': 64},
        'mdpy': {'mdpy-vga': 1, 'mdpy-xga': 1, 'mdpy-hd': 1}}
PARENT_OF = {t: p for p, costs in COST.items() for t in costs}
ALL_TYPES = sorted(PARENT_OF)


def new():
    return str(uuid.uuid4())


def boot_id():
    with open('/proc/sys/kernel/random/boot_id') as f:
        return f.read().strip()


def spec(desired, type_id):
    """The Request a flavor made from ``flavor-spec TYPE`` asks for."""
    return flavor.parse_extra_specs(flavor.extra_specs_for_type(
        desired, type_id)['extra_specs'])


def claim_here(reporter, request, consumer):
    """Claim on this test's host only (the session's Placement holds other
    tests' hosts)."""
    return scheduler.claim(reporter.client, request, consumer, 'p', 'u',
                           in_tree=reporter.cache.root_uuid)


def providers(reporter):
    """{parent: provider uuid} of the reporter's host (from its cache)."""
    host = reporter.conf.host
    by_name = {name: p['uuid'] for name, p in
               reporter.placement_view(refresh=False)}
    return {device: by_name[provider_tree.provider_name(host, device)]
            for device in COST if provider_tree.provider_name(host, device)
            in by_name}


def read_child(placement, rp_uuid):
    """{'inventories', 'usages'} of one provider, read straight from
    Placement with the test's own client."""
    base = '/resource_providers/%s' % rp_uuid
    return {'inventories': placement.get(base + '/inventories')[
        'inventories'], 'usages': placement.get(base + '/usages')['usages']}


def free(child, rc):
    """total - reserved - used of one class (0 without an inventory)."""
    inv = child['inventories'].get(rc)
    if inv is None:
        return 0
    return inv['total'] - inv['reserved'] - child['usages'].get(rc, 0)


def grantable(child, request):
    """How many of ``request`` (one group) Placement can still grant on
    this provider: every class it asks for must fit."""
    [group] = request.groups
    return max(0, min(free(child, rc) // n
                      for rc, n in group.resources.items()))


def kernel_units_left(parent):
    """Pool units the kernel can still give on the parent (from the type
    that costs least: every cost is a multiple of it)."""
    cheapest = min(COST[parent], key=COST[parent].get)
    return available(parent, cheapest) * COST[parent][cheapest]


def mdev_inode(mdev_uuid):
    """The device's sysfs inode: a removed and recreated mdev gets
    another."""
    return os.stat(os.path.join(DEVICES, mdev_uuid)).st_ino


NOTHING = {key: [] for key in host_reconcile.ACTIONS + host_reconcile.LEFT}


# -- 1 ------------------------------------------------------------------------

def test_claim_realize_release_round_trip_on_the_kernel(
        reporter, check_inventories, placement):
    h = standalone.manager_for(reporter)
    desired = reporter.report().desired
    mtty = providers(reporter)['mtty']
    ports = kernel_units_left('mtty')
    consumer = new()
    got = claim_here(reporter, spec(desired, 'mtty-2'), consumer)
    assert got.allocations == {mtty: {
        'CUSTOM_MDEV_MTTY_2': 1, 'CUSTOM_VGPU_UNITS_MTTY': 2}}

    [done] = h.realize(consumer)
    mdev = host_facts.mdev_uuid_for(consumer, 0)
    assert done == host_facts.Realized(mdev, 'mtty-2', 'mtty', 'mtty')
    assert 'uuid="%s"' % mdev in h.driver.hostdev_xml(mdev, done.parent)
    # The kernel has it, of that type, on that parent, and nothing else.
    view = kernel_view()
    assert view['mdevs'] == {mdev: ('mtty', 'mtty-2')}
    assert os.path.basename(os.path.realpath(os.path.join(
        DEVICES, mdev, 'mdev_type'))) == 'mtty-2'
    assert kernel_units_left('mtty') == ports - 2
    assert h.ledger.records() == [ledger_mod.Record(
        mdev, consumer, 'mtty', 'mtty', 'mtty-2', ledger_mod.ACTIVE,
        boot_id())]
    check_inventories(view)
    child = read_child(placement, mtty)
    assert child['usages']['CUSTOM_MDEV_MTTY_2'] == 1
    # A mtty-1 flavor (its class and its ports) gets two ports fewer.
    assert grantable(child, spec(desired, 'mtty-1')) == ports - 2
    count_step()

    # A retry finds the same mdev and makes nothing new.
    inode = mdev_inode(mdev)
    assert h.realize(consumer) == [done]
    assert kernel_view()['mdevs'] == {mdev: ('mtty', 'mtty-2')}
    assert mdev_inode(mdev) == inode
    count_step()

    freed, released = h.release(consumer)
    assert (freed, released) == ([mdev], True)
    view = kernel_view()
    assert view['mdevs'] == {}
    assert not os.path.exists(os.path.join(DEVICES, mdev))
    assert kernel_units_left('mtty') == ports
    assert placement.get('/allocations/%s' % consumer)['allocations'] == {}
    assert h.ledger.records() == [] and h.ledger.releases_owed() == []
    check_inventories(view, reporter=reporter)
    child = read_child(placement, mtty)
    assert not any(child['usages'].values())
    assert grantable(child, spec(desired, 'mtty-1')) == ports
    count_step()


# -- 2 ------------------------------------------------------------------------

class Walk:
    """The random walk's bookkeeping and its checks against the kernel."""

    def __init__(self, reporter, placement, check_inventories):
        self.reporter = reporter
        self.placement, self.check_inventories = placement, check_inventories
        self.h = standalone.manager_for(reporter)
        # Keep the result of every report (the host's own, at the end of
        # each realize and release, included): its disagreements are the
        # project's model against the kernel's counts.
        self.results = []
        report_once = reporter.report

        def report_and_keep(*args, **kwargs):
            result = report_once(*args, **kwargs)
            self.results.append(result)
            return result
        reporter.report = report_and_keep
        desired = reporter.report().desired
        self.requests = {t: spec(desired, t) for t in ALL_TYPES}
        self.rp = providers(reporter)
        # The pools at rest (no mdev: the clean-up fixture saw to it).
        assert kernel_view()['mdevs'] == {}
        self.pool = {p: kernel_units_left(p) for p in COST}
        # consumer -> type, in the order they came (the walk picks by
        # position, so a seed gives one walk whatever the UUIDs).
        self.pending = {}       # granted, not created
        self.realized = {}      # created
        self.outcomes = {}
        self.where = ''

    def note(self, outcome):
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def units(self, parent, consumers):
        return sum(COST[parent][t] for t in consumers.values()
                   if PARENT_OF[t] == parent)

    def creatable(self, type_id):
        """What the kernel can still create of the type once every
        granted claim is created."""
        parent = PARENT_OF[type_id]
        left = kernel_units_left(parent) - self.units(parent, self.pending)
        return max(0, left) // COST[parent][type_id]

    def expected_available(self):
        """available_instances as the pools predict them."""
        return {p: {t: (self.pool[p] - self.units(p, self.realized)) // c
                    for t, c in sorted(costs.items())}
                for p, costs in COST.items()}

    def check_placement(self, parents, reported):
        """Placement never offers a flavor of a type beyond what the
        kernel can still create counting the claims not created yet
        (right after a report, exactly that), and holds the granted
        claims as usage. The flavors pay their counters, so Placement's
        accounting carries them: the type's class alone bounds nothing
        here."""
        for parent in parents:
            child = read_child(self.placement, self.rp[parent])
            for type_id in sorted(COST[parent]):
                can = self.creatable(type_id)
                what = (self.where, type_id, can, child)
                assert grantable(child, self.requests[type_id]) <= can, what
                if reported:
                    assert grantable(child, self.requests[type_id]) == \
                        can, what
                granted = [t for t in list(self.pending.values()) +
                           list(self.realized.values()) if t == type_id]
                assert child['usages'].get(resource_class(type_id), 0) == \
                    len(granted), what

    def check_kernel(self, parent):
        """After a realize or release (which end with a report): the
        kernel holds exactly the realized claims with their derived
        UUIDs, its counts are the pools' and the project's model's, and
        Placement follows (the parent touched read with the test's own
        client; the inventories of all from the reporter's copy)."""
        assert self.results[-1].disagreements == [], self.where
        view = kernel_view()
        mine = {host_facts.mdev_uuid_for(c, 0): (PARENT_OF[t], t)
                for c, t in self.realized.items()}
        assert view['mdevs'] == mine, self.where
        assert view['available'] == self.expected_available(), self.where
        assert {r.uuid: (r.consumer, r.parent, r.type, r.state)
                for r in self.h.ledger.records()} == {
            host_facts.mdev_uuid_for(c, 0): (c, PARENT_OF[t], t,
                                             ledger_mod.ACTIVE)
            for c, t in self.realized.items()}, self.where
        self.check_inventories(view, reporter=self.reporter)
        self.check_placement([parent], reported=True)
        count_step()

    def claim(self, type_id):
        """Claim one of the type: the consumer if Placement granted it."""
        parent = PARENT_OF[type_id]
        consumer = new()
        fits = self.creatable(type_id) > 0
        try:
            got = claim_here(self.reporter, self.requests[type_id],
                             consumer)
        except scheduler.NoValidHost:
            # Refused only when it truly does not fit.
            assert not fits, (self.where, type_id, 'refused, yet it fits')
            self.note('claim-refused')
            return None
        assert fits, (self.where, type_id, 'granted beyond the kernel')
        assert got.allocations == {
            self.rp[parent]: self.requests[type_id].groups[0].resources}
        self.pending[consumer] = type_id
        self.note('claim-granted')
        return consumer

    def realize(self, consumer):
        type_id = self.pending.pop(consumer)
        parent = PARENT_OF[type_id]
        # NoCapacity here would be a claim Placement granted and the
        # kernel cannot create.
        done = self.h.realize(consumer)
        assert done == [host_facts.Realized(host_facts.mdev_uuid_for(
            consumer, 0), type_id, parent, parent)], self.where
        self.realized[consumer] = type_id
        self.note('realize')
        self.check_kernel(parent)

    def release(self, consumer):
        was_realized = consumer in self.realized
        type_id = self.realized.pop(consumer, None) or \
            self.pending.pop(consumer)
        freed, released = self.h.release(consumer)
        assert released, self.where
        assert freed == ([host_facts.mdev_uuid_for(consumer, 0)]
                         if was_realized else []), self.where
        assert self.placement.get('/allocations/%s' % consumer)[
            'allocations'] == {}, self.where
        self.note('release' if was_realized else 'release-unrealized')
        self.check_kernel(PARENT_OF[type_id])


def pick_type(rng):
    parent = rng.choice(sorted(COST))
    return rng.choice(sorted(COST[parent]))


def test_random_claims_realizes_and_releases_agree_with_the_kernel(
        reporter, placement, check_inventories):
    rng = random.Random(SEED)
    walk = Walk(reporter, placement, check_inventories)
    for step in range(STEPS):
        walk.where = 'seed %d step %d' % (SEED, step)
        roll = rng.random()
        if walk.realized and roll < 0.35:
            walk.release(rng.choice(list(walk.realized)))
        elif walk.pending and roll < 0.50:
            consumer = rng.choice(list(walk.pending))
            if rng.random() < 0.4:
                walk.release(consumer)          # the instance went away
            else:
                walk.realize(consumer)
        elif roll < 0.75:
            # A burst: several schedulers' claims land before the host
            # realizes them; one stays granted and not created for later
            # steps to count with.
            burst = []
            for _ in range(rng.randint(2, 4)):
                type_id = pick_type(rng)
                consumer = walk.claim(type_id)
                if consumer:
                    burst.append(consumer)
                    # No report since the last claims: Placement holds
                    # the line on its own (the shared counters).
                    walk.check_placement([PARENT_OF[type_id]],
                                         reported=False)
            walk.note('burst')
            rng.shuffle(burst)
            for consumer in burst[1:]:
                walk.realize(consumer)
        else:
            consumer = walk.claim(pick_type(rng))
            if consumer and rng.random() < 0.5:
                walk.realize(consumer)
    # Every claim still granted is created too. (The clean-up fixture
    # removes the mdevs; the allocations stay on this test's host.)
    walk.where = 'seed %d: wind-down' % SEED
    for consumer in list(walk.pending):
        walk.realize(consumer)
    # All of Placement, read with the test's own client.
    assert walk.results[-1].disagreements == []
    check_inventories()
    walk.check_placement(sorted(COST), reported=True)
    if SEED == DEFAULT_SEED:
        # The default walk went everywhere it should.
        assert set(walk.outcomes) == {
            'claim-granted', 'claim-refused', 'burst', 'realize', 'release',
            'release-unrealized'}, walk.outcomes


# -- 3 ------------------------------------------------------------------------

def test_reconcile_recreates_mdevs_lost_to_a_module_reload(
        reporter, placement, check_inventories):
    h = standalone.manager_for(reporter)
    desired = reporter.report().desired
    at_rest = kernel_view()['available']
    lost = {}
    for type_id in ('mtty-2', 'mtty-1', 'mtty-2'):
        consumer = new()
        claim_here(reporter, spec(desired, type_id), consumer)
        [done] = h.realize(consumer)
        lost[done.uuid] = ('mtty', type_id)
    keeper = new()
    claim_here(reporter, spec(desired, 'mbochs-small'), keeper)
    [kept] = h.realize(keeper)
    before = kernel_view()
    assert before['mdevs'] == dict(lost, **{kept.uuid: (
        'mbochs', 'mbochs-small')})
    kept_inode = mdev_inode(kept.uuid)
    records = h.ledger.records()
    mtty = providers(reporter)['mtty']
    usages = read_child(placement, mtty)['usages']
    assert usages == {'CUSTOM_MDEV_MTTY_1': 1, 'CUSTOM_MDEV_MTTY_2': 2,
                      'CUSTOM_VGPU_UNITS_MTTY': 5}
    count_step()

    # The mtty parent goes away with its mdevs (the ledger remembers
    # them); the agent reports meanwhile; the parent comes back empty.
    kmod.rmmod('mtty')
    assert kernel_view()['mdevs'] == {kept.uuid: ('mbochs', 'mbochs-small')}
    reporter.report()
    # Its provider stays (allocations hold it), closed to new claims.
    gone = read_child(placement, mtty)
    assert gone['usages'] == usages
    assert all(inv['reserved'] == inv['total']
               for inv in gone['inventories'].values()), gone
    kmod.insmod('mtty')
    view = kernel_view()
    assert view['mdevs'] == {kept.uuid: ('mbochs', 'mbochs-small')}
    assert view['available']['mtty'] == at_rest['mtty']
    count_step()

    summary = standalone.manager_for(reporter).reconcile()
    assert sorted(summary['recreated']) == sorted(lost)
    assert dict(summary, recreated=[]) == NOTHING
    view = kernel_view()
    # The same UUIDs with the same types; the mbochs one never touched.
    assert view['mdevs'] == before['mdevs']
    assert view['available'] == before['available']
    assert mdev_inode(kept.uuid) == kept_inode
    assert h.ledger.records() == records
    check_inventories(view)
    assert read_child(placement, mtty)['usages'] == usages
    count_step()


def test_reconcile_recreates_what_fits_when_one_mdev_cannot_come_back(
        reporter):
    """After a reload of mdpy and mtty, mdevs made by hand (as mdevctl's
    autostart would make them at boot) fill mdpy before the agent
    reconciles: the instance on mdpy cannot get its mdev back, the one on
    mtty can and should."""
    h = standalone.manager_for(reporter)
    desired = reporter.report().desired
    while True:
        on_mdpy, on_mtty = new(), new()
        # The ledger is walked in UUID order: mdpy's record comes first.
        if host_facts.mdev_uuid_for(on_mdpy, 0) < \
                host_facts.mdev_uuid_for(on_mtty, 0):
            break
    for consumer, type_id in ((on_mdpy, 'mdpy-hd'), (on_mtty, 'mtty-2')):
        claim_here(reporter, spec(desired, type_id), consumer)
        h.realize(consumer)
    for name in ('mdpy', 'mtty'):
        kmod.rmmod(name)
        kmod.insmod(name)
    foreign = sorted(new() for _ in range(available('mdpy', 'mdpy-vga')))
    for u in foreign:
        write_once(create_file('mdpy', 'mdpy-vga'), u)
    # Set-up checks fail the test outright (only the bug may xfail it).
    if sorted(kernel_view()['mdevs']) != foreign or available(
            'mdpy', 'mdpy-hd') != 0:
        pytest.fail('set-up: mdpy is not full of hand-made mdevs alone: '
                    '%s' % kernel_view())
    count_step()

    summary = h.reconcile()
    mine = host_facts.mdev_uuid_for(on_mtty, 0)
    view = kernel_view()
    assert sorted(view['mdevs']) == sorted(foreign + [mine])
    assert summary['recreated'] == [mine]
    assert summary['failed'] == [host_facts.mdev_uuid_for(on_mdpy, 0)]
    count_step()


# -- 4 ------------------------------------------------------------------------

def test_foreign_mdev_is_counted_and_never_removed(
        reporter, placement, check_inventories):
    foreign = new()
    write_once(create_file('mtty', 'mtty-2'), foreign)
    h = standalone.manager_for(reporter)
    desired = reporter.report().desired
    view = kernel_view()
    assert view['mdevs'] == {foreign: ('mtty', 'mtty-2')}
    check_inventories(view, reporter=reporter)
    ports = kernel_units_left('mtty')           # what the foreign one left
    mtty = providers(reporter)['mtty']
    child = read_child(placement, mtty)
    inv = child['inventories']
    # Used capacity: reserved, since no allocation pays for it.
    assert inv['CUSTOM_VGPU_UNITS_MTTY']['reserved'] == 2
    assert inv['CUSTOM_MDEV_MTTY_2']['total'] == 1 + ports // 2
    assert inv['CUSTOM_MDEV_MTTY_2']['reserved'] == 1
    assert free(child, 'CUSTOM_MDEV_MTTY_1') == ports
    assert grantable(child, spec(desired, 'mtty-1')) == ports
    count_step()

    consumer = new()
    claim_here(reporter, spec(desired, 'mtty-2'), consumer)
    [done] = h.realize(consumer)
    view = kernel_view()
    assert view['mdevs'] == {foreign: ('mtty', 'mtty-2'),
                             done.uuid: ('mtty', 'mtty-2')}
    assert [r.uuid for r in h.ledger.records()] == [done.uuid]
    check_inventories(view, reporter=reporter)
    assert grantable(read_child(placement, mtty),
                     spec(desired, 'mtty-1')) == ports - 2
    count_step()

    # Reconcile with an instance of ours beside it: nothing to do.
    assert h.reconcile() == NOTHING
    assert kernel_view()['mdevs'] == view['mdevs']
    count_step()

    # The instance goes; the mdev the ledger never held stays, counted.
    freed, released = h.release(consumer)
    assert (freed, released) == ([done.uuid], True)
    assert h.reconcile() == NOTHING
    view = kernel_view()
    assert view['mdevs'] == {foreign: ('mtty', 'mtty-2')}
    assert h.ledger.records() == []
    check_inventories(view)
    inv = read_child(placement, mtty)['inventories']
    assert inv['CUSTOM_VGPU_UNITS_MTTY']['reserved'] == 2
    assert inv['CUSTOM_MDEV_MTTY_2']['reserved'] == 1
    count_step()


# -- 5 ------------------------------------------------------------------------

@pytest.fixture
def served(placement_db, kconf):
    """The session's Placement over loopback HTTP, and a config file for a
    CLI process of the test's host (same state path: ledger and locks) on
    the real /sys; a process cannot share the in-process embedded
    Placement."""
    with embedded.LoopbackServer(placement_db) as server:
        path = os.path.join(kconf.state_path, 'cli.conf')
        with open(path, 'w') as f:
            f.write('[DEFAULT]\nhost = %s\ndriver = sysfs\nstate_path = %s\n'
                    'create_root_provider = true\n'
                    '[sysfs]\nroot = /sys\n[placement]\n'
                    'auth_type = admin_token\nendpoint = %s\ntoken = admin\n'
                    % (kconf.host, kconf.state_path, server.url))
        yield path


def test_crash_after_create_then_reconcile(served, reporter, placement):
    h = standalone.manager_for(reporter)
    desired = reporter.report().desired
    consumer = new()
    claim_here(reporter, spec(desired, 'mtty-2'), consumer)
    mdev = host_facts.mdev_uuid_for(consumer, 0)

    crashed = subprocess.run(
        [sys.executable, '-m', 'vgpu_placement.cmd.cli', '--config-file',
         served, 'realize', '--instance', consumer],
        capture_output=True, text=True, timeout=300, cwd=CHECKOUT,
        env=dict(os.environ, VGPU_PLACEMENT_CRASH_AT='realize:created'))
    assert crashed.returncode == 99, (crashed.stdout, crashed.stderr)
    # It died right after the kernel made it: there, half recorded.
    assert kernel_view()['mdevs'] == {mdev: ('mtty', 'mtty-2')}
    [record] = h.ledger.records()
    assert (record.uuid, record.state) == (mdev, ledger_mod.CREATING)
    count_step()

    assert h.reconcile() == dict(NOTHING, realized=[mdev])
    assert kernel_view()['mdevs'] == {mdev: ('mtty', 'mtty-2')}
    assert h.ledger.records() == [ledger_mod.Record(
        mdev, consumer, 'mtty', 'mtty', 'mtty-2', ledger_mod.ACTIVE,
        boot_id())]
    usages = read_child(placement, providers(reporter)['mtty'])['usages']
    assert usages['CUSTOM_MDEV_MTTY_2'] == 1
    count_step()


# -- 6 ------------------------------------------------------------------------

def _bind_over(source, target):
    """Mount ``source`` over ``target`` (a file): reads of target then
    show source, through the real VFS."""
    libc = ctypes.CDLL(None, use_errno=True)
    ms_bind = 4096
    if libc.mount(source.encode(), target.encode(), None, ms_bind, None):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)
    return lambda: libc.umount2(target.encode(), 0)


def test_transient_unreadable_type_keeps_every_in_use_mdev(reporter,
                                                           tmp_path):
    """One type's available_instances shows garbage for one reconcile
    (a transient read error): that type is unknown, not unwanted; every
    mdev of a running instance stays, and so does its record."""
    h = standalone.manager_for(reporter)
    desired = reporter.report().desired
    for type_id in ('mtty-2', 'mtty-1', 'mbochs-small'):
        consumer = new()
        claim_here(reporter, spec(desired, type_id), consumer)
        h.realize(consumer)
    before, records = kernel_view()['mdevs'], h.ledger.records()
    garbage = tmp_path / 'garbage'
    garbage.write_text('\u00b2 not a count\n')
    target = os.path.realpath(os.path.join(
        BUS, 'mtty', 'mdev_supported_types', 'mtty-2',
        'available_instances'))
    undo = _bind_over(str(garbage), target)
    try:
        with open(target) as f:
            if f.read() != garbage.read_text():
                pytest.fail('set-up: the bind mount did not take')
        summary = h.reconcile()
    finally:
        undo()
    assert kernel_view()['mdevs'] == before
    assert h.ledger.records() == records
    assert not any(summary[key] for key in host_reconcile.ACTIONS), summary
    count_step()
    # Readable again: nothing to do.
    assert h.reconcile() == NOTHING
    assert kernel_view()['mdevs'] == before
    count_step()
