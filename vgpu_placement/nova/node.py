"""What the compute driver decides for its node, with no Nova in it.

``ComputeNode`` holds the decisions vgpu_placement.nova.driver makes
inside nova-compute: when to reconcile, what the report puts in Nova's
provider tree, when stock Nova's vGPU allocations need a reshape and
where they move, which mdevs of stock Nova are adopted, and which guests
that left are freed. The driver class keeps the Nova hooks and hands them
here; what it knows of Nova reaches this object as plain callables, so
tests drive it with none (tests/functional/test_nova_node.py).
"""
import logging
import time

from vgpu_placement import exceptions
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import schedule
from vgpu_placement.nova import takeover
from vgpu_placement.nova import tree as tree_mod
from vgpu_placement.placement import consumers
from vgpu_placement.placement import provider_tree as ptree
from vgpu_placement.placement import traits as traits_mod

LOG = logging.getLogger(__name__)


class ReshapeNeeded(Exception):
    """The report found stock Nova's vGPU allocations on providers the
    project takes over: Nova must call again with the allocations."""


class ComputeNode:
    """The project's side of one nova-compute node.

    ``manager``: its mdev_manager.MdevManager (ledger, tree, driver).
    What it asks of Nova, each a callable read at every call:
    ``servers_here()``, the instance uuids Nova places on this host or
    moves to or from it; ``migrations()``, {migration uuid: instance
    uuid} of the moves in progress here; ``assigned_mdevs(instance)``,
    Nova's {mdev uuid: instance uuid} from the guests' XML (all guests
    when ``instance`` is None); ``clock()``, seconds, monotonic.

    State it owns: whether the tree was reported yet (a reshape can only
    be asked for at Nova's first, start-up call), the reconcile schedule,
    and the last adoption pass that found nothing to adopt.
    """

    def __init__(self, manager, reconcile_interval, servers_here,
                 migrations, assigned_mdevs, clock=time.monotonic):
        self.manager = manager
        self.servers_here = servers_here
        self.migrations = migrations
        self.assigned_mdevs = assigned_mdevs
        self.clock = clock
        self.reported = False
        self.reconcile_schedule = schedule.ReconcileSchedule(
            reconcile_interval, lambda: self.clock())
        # (foreign mdevs, managed providers) of the last adoption pass
        # over every guest that found nothing to adopt.
        self._nothing_to_adopt = None

    # -- start and reconcile ------------------------------------------------
    def start(self):
        """At nova-compute's start: free the guests that left by live
        migration before a cleanup that never came (nova-compute stopped
        between the two: their migration may still read as running, which
        would keep their mdevs here), then reconcile."""
        for consumer in self.departed():
            self.free_departed(consumer)
        self.reconcile()

    def departed(self):
        """Consumers whose guest left this host (the ledger's notes); none
        while the ledger cannot be used (said; nothing is freed then)."""
        try:
            return self.manager.ledger.departed()
        except exceptions.VgpuPlacementError as e:
            LOG.error('vgpu-placement: guests that left this host not '
                      'looked up: %s', e)
            return []

    def free_departed(self, consumer):
        """Free the mdevs of a consumer whose guest left this host. The
        note stays (MdevManager.reconcile makes none for it) until the
        consumer holds nothing here or comes back."""
        try:
            self.manager.free(consumer)
        except exceptions.VgpuPlacementError as e:
            LOG.error('vgpu-placement: mdevs of %s, which left this host, '
                      'not freed: %s', consumer, e)

    def reconcile(self):
        """Adopt, then MdevManager.reconcile; a failure is said and tried
        again at the next report."""
        tree = self.manager.tree
        try:
            if tree.refresh() is None:
                LOG.info('vgpu-placement: no provider tree for %s in '
                         'Placement yet: nothing to reconcile',
                         tree.root_name)
                # Done, with nothing to do (a new host): not retried at
                # the next report as a failure would be.
                self.reconcile_schedule.finished()
                return
            # Adopted first: reconcile would otherwise make new mdevs for
            # servers that use stock Nova's.
            self.adopt()
            summary = self.manager.reconcile(
                realize_for=self.servers_here().__contains__)
        except exceptions.VgpuPlacementError as e:
            # Nova starts anyway; a guest whose mdev is missing fails to
            # start with libvirt's "mediated device ... not found".
            LOG.error('vgpu-placement: reconcile failed (tried again at '
                      'the next report): %s', e)
            return
        self.reconcile_schedule.finished()
        done = {k: v for k, v in summary.items() if v}
        if done:
            LOG.info('vgpu-placement: reconciled: %s', done)

    # -- report ---------------------------------------------------------------
    def report(self, provider_tree, nodename, allocations=None):
        """Put the project's children into ``provider_tree`` (Nova's
        ProviderTree, after Nova's own update_provider_tree); with
        ``allocations`` (Nova's reshape call) move stock Nova's vGPU
        allocations into the project's classes, in place. Raises
        ReshapeNeeded at the first call when they need moving."""
        if allocations is None and self.reconcile_schedule.due():
            # Before the host is read: what it changes is in this report.
            self.reconcile()
        tree = self.manager.tree
        builder = tree.builder
        snapshot = builder.discover()
        desired = builder.desired_tree(
            snapshot, self._freed_claims(provider_tree, nodename))
        if allocations is None:
            tree.refresh()
        cached = tree.children()
        # Children of ours by name that we do not report yet: stock
        # Nova's, on a host it is taking over from Nova.
        taken = {provider_tree.data(c.name).uuid: c for c in desired.children
                 if provider_tree.exists(c.name) and traits_mod.MANAGED
                 not in provider_tree.data(c.name).traits}
        first, self.reported = not self.reported, True
        if allocations is None and first and any(
                takeover.foreign_in_use(c, cached[c.name][1].usages)
                for c in taken.values() if c.name in cached):
            LOG.info('vgpu-placement: stock Nova\'s vGPU allocations on %s: '
                     'asking for a reshape into the project\'s classes',
                     ', '.join(sorted(c.name for c in taken.values())))
            raise ReshapeNeeded()
        if allocations is not None and taken:
            self._reshape(allocations, taken, snapshot)

        def usages_of(name, rp_uuid):
            if allocations is not None:
                return tree_mod.usages_from_allocations(
                    allocations, [rp_uuid])[rp_uuid]
            child = desired.child(name)
            if child is not None:
                return tree.usages(child)
            return tree.retired_usages(rp_uuid)

        tree_mod.put_tree(provider_tree, nodename, desired, usages_of)
        if allocations is None:
            self.adopt(snapshot=snapshot)

    def _freed_claims(self, provider_tree, nodename):
        """{device: {type: n}}: claims Placement still holds whose mdev
        was freed for good (this report runs before Nova deletes a
        server's allocations): on an equal-size GPU they keep no size
        open. Reads only while the ledger has such notes."""
        def provider_of(device):
            name = ptree.provider_name(nodename, device)
            return provider_tree.data(name).uuid if provider_tree.exists(
                name) else None
        return self.manager.tree.builder.freed_claims(
            self.manager.client, provider_of, self.migrations)

    def _reshape(self, allocations, taken, snapshot):
        """Stock Nova's vGPU allocations on ``taken`` ({rp uuid:
        DesiredProvider}) moved to the project's classes, in place."""
        mdevs = {m.uuid: (p.name, m.type_id) for p in snapshot.parents
                 for m in p.mdevs}
        moved, left = takeover.reshape(
            allocations, taken, self.assigned_mdevs(None), mdevs,
            self.migrations())
        LOG.info('vgpu-placement: reshape moves %d vGPU allocations of '
                 'stock Nova into the project\'s classes', len(moved))
        for consumer, rp_uuid, rc, n in left:
            LOG.warning('vgpu-placement: %d %s of %s on %s not moved: no mdev '
                        'of its guest there accounts for it; kept, closed, '
                        'until it is released', n, rc, consumer,
                        taken[rp_uuid].name)

    # -- stock Nova's mdevs ---------------------------------------------------
    def adopt(self, instance=None, snapshot=None):
        """Adopt into the ledger the mdevs stock Nova made that servers of
        this host use (their guest XML names them), as the vGPUs their
        allocations ask for (MdevManager.adopt); ``instance``: that
        server's only. A host with no mdev outside the ledger costs one
        host read; the guests are read only when that set of mdevs, or
        the providers we manage, changed since a pass that adopted
        nothing (stock Nova leaves unused mdevs behind: they would make
        every report read every guest)."""
        manager = self.manager
        try:
            snapshot = snapshot or manager.tree.builder.discover()
            foreign = {m.uuid for m in snapshot.mdevs()} - \
                ledger_mod.owned_mdevs(manager.ledger)
        except exceptions.VgpuPlacementError as e:
            LOG.warning('vgpu-placement: no adoption of stock Nova\'s mdevs '
                        'now: %s', e)
            return
        looked_at = (frozenset(foreign), frozenset(manager.tree.managed()))
        if not foreign or (instance is None and
                           looked_at == self._nothing_to_adopt):
            return
        by_server = {}
        for mdev_uuid, server in self.assigned_mdevs(instance).items():
            if mdev_uuid in foreign:
                by_server.setdefault(server, []).append(mdev_uuid)
        adopted = failed = False
        for server, uuids in sorted(by_server.items()):
            try:
                adopted = bool(manager.adopt(server, uuids)) or adopted
            except exceptions.VgpuPlacementError as e:
                failed = True
                LOG.warning('vgpu-placement: mdevs %s of %s not adopted: %s',
                            ', '.join(sorted(uuids)), server, e)
        if instance is None and not (adopted or failed):
            self._nothing_to_adopt = looked_at

    # -- a server's vGPUs -----------------------------------------------------
    def realize(self, consumer, allocations):
        """The consumer's mdev UUIDs on this host ([] when its allocations
        (Nova's form) hold no vGPU of ours); VgpuPlacementError when they
        cannot be made."""
        held = consumers.resources_of(allocations or {})
        is_ours = self.manager.tree.is_ours()
        if not any(is_ours(rp) and any(r.values())
                   for rp, r in held.items()):
            return []
        return [r.uuid for r in self.manager.realize(consumer, held)]

    def free(self, consumer):
        """Free the consumer's mdevs here; a failure is said and left in
        the ledger (reconcile removes them once the consumer holds no
        allocation here)."""
        try:
            freed = self.manager.free(consumer)
        except exceptions.VgpuPlacementError as e:
            LOG.error('vgpu-placement: mdevs of %s not freed: %s',
                      consumer, e)
            return
        if freed:
            LOG.info('vgpu-placement: freed mdevs %s of %s',
                     ', '.join(freed), consumer)

    def vf_records(self, consumer=None):
        """The ledger's records (of ``consumer``, or all) of vGPUs that are
        their virtual function (NVIDIA's vendor-specific VFIO: Driver.
        guest_gets_parent): the guest gets the VF itself."""
        driver = self.manager.driver
        return [r for r in self.manager.ledger.records(consumer)
                if driver.guest_gets_parent(r.parent)]

    def vf_vgpus(self, consumer=None):
        """{VF address: vGPU uuid} of vf_records."""
        return {r.parent: r.uuid for r in self.vf_records(consumer)}
