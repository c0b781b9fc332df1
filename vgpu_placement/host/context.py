"""What every operation on the host's mdevs works with.

Two inter-process locks (oslo.concurrency), always taken in this order:

* one per consumer: realize, release and free hold it for their whole
  run, and reconcile takes it and reads the consumer's facts again
  (allocations, ledger records) before it changes anything of that
  consumer, so it never acts on what a realize or release that finished
  meanwhile has made stale;
* one per provider (a parent device), around each create or remove and
  the host read that decides it. It is named after the provider, so that
  a realize can take it from Placement's names before it reads the host.

Fault injection for tests: VGPU_PLACEMENT_CRASH_AT=<point> makes the
process exit at once when it reaches that point (see CRASH_POINTS).
"""
import logging
import os
import re

from vgpu_placement import exceptions
from vgpu_placement.host import facts as facts_mod
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement import once
from vgpu_placement.placement import consumers
from vgpu_placement.placement import provider_tree
from vgpu_placement import state_file

LOG = logging.getLogger(__name__)

CRASH_POINTS = ('realize:recorded', 'realize:created', 'realize:params',
                'realize:active', 'free:marked', 'free:removed',
                'release:freed')


def crash_point(name):
    if os.environ.get('VGPU_PLACEMENT_CRASH_AT') == name:
        os._exit(99)


class HostContext:
    """The collaborators of one host's mdev operations, each used for one
    thing:

    * ``name``: the host's name in Placement (providers are named after
      it);
    * ``driver``: reads the host and creates or removes mdevs;
    * ``tree``: the provider tree as Placement has it, with
      ``placed(held=())`` ({child name: (provider uuid, managed?)}, read
      again when it does not know every provider of ``held``),
      ``reading(held=(), host=None) -> facts.TreeReading`` (``host``: a
      host read to build it from, else the tree reads the host),
      ``changed(host=None, providers=None)`` after mdevs changed
      (``host``: a read made after the change; ``providers``: the names
      of the only providers that changed), ``is_ours()`` (a predicate
      on provider uuids: ours to release) and ``stand_ins()``
      ({consumer: consumer it holds for}: allocations one holds count as
      the other's, as a Nova migration holds its instance's on the
      source of a resize);
      service.standalone.ReportedTree and nova.tree.NovaTree are two;
    * ``client``: a PlacementClient for consumer reads and releases
      (placement.consumers);
    * ``state_path``: where the ledger and the lock files live.

    The ledger is opened on first use: one that cannot be opened (lost,
    corrupt) stops realize, release and reconcile, not the reports.
    """

    def __init__(self, name, driver, tree, client, state_path, ledger=None):
        self.name = name
        self.driver = driver
        self.tree = tree
        self.client = client
        self.state_path = state_path
        self._ledger = ledger
        self.lock_path = os.path.join(state_path, 'locks')
        self.say_once = once.SayOnce(LOG)

    @property
    def ledger(self):
        if self._ledger is None:
            path = ledger_mod.path_in(self.state_path)
            if ledger_mod.never_had(path) and self._host_had_a_ledger():
                raise ledger_mod.LedgerLost(
                    'the ownership ledger %s and its state directory are '
                    'gone, but this host runs mdevs whose UUIDs this '
                    'project derives for instances holding allocations '
                    'here: which mdevs belong to which instance is lost. '
                    'Restore the state directory from a backup, or accept '
                    'the loss with "vgpu-placement reconcile '
                    '--accept-lost-ledger"' % path)
            self._ledger = ledger_mod.Ledger(path)
        return self._ledger

    def _host_had_a_ledger(self):
        """Evidence a wipe of the state directory cannot remove: an mdev
        on the host whose UUID mdev_uuid_for derives for a consumer that
        holds vGPUs on our providers. Only realize makes those, and only
        with a ledger."""
        reading = self.tree.reading()
        present = {m.uuid for m in reading.snapshot.mdevs()}
        if not present:
            return False
        for consumer, held in self.allocations_here(
                reading.managed()).items():
            vgpus = sum(n for resources in held.values()
                        for n in resources.values())
            if any(facts_mod.mdev_uuid_for(consumer, i) in present
                   for i in range(vgpus)):
                return True
        return False

    def allocations_here(self, providers):
        """{consumer: {provider uuid: {class: amount}}} on ``providers``."""
        return consumers.on_providers(self.client, providers)

    def held_now(self, consumer, managed):
        """{provider uuid: {class: n}} the consumer and its stand-ins hold
        on the ``managed`` providers, read now (its lock held)."""
        held_for = [consumer] + sorted(
            holder for holder, owner in self.tree.stand_ins().items()
            if owner == consumer)
        return facts_mod.fold({
            c: {rp: resources for rp, resources in consumers.allocations(
                self.client, c)['allocations'].items()
                if rp in managed} for c in held_for},
            {c: consumer for c in held_for})[consumer]

    def provider_name(self, device):
        return provider_tree.provider_name(self.name, device)

    def lock(self, provider):
        """The lock of one provider (by name), guarding its parent's
        creates and removes."""
        name = 'vgpu-parent-' + re.sub(r'[^A-Za-z0-9_.-]', '_', provider)
        return state_file.external_lock(name, self.lock_path)

    def device_lock(self, device):
        return self.lock(self.provider_name(device))

    def consumer_lock(self, consumer):
        # Consumers are canonical UUIDs (checked where they come in).
        return state_file.external_lock('vgpu-consumer-' + consumer,
                                        self.lock_path)

    def remove_quietly(self, mdev_uuid):
        try:
            self.driver.remove_mdev(mdev_uuid)
        except exceptions.MdevNotFound:
            pass

    def readopted(self, record, raw):
        """``raw`` (a host read), or a fresh read once the record's vGPU
        was found under another UUID and mended (``driver.readopt``).

        Where the driver, not the host, keeps the UUIDs (vendor-specific
        VFIO) and its file of them was lost, the record's vGPU shows as
        the one vGPU of its parent, of its type, under a UUID the driver
        made up and no record holds. Taking it for gone would make a
        second vGPU for a running guest, and leave the first as no one's.
        Its provider's lock is held.
        """
        if record is None or record.uuid in {m.uuid for m in raw.mdevs()}:
            return raw
        parent = raw.parent(record.parent)
        if parent is None or len(parent.mdevs) != 1:
            return raw
        shown = parent.mdevs[0]
        if shown.type_id != record.type or \
                self.ledger.get(shown.uuid) is not None or \
                not self.driver.readopt(record.parent, record.type,
                                        record.uuid, shown.uuid):
            return raw
        LOG.warning('vGPU %s (%s on %s) of %s found again: the driver\'s '
                    'record of its UUID was lost (it showed as %s)',
                    record.uuid, record.type, record.parent,
                    record.consumer, shown.uuid)
        return self.driver.discover()
