"""Realize: make (or find again) the mdevs a consumer's allocations on
this host ask for.

One host read per provider lock: the lock is taken by the provider's
name (from Placement, no host read), the host read once under it, and
that read both maps the allocations to vGPUs and decides each create on
that parent. Each mdev is recorded (creating) before it is made; once
every parent is done, one read checks them all, outside the provider
locks (the mdevs are the consumer's, whose lock is held), sets the
operator's vendor parameters, and is what the tree reports.
"""
import logging

from vgpu_placement import exceptions
from vgpu_placement.host import context
from vgpu_placement.host import facts
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.model import discovered
from vgpu_placement.placement import consumers

LOG = logging.getLogger(__name__)


def realize(ctx, consumer, allocations=None):
    """Create (or find again) the consumer's mdevs; tell the tree; return
    [facts.Realized] in the order of the consumer's vGPUs.

    ``ctx``: a context.HostContext. ``allocations`` ({provider uuid:
    {class: amount}}): what the consumer holds, when the caller has it
    from Placement already (nova-compute hands it to spawn); else read.
    """
    with ctx.consumer_lock(consumer):
        # The consumer wants its vGPUs now: a release owed from an
        # earlier delete (Placement was down) must not undo this, and
        # its claims here wait for mdevs again.
        ctx.ledger.wanted_here(consumer)
        if allocations is None:
            allocations = consumers.allocations(
                ctx.client, consumer)['allocations']
        placed = ctx.tree.placed(held=allocations)
        providers = sorted(
            name for name, (rp_uuid, managed) in placed.items()
            if managed and any(allocations.get(rp_uuid, {}).values()))
        if not providers:
            raise _nothing_here(ctx, consumer)
        run = _Run(ctx, consumer, allocations)
        try:
            while providers:
                providers = run.on_provider(providers[0], providers[1:])
        except exceptions.VgpuPlacementError:
            # What was made before the failure is finished, not left
            # half done; the failure is what the caller hears.
            run.finish(quietly=True)
            raise
        run.finish()
    if run.moved:
        # A claim moved between providers: the whole tree is reported.
        ctx.tree.changed()
    else:
        # That last host read came after the last change: the report
        # needs no other, and only these providers changed.
        ctx.tree.changed(run.raw, {w.provider for w in run.wants})
    return [run.done[w.uuid] for w in run.wants]


class _Run:
    """One realize's state, its consumer's lock held: the reading made
    under the first provider lock, the vGPUs wanted, those realized, those
    made and not checked yet, and the last host read."""

    def __init__(self, ctx, consumer, allocations):
        self.ctx, self.consumer, self.allocations = ctx, consumer, \
            allocations
        self.boot_id = ctx.driver.boot_id()
        self.reading = self.wants = self.raw = None
        self.done, self.made = {}, []
        self.moved = False

    def on_provider(self, provider, rest):
        """Realize the wanted vGPUs of one provider under its lock, on one
        host read (the first also maps the allocations); returns the
        providers left to do."""
        try:
            with self.ctx.lock(provider):
                self.raw = self.ctx.driver.discover()
                if self.reading is None:
                    self.reading = self.ctx.tree.reading(
                        held=self.allocations, host=self.raw)
                    self.wants = _wanted_now(self.ctx, self.consumer,
                                             self.allocations, self.reading)
                    rest = [p for p in dict.fromkeys(
                        w.provider for w in self.wants) if p != provider]
                taken = set()
                for want in self.wants:
                    if want.provider == provider:
                        self.raw, realized, made = create(
                            self.ctx, self.consumer, want, self.raw, taken,
                            self.boot_id)
                        self._note(realized, made)
        except exceptions.NoCapacity as refused:
            if len(self.wants or ()) != 1:
                raise
            self._note(*_realize_elsewhere(
                self.ctx, self.consumer, self.wants[0], self.reading.ours(),
                refused, self.boot_id))
            self.moved = True
        return rest

    def _note(self, realized, made):
        self.done[realized.uuid] = realized
        if made:
            self.made.append(realized)

    def finish(self, quietly=False):
        """Check what was made (finish()); ``quietly``: a failure is
        logged, not raised (another is on its way)."""
        if not self.made:
            return
        try:
            self.raw = finish(self.ctx, self.consumer, self.made,
                              self.reading.vendor_params, self.boot_id)
        except exceptions.VgpuPlacementError as e:
            if not quietly:
                raise
            LOG.warning('mdevs of %s made before a failure: %s',
                        self.consumer, e)
        self.made = []


def _nothing_here(ctx, consumer):
    return exceptions.VgpuPlacementError(
        'consumer %s has no vGPU allocations on host %s'
        % (consumer, ctx.name))


def _wanted_now(ctx, consumer, allocations, reading):
    """The consumer's [facts.Wanted] on this reading; when its allocations
    cannot be told apart now, again what the ledger holds, nothing new."""
    ours, managed = reading.ours(), reading.managed()
    records = ctx.ledger.records(consumer)
    if facts.unmapped(allocations, ours, managed):
        wants = [facts.Wanted(r.uuid, r.device, r.type,
                              ctx.provider_name(r.device)) for r in records]
        if not wants:
            raise exceptions.VgpuPlacementError(
                'the vGPU allocations of %s on host %s cannot all be told '
                'apart now (a parent or type could not be read, or is no '
                'longer configured); try again' % (consumer, ctx.name))
        return wants
    wants = facts.wanted(consumer, allocations, ours, records)
    if not wants:
        raise _nothing_here(ctx, consumer)
    return wants


def create(ctx, consumer, want, raw, taken, boot_id):
    """One vGPU on ``raw`` (the host read under its provider's lock, which
    is held): recorded as creating and made if it is not there.

    ``taken``: kernel parents given to vGPUs since ``raw`` was read.
    Returns (raw, facts.Realized, made): ``raw`` read again if the
    driver mended a lost UUID (context.readopted); ``made`` False when
    the mdev was there and active already (nothing to check).
    """
    record = ctx.ledger.get(want.uuid)
    raw = ctx.readopted(record, raw)
    mdev = {m.uuid: m for m in raw.mdevs()}.get(want.uuid)
    if mdev is not None and mdev.type_id != want.type_id:
        raise exceptions.VgpuPlacementError(
            'mdev %s exists with type %s, not %s: left alone'
            % (want.uuid, mdev.type_id, want.type_id))
    if mdev is not None and record and record.state == ledger_mod.ACTIVE:
        return raw, facts.Realized(want.uuid, want.type_id, want.device,
                                   mdev.parent), False
    if mdev is None and {want.device, record and record.parent} & \
            raw.unreadable:
        # Its parent could not be read: the mdev may well be there.
        raise exceptions.MdevError('create', '%s of type %s on %s' % (
            want.uuid, want.type_id, want.device),
            'the parent could not be read; try again')
    parent = mdev.parent if mdev else _kernel_parent(want, raw, taken)
    ctx.ledger.put(ledger_mod.Record(
        want.uuid, consumer, want.device, parent, want.type_id,
        ledger_mod.CREATING, boot_id))
    context.crash_point('realize:recorded')
    if mdev is None:
        try:
            ctx.driver.create_mdev(parent, want.type_id, want.uuid)
        except exceptions.MdevError:
            # What we knew before stays: a record of ours is evidence
            # of ownership, not to be dropped on a refused create.
            if record is None:
                ctx.ledger.forget(want.uuid)
            else:
                ctx.ledger.put(record)
            raise
        context.crash_point('realize:created')
    taken.add(parent)
    return raw, facts.Realized(want.uuid, want.type_id, want.device,
                               parent), True


def finish(ctx, consumer, made, vendor_params, boot_id, lock_held=False):
    """Check the consumer's mdevs ``made`` ([facts.Realized]) on one
    host read, set
    each one's ``vendor_params(type)``, and make its record active; one
    that is not there as made, or refuses its parameters, is removed
    and forgotten (it must not be used half set up), and the first such
    error raised once the others are done. Returns the host read.
    ``lock_held``: the caller holds the provider lock of every mdev."""
    raw = ctx.driver.discover()
    shown = {m.uuid: m for m in raw.mdevs()}
    failed = None
    for r in made:
        mdev = shown.get(r.uuid)
        try:
            if mdev is None or (mdev.type_id, mdev.parent) != (
                    r.type_id, r.parent):
                raise exceptions.VgpuPlacementError(
                    'mdev %s is not there as created (%s)' % (
                        r.uuid, mdev and (mdev.type_id, mdev.parent)))
            params = vendor_params(r.type_id)
            if params:
                ctx.driver.set_vendor_params(r.uuid, r.type_id, params)
            context.crash_point('realize:params')
        except exceptions.VgpuPlacementError as e:
            _roll_back(ctx, r, lock_held)
            failed = failed or e
            continue
        ctx.ledger.set_state(r.uuid, ledger_mod.ACTIVE, boot_id)
        context.crash_point('realize:active')
        LOG.info('mdev %s (%s) on %s for %s', r.uuid, r.type_id, r.parent,
                 consumer)
    if failed is not None:
        raise failed
    return raw


def _roll_back(ctx, realized, lock_held):
    if lock_held:
        ctx.remove_quietly(realized.uuid)
        ctx.ledger.forget(realized.uuid)
        return
    with ctx.device_lock(realized.device):
        ctx.remove_quietly(realized.uuid)
        ctx.ledger.forget(realized.uuid)


def realize_locked(ctx, consumer, want, vendor_params, boot_id):
    """One vGPU, its provider's lock held (reconcile): read the host,
    create, check."""
    _raw, realized, made = create(ctx, consumer, want,
                                  ctx.driver.discover(), set(), boot_id)
    if made:
        finish(ctx, consumer, [realized], vendor_params, boot_id,
               lock_held=True)
    return realized


def _kernel_parent(want, raw, taken):
    """The kernel parent to create on: the device, or for a physical GPU
    with SR-IOV a free virtual function offering the type (not one of
    ``taken``)."""
    grouped = {p.name: p for p in
               discovered.group_virtual_functions(raw).parents}
    members = grouped[want.device].members if want.device in grouped \
        else ()
    if not members:
        return want.device
    for vf in raw.parents:
        t = vf.type(want.type_id)
        if vf.name in members and vf.name not in taken and not vf.mdevs \
                and t and t.available_instances:
            return vf.name
    raise exceptions.NoCapacity('create', '%s of type %s on %s' % (
        want.uuid, want.type_id, want.device),
        'no free virtual function offers the type')


def _realize_elsewhere(ctx, consumer, want, ours, refused, boot_id):
    """The host refused the consumer's one vGPU on the GPU Placement
    chose (another size made there in the same report window, another
    owner's new mdev): move its claim to another GPU of this host that
    shows room for the type now, and create it there.

    The move is the consumer's own allocation, guarded by its
    generation: only the vGPU's classes leave the chosen provider, its
    other allocations stay, and Placement refuses a GPU without room.
    Each GPU is tried once; ``refused`` is raised, naming the host, when
    none takes it. Holds the consumer's lock. Returns (Realized, made).
    """
    by_name = {child.name: rp for rp, (child, _t) in ours.items()}
    tried = {want.provider}
    while True:
        target = _room_elsewhere(ctx, want.type_id, ours, tried)
        if target is None:
            raise exceptions.NoCapacity(
                'create', '%s of type %s on %s' % (
                    want.uuid, want.type_id, want.device),
                'no GPU of host %s has room for it (last: %s)' % (
                    ctx.name, refused))
        child = ours[target][0]
        tried.add(child.name)
        if not consumers.move(
                ctx.client, consumer, by_name[want.provider],
                ours[by_name[want.provider]][0].plan.request(want.type_id),
                target, child.plan.request(want.type_id)):
            continue        # Placement has no room there either
        LOG.warning('%s of type %s for %s: %s; claim moved to %s',
                    want.uuid, want.type_id, consumer, refused,
                    child.device)
        moved = facts.Wanted(want.uuid, child.device, want.type_id,
                             child.name)
        try:
            with ctx.lock(moved.provider):
                _raw, realized, made = create(
                    ctx, consumer, moved, ctx.driver.discover(), set(),
                    boot_id)
            return realized, made
        except exceptions.NoCapacity as again:
            want, refused = moved, again


def _room_elsewhere(ctx, type_id, ours, tried):
    """A provider of ours not in ``tried`` (names) whose GPU offers
    ``type_id`` and shows room for one now, or None."""
    snapshot = discovered.group_virtual_functions(ctx.driver.discover())
    for rp_uuid, (child, _types) in sorted(
            ours.items(), key=lambda item: item[1][0].name):
        if child.name in tried or type_id not in child.plan.classes:
            continue
        parent = snapshot.parent(child.device)
        mdev_type = parent and parent.type(type_id)
        if mdev_type is not None and mdev_type.available_instances > 0:
            return rp_uuid
    return None
