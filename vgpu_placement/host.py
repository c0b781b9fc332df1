"""Host side: turn a consumer's allocations into mdevs, free them, reconcile.

Each mdev's UUID is derived from the consumer (uuid5 of consumer and
index), so a retry or a crash finds it again, and only mdevs whose UUID we
derive or that the ledger holds are ever touched. Work on one parent device
runs under an inter-process lock (oslo.concurrency), and goes through the
ledger in two phases (creating -> active, removing -> gone).

Fault injection for tests: VGPU_PLACEMENT_CRASH_AT=<point> makes the
process exit at once when it reaches that point (see CRASH_POINTS).
"""
import dataclasses
import logging
import os
import re
import uuid
from xml.sax import saxutils

from oslo_concurrency import lockutils

from vgpu_placement import exceptions
from vgpu_placement import ledger as ledger_mod
from vgpu_placement import scheduler

LOG = logging.getLogger(__name__)

MDEV_NAMESPACE = uuid.UUID('6b1d8f2a-52c4-5e0b-9c7e-3f4a1d2b8e61')
CRASH_POINTS = ('realize:recorded', 'realize:created', 'realize:params',
                'realize:active', 'free:marked', 'free:removed',
                'release:freed')


def _crash_point(name):
    if os.environ.get('VGPU_PLACEMENT_CRASH_AT') == name:
        os._exit(99)


def mdev_uuid_for(consumer, index):
    """The UUID of the consumer's index-th vGPU on this host."""
    return str(uuid.uuid5(MDEV_NAMESPACE, '%s/%d' % (consumer, index)))


def hostdev_xml(mdev_uuid):
    """libvirt's <hostdev> for an mdev."""
    return ("<hostdev mode='subsystem' type='mdev' model='vfio-pci' "
            "managed='no'><source><address uuid=%s/></source></hostdev>"
            % saxutils.quoteattr(mdev_uuid))


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One vGPU a consumer's allocations ask this host for."""
    uuid: str
    device: str
    type_id: str
    provider: str


@dataclasses.dataclass(frozen=True)
class Realized:
    uuid: str
    type_id: str
    device: str
    parent: str

    def as_dict(self):
        return dict(dataclasses.asdict(self), xml=hostdev_xml(self.uuid))


class Host:
    """Realize, free and reconcile for the host a Reporter reports."""

    def __init__(self, reporter, ledger=None):
        self.reporter = reporter
        self.conf = reporter.conf
        self.driver = reporter.driver
        self.client = reporter.client
        self.ledger = ledger or ledger_mod.Ledger(
            os.path.join(self.conf.state_path, 'ledger.sqlite'))
        self.lock_path = os.path.join(self.conf.state_path, 'locks')
        # Type policies (vendor parameters) as of the last look at the tree.
        self.policies = {}

    # -- what the allocations ask for --------------------------------------
    def _report_after_change(self):
        """Re-report the host after mdevs changed.

        The change is done whatever happens here: if the report keeps
        losing generation races to claims, or Placement went away, the
        agent's next report brings Placement up to date.
        """
        try:
            self.reporter.report()
        except exceptions.VgpuPlacementError as e:
            LOG.warning('report after the change deferred to the agent: %s',
                        e)

    def _our_providers(self, held=()):
        """{provider uuid: (DesiredProvider, {class: type id})}.

        When our cached tree knows every provider in ``held`` (a claim
        made on the tree we reported: the usual realize), it maps them
        without asking Placement; the report after the change syncs.
        """
        known = self.reporter.cache.get('providers', {})
        if held and self.reporter.cache.get('root') and set(held) <= set(
                known):
            snapshot, desired, view = self._read(refresh=False)
        else:
            snapshot, desired, view = self._report_first()
        self.policies = self.reporter.policies(snapshot)
        ours = {}
        for child in desired.children:
            if child.name in view:
                ours[view[child.name]['uuid']] = (child, {
                    rc: t for t, rc in child.plan.classes.items()})
        return ours

    def _report_first(self):
        """(snapshot, desired tree, Placement's view) after a report."""
        try:
            # The tree exists and our cache of it is fresh.
            result = self.reporter.report()
            return result.snapshot, result.desired, dict(
                self.reporter.placement_view(refresh=False))
        except exceptions.PlacementUnavailable:
            raise
        except exceptions.VgpuPlacementError as e:
            # Claims racing on our providers: reading is enough here.
            LOG.info('report before the change deferred (%s); reading', e)
            return self._read(refresh=True)

    def _read(self, refresh):
        """(snapshot, desired tree, Placement's view), without writing."""
        snapshot = self.reporter.discover()
        return snapshot, self.reporter.desired_tree(snapshot), dict(
            self.reporter.placement_view(refresh=refresh))

    def wanted(self, consumer, allocations, ours):
        """[Wanted] for the consumer, in a stable order (UUIDs follow it)."""
        out = []
        for rp_uuid in sorted(allocations, key=lambda u: (
                ours[u][0].name if u in ours else '', u)):
            if rp_uuid not in ours:
                continue
            child, types = ours[rp_uuid]
            for rc, amount in sorted(allocations[rp_uuid].items()):
                if rc in types:
                    out.extend((child, types[rc]) for _ in range(amount))
        return [Wanted(mdev_uuid_for(consumer, i), child.device, type_id,
                       child.name) for i, (child, type_id) in enumerate(out)]

    def _lock(self, device):
        name = 'vgpu-parent-' + re.sub(r'[^A-Za-z0-9_.-]', '_', device)
        return lockutils.lock(name, external=True, lock_path=self.lock_path)

    def _params(self, type_id):
        policy = self.policies.get(type_id)
        return dict(policy.vendor_params) if policy else {}

    # -- realize ---------------------------------------------------------------
    def realize(self, consumer):
        """Create (or find again) the consumer's mdevs; report the host."""
        allocations = scheduler.current_allocations(
            self.client, consumer)['allocations']
        ours = self._our_providers(held=allocations)
        wanted = self.wanted(consumer, allocations, ours)
        if not wanted:
            raise exceptions.VgpuPlacementError(
                'consumer %s has no vGPU allocations on host %s'
                % (consumer, self.conf.host))
        done = []
        for want in wanted:
            with self._lock(want.device):
                done.append(self._realize_one(consumer, want))
        self._report_after_change()
        return done

    def _kernel_parent(self, want, raw):
        """The kernel parent to create on: the device, or for a physical
        GPU with SR-IOV a free virtual function offering the type."""
        grouped = {p.name: p for p in self.reporter.discover().parents}
        members = grouped[want.device].members if want.device in grouped \
            else ()
        if not members:
            return want.device
        for vf in raw.parents:
            t = vf.type(want.type_id)
            if vf.name in members and not vf.mdevs and t and \
                    t.available_instances:
                return vf.name
        raise exceptions.NoCapacity('create', '%s of type %s on %s' % (
            want.uuid, want.type_id, want.device),
            'no free virtual function offers the type')

    def _realize_one(self, consumer, want):
        raw = self.driver.discover()
        present = {m.uuid: m for m in raw.mdevs()}
        record = self.ledger.get(want.uuid)
        boot_id = self.driver.boot_id()
        mdev = present.get(want.uuid)
        if mdev is not None and mdev.type_id != want.type_id:
            raise exceptions.VgpuPlacementError(
                'mdev %s exists with type %s, not %s: left alone'
                % (want.uuid, mdev.type_id, want.type_id))
        if mdev is not None and record and record.state == \
                ledger_mod.ACTIVE:
            return Realized(want.uuid, want.type_id, want.device, mdev.parent)
        parent = mdev.parent if mdev else self._kernel_parent(want, raw)
        self.ledger.put(ledger_mod.Record(
            want.uuid, consumer, want.device, parent, want.type_id,
            ledger_mod.CREATING, boot_id))
        _crash_point('realize:recorded')
        if mdev is None:
            try:
                self.driver.create_mdev(parent, want.type_id, want.uuid)
            except exceptions.MdevError:
                self.ledger.forget(want.uuid)
                raise
            _crash_point('realize:created')
        try:
            self._verify(want, parent)
            params = self._params(want.type_id)
            if params:
                self.driver.set_vendor_params(want.uuid, want.type_id,
                                              params)
            _crash_point('realize:params')
        except exceptions.VgpuPlacementError:
            # Roll back: the mdev must not be used half set up.
            self._remove_quietly(want.uuid)
            self.ledger.forget(want.uuid)
            raise
        self.ledger.set_state(want.uuid, ledger_mod.ACTIVE, boot_id)
        _crash_point('realize:active')
        LOG.info('mdev %s (%s) on %s for %s', want.uuid, want.type_id,
                 parent, consumer)
        return Realized(want.uuid, want.type_id, want.device, parent)

    def _verify(self, want, parent):
        found = {m.uuid: m for m in self.driver.discover().mdevs()}
        mdev = found.get(want.uuid)
        if mdev is None or mdev.type_id != want.type_id or \
                mdev.parent != parent:
            raise exceptions.VgpuPlacementError(
                'mdev %s is not there as created (%s)' % (
                    want.uuid, mdev and (mdev.type_id, mdev.parent)))

    def _remove_quietly(self, mdev_uuid):
        try:
            self.driver.remove_mdev(mdev_uuid)
        except exceptions.MdevNotFound:
            pass

    # -- free and release ------------------------------------------------------
    def free(self, consumer, report=True):
        """Remove the consumer's mdevs (ours only); returns their UUIDs."""
        freed = []
        for record in self.ledger.records(consumer):
            with self._lock(record.device):
                self._free_one(record)
            freed.append(record.uuid)
        if report and freed:
            self._report_after_change()
        return freed

    def _free_one(self, record):
        self.ledger.set_state(record.uuid, ledger_mod.REMOVING)
        _crash_point('free:marked')
        self._remove_quietly(record.uuid)
        _crash_point('free:removed')
        self.ledger.forget(record.uuid)

    def release(self, consumer):
        """Free the mdevs, then drop the allocations in Placement.

        If Placement cannot be reached the release is owed in the ledger
        and reconcile finishes it; nothing is lost.
        """
        # Owed first: a crash from here on is finished by reconcile.
        self.ledger.owe_release(consumer)
        freed = self.free(consumer, report=False)
        _crash_point('release:freed')
        try:
            scheduler.release(self.client, consumer)
        except exceptions.PlacementUnavailable:
            LOG.warning('Placement unreachable: release of %s is owed and '
                        'will be retried', consumer)
            return freed, False
        self.ledger.released(consumer)
        self._report_after_change()
        return freed, True

    # -- reconcile ---------------------------------------------------------------
    def allocations_here(self, ours):
        """{consumer: {provider uuid: {class: amount}}} on our providers."""
        found = {}
        for rp_uuid in sorted(ours):
            got = self.client.get('/resource_providers/%s/allocations'
                                  % rp_uuid)
            for consumer, alloc in got['allocations'].items():
                found.setdefault(consumer, {})[rp_uuid] = alloc['resources']
        return found

    def _try_realize(self, consumer, want, key, summary):
        """One mdev of reconcile's: a refusal (the parent filled up while
        the mdev was gone) is said and kept for the next pass, and the
        other mdevs still get their turn."""
        try:
            self._realize_one(consumer, want)
        except exceptions.MdevError as e:
            LOG.warning('reconcile could not bring back mdev %s of %s: %s',
                        want.uuid, consumer, e)
            summary['failed'].append(want.uuid)
            return
        summary[key].append(want.uuid)

    def reconcile(self):
        """Make the host, the ledger and Placement agree; returns a summary.

        * releases owed while Placement was down are made;
        * half-done work is finished or rolled back;
        * ledger mdevs lost (reboot, module reload) are recreated with the
          same UUIDs;
        * owned mdevs whose consumer has no allocation here are removed;
        * allocations here without mdevs are realized (adopting mdevs that
          carry the UUID we derive);
        * anything else on the host is not ours and is left alone;
        * an mdev the host refuses now is listed as failed and retried on
          the next pass (its allocation stays).
        """
        summary = {'released': [], 'recreated': [], 'removed': [],
                   'realized': [], 'rolled_back': [], 'failed': []}
        for consumer in self.ledger.releases_owed():
            scheduler.release(self.client, consumer)
            self.ledger.released(consumer)
            summary['released'].append(consumer)
        ours = self._our_providers()
        here = self.allocations_here(ours)
        wanted = {w.uuid: (consumer, w) for consumer, allocs in here.items()
                  for w in self.wanted(consumer, allocs, ours)}
        boot_id = self.driver.boot_id()
        for record in self.ledger.records():
            with self._lock(record.device):
                present = {m.uuid for m in self.driver.discover().mdevs()}
                if record.state == ledger_mod.REMOVING or \
                        record.uuid not in wanted:
                    if record.uuid in present:
                        self._free_one(record)
                        summary['removed'].append(record.uuid)
                    else:
                        self.ledger.forget(record.uuid)
                        if record.state == ledger_mod.CREATING:
                            summary['rolled_back'].append(record.uuid)
                    continue
                consumer, want = wanted[record.uuid]
                if record.uuid not in present or \
                        record.state == ledger_mod.CREATING:
                    key = 'recreated' if record.uuid not in present and \
                        record.state == ledger_mod.ACTIVE else 'realized'
                    self._try_realize(consumer, want, key, summary)
                elif record.boot_id != boot_id:
                    self.ledger.set_state(record.uuid, ledger_mod.ACTIVE,
                                          boot_id)
        known = {r.uuid for r in self.ledger.records()}
        for mdev_uuid, (consumer, want) in sorted(wanted.items()):
            if mdev_uuid not in known and mdev_uuid not in summary['failed']:
                with self._lock(want.device):
                    self._try_realize(consumer, want, 'realized', summary)
        if any(summary.values()):
            self._report_after_change()
        return summary
