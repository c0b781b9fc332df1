"""What the host side reads and what it derives from it (pure).

A consumer's vGPUs on this host are derived from its allocations on our
providers, in a stable order, each with a UUID derived from the consumer
and its place in that order (``mdev_uuid_for``): a retry or a crash
finds the same mdevs again.
"""
import dataclasses
import uuid

from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.model import discovered

MDEV_NAMESPACE = uuid.UUID('6b1d8f2a-52c4-5e0b-9c7e-3f4a1d2b8e61')


def mdev_uuid_for(consumer, index):
    """The UUID of the consumer's index-th vGPU on this host."""
    return str(uuid.uuid5(MDEV_NAMESPACE, '%s/%d' % (consumer, index)))


@dataclasses.dataclass(frozen=True)
class TreeReading:
    """The host and its tree as Placement has it, read together."""
    snapshot: object             # discovered.HostSnapshot, VFs grouped
    desired: object              # provider_tree.DesiredTree of the snapshot
    placed: dict                 # child name -> (provider uuid, managed?)
    policies: dict               # type id -> type_config.TypePolicy

    def ours(self):
        """{provider uuid: (DesiredProvider, {class: type id})}: the
        children of the desired tree that Placement has."""
        return {self.placed[child.name][0]: (child, {
            rc: t for t, rc in child.plan.classes.items()})
            for child in self.desired.children if child.name in self.placed}

    def managed(self):
        """{provider uuid: name}: every child we manage in Placement,
        including those whose device is not read now."""
        return {rp_uuid: name for name, (rp_uuid, is_managed)
                in self.placed.items() if is_managed}

    def vendor_params(self, type_id):
        """{key: int} the operator sets on each new vGPU of the type."""
        policy = self.policies.get(type_id)
        return dict(policy.vendor_params) if policy else {}


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
    provider: str                # its provider's name


@dataclasses.dataclass(frozen=True)
class Realized:
    """One vGPU realized: ``parent`` is the kernel parent it lives on
    (a VF of ``device`` on SR-IOV GPUs)."""
    uuid: str
    type_id: str
    device: str
    parent: str

    def as_dict(self):
        return dataclasses.asdict(self)


def fold(by_consumer, stand_ins):
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


def locate(raw, mdev_uuid):
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


def wanted(consumer, allocations, ours, records=()):
    """[Wanted] for the consumer, in a stable order (UUIDs follow it).

    ``ours``: TreeReading.ours(). ``records``: the consumer's ledger
    records. One whose UUID is not derived (an adopted mdev) stands for
    the first wanted vGPU of its device and type that no record holds.
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
                      child.name) for i, (child, type_id) in enumerate(out)]
    return _with_adopted(derived, records)


def unmapped(allocations, ours, managed):
    """True when some of the allocations on our providers cannot be told
    apart now (a provider or a class not in the tree read: its parent or
    type unreadable, retired, or no longer configured). The UUIDs wanted()
    derives count every vGPU before them, so they are not to be trusted
    then: mdevs are kept and recreated from the ledger, never made anew
    from such a reading."""
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


def held_providers(allocations, managed):
    """Names of the managed providers on which ``allocations`` hold
    anything."""
    return {managed[rp] for rp, resources in allocations.items()
            if rp in managed and any(resources.values())}
