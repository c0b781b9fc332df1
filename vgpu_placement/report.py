"""One report: discover -> policies + models -> desired tree -> sync."""
import dataclasses
import logging
import os

from vgpu_placement import capacity
from vgpu_placement.conf import base as conf_base
from vgpu_placement import drivers
from vgpu_placement import exceptions
from vgpu_placement import ledger as ledger_mod
from vgpu_placement import model
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import embedded
from vgpu_placement.placement import sync
from vgpu_placement import provider_tree
from vgpu_placement import state_file
from vgpu_placement import type_config

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class ReportResult:
    snapshot: object
    desired: object
    changes: list
    requests: client_mod.RequestCount
    # [(parent, type, model's prediction, kernel's available_instances)]
    disagreements: list = dataclasses.field(default_factory=list)


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
        self.model_choices = type_config.load_model_choices(conf)
        self.empty_file = os.path.join(conf.state_path,
                                       'empty-parents.json')
        self.warned = set()
        self._ledger = None         # read only: which mdevs are ours

    def owned_mdevs(self):
        """UUIDs of the mdevs the ledger holds. A ledger that cannot be
        read makes every mdev count as someone else's: claims in flight
        are then counted in full (fewer offers, never too many)."""
        try:
            if self._ledger is None:
                self._ledger = ledger_mod.open_existing(
                    ledger_mod.path_in(self.conf.state_path))
            return ledger_mod.owned_mdevs(self._ledger)
        except exceptions.HostStateError as e:
            self._ledger = None
            if ('ledger', str(e)) not in self.warned:
                self.warned.add(('ledger', str(e)))
                LOG.error('%s; every mdev counts as not ours meanwhile', e)
            return frozenset()

    def _load_cache(self):
        """The cache file if it is well formed and of this Placement; else
        an empty cache, which the next sync rebuilds from Placement."""
        from vgpu_placement.redact import redact

        def is_str(*values):
            return all(isinstance(v, str) for v in values)

        def provider_ok(p):
            if not (isinstance(p, dict) and is_str(p.get('name')) and
                    isinstance(p.get('generation', ''), (int, type(None)))):
                return False
            if p.get('parent') is None:
                return True         # the root: nothing more is cached
            inventories, usages = p.get('inventories'), p.get('usages')
            return (is_str(p['parent']) and isinstance(p.get('traits'), list)
                    and isinstance(inventories, dict) and
                    all(isinstance(i, dict) for i in inventories.values())
                    and isinstance(usages, dict) and
                    all(isinstance(n, int) for n in usages.values()))

        def cache_ok(cache):
            if not isinstance(cache, dict):
                return False
            root = cache.get('root', {'name': '', 'uuid': ''})
            providers = cache.get('providers', {})
            return (isinstance(root, dict) and
                    is_str(root.get('name'), root.get('uuid')) and
                    isinstance(providers, dict) and
                    all(provider_ok(p) for p in providers.values()) and
                    all(isinstance(cache.get(k, []), list)
                        for k in ('classes', 'traits')) and
                    isinstance(cache.get('retired', {}), dict) and
                    all(isinstance(t, (int, float)) for t in
                        cache.get('retired', {}).values()) and
                    isinstance(cache.get('endpoint'), (str, type(None))))

        # The endpoint may carry a password: the file keeps none.
        endpoint = redact(self.client.endpoint)
        cache = state_file.read_checked(self.cache_file, cache_ok) or {}
        if cache.get('endpoint') != endpoint:
            cache = {}      # another Placement: nothing in it is ours yet
        cache['endpoint'] = endpoint
        return cache

    def save_cache(self):
        state_file.write_json(self.cache_file, self.cache)

    def discover(self):
        """The host as reported: SR-IOV virtual functions grouped."""
        return model.group_virtual_functions(self.driver.discover())

    def _remember_empty(self, snapshot):
        """Record what each parent offers while it has no mdevs, so costs
        of a driver we do not know can be inferred later."""
        seen = state_file.read_checked(self.empty_file, lambda data: (
            isinstance(data, dict) and all(
                isinstance(types, dict) and
                all(isinstance(n, int) for n in types.values())
                for types in data.values()))) or {}
        changed = False
        for parent in snapshot.parents:
            if parent.types and not parent.mdevs:
                now = {t.id: t.available_instances for t in parent.types}
                if seen.get(parent.name) != now:
                    seen[parent.name], changed = now, True
        if changed:
            state_file.write_json(self.empty_file, seen)
        return seen

    def choose_model(self, parent, empty_seen):
        override = self.model_choices.get(
            parent.name, self.model_choices.get('*'))
        chosen, how = capacity.choose_model(parent, override,
                                            empty_seen.get(parent.name))
        key = ('model', parent.name, chosen.kind, how)
        if key not in self.warned:
            # Said once per parent and model: how its costs were found.
            self.warned.add(key)
            LOG.info('capacity of %s: %s model (%s)', parent.name,
                     chosen.kind, how)
        return chosen

    def policies(self, snapshot):
        return type_config.load_policies(self.conf, snapshot,
                                         self.driver.vendor_param_keys)

    def desired_tree(self, snapshot):
        policies = self.policies(snapshot)
        empty_seen = self._remember_empty(snapshot)
        return provider_tree.build_tree(
            self.conf.host, snapshot, policies,
            choose_model=lambda p: self.choose_model(p, empty_seen),
            counters=self.conf.capacity.shared_counters,
            owned=self.owned_mdevs())

    def _check_kernel(self, desired, view):
        """Compare each model's prediction with what the kernel shows."""
        found = []
        for child in desired.children:
            usages = view.get(child.name, {}).get('usages', {})
            for type_id, predicted, observed in capacity.disagreements(
                    child.plan.offers(usages)):
                if child.plan.grouped and observed > predicted:
                    # Summed over virtual functions, the kernel's counts
                    # are an upper bound, not the GPU's: nothing to say.
                    continue
                found.append((child.device, type_id, predicted, observed))
                key = (child.device, type_id, predicted, observed)
                if key not in self.warned:
                    self.warned.add(key)
                    LOG.warning(
                        'parent %s type %s: the capacity model predicts %d '
                        'available, the kernel says %d; reporting the '
                        'smaller', child.device, type_id, predicted, observed)
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
        view = dict(self.placement_view(refresh=False)) if not dry_run else {}
        return ReportResult(snapshot, desired, changes, used,
                            self._check_kernel(desired, view))

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
            raise exceptions.RootProviderMissing(self.conf.host)
        children = tree_sync.children(root_uuid)
        return [(name, dict(p, uuid=u))
                for name, (u, p) in sorted(children.items())]
