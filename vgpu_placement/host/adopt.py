"""Adopt: record as a consumer's the mdevs someone else made for it."""
import logging

from vgpu_placement.host import facts
from vgpu_placement.host import ledger as ledger_mod

LOG = logging.getLogger(__name__)


def adopt(ctx, consumer, mdev_uuids):
    """Record as the consumer's the mdevs ``mdev_uuids`` that someone else
    made for it (stock Nova, before the project took the host over: its
    guest uses them); returns the UUIDs adopted.

    An mdev is adopted only as a vGPU the consumer's allocations on our
    providers ask for and that has no mdev yet, of the same device and
    type; from then on it is the consumer's like one we made (kept while
    held, recreated after a reboot, freed by the consumer's free or
    release). Nothing is created or removed; an mdev another record
    holds, or that matches no such vGPU, stays someone else's. Facts are
    read under the consumer's lock, then each mdev's again under its
    provider's lock.
    """
    adopted = []
    with ctx.consumer_lock(consumer):
        reading = ctx.tree.reading()
        ours, managed = reading.ours(), reading.managed()
        allocations = ctx.held_now(consumer, managed)
        if facts.unmapped(allocations, ours, managed):
            return adopted
        boot_id = ctx.driver.boot_id()
        for mdev_uuid in sorted(set(mdev_uuids)):
            found = facts.locate(ctx.driver.discover(), mdev_uuid)
            if found is None:
                continue
            device = found[0]
            with ctx.device_lock(device):
                if _adopt_one(ctx, consumer, mdev_uuid, device,
                              allocations, ours, boot_id):
                    adopted.append(mdev_uuid)
    if adopted:
        ctx.tree.changed()
    return adopted


def _adopt_one(ctx, consumer, mdev_uuid, device, allocations, ours,
               boot_id):
    """One mdev of adopt's, its provider's lock held, on a fresh host
    read."""
    raw = ctx.driver.discover()
    found = facts.locate(raw, mdev_uuid)
    if found is None or found[0] != device or \
            ctx.ledger.get(mdev_uuid) is not None:
        return False
    mdev = found[1]
    present = {m.uuid for m in raw.mdevs()}
    records = ctx.ledger.records(consumer)
    held = {r.uuid for r in records}
    if not any(w.device == device and w.type_id == mdev.type_id and
               w.uuid not in present and w.uuid not in held
               for w in facts.wanted(consumer, allocations, ours, records)):
        return False
    ctx.ledger.put(ledger_mod.Record(
        mdev_uuid, consumer, device, mdev.parent, mdev.type_id,
        ledger_mod.ACTIVE, boot_id))
    LOG.info('mdev %s (%s on %s) adopted for %s', mdev_uuid, mdev.type_id,
             mdev.parent, consumer)
    return True
