"""One report: discover -> policies -> desired tree -> sync to Placement."""
import dataclasses
import os

from vgpu_placement import drivers
from vgpu_placement import exceptions
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import embedded
from vgpu_placement.placement import sync
from vgpu_placement import provider_tree
from vgpu_placement import state_file
from vgpu_placement import type_config


@dataclasses.dataclass
class ReportResult:
    snapshot: object
    desired: object
    changes: list
    requests: client_mod.RequestCount


def placement_client(conf):
    if conf.embedded_placement.enabled:
        adapter = embedded.adapter(conf.embedded_placement.database)
    else:
        adapter = client_mod.adapter_from_conf(conf)
    return client_mod.PlacementClient(adapter)


def cache_path(conf):
    return os.path.join(conf.state_path, 'placement-cache.json')


class Reporter:
    """Holds the driver, the Placement client and the cache of one host."""

    def __init__(self, conf, driver=None, client=None):
        self.conf = conf
        self.driver = driver or drivers.load_driver(conf.driver, conf)
        self.client = client or placement_client(conf)
        self.cache_file = cache_path(conf)
        self.cache = self._load_cache()

    def _load_cache(self):
        try:
            cache = state_file.read_json(self.cache_file, {})
        except ValueError:
            cache = {}      # unreadable cache: rebuilt from Placement
        if cache.get('endpoint') != self.client.endpoint:
            cache = {}      # another Placement: nothing in it is ours yet
        cache['endpoint'] = self.client.endpoint
        return cache

    def save_cache(self):
        state_file.write_json(self.cache_file, self.cache)

    def desired_tree(self, snapshot):
        policies = type_config.load_policies(self.conf, snapshot)
        return provider_tree.build_tree(self.conf.host, snapshot, policies)

    def report(self, dry_run=False):
        snapshot = self.driver.discover()
        desired = self.desired_tree(snapshot)
        before = dataclasses.replace(self.client.count)
        tree_sync = sync.TreeSync(self.client, self.cache)
        try:
            changes = tree_sync.run(desired, dry_run=dry_run)
        finally:
            if not dry_run:
                self.save_cache()
        used = client_mod.RequestCount(
            self.client.count.reads - before.reads,
            self.client.count.writes - before.writes)
        return ReportResult(snapshot, desired, changes, used)

    def placement_view(self, refresh=True):
        """Placement's view of this host's children: [(name, provider)].

        refresh=False answers from the cache (right after a report it is
        exactly what Placement holds).
        """
        tree_sync = sync.TreeSync(self.client, self.cache)
        if refresh:
            root_uuid = tree_sync.refresh(self.conf.host, create_root=False)
            self.save_cache()
        else:
            root_uuid = (self.cache.get('root') or {}).get('uuid')
        if root_uuid is None:
            raise exceptions.VgpuPlacementError(
                'Placement has no provider named %s yet; run '
                '"vgpu-placement report" first' % self.conf.host)
        children = tree_sync.children(root_uuid)
        return [(name, dict(p, uuid=u))
                for name, (u, p) in sorted(children.items())]
