"""One report: discover -> policies + models -> desired tree -> sync.

The Reporter is the only writer of this host's tree in Placement (and of
its ProviderCache, through placement.sync). What it needs is handed to it:
``standalone.reporter_for(conf)`` builds it for a host without Nova.
"""
import dataclasses
import logging

from vgpu_placement import capacity
from vgpu_placement.conf import base as conf_base
from vgpu_placement import exceptions
from vgpu_placement import once
from vgpu_placement.placement import client as client_mod
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


def kernel_disagreements(desired, cache):
    """[(parent, type, predicted, observed)]: where a model predicts other
    counts than the kernel shows, given the usages in ``cache``."""
    children = cache.children()
    found = []
    for child in desired.children:
        cached = children.get(child.name, (None, None))[1]
        usages = cached.usages if cached else {}
        for type_id, predicted, observed in capacity.disagreements(
                child.plan.offers(usages)):
            if child.plan.grouped and observed > predicted:
                # Summed over virtual functions, the kernel's counts are
                # an upper bound, not the GPU's: nothing to say.
                continue
            found.append((child.device, type_id, predicted, observed))
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

    # What callers holding only the reporter read of the host.
    @property
    def driver(self):
        return self.builder.driver

    def discover(self):
        return self.builder.discover()

    def policies(self, snapshot):
        return self.builder.policies(snapshot)

    def desired_tree(self, snapshot):
        return self.builder.desired_tree(snapshot)

    def save_cache(self):
        self.cache.save(self.cache_file)

    def _check_kernel(self, desired):
        """The disagreements with the kernel, each said once."""
        found = kernel_disagreements(desired, self.cache)
        for device, type_id, predicted, observed in found:
            self.say_once(
                logging.WARNING, (device, type_id, predicted, observed),
                'parent %s type %s: the capacity model predicts %d '
                'available, the kernel says %d; reporting the smaller',
                device, type_id, predicted, observed)
        return found

    def report(self, dry_run=False, delete_retired=False):
        """One sync. delete_retired: delete every retired provider that
        holds no allocation now, whatever its age (an operator's
        request)."""
        snapshot = self.discover()
        desired = self.desired_tree(snapshot)
        before = dataclasses.replace(self.client.count)
        tree_sync = sync.TreeSync(
            self.client, self.cache,
            create_root=conf_base.create_root_provider(self.conf),
            delete_retired_after=0 if delete_retired else
            self.conf.delete_retired_providers_after)
        try:
            changes = tree_sync.run(desired, dry_run=dry_run)
        finally:
            if not dry_run:
                self.save_cache()
        used = client_mod.RequestCount(
            self.client.count.reads - before.reads,
            self.client.count.writes - before.writes)
        return ReportResult(snapshot, desired, changes, used,
                            [] if dry_run else self._check_kernel(desired))

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
