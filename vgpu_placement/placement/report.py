"""One report: discover -> policies + models -> desired tree -> sync.

The Reporter is the only writer of this host's tree in Placement (and of
its ProviderCache, through placement.sync). What it needs is handed to it:
``standalone.reporter_for(conf)`` builds it for a host without Nova.

A report reads the host unless its caller (the agent's loop, told by
``scan_gate``) says the last scan still holds: then the last snapshot and
desired tree are reused (the tree built again if the ledger's mdevs
changed), Placement is read as always (claims and usages change the
offers), and the cache file is written only when it changed.
"""
import dataclasses
import logging

from vgpu_placement.conf import base as conf_base
from vgpu_placement import exceptions
from vgpu_placement.model import base as model_base
from vgpu_placement.model import discovered
from vgpu_placement import once
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import sync

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class ReportResult:
    snapshot: object
    desired: object
    changes: list
    requests: client_mod.RequestCount
    # [(parent, type, model's prediction, kernel's available_instances)]
    disagreements: list = dataclasses.field(default_factory=list)
    scanned: bool = True        # False: the last scan's snapshot reused


@dataclasses.dataclass(frozen=True)
class _Scan:
    """A host read and the tree built from it, kept for reuse."""
    snapshot: object
    # (the ledger's mdevs, freed claims) the tree was built with
    owned: tuple
    desired: object


def kernel_disagreements(desired, cache):
    """[(parent, type, predicted, observed)]: where a model predicts other
    counts than the kernel shows, given the usages in ``cache``."""
    children = cache.children()
    found = []
    for child in desired.children:
        cached = children.get(child.name, (None, None))[1]
        usages = cached.usages if cached else {}
        for type_id, predicted, observed in model_base.disagreements(
                child.plan.offers(usages)):
            if child.plan.grouped and observed > predicted:
                # Summed over virtual functions, the kernel's counts are
                # an upper bound, not the GPU's: nothing to say.
                continue
            found.append((child.device, type_id, predicted, observed))
    return found


def unpaid_claims(desired, cache):
    """[(parent, {counter class: units owed})]: parents where claims that
    did not pay their counters make the inventories follow each claim
    (ParentPlan.carried)."""
    children = cache.children()
    found = []
    for child in desired.children:
        cached = children.get(child.name, (None, None))[1]
        owed = child.plan.unpaid(cached.usages if cached else {})
        if owed and child.plan.counters_carry():
            found.append((child.device, owed))
    return found


class Reporter:
    """Reports one host: ``builder``'s desired tree (a TreeBuilder) into
    Placement via ``client``; ``cache`` (a ProviderCache) is saved to
    ``cache_file`` after each sync."""

    def __init__(self, conf, builder, client, cache, cache_file):
        self.conf = conf
        self.builder = builder
        self.client = client
        self.cache = cache
        self.cache_file = cache_file
        self.say_once = once.SayOnce(LOG)
        self._last_scan = None      # a _Scan
        self.scan_count = 0         # host reads so far (the agent watches)
        self._saved = None          # the cache as last written

    # What callers holding only the reporter read of the host.
    @property
    def driver(self):
        return self.builder.driver

    def discover(self):
        return self.builder.discover()

    def policies(self, snapshot):
        return self.builder.policies(snapshot)

    def desired_tree(self, snapshot, freed=None):
        """The tree of ``snapshot``; ``freed`` as _freed_claims gives it
        (read now when None)."""
        return self.builder.desired_tree(
            snapshot, self._freed_claims() if freed is None else freed)

    def _freed_claims(self):
        """{device: {type: n}}: claims of mdevs freed for good that
        Placement still holds (costs reads only while the ledger has
        such notes; notes of claims gone are forgotten)."""
        children = self.cache.children()
        return self.builder.freed_claims(
            self.client, lambda device: children.get(
                provider_tree.provider_name(self.conf.host, device),
                (None, None))[0])

    def _ours(self):
        """What the ledger says realizes claims, read once a report."""
        return self.builder.owned_mdevs(), self._freed_claims()

    def save_cache(self):
        # Unchanged (the usual periodic report): not written again.
        data = self.cache.to_json()
        if data != self._saved:
            self.cache.save(self.cache_file)
            self._saved = data

    def _host(self, rescan, host=None):
        """(snapshot, desired tree, scanned?): the host read now (or
        ``host``, a read the caller just made), or with ``rescan`` False
        the last scan's when it can stand (it read every parent whole)."""
        last = self._last_scan
        if host is not None or rescan or last is None or \
                last.desired.unknown:
            # Not held while the next is read: one host copy less at peak.
            self._last_scan = None
            # The ledger first: a change racing the build is seen later.
            owned = self._ours()
            snapshot = (self.discover() if host is None else
                        discovered.group_virtual_functions(host))
            last = _Scan(snapshot, owned,
                         self.desired_tree(snapshot, owned[1]))
            self._last_scan = last
            self.scan_count += 1
            return last.snapshot, last.desired, True
        owned = self._ours()
        if owned != last.owned:
            # Ours now, or no longer: the same host seen another way.
            last = _Scan(last.snapshot, owned,
                         self.desired_tree(last.snapshot, owned[1]))
            self._last_scan = last
        return last.snapshot, last.desired, False

    def _check_kernel(self, desired):
        """The disagreements with the kernel, each said once."""
        found = kernel_disagreements(desired, self.cache)
        for device, type_id, predicted, observed in found:
            self.say_once(
                logging.WARNING, (device, type_id, predicted, observed),
                'parent %s type %s: the capacity model predicts %d '
                'available, the kernel says %d; reporting the smaller',
                device, type_id, predicted, observed)
        for device, owed in unpaid_claims(desired, self.cache):
            self.say_once(
                logging.WARNING, ('unpaid', device),
                'parent %s: claims asked for their type without its '
                'counters (%s): its inventories now move with each claim; '
                'give the flavors the extra specs "vgpu-placement '
                'flavor-spec" prints', device, ', '.join(
                    '%s %d' % kv for kv in sorted(owed.items())))
        return found

    def report(self, dry_run=False, delete_retired=False, rescan=True,
               host=None, providers=None):
        """One sync. delete_retired: delete every retired provider that
        holds no allocation now, whatever its age (an operator's
        request). rescan=False: reuse the last scan if it can stand (only
        the agent's loop, which knows no host change came since), unless
        Placement shows inventories someone else wrote since our last
        report (an operator's report, another agent: they may have seen
        the host change): then the host is read again rather than the
        reused scan written back over theirs. ``host``: the driver's
        read of the host, made by the caller after its own change (a
        realize): reported as it is, not read again. ``providers``: the
        names of the only providers this process just changed (with
        ``host``): only those are synced (TreeSync.run_children), the
        rest of the tree is the next full report's."""
        snapshot, desired, scanned = self._host(rescan, host)
        before = dataclasses.replace(self.client.count)
        tree_sync = sync.TreeSync(
            self.client, self.cache,
            create_root=conf_base.create_root_provider(self.conf),
            delete_retired_after=0 if delete_retired else
            self.conf.delete_retired_providers_after)
        if not scanned and not dry_run and self._written_by_others(
                tree_sync, desired):
            snapshot, desired, scanned = self._host(True)
        changes = None
        try:
            if providers and host is not None and not dry_run:
                changes = tree_sync.run_children(desired, providers)
            if changes is None:
                changes = tree_sync.run(desired, dry_run=dry_run)
        finally:
            if not dry_run:
                self.save_cache()
        used = client_mod.RequestCount(
            self.client.count.reads - before.reads,
            self.client.count.writes - before.writes)
        return ReportResult(snapshot, desired, changes, used,
                            [] if dry_run else self._check_kernel(desired),
                            scanned)

    def _written_by_others(self, tree_sync, desired):
        """True when a refresh finds a provider's inventories other than
        the cache had them (ours as last written or read): claims change
        usages and generations, never inventories."""
        def inventories():
            return {u: p.inventories
                    for u, p in self.cache.children().values()}
        before = inventories()
        tree_sync.run(desired, dry_run=True)        # refreshes the cache
        after = inventories()
        return any(after.get(u) != inv for u, inv in before.items())

    def read_tree(self, refresh=True):
        """Make sure the cache holds this host's tree: read from Placement
        (without writing) when ``refresh``; RootProviderMissing when there
        is no root to map onto."""
        if refresh:
            sync.TreeSync(self.client, self.cache).refresh(
                self.conf.host, create_root=False)
            self.save_cache()
        if self.cache.root_uuid is None:
            raise exceptions.RootProviderMissing(self.conf.host)

    def placement_view(self, refresh=True):
        """Placement's view of this host's children: [(name, provider as
        a dict with its uuid)], for display.

        refresh=False answers from the cache (right after a report it is
        exactly what Placement holds).
        """
        self.read_tree(refresh)
        return [(name, dict(p.to_json(), uuid=u))
                for name, (u, p) in sorted(self.cache.children().items())]
