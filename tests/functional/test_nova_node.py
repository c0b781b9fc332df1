"""The compute driver's decisions (vgpu_placement.nova.node.ComputeNode)
driven with no Nova: a simulated host, the real Placement, and plain
callables where the driver hands Nova's answers in.

The tree is written by the standalone reporter (Nova's report client
writes it on a Nova host, the same providers); ComputeNode reads it
through nova.tree.NovaTree as it does inside nova-compute. What needs
Nova itself (the ProviderTree a report fills, the reshape) is the Nova
tier's (tests/nova).
"""
import os
import uuid

import pytest

from tests.functional.test_host import host_mdevs
from tests.functional.test_host import mtty2
from vgpu_placement.host import facts as host_facts
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import mdev_manager
from vgpu_placement.host import tree_builder
from vgpu_placement.nova import node as node_mod
from vgpu_placement.nova import tree as tree_mod
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone

INTERVAL = 600


def new():
    return str(uuid.uuid4())


class Nova:
    """What the driver answers for Nova: servers here, moves, the guests'
    mdevs (counted: reading every guest is what adoption saves)."""

    def __init__(self):
        self.servers = set()
        self.guest_mdevs = {}       # mdev uuid -> server
        self.guest_reads = 0
        self.now = 1000.0

    def assigned_mdevs(self, instance):
        self.guest_reads += 1
        return {m: s for m, s in self.guest_mdevs.items()
                if instance is None or s == instance}


def claim(n, consumer):
    """An mtty-2 claimed on this node's host only."""
    return scheduler.claim(n.manager.client, mtty2(), consumer, 'p', 'u',
                           in_tree=n.reporter.cache.root_uuid).allocations


@pytest.fixture
def nova():
    return Nova()


@pytest.fixture
def node(sim_conf, nova):
    """A ComputeNode on a simulated kernel-samples host whose tree is in
    Placement; ``node.reporter`` reports it again."""
    def make(report=True):
        conf = sim_conf('kernel-samples')
        reporter = standalone.reporter_for(conf)
        if report:
            reporter.report()
        tree = tree_mod.NovaTree(
            tree_builder.TreeBuilder(conf, reporter.driver), reporter.client,
            conf.host)
        manager = mdev_manager.MdevManager(conf.host, reporter.driver, tree,
                                           reporter.client, conf.state_path)
        made = node_mod.ComputeNode(
            manager, INTERVAL, servers_here=lambda: set(nova.servers),
            migrations=dict, assigned_mdevs=nova.assigned_mdevs,
            clock=lambda: nova.now)
        made.reporter = reporter
        return made
    return make


def test_a_host_nova_has_not_created_is_not_retried_at_each_report(
        node, nova):
    n = node(report=False)
    assert n.reconcile_schedule.due()
    n.start()
    assert not n.reconcile_schedule.due()
    nova.now += INTERVAL
    assert n.reconcile_schedule.due()


def test_a_reconcile_that_cannot_read_the_ledger_removes_nothing_and_stays_due(
        node, nova):
    n = node()
    consumer = new()
    claim(n, consumer)
    [made] = n.manager.realize(consumer)
    n.start()
    assert not n.reconcile_schedule.due()
    os.unlink(ledger_mod.path_in(n.manager.state_path))
    nova.now += INTERVAL
    n.reconcile()
    # The ledger is lost: nothing it listed is touched, and the next
    # report tries again.
    assert made.uuid in host_mdevs(n.manager)
    assert n.reconcile_schedule.due()


def test_start_frees_a_guest_that_left_before_its_cleanup(node, nova):
    n = node()
    stays, left = new(), new()
    for consumer in (stays, left):
        claim(n, consumer)
        n.manager.realize(consumer)
    nova.servers = {stays}
    n.manager.ledger.note_departed(left)
    n.start()
    assert set(host_mdevs(n.manager)) == {host_facts.mdev_uuid_for(stays, 0)}
    assert n.manager.ledger.records(left) == []


def test_realize_makes_nothing_for_allocations_on_other_providers(node):
    n = node()
    assert n.realize(new(), {new(): {'resources': {'VCPU': 2}}}) == []
    assert host_mdevs(n.manager) == {}
    consumer = new()
    # Nova hands them over as {rp: {'resources': {class: n}}}.
    held = {rp: {'resources': r} for rp, r in claim(n, consumer).items()}
    made = n.realize(consumer, held)
    assert made == [host_facts.mdev_uuid_for(consumer, 0)]
    assert set(host_mdevs(n.manager)) == set(made)


def test_adoption_reads_the_guests_only_when_the_foreign_mdevs_change(
        node, nova):
    n = node()
    n.manager.tree.refresh()
    stray = new()
    n.manager.driver.create_mdev('mtty', 'mtty-2', stray)
    n.adopt()
    n.adopt()
    # Nothing to adopt and nothing changed: the guests are read once.
    assert nova.guest_reads == 1
    server, used = new(), new()
    claim(n, server)
    n.manager.driver.create_mdev('mtty', 'mtty-2', used)
    nova.guest_mdevs[used] = server
    n.adopt()
    assert nova.guest_reads == 2
    assert [r.uuid for r in n.manager.ledger.records(server)] == [used]
    # The stray mdev stays the stranger's: never adopted, never removed.
    assert stray in host_mdevs(n.manager)
    assert n.manager.ledger.records() == n.manager.ledger.records(server)
