"""A host without Nova: this project reports its own provider tree.

``reporter_for(conf)`` builds the driver, the Placement client and the
provider cache a Reporter needs; ``manager_for(reporter)`` gives the
MdevManager that reads the tree the Reporter writes (``ReportedTree``).
The CLI, the agent and the demo are built this way; inside nova-compute,
Nova's report client writes the tree and the MdevManager reads it from
Nova instead.
"""
import logging
import os

from vgpu_placement import drivers
from vgpu_placement import exceptions
from vgpu_placement.host import facts as host_facts
from vgpu_placement.host import mdev_manager
from vgpu_placement.host import tree_builder
from vgpu_placement.model import discovered
from vgpu_placement.placement import cache as cache_mod
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import report

LOG = logging.getLogger(__name__)


def placement_client(conf):
    if conf.embedded_placement.enabled:
        # Imported only here: the Placement server is an optional extra.
        from vgpu_placement.placement import embedded
        adapter = embedded.adapter(conf.embedded_placement.database)
    else:
        adapter = client_mod.adapter_from_conf(conf)
    return client_mod.PlacementClient(adapter)


def cache_path(conf):
    return os.path.join(conf.state_path, 'placement-cache.json')


def reporter_for(conf, driver=None, client=None):
    """The Reporter of ``conf``'s host (driver and client built from the
    config unless given)."""
    driver = driver or drivers.load_driver(conf.driver, conf)
    client = client or placement_client(conf)
    path = cache_path(conf)
    return report.Reporter(conf, tree_builder.TreeBuilder(conf, driver),
                           client,
                           cache_mod.ProviderCache.load(path, client.endpoint),
                           path)


def manager_for(reporter, ledger=None):
    """The MdevManager of the reporter's host, reading the tree it reports."""
    conf = reporter.conf
    return mdev_manager.MdevManager(conf.host, reporter.driver,
                                    ReportedTree(reporter), reporter.client,
                                    conf.state_path, ledger=ledger)


class ReportedTree:
    """The tree as the MdevManager needs it (host.context.HostContext's
    ``tree``), where a Reporter writes it.

    Reads come from the Reporter's cache when it knows every provider
    asked about (a claim made on the tree we reported: the usual
    realize), else Placement's tree is read (``placed``); a reading with
    no host read given (reconcile, adopt) reports the host first, or,
    when claims keep racing the report, reads Placement without writing.
    """

    def __init__(self, reporter):
        self.reporter = reporter

    def _knows(self, held):
        cache = self.reporter.cache
        return bool(held) and bool(cache.root_uuid) and all(
            rp in cache for rp in held)

    def placed(self, held=()):
        """{child name: (uuid, managed?)}, Placement's tree read first
        unless the cache knows every provider of ``held`` (no host
        read)."""
        self.reporter.read_tree(refresh=not self._knows(held))
        return host_facts.placed_children(self.reporter.cache)

    def reading(self, held=(), host=None):
        """A host.facts.TreeReading; ``held``: provider uuids the caller
        needs mapped; ``host``: a host read to build it from, the tree as
        the cache has it (the caller's placed() read it)."""
        if host is not None:
            snapshot = discovered.group_virtual_functions(host)
            desired = self.reporter.desired_tree(snapshot)
            self.reporter.read_tree(refresh=False)
        elif self._knows(held):
            snapshot, desired = self._read(refresh=False)
        else:
            snapshot, desired = self._report_first()
        return host_facts.TreeReading(
            snapshot, desired,
            host_facts.placed_children(self.reporter.cache),
            self.reporter.policies(snapshot))

    def _report_first(self):
        try:
            # The tree exists and our cache of it is fresh.
            result = self.reporter.report()
            return result.snapshot, result.desired
        except exceptions.PlacementUnavailable:
            raise
        except exceptions.VgpuPlacementError as e:
            # Claims racing on our providers: reading is enough here.
            LOG.info('report before the change deferred (%s); reading', e)
            return self._read(refresh=True)

    def _read(self, refresh):
        snapshot = discovered.group_virtual_functions(
            self.reporter.driver.discover())
        desired = self.reporter.desired_tree(snapshot)
        self.reporter.read_tree(refresh)
        return snapshot, desired

    def changed(self, host=None, providers=None):
        """Re-report after mdevs changed; ``host``: a host read (the
        driver's discover) made after the change, reported instead of
        reading again; ``providers``: the names of the only providers
        that changed (synced alone: Reporter.report's ``providers``).

        The change is done whatever happens here: if the report keeps
        losing generation races to claims, or Placement went away, the
        agent's next report brings Placement up to date.
        """
        try:
            if providers and host is None:
                host = self.reporter.driver.discover()
            self.reporter.report(host=host, providers=providers)
        except exceptions.VgpuPlacementError as e:
            LOG.warning('report after the change deferred to the agent: %s',
                        e)

    def stand_ins(self):
        """None here: every consumer holds its own allocations."""
        return {}

    def is_ours(self):
        """A predicate on provider uuids: a child of our tree that we
        manage. A provider the cache does not know makes it read the tree
        once (a parent reported by another process since)."""
        def refresh():
            try:
                self.reporter.read_tree(refresh=True)
            except exceptions.PlacementUnavailable:
                raise
            except exceptions.VgpuPlacementError:
                pass            # no tree of ours: nothing is ours
        return cache_mod.managed_predicate(self.reporter.cache, refresh)
