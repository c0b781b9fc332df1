"""Free and release: remove a consumer's mdevs (ours only) and, for a
release, its allocations on our providers."""
import logging

from vgpu_placement import exceptions
from vgpu_placement.host import context
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.placement import consumers

LOG = logging.getLogger(__name__)


def free(ctx, consumer, report=True):
    """Remove the consumer's mdevs (ours only); returns their UUIDs.

    For the consumer's own release or move: the caller has decided the
    consumer no longer needs them here.
    """
    with ctx.consumer_lock(consumer):
        records = free_records(ctx, consumer)
    if report and records:
        ctx.tree.changed(providers={ctx.provider_name(r.device)
                                    for r in records})
    return [r.uuid for r in records]


def release(ctx, consumer):
    """Free the mdevs, then drop the consumer's allocations on our
    providers (what it holds elsewhere stays); returns (freed UUIDs,
    released?).

    If Placement cannot be reached the release is owed in the ledger and
    reconcile finishes it, unless the consumer is realized again first;
    nothing is lost.
    """
    with ctx.consumer_lock(consumer):
        # Owed first: a crash from here on is finished by reconcile.
        ctx.ledger.owe_release(consumer)
        records = free_records(ctx, consumer)
        changed = {ctx.provider_name(r.device) for r in records}
        freed = [r.uuid for r in records]
        context.crash_point('release:freed')
        try:
            dropped = consumers.release(ctx.client, consumer,
                                        ctx.tree.is_ours())
        except exceptions.PlacementUnavailable:
            LOG.warning('Placement unreachable: release of %s is owed '
                        'and will be retried', consumer)
            return freed, False
        ctx.ledger.released(consumer)
    # Its allocations may have been on providers without mdevs of ours
    # (none made yet): those changed too.
    if dropped:
        changed |= {name for name, (rp_uuid, _managed)
                    in ctx.tree.placed(held=dropped).items()
                    if rp_uuid in dropped}
    ctx.tree.changed(providers=changed)
    return freed, True


def free_records(ctx, consumer):
    """Remove every ledger mdev of the consumer, its lock held; returns
    their (former) records."""
    records = ctx.ledger.records(consumer)
    for record in records:
        with ctx.device_lock(record.device):
            free_one(ctx, record)
    return records


def free_one(ctx, record):
    """Remove one ledger mdev, its provider's lock held."""
    ctx.ledger.set_state(record.uuid, ledger_mod.REMOVING)
    context.crash_point('free:marked')
    try:
        ctx.driver.remove_mdev(record.uuid)
    except exceptions.MdevNotFound:
        # Gone, or there under a UUID its driver made up.
        raw = ctx.readopted(record, ctx.driver.discover())
        if record.uuid in {m.uuid for m in raw.mdevs()}:
            ctx.remove_quietly(record.uuid)
    context.crash_point('free:removed')
    ctx.ledger.forget(record.uuid)
    ctx.ledger.note_freed(record)
