"""Reconcile: make the host, the ledger and Placement agree.

The facts are read once to find what may need work; each consumer is
then handled under its lock on facts read again, and each of its records
under its provider's lock on a fresh host read; what to do with a
record is reconcile_rules.decide's (a pure table).
"""
import dataclasses
import logging

from vgpu_placement import exceptions
from vgpu_placement.host import facts as facts_mod
from vgpu_placement.host import free as free_mod
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.host import realize as realize_mod
from vgpu_placement.host import reconcile_rules
from vgpu_placement.placement import consumers

LOG = logging.getLogger(__name__)

# Summary keys that say reconcile changed something.
ACTIONS = ('released', 'recreated', 'removed', 'realized', 'rolled_back',
           'failed')
# Keys that say what it left alone on purpose.
LEFT = ('kept', 'unknown', 'not_here')


@dataclasses.dataclass(frozen=True)
class Facts:
    """What reconcile reads once: the host and its tree, and who holds
    allocations on our providers. Stale as soon as it is read: every
    action re-reads its own facts under its locks."""
    reading: object              # facts.TreeReading
    ours: dict                   # provider uuid -> (DesiredProvider, types)
    managed: dict                # provider uuid -> name, every child we manage
    here: dict                   # consumer -> {provider uuid: {class: n}}
    boot_id: str


def reconcile(ctx, realize_for=None):
    """Make the host, the ledger and Placement agree; returns a summary
    ({key: [UUIDs or consumers]}, keys ACTIONS + LEFT).

    ``realize_for(consumer)``: whether the consumer is one this host runs
    or is about to (nova-compute: a server on this host, or moving here);
    allocations of any other consumer are not realized (listed as
    not_here). None: every consumer holding allocations. Nor are those of
    a consumer whose guest left this host (the ledger's departed: a live
    migration's source), whatever its allocations say; that note goes
    once it holds nothing here, or when it is realized here again.

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
    * an mdev on a parent the host could not read now is left as it is,
      and so is its record (listed as unknown);
    * an mdev the host refuses now is listed as failed and retried on the
      next pass (its allocation stays).
    """
    summary = {key: [] for key in ACTIONS + LEFT}
    for consumer in ctx.ledger.releases_owed():
        with ctx.consumer_lock(consumer):
            if consumer not in ctx.ledger.releases_owed():
                continue        # realized again meanwhile
            free_mod.free_records(ctx, consumer)
            consumers.release(ctx.client, consumer, ctx.tree.is_ours())
            ctx.ledger.released(consumer)
        summary['released'].append(consumer)
    reading = ctx.tree.reading()
    managed = reading.managed()
    facts = Facts(reading, reading.ours(), managed, facts_mod.fold(
        ctx.allocations_here(managed), ctx.tree.stand_ins()),
        ctx.driver.boot_id())
    by_consumer = {}
    for record in ctx.ledger.records():
        by_consumer.setdefault(record.consumer, []).append(record)
    departed = set(ctx.ledger.departed())
    for consumer in sorted(departed - set(by_consumer) - set(facts.here)):
        ctx.ledger.arrived(consumer)       # holds nothing here now
    for consumer in sorted(set(by_consumer) | set(facts.here)):
        if _settled(ctx, consumer, by_consumer.get(consumer, []), facts):
            continue
        with ctx.consumer_lock(consumer):
            _reconcile_consumer(
                ctx, consumer, facts, summary,
                consumer not in departed and (
                    realize_for is None or realize_for(consumer)))
    if any(summary[key] for key in ACTIONS):
        ctx.tree.changed()
    return summary


def _settled(ctx, consumer, records, facts):
    """True when the facts read at the start show nothing to do for the
    consumer (only ever a reason to do nothing)."""
    allocations = facts.here.get(consumer, {})
    held = facts_mod.held_providers(allocations, facts.managed)
    wanted = {w.uuid for w in facts_mod.wanted(consumer, allocations,
                                               facts.ours, records)}
    present = {m.uuid for m in facts.reading.snapshot.mdevs()}
    return {r.uuid for r in records} >= wanted and all(
        r.state == ledger_mod.ACTIVE and r.boot_id == facts.boot_id and
        r.uuid in present and r.uuid in wanted and
        ctx.provider_name(r.device) in held for r in records)


def _reconcile_consumer(ctx, consumer, facts, summary, here=True):
    """One consumer, its lock held: its allocations and records read
    again, then each record and each missing mdev (made only when the
    consumer is ``here``)."""
    allocations = ctx.held_now(consumer, facts.managed)
    held = facts_mod.held_providers(allocations, facts.managed)
    records = ctx.ledger.records(consumer)
    wanted = {} if facts_mod.unmapped(allocations, facts.ours,
                                      facts.managed) else {
        w.uuid: w for w in facts_mod.wanted(consumer, allocations,
                                            facts.ours, records)}
    for record in records:
        with ctx.device_lock(record.device):
            _reconcile_record(ctx, record, wanted.get(record.uuid), held,
                              facts, summary)
    known = {r.uuid for r in records}
    for mdev_uuid, want in sorted(wanted.items()):
        if mdev_uuid in known:
            continue
        if not here:
            summary['not_here'].append(mdev_uuid)
            continue
        with ctx.lock(want.provider):
            _try_realize(ctx, consumer, want, facts, 'realized', summary)


def _try_realize(ctx, consumer, want, facts, key, summary):
    """One mdev, its provider's lock held: a refusal (the parent filled up
    while the mdev was gone) is said and kept for the next pass, and the
    other mdevs still get their turn."""
    try:
        realize_mod.realize_locked(ctx, consumer, want,
                                   facts.reading.vendor_params,
                                   facts.boot_id)
    except exceptions.MdevError as e:
        LOG.warning('reconcile could not bring back mdev %s of %s: %s',
                    want.uuid, consumer, e)
        summary['failed'].append(want.uuid)
        return
    summary[key].append(want.uuid)


def _reconcile_record(ctx, record, want, held, facts, summary):
    """One ledger mdev, its provider's lock held, on a fresh host read."""
    raw = ctx.driver.discover()
    readable = not {record.parent, record.device} & raw.unreadable
    if readable:
        raw = ctx.readopted(record, raw)
    decision = reconcile_rules.decide(reconcile_rules.Facts(
        state=record.state, same_boot=record.boot_id == facts.boot_id,
        readable=readable,
        present=record.uuid in {m.uuid for m in raw.mdevs()},
        parent_seen=raw.parent(record.parent) is not None,
        in_use=ctx.provider_name(record.device) in held,
        wanted=want is not None))
    action = decision.action
    if not readable:
        ctx.say_once(logging.WARNING, ('unknown', record.uuid, 'unreadable'),
                     'parent %s could not be read: mdev %s of %s left as '
                     'it is', record.device, record.uuid, record.consumer)
    if decision.kept:
        ctx.say_once(logging.WARNING, ('kept', record.uuid),
                     'mdev %s (%s on %s) of %s is not what the host reports '
                     'now but its consumer holds an allocation there: kept '
                     'until the consumer releases it', record.uuid,
                     record.type, record.device, record.consumer)
        summary['kept'].append(record.uuid)
        want = facts_mod.Wanted(record.uuid, record.device, record.type,
                                ctx.provider_name(record.device))
    if action == reconcile_rules.UNKNOWN:
        summary['unknown'].append(record.uuid)
    elif action == reconcile_rules.REMOVE:
        free_mod.free_one(ctx, record)
        summary['removed'].append(record.uuid)
    elif action in (reconcile_rules.FORGET, reconcile_rules.ROLL_BACK):
        ctx.ledger.forget(record.uuid)
        if action == reconcile_rules.ROLL_BACK:
            summary['rolled_back'].append(record.uuid)
    elif action in (reconcile_rules.RECREATE, reconcile_rules.REALIZE):
        _try_realize(ctx, record.consumer, want, facts, 'recreated' if
                     action == reconcile_rules.RECREATE else 'realized',
                     summary)
    elif action == reconcile_rules.REAPPLY:
        params = facts.reading.vendor_params(record.type)
        if params:
            try:
                ctx.driver.set_vendor_params(record.uuid, record.type,
                                             params)
            except exceptions.MdevError as e:
                LOG.warning('reconcile could not set the vendor parameters '
                            'of mdev %s: %s', record.uuid, e)
                summary['failed'].append(record.uuid)
                return
        ctx.ledger.set_state(record.uuid, ledger_mod.ACTIVE, facts.boot_id)
