"""Which allocation candidate packs best: the project's packing rule, pure.

Used by the project's own claim path (placement.scheduler) and by
nova-scheduler's filter and weigher (nova.scheduler), so that both choose
alike. Best first: a candidate whose providers already hold the requested
type classes (a GPU already running that type), then the fullest (least
of those classes free after the claim), so mixed demand fills GPUs
instead of fragmenting them.

Only the type classes count: a shared counter (CUSTOM_VGPU_UNITS_*) is a
bound, not a fullness (a mixed-size GPU's counters cap what one report
window may grant, so an empty one would look full), and the classes of
the host's root (VCPU, MEMORY_MB, ...) are not the GPU's.
"""
import dataclasses

from vgpu_placement.conf import type_config


@dataclasses.dataclass
class Provider:
    """One provider of Placement's ``provider_summaries``."""
    root: str
    traits: frozenset
    capacity: dict               # class -> capacity
    used: dict                   # class -> used

    def free(self, rc):
        return self.capacity.get(rc, 0) - self.used.get(rc, 0)


def providers_from_summaries(summaries):
    """{provider uuid: Provider} of a provider_summaries answer (1.29+:
    ``resources``, ``traits``, ``root_provider_uuid``). Providers whose
    summary lacks those are left out: score() treats them as unknown."""
    found = {}
    for rp, summary in (summaries or {}).items():
        try:
            resources = summary['resources']
            found[rp] = Provider(
                summary.get('root_provider_uuid', rp),
                frozenset(summary.get('traits', ())),
                {rc: int(r['capacity']) for rc, r in resources.items()},
                {rc: int(r['used']) for rc, r in resources.items()})
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return found


def _weighed(rp, rc, providers):
    """Whether the packing rule weighs class ``rc`` on provider ``rp``:
    never a shared counter; on a known provider, any class of a child
    (the host's own classes live on its root); on an unknown one, VGPU
    and the custom classes."""
    if rc.startswith(type_config.COUNTER_CLASS_PREFIX):
        return False
    p = providers.get(rp)
    if p is not None:
        return p.root != rp
    return rc.startswith('CUSTOM_') or rc == 'VGPU'


def score(allocations, providers):
    """Sort key of ``allocations`` ({provider: {class: amount}}), best
    first: (-type classes already used there, free left after it).
    ``providers``: {uuid: Provider}; one not known counts as empty."""
    same, free = 0, 0
    for rp, alloc in allocations.items():
        p = providers.get(rp)
        for rc, n in alloc.items():
            if not _weighed(rp, rc, providers):
                continue
            same += 1 if p and p.used.get(rc) else 0
            free += (p.free(rc) if p else 0) - n
    return (-same, free)


def weighs(allocations, providers):
    """True when ``allocations`` holds a class the packing rule weighs
    (a vGPU): for anything else every candidate scores alike."""
    return any(_weighed(rp, rc, providers)
               for rp, alloc in allocations.items() for rc in alloc)
