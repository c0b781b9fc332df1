"""Which capacity model a parent gets: a chain of detectors.

A detector is a function ``ParentFacts -> (model, note)`` or None. The
chain is the operator's override of ``independent`` first, then the
detectors the driver contributes for its vendors' GPUs
(``Driver.model_detectors``), then the generic ones below; the first
that answers gives the parent's model and the note the log shows.
"""
import dataclasses

from vgpu_placement.model import base
from vgpu_placement.model import exclusive
from vgpu_placement.model import independent
from vgpu_placement.model import pool


@dataclasses.dataclass(frozen=True)
class ParentFacts:
    """What a model detector sees of one parent."""
    parent: object          # discovered.ParentDevice (VFs grouped)
    override: str           # a model name from the config, or None
    empty_seen: dict        # {type: available} seen with no mdevs, or None
    existing: dict          # {type: mdevs now}
    available: dict         # {type: available_instances now}
    slots: int              # virtual functions (one vGPU each), or None


UNKNOWN_COSTS = 'costs unknown: types close while claims are pending'


def configured_independent(facts):
    if facts.override == base.INDEPENDENT:
        return independent.Independent(), 'configured independent'
    return None


def _equal_size(facts):
    if not (facts.override == base.EXCLUSIVE or
            facts.override is None and facts.slots):
        return None
    model = exclusive.exclusive_from_descriptions(
        facts.parent.types, facts.existing, facts.slots)
    if model is not None:
        return model, 'equal-size rule from type descriptions'
    return None


def _known_pool(facts):
    known = facts.override in (None, base.POOL) and pool.known_costs(
        facts.parent.types)
    if not known:
        return None
    costs, cap, source = known
    model = pool.pool_from_costs(costs, cap, facts.existing,
                                 facts.available, source)
    if model is not None and facts.empty_seen and \
            set(facts.empty_seen) == set(facts.available):
        # Pools are constants: what the parent showed empty bounds them
        # too, often closer (a remainder no type can use yet is invisible
        # once mdevs exist).
        seen = pool.pool_from_costs(costs, cap, {}, facts.empty_seen,
                                    source)
        if seen is not None:
            model = dataclasses.replace(model, pools={
                p: max(n, seen.pools.get(p, 0))
                for p, n in model.pools.items()})
    return (model, source) if model is not None else None


def _inferred_pool(facts):
    if facts.override not in (None, base.POOL):
        return None
    empty = facts.available if not any(facts.existing.values()) else \
        facts.empty_seen
    if empty and set(empty) == set(facts.available):
        model = pool.infer_single_pool(empty)
        if model is not None:
            return model, model.how
    return None


# Tried after the driver's own, in order.
GENERIC = (_equal_size, _known_pool, _inferred_pool)


def choose_model(parent, override=None, empty_seen=None, vendor=()):
    """The model for one parent and a note saying where it came from.

    override: a model name from config, or None to detect. empty_seen:
    {type: available} remembered from a time the parent had no mdevs (to
    infer costs of a driver we do not know). ``vendor``: the driver's
    detectors (see the module docstring). When none answers, every type
    closes while anything is pending (costs unknown).
    """
    facts = ParentFacts(
        parent, override, empty_seen,
        existing={t.id: parent.count_mdevs(t.id) for t in parent.types},
        available={t.id: t.available_instances for t in parent.types},
        slots=len(parent.members) or None)
    for detect in (configured_independent,) + tuple(vendor) + GENERIC:
        found = detect(facts)
        if found is not None:
            return found
    return pool.Pool({}, {}), UNKNOWN_COSTS
