"""The project's provider tree inside nova-compute.

``put_tree`` writes the desired tree into the ProviderTree Nova hands
``update_provider_tree`` (Nova's report client then writes Placement: it is
the only writer on a Nova host). ``NovaTree`` is the tree the host side
reads there (see host.context.HostContext): Placement's view of this
host's providers, read, never written, through placement.sync.TreeSync
into a ProviderCache kept in memory.
"""
import logging
import threading

from vgpu_placement.host import facts as host_facts
from vgpu_placement.nova import takeover
from vgpu_placement.placement import cache as cache_mod
from vgpu_placement.placement import provider_tree as ptree
from vgpu_placement.placement import sync
from vgpu_placement.placement import traits as traits_mod

LOG = logging.getLogger(__name__)


def usages_from_allocations(allocations, uuids):
    """{provider uuid: {class: used}} from Nova's reshape allocations
    ({consumer: {'allocations': {rp: {'resources': {...}}}}})."""
    used = {u: {} for u in uuids}
    for consumer in (allocations or {}).values():
        for rp, alloc in consumer.get('allocations', {}).items():
            if rp in used:
                for rc, n in alloc.get('resources', {}).items():
                    used[rp][rc] = used[rp].get(rc, 0) + n
    return used


def put_tree(provider_tree, nodename, desired, usages_of):
    """Make ``provider_tree`` (nova.compute.provider_tree.ProviderTree)
    hold ``desired`` (provider_tree.DesiredTree) under ``nodename``.

    ``usages_of(name, uuid)`` gives what Placement has granted on a child
    ({class: used}). A child whose name exists keeps its uuid (Nova made
    it, or an earlier report). Children of ours not desired any more are
    retired (in-use classes closed, RETIRED trait) while in use, else
    removed (Nova's report client deletes them). Children of parents not
    read whole are left as they are. Stock Nova's vGPU children
    (takeover.is_nova_vgpu_child) of GPUs the project does not report are
    treated the same way: Nova no longer creates their mdevs, so they must
    not be claimed. Returns {child name: uuid} of ours.
    """
    ours = {}
    for child in desired.children:
        if child.name in desired.unknown:
            if provider_tree.exists(child.name):
                ours[child.name] = provider_tree.data(child.name).uuid
            continue
        if not provider_tree.exists(child.name):
            provider_tree.new_child(child.name, nodename, uuid=child.uuid)
        data = provider_tree.data(child.name)
        inventories = child.inventories(usages_of(child.name, data.uuid),
                                        data.inventory)
        provider_tree.update_inventory(child.name, {
            rc: inv.as_dict() for rc, inv in inventories.items()})
        provider_tree.update_traits(child.name, sorted(child.traits))
        ours[child.name] = data.uuid
    root = provider_tree.data(nodename)
    for rp_uuid in provider_tree.get_provider_uuids(nodename):
        if rp_uuid == root.uuid:
            continue
        data = provider_tree.data(rp_uuid)
        if data.name in ours or data.name in desired.unknown or \
                data.parent_uuid != root.uuid or not (
                    traits_mod.MANAGED in data.traits or
                    takeover.is_nova_vgpu_child(data.name, nodename)):
            continue
        used = usages_of(data.name, data.uuid)
        # Nova's report client deletes what leaves its tree, and its own
        # cache with it: nothing to wait for once unused.
        if ptree.retire_action(used, 0, 0) == ptree.KEEP_CLOSED:
            provider_tree.update_inventory(data.uuid, {
                rc: inv.as_dict() for rc, inv in ptree.keep_in_use(
                    {}, used, data.inventory).items()})
            provider_tree.update_traits(
                data.uuid, sorted(set(data.traits) | {traits_mod.RETIRED}))
            ours[data.name] = data.uuid
            LOG.info('provider %s retired: its device is gone or no longer '
                     'reported, kept closed while in use', data.name)
        else:
            LOG.info('provider %s removed: its device is gone or no longer '
                     'reported', data.name)
            provider_tree.remove(data.uuid)
    return ours


class NovaTree:
    """The tree as mdev_manager.MdevManager needs it, where Nova's report
    client writes it: read from Placement (read-only) into an in-memory
    ProviderCache.

    ``builder`` (tree_builder.TreeBuilder) reads the host, ``client`` (a
    PlacementClient) Placement, ``root_name`` is Nova's node name.
    """

    def __init__(self, builder, client, root_name, migrations=dict):
        self.builder = builder
        self.client = client
        self.root_name = root_name
        # () -> {migration uuid: instance uuid} of the moves in progress
        # on this host: a migration holds its instance's allocations on
        # the source until the move is confirmed or reverted.
        self.migrations = migrations
        # Placement's view of the tree, read only (Nova's report client
        # writes it), in memory only (the endpoint is Nova's business).
        # Spawns, moves and the resource tracker's period use it from
        # several threads: read and written only under _lock, through
        # the methods below.
        self._cache = cache_mod.ProviderCache('nova-compute')
        self._sync = sync.TreeSync(client, self._cache)
        self._lock = threading.RLock()

    def refresh(self):
        """Read Placement's tree (changed providers only); the root's uuid,
        or None when Nova has not created it yet."""
        with self._lock:
            return self._sync.refresh(self.root_name, create_root=False)

    def children(self):
        """{name: (uuid, CachedProvider)} of the tree last read."""
        with self._lock:
            return self._cache.children()

    def managed(self):
        """The uuids of the children the project manages, as last read."""
        with self._lock:
            return self._cache.managed()

    def usages(self, child):
        """{class: used} Placement holds on the desired ``child``.

        From the tree just read, read again when the child has claims not
        realized yet (placement.sync.TreeSync.current_usages)."""
        with self._lock:
            found = self._cache.children().get(child.name)
            if found is None:
                return {}
            return self._sync.current_usages(found[0], child.plan)

    def retired_usages(self, rp_uuid):
        """{class: used} on a child no longer desired (kept while in use),
        read again while the tree read shows it in use."""
        with self._lock:
            if self._cache.get(rp_uuid) is None:
                return {}
            return self._sync.current_usages(rp_uuid)

    def placed(self, held=()):
        """{child name: (uuid, managed?)}, the tree read again first
        unless it knows every provider of ``held``."""
        with self._lock:
            if not (held and self._cache.root_uuid and
                    all(rp in self._cache for rp in held)):
                self.refresh()
            return host_facts.placed_children(self._cache)

    def reading(self, held=(), host=None):
        """A host.facts.TreeReading; ``host``: a host read (the driver's
        discover) to build it from, the tree as last read (the caller's
        placed() read it); else the host is read."""
        if host is None:
            placed = self.placed(held)
        else:
            with self._lock:
                placed = host_facts.placed_children(self._cache)
        snapshot = self.builder.discover(host)
        desired = self.builder.desired_tree(snapshot)
        return host_facts.TreeReading(snapshot, desired, placed,
                                      self.builder.policies(snapshot))

    def changed(self, host=None, providers=None):
        """Nothing to do: Nova's resource tracker reports the tree on its
        period, and the counters Placement holds already account for a
        claim whose mdev was just made or freed."""

    def stand_ins(self):
        return self.migrations()

    def is_ours(self):
        """A predicate on provider uuids: a child of this host's tree that
        the project manages (the tree is read once if it does not know
        the provider)."""
        ours = cache_mod.managed_predicate(self._cache, self.refresh)

        def is_ours(rp_uuid):
            with self._lock:
                return ours(rp_uuid)
        return is_ours
