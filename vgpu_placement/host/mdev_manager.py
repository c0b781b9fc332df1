"""Host side: turn a consumer's allocations into mdevs, free them, reconcile.

Each mdev's UUID is derived from the consumer (uuid5 of consumer and
index), so a retry or a crash finds it again, and only mdevs whose UUID we
derive or that the ledger holds are ever touched. Work goes through the
ledger in two phases (creating -> active, removing -> gone).

Two inter-process locks (oslo.concurrency), always taken in this order:

* one per consumer: realize, release and free hold it for their whole
  run, and reconcile takes it and reads the consumer's facts again
  (allocations, ledger records) before it changes anything of that
  consumer, so it never acts on what a realize or release that finished
  meanwhile has made stale;
* one per parent device, around each create or remove (and the host read
  that decides it).

The rule every destructive step keeps: an mdev whose consumer holds an
allocation on its provider is removed only by that consumer's own
release or free; a parent the host could not read is unknown, not empty.

Fault injection for tests: VGPU_PLACEMENT_CRASH_AT=<point> makes the
process exit at once when it reaches that point (see CRASH_POINTS).
"""
import dataclasses
import logging
import os
import re
import uuid
from xml.sax import saxutils

from vgpu_placement import exceptions
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import reconcile_rules
from vgpu_placement.model import discovered
from vgpu_placement import once
from vgpu_placement.placement import consumers
from vgpu_placement.placement import provider_tree
from vgpu_placement import state_file

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


def hostdev_xml(mdev_uuid, vf=None):
    """libvirt's <hostdev> for an mdev; for a vGPU that is a virtual
    function itself (NVIDIA's vendor-specific VFIO), that VF's."""
    if vf is not None:
        return pci_hostdev_xml(vf)
    return ("<hostdev mode='subsystem' type='mdev' model='vfio-pci' "
            "managed='no'><source><address uuid=%s/></source></hostdev>"
            % saxutils.quoteattr(mdev_uuid))


_PCI_PARTS_RE = re.compile(r'([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])\.'
                           r'([0-7])')


def pci_hostdev_xml(address):
    """libvirt's <hostdev type='pci'> for a VF (0000:41:00.4).

    managed='no': the VF stays bound to the nvidia driver, its VFIO
    provider (a vfio-pci probe fails with EINVAL), as nova and OpenNebula
    pass these VFs (doc reference nvidia-vgpu 1.3, 1.7).
    """
    # Stricter than discovered.is_pci_address: a slot is 5 bits.
    found = _PCI_PARTS_RE.fullmatch(address) if isinstance(address, str) \
        else None
    if found is None:
        raise exceptions.VgpuPlacementError(
            'virtual function %r is not a PCI address (0000:41:00.4): no '
            'hostdev for it' % (address,))
    return ("<hostdev mode='subsystem' type='pci' managed='no'><source>"
            "<address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>"
            "</source></hostdev>" % found.groups())


@dataclasses.dataclass(frozen=True)
class TreeReading:
    """The host and its tree as Placement has it, read together."""
    snapshot: object             # discovered.HostSnapshot, VFs grouped
    desired: object              # provider_tree.DesiredTree of the snapshot
    placed: dict                 # child name -> (provider uuid, managed?)
    policies: dict               # type id -> type_config.TypePolicy


def placed_children(cache):
    """{child name: (provider uuid, managed?)} of a placement.cache
    ProviderCache: the ``placed`` of a TreeReading."""
    return {name: (rp_uuid, provider.managed)
            for name, (rp_uuid, provider) in cache.children().items()}


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One vGPU a consumer's allocations ask this host for."""
    uuid: str
    device: str
    type_id: str
    provider: str


@dataclasses.dataclass(frozen=True)
class Facts:
    """What reconcile reads once: the host, our providers, and who holds
    allocations on them. Stale as soon as it is read: every action re-reads
    its own facts under its locks."""
    snapshot: object             # discovered.HostSnapshot, VFs grouped
    # provider uuid -> (DesiredProvider, {class: type})
    ours: dict
    managed: dict                # provider uuid -> name, every child we manage
    here: dict                   # consumer -> {provider uuid: {class: n}}


# Summary keys that say reconcile changed something.
ACTIONS = ('released', 'recreated', 'removed', 'realized', 'rolled_back',
           'failed')
# Keys that say what it left alone on purpose.
LEFT = ('kept', 'unknown', 'not_here')


@dataclasses.dataclass(frozen=True)
class Realized:
    uuid: str
    type_id: str
    device: str
    parent: str

    def as_dict(self, is_vf=False):
        """is_vf: the vGPU is its parent VF itself (the driver's
        guest_gets_parent), so the guest gets that VF."""
        return dict(dataclasses.asdict(self), xml=hostdev_xml(
            self.uuid, self.parent if is_vf else None))


def _fold(by_consumer, stand_ins):
    """{consumer: {rp: {class: n}}} with what each stand-in holds added to
    the consumer it holds for (and the stand-in dropped)."""
    folded = {}
    for consumer, allocations in by_consumer.items():
        into = folded.setdefault(stand_ins.get(consumer, consumer), {})
        for rp, resources in allocations.items():
            merged = into.setdefault(rp, {})
            for rc, n in resources.items():
                merged[rc] = merged.get(rc, 0) + n
    return folded


def _locate(raw, mdev_uuid):
    """(provider device, mdev) of an mdev in a host read (``raw``: VFs not
    grouped), or None when it is not there."""
    for parent in discovered.group_virtual_functions(raw).parents:
        for mdev in parent.mdevs:
            if mdev.uuid == mdev_uuid:
                return parent.name, mdev
    return None


def _with_adopted(derived, records):
    """``derived`` (a consumer's [Wanted]) with each live record whose
    UUID is not derived put in place of the first derived vGPU of its
    device and type that no record holds."""
    held = {r.uuid for r in records}
    result = list(derived)
    for record in records:
        if record.uuid in {w.uuid for w in derived} or \
                record.state == ledger_mod.REMOVING:
            continue
        for i, want in enumerate(result):
            if want.uuid not in held and (want.device, want.type_id) == (
                    record.device, record.type):
                result[i] = dataclasses.replace(want, uuid=record.uuid)
                break
    return result


class MdevManager:
    """Realize, free and reconcile the mdevs of one host.

    Its collaborators, each used for one thing:

    * ``name``: the host's name in Placement (providers are named after it);
    * ``driver``: reads the host and creates or removes mdevs;
    * ``tree``: the provider tree as Placement has it, with
      ``reading(held=()) -> TreeReading`` (``held``: provider uuids the
      reading must map), ``changed()`` after mdevs changed (a re-report, or
      nothing where someone else reports), ``is_ours()`` (a predicate on
      provider uuids: ours to release) and ``stand_ins()`` ({consumer:
      consumer it holds for}: allocations one holds count as the other's,
      as a Nova migration holds its instance's on the source of a resize);
      standalone.ReportedTree is one;
    * ``client``: a PlacementClient for consumer reads and releases
      (placement.consumers);
    * ``state_path``: where the ledger and the lock files live.
    """

    def __init__(self, name, driver, tree, client, state_path, ledger=None):
        self.name = name
        self.driver = driver
        self.tree = tree
        self.client = client
        self.state_path = state_path
        # Opened on first use: a ledger that cannot be opened (lost,
        # corrupt) stops realize/release/reconcile, not the reports.
        self._ledger = ledger
        self.lock_path = os.path.join(state_path, 'locks')
        # Type policies (vendor parameters) as of the last look at the tree.
        self.policies = {}
        self._say_once = once.SayOnce(LOG)

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
        snapshot, _ours, managed = self._read_facts()
        present = {m.uuid for m in snapshot.mdevs()}
        if not present:
            return False
        for consumer, held in self.allocations_here(managed).items():
            vgpus = sum(n for resources in held.values()
                        for n in resources.values())
            if any(mdev_uuid_for(consumer, i) in present
                   for i in range(vgpus)):
                return True
        return False

    # -- what the allocations ask for --------------------------------------
    def _our_providers(self, held=()):
        """{provider uuid: (DesiredProvider, {class: type id})}."""
        return self._read_facts(held)[1]

    def _read_facts(self, held=()):
        """(snapshot, ours, managed): the host, the providers of its
        desired tree that Placement has, and every child we manage there
        ({uuid: name}, including children whose device is not read now).

        ``held``: provider uuids the tree must map (see MdevManager's
        docstring).
        """
        reading = self.tree.reading(held)
        self.policies = reading.policies
        ours = {}
        for child in reading.desired.children:
            if child.name in reading.placed:
                ours[reading.placed[child.name][0]] = (child, {
                    rc: t for t, rc in child.plan.classes.items()})
        managed = {rp_uuid: name for name, (rp_uuid, is_managed)
                   in reading.placed.items() if is_managed}
        return reading.snapshot, ours, managed

    def wanted(self, consumer, allocations, ours, records=()):
        """[Wanted] for the consumer, in a stable order (UUIDs follow it).

        ``records``: the consumer's ledger records. One whose UUID is not
        derived (an adopted mdev, see adopt) stands for the first wanted
        vGPU of its device and type that no record holds.
        """
        out = []
        for rp_uuid in sorted(allocations, key=lambda u: (
                ours[u][0].name if u in ours else '', u)):
            if rp_uuid not in ours:
                continue
            child, types = ours[rp_uuid]
            for rc, amount in sorted(allocations[rp_uuid].items()):
                if rc in types:
                    out.extend((child, types[rc]) for _ in range(amount))
        derived = [Wanted(mdev_uuid_for(consumer, i), child.device, type_id,
                          child.name) for i, (child, type_id) in
                   enumerate(out)]
        return _with_adopted(derived, records)

    @staticmethod
    def _unmapped(allocations, ours, managed):
        """True when some of the allocations on our providers cannot be
        told apart now (a provider or a class not in the tree read: its
        parent or type unreadable, retired, or no longer configured).
        The UUIDs wanted() derives count every vGPU before them, so they
        are not to be trusted then: mdevs are kept and recreated from the
        ledger, never made anew from such a reading."""
        for rp_uuid, resources in allocations.items():
            asked = {rc for rc, n in resources.items() if n}
            if rp_uuid not in managed or not asked:
                continue
            if rp_uuid not in ours:
                return True
            child, types = ours[rp_uuid]
            if asked - set(types) - {c.resource_class
                                     for c in child.plan.counters}:
                return True
        return False

    def _lock(self, device):
        name = 'vgpu-parent-' + re.sub(r'[^A-Za-z0-9_.-]', '_', device)
        return state_file.external_lock(name, self.lock_path)

    def _consumer_lock(self, consumer):
        # Consumers are canonical UUIDs (checked where they come in).
        return state_file.external_lock('vgpu-consumer-' + consumer,
                                        self.lock_path)

    def _params(self, type_id):
        policy = self.policies.get(type_id)
        return dict(policy.vendor_params) if policy else {}

    # -- realize --------------------------------------------------------------
    def realize(self, consumer, allocations=None):
        """Create (or find again) the consumer's mdevs; tell the tree.

        ``allocations`` ({provider uuid: {class: amount}}): what the
        consumer holds, when the caller has it from Placement already
        (nova-compute hands it to spawn); else it is read.
        """
        with self._consumer_lock(consumer):
            # The consumer wants its vGPUs now: a release owed from an
            # earlier delete (Placement was down) must not undo this, and
            # its claims here wait for mdevs again.
            self.ledger.wanted_here(consumer)
            if allocations is None:
                allocations = consumers.allocations(
                    self.client, consumer)['allocations']
            _snapshot, ours, managed = self._read_facts(held=allocations)
            if self._unmapped(allocations, ours, managed):
                # Again what the ledger holds for it, nothing new.
                wanted = [Wanted(r.uuid, r.device, r.type,
                                 self._provider_name(r.device))
                          for r in self.ledger.records(consumer)]
                if not wanted:
                    raise exceptions.VgpuPlacementError(
                        'the vGPU allocations of %s on host %s cannot all '
                        'be told apart now (a parent or type could not be '
                        'read, or is no longer configured); try again'
                        % (consumer, self.name))
            else:
                wanted = self.wanted(consumer, allocations, ours,
                                     self.ledger.records(consumer))
            if not wanted:
                raise exceptions.VgpuPlacementError(
                    'consumer %s has no vGPU allocations on host %s'
                    % (consumer, self.name))
            done, reads = [], []
            for want in wanted:
                try:
                    with self._lock(want.device):
                        done.append(self._realize_one(consumer, want,
                                                      reads))
                except exceptions.NoCapacity as refused:
                    if len(wanted) != 1:
                        raise
                    done.append(self._realize_elsewhere(
                        consumer, want, ours, refused, reads))
        # The last host read came after the last change: the report
        # needs no other.
        self.tree.changed(reads[-1])
        return done

    def _realize_elsewhere(self, consumer, want, ours, refused, reads):
        """The host refused the consumer's one vGPU on the GPU Placement
        chose (another size made there in the same report window, another
        owner's new mdev): move its claim to another GPU of this host that
        shows room for the type now, and create it there.

        The move is the consumer's own allocation, guarded by its
        generation: only the vGPU's classes leave the chosen provider, its
        other allocations stay, and Placement refuses a GPU without room.
        Each GPU is tried once; ``refused`` is raised, naming the host,
        when none takes it. Holds the consumer's lock.
        """
        by_name = {child.name: rp for rp, (child, _t) in ours.items()}
        tried = {want.provider}
        while True:
            target = self._room_elsewhere(want.type_id, ours, tried)
            if target is None:
                raise exceptions.NoCapacity(
                    'create', '%s of type %s on %s' % (
                        want.uuid, want.type_id, want.device),
                    'no GPU of host %s has room for it (last: %s)' % (
                        self.name, refused))
            child = ours[target][0]
            tried.add(child.name)
            if not consumers.move(
                    self.client, consumer, by_name[want.provider],
                    ours[by_name[want.provider]][0].plan.request(
                        want.type_id),
                    target, child.plan.request(want.type_id)):
                continue        # Placement has no room there either
            LOG.warning('%s of type %s for %s: %s; claim moved to %s',
                        want.uuid, want.type_id, consumer, refused,
                        child.device)
            moved = Wanted(want.uuid, child.device, want.type_id, child.name)
            try:
                with self._lock(moved.device):
                    return self._realize_one(consumer, moved, reads)
            except exceptions.NoCapacity as again:
                want, refused = moved, again

    def _room_elsewhere(self, type_id, ours, tried):
        """A provider of ours not in ``tried`` (names) whose GPU offers
        ``type_id`` and shows room for one now, or None."""
        snapshot = discovered.group_virtual_functions(self.driver.discover())
        for rp_uuid, (child, _types) in sorted(
                ours.items(), key=lambda item: item[1][0].name):
            if child.name in tried or type_id not in child.plan.classes:
                continue
            parent = snapshot.parent(child.device)
            mdev_type = parent and parent.type(type_id)
            if mdev_type is not None and mdev_type.available_instances > 0:
                return rp_uuid
        return None

    def _kernel_parent(self, want, raw):
        """The kernel parent to create on: the device, or for a physical
        GPU with SR-IOV a free virtual function offering the type."""
        grouped = {p.name: p for p in
                   discovered.group_virtual_functions(raw).parents}
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

    def _readopted(self, record, raw):
        """``raw`` (a host read), or a fresh read once the record's vGPU
        was found under another UUID and mended (``driver.readopt``).

        Where the driver, not the host, keeps the UUIDs (vendor-specific
        VFIO) and its file of them was lost, the record's vGPU shows as
        the one vGPU of its parent, of its type, under a UUID the driver
        made up and no record holds. Taking it for gone would make a
        second vGPU for a running guest, and leave the first as no one's.
        Its parent's lock is held.
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

    def _realize_one(self, consumer, want, reads=None):
        """One vGPU, its device's lock held: read the host once, create
        if needed, read it again to check. ``reads``: a list each host
        read is appended to (the caller's report reuses the last)."""
        reads = [] if reads is None else reads
        record = self.ledger.get(want.uuid)
        raw = self._readopted(record, self.driver.discover())
        reads.append(raw)
        present = {m.uuid: m for m in raw.mdevs()}
        boot_id = self.driver.boot_id()
        mdev = present.get(want.uuid)
        if mdev is not None and mdev.type_id != want.type_id:
            raise exceptions.VgpuPlacementError(
                'mdev %s exists with type %s, not %s: left alone'
                % (want.uuid, mdev.type_id, want.type_id))
        if mdev is not None and record and record.state == \
                ledger_mod.ACTIVE:
            return Realized(want.uuid, want.type_id, want.device, mdev.parent)
        if mdev is None and {want.device, record and record.parent} & \
                raw.unreadable:
            # Its parent could not be read: the mdev may well be there.
            raise exceptions.MdevError('create', '%s of type %s on %s' % (
                want.uuid, want.type_id, want.device),
                'the parent could not be read; try again')
        parent = mdev.parent if mdev else self._kernel_parent(want, raw)
        self.ledger.put(ledger_mod.Record(
            want.uuid, consumer, want.device, parent, want.type_id,
            ledger_mod.CREATING, boot_id))
        _crash_point('realize:recorded')
        if mdev is None:
            try:
                self.driver.create_mdev(parent, want.type_id, want.uuid)
            except exceptions.MdevError:
                # What we knew before stays: a record of ours is evidence
                # of ownership, not to be dropped on a refused create.
                if record is None:
                    self.ledger.forget(want.uuid)
                else:
                    self.ledger.put(record)
                raise
            _crash_point('realize:created')
        try:
            reads.append(self._verify(want, parent))
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
        """The host read again, once the mdev is there as created."""
        raw = self.driver.discover()
        mdev = {m.uuid: m for m in raw.mdevs()}.get(want.uuid)
        if mdev is None or mdev.type_id != want.type_id or \
                mdev.parent != parent:
            raise exceptions.VgpuPlacementError(
                'mdev %s is not there as created (%s)' % (
                    want.uuid, mdev and (mdev.type_id, mdev.parent)))
        return raw

    def _remove_quietly(self, mdev_uuid):
        try:
            self.driver.remove_mdev(mdev_uuid)
        except exceptions.MdevNotFound:
            pass

    # -- free and release -----------------------------------------------------
    def free(self, consumer, report=True):
        """Remove the consumer's mdevs (ours only); returns their UUIDs.

        For the consumer's own release or move: the caller has decided
        the consumer no longer needs them here.
        """
        with self._consumer_lock(consumer):
            freed = self._free_records(consumer)
        if report and freed:
            self.tree.changed()
        return freed

    def _free_records(self, consumer):
        """Remove every ledger mdev of the consumer; its lock is held."""
        freed = []
        for record in self.ledger.records(consumer):
            with self._lock(record.device):
                self._free_one(record)
            freed.append(record.uuid)
        return freed

    def _free_one(self, record):
        self.ledger.set_state(record.uuid, ledger_mod.REMOVING)
        _crash_point('free:marked')
        try:
            self.driver.remove_mdev(record.uuid)
        except exceptions.MdevNotFound:
            # Gone, or there under a UUID its driver made up.
            raw = self._readopted(record, self.driver.discover())
            if record.uuid in {m.uuid for m in raw.mdevs()}:
                self._remove_quietly(record.uuid)
        _crash_point('free:removed')
        self.ledger.forget(record.uuid)
        self.ledger.note_freed(record)

    def release(self, consumer):
        """Free the mdevs, then drop the consumer's allocations on our
        providers (what it holds elsewhere stays).

        If Placement cannot be reached the release is owed in the ledger
        and reconcile finishes it, unless the consumer is realized again
        first; nothing is lost.
        """
        with self._consumer_lock(consumer):
            # Owed first: a crash from here on is finished by reconcile.
            self.ledger.owe_release(consumer)
            freed = self._free_records(consumer)
            _crash_point('release:freed')
            try:
                consumers.release(self.client, consumer,
                                  self.tree.is_ours())
            except exceptions.PlacementUnavailable:
                LOG.warning('Placement unreachable: release of %s is owed '
                            'and will be retried', consumer)
                return freed, False
            self.ledger.released(consumer)
        self.tree.changed()
        return freed, True

    # -- adopt ----------------------------------------------------------------
    def adopt(self, consumer, mdev_uuids):
        """Record as the consumer's the mdevs ``mdev_uuids`` that someone
        else made for it (stock Nova, before the project took the host
        over: its guest uses them); returns the UUIDs adopted.

        An mdev is adopted only as a vGPU the consumer's allocations on
        our providers ask for and that has no mdev yet, of the same
        device and type; from then on it is the consumer's like one we
        made (kept while held, recreated after a reboot, freed by the
        consumer's free or release). Nothing is created or removed; an
        mdev another record holds, or that matches no such vGPU, stays
        someone else's. Facts are read under the consumer's lock, then
        each mdev's again under its device's lock.
        """
        adopted = []
        with self._consumer_lock(consumer):
            _snapshot, ours, managed = self._read_facts()
            allocations = self._held_now(consumer, managed)
            if self._unmapped(allocations, ours, managed):
                return adopted
            boot_id = self.driver.boot_id()
            for mdev_uuid in sorted(set(mdev_uuids)):
                found = _locate(self.driver.discover(), mdev_uuid)
                if found is None:
                    continue
                device = found[0]
                with self._lock(device):
                    if self._adopt_one(consumer, mdev_uuid, device,
                                       allocations, ours, boot_id):
                        adopted.append(mdev_uuid)
        if adopted:
            self.tree.changed()
        return adopted

    def _adopt_one(self, consumer, mdev_uuid, device, allocations, ours,
                   boot_id):
        """One mdev of adopt's, its device's lock held, on a fresh host
        read."""
        raw = self.driver.discover()
        found = _locate(raw, mdev_uuid)
        if found is None or found[0] != device or \
                self.ledger.get(mdev_uuid) is not None:
            return False
        mdev = found[1]
        present = {m.uuid for m in raw.mdevs()}
        records = self.ledger.records(consumer)
        held = {r.uuid for r in records}
        if not any(w.device == device and w.type_id == mdev.type_id and
                   w.uuid not in present and w.uuid not in held
                   for w in self.wanted(consumer, allocations, ours,
                                        records)):
            return False
        self.ledger.put(ledger_mod.Record(
            mdev_uuid, consumer, device, mdev.parent, mdev.type_id,
            ledger_mod.ACTIVE, boot_id))
        LOG.info('mdev %s (%s on %s) adopted for %s', mdev_uuid,
                 mdev.type_id, mdev.parent, consumer)
        return True

    # -- reconcile ------------------------------------------------------------
    def allocations_here(self, providers):
        """{consumer: {provider uuid: {class: amount}}} on ``providers``."""
        return consumers.on_providers(self.client, providers)

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

    def reconcile(self, realize_for=None):
        """Make the host, the ledger and Placement agree; returns a summary.

        ``realize_for(consumer)``: whether the consumer is one this host
        runs or is about to (nova-compute: a server on this host, or
        moving here); allocations of any other consumer are not realized
        (listed as not_here). None: every consumer holding allocations.
        Nor are those of a consumer whose guest left this host (the
        ledger's departed: a live migration's source), whatever its
        allocations say; that note goes once it holds nothing here, or
        when it is realized here again.

        * releases owed while Placement was down are made (unless the
          consumer was realized again since);
        * half-done work is finished or rolled back;
        * ledger mdevs lost (reboot, module reload) are recreated with the
          same UUIDs;
        * owned mdevs whose consumer holds no allocation on their provider
          are removed; one whose consumer holds one is never removed, even
          when its type is no longer reported (listed as kept, said once);
        * allocations here without mdevs are realized (adopting mdevs that
          carry the UUID we derive);
        * anything else on the host is not ours and is left alone;
        * an mdev on a parent the host could not read now is left as it
          is, and so is its record (listed as unknown);
        * an mdev the host refuses now is listed as failed and retried on
          the next pass (its allocation stays).

        Each consumer is handled under its lock, on facts read again
        under it (see the module docstring).
        """
        summary = {key: [] for key in ACTIONS + LEFT}
        for consumer in self.ledger.releases_owed():
            with self._consumer_lock(consumer):
                if consumer not in self.ledger.releases_owed():
                    continue        # realized again meanwhile
                self._free_records(consumer)
                consumers.release(self.client, consumer,
                                  self.tree.is_ours())
                self.ledger.released(consumer)
            summary['released'].append(consumer)
        snapshot, ours, managed = self._read_facts()
        stand_ins = self.tree.stand_ins()
        facts = Facts(snapshot, ours, managed, _fold(
            self.allocations_here(managed), stand_ins))
        by_consumer = {}
        for record in self.ledger.records():
            by_consumer.setdefault(record.consumer, []).append(record)
        boot_id = self.driver.boot_id()
        departed = set(self.ledger.departed())
        for consumer in sorted(departed - set(by_consumer) - set(facts.here)):
            self.ledger.arrived(consumer)       # holds nothing here now
        for consumer in sorted(set(by_consumer) | set(facts.here)):
            if self._settled(consumer, by_consumer.get(consumer, []),
                             facts, boot_id):
                continue
            with self._consumer_lock(consumer):
                self._reconcile_consumer(
                    consumer, facts, boot_id, summary,
                    consumer not in departed and (
                        realize_for is None or realize_for(consumer)))
        if any(summary[key] for key in ACTIONS):
            self.tree.changed()
        return summary

    def _held_providers(self, allocations, facts):
        """Names of our providers on which ``allocations`` hold anything."""
        return {facts.managed[rp] for rp, resources in allocations.items()
                if rp in facts.managed and any(resources.values())}

    def _settled(self, consumer, records, facts, boot_id):
        """True when the facts read at the start show nothing to do for
        the consumer (only ever a reason to do nothing)."""
        allocations = facts.here.get(consumer, {})
        held = self._held_providers(allocations, facts)
        wanted = {w.uuid for w in self.wanted(consumer, allocations,
                                              facts.ours, records)}
        present = {m.uuid for m in facts.snapshot.mdevs()}
        return {r.uuid for r in records} >= wanted and all(
            r.state == ledger_mod.ACTIVE and r.boot_id == boot_id and
            r.uuid in present and r.uuid in wanted and
            self._provider_name(r.device) in held for r in records)

    def _provider_name(self, device):
        return provider_tree.provider_name(self.name, device)

    def _held_now(self, consumer, managed):
        """{provider uuid: {class: n}} the consumer and its stand-ins hold
        on the ``managed`` providers, read now (its lock held)."""
        held_for = [consumer] + sorted(
            holder for holder, owner in self.tree.stand_ins().items()
            if owner == consumer)
        return _fold({
            c: {rp: resources for rp, resources in consumers.allocations(
                self.client, c)['allocations'].items()
                if rp in managed} for c in held_for},
            {c: consumer for c in held_for})[consumer]

    def _reconcile_consumer(self, consumer, facts, boot_id, summary,
                            here=True):
        """One consumer, its lock held: its allocations and records read
        again, then each record and each missing mdev (made only when the
        consumer is ``here``)."""
        allocations = self._held_now(consumer, facts.managed)
        held = self._held_providers(allocations, facts)
        records = self.ledger.records(consumer)
        wanted = {} if self._unmapped(allocations, facts.ours,
                                      facts.managed) else {
            w.uuid: w for w in self.wanted(consumer, allocations,
                                           facts.ours, records)}
        for record in records:
            with self._lock(record.device):
                self._reconcile_record(record, wanted.get(record.uuid),
                                       held, boot_id, summary)
        known = {r.uuid for r in records}
        for mdev_uuid, want in sorted(wanted.items()):
            if mdev_uuid in known:
                continue
            if not here:
                summary['not_here'].append(mdev_uuid)
                continue
            with self._lock(want.device):
                self._try_realize(consumer, want, 'realized', summary)

    def _reconcile_record(self, record, want, held, boot_id, summary):
        """One ledger mdev, under its parent's lock, on a fresh host read;
        what to do is reconcile_rules.decide's."""
        raw = self.driver.discover()
        readable = not {record.parent, record.device} & raw.unreadable
        if readable:
            raw = self._readopted(record, raw)
        decision = reconcile_rules.decide(reconcile_rules.Facts(
            state=record.state, same_boot=record.boot_id == boot_id,
            readable=readable,
            present=record.uuid in {m.uuid for m in raw.mdevs()},
            parent_seen=raw.parent(record.parent) is not None,
            in_use=self._provider_name(record.device) in held,
            wanted=want is not None))
        action = decision.action
        if not readable:
            self._say_once(logging.WARNING,
                           ('unknown', record.uuid, 'unreadable'),
                           'parent %s could not be read: mdev %s of %s left '
                           'as it is', record.device, record.uuid,
                           record.consumer)
        if decision.kept:
            self._say_once(logging.WARNING, ('kept', record.uuid),
                           'mdev %s (%s on %s) of %s is not what the host '
                           'reports now but its consumer holds an '
                           'allocation there: kept until the consumer '
                           'releases it',
                           record.uuid, record.type, record.device,
                           record.consumer)
            summary['kept'].append(record.uuid)
            want = Wanted(record.uuid, record.device, record.type,
                          self._provider_name(record.device))
        if action == reconcile_rules.UNKNOWN:
            summary['unknown'].append(record.uuid)
        elif action == reconcile_rules.REMOVE:
            self._free_one(record)
            summary['removed'].append(record.uuid)
        elif action in (reconcile_rules.FORGET, reconcile_rules.ROLL_BACK):
            self.ledger.forget(record.uuid)
            if action == reconcile_rules.ROLL_BACK:
                summary['rolled_back'].append(record.uuid)
        elif action in (reconcile_rules.RECREATE, reconcile_rules.REALIZE):
            self._try_realize(record.consumer, want, 'recreated' if
                              action == reconcile_rules.RECREATE else
                              'realized', summary)
        elif action == reconcile_rules.REAPPLY:
            params = self._params(record.type)
            if params:
                try:
                    self.driver.set_vendor_params(record.uuid, record.type,
                                                  params)
                except exceptions.MdevError as e:
                    LOG.warning('reconcile could not set the vendor '
                                'parameters of mdev %s: %s', record.uuid, e)
                    summary['failed'].append(record.uuid)
                    return
            self.ledger.set_state(record.uuid, ledger_mod.ACTIVE, boot_id)
