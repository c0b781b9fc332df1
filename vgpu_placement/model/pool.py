"""Shared pools: each type costs units of one or more pools of a parent.

The costs of the kernel's sample drivers and of Intel GVT-g are fixed by
their own code (COST_READERS); for any other driver one pool is inferred
from what the types show on an empty parent.
"""
import dataclasses
import math
import re

from vgpu_placement.model import base
from vgpu_placement.model import parse


@dataclasses.dataclass(frozen=True)
class Pool(base.Model):
    pools: dict                # pool name -> size in units
    costs: dict                # type id -> {pool name: units}
    max_instances: int = None  # hidden cap on the count (GVT-g: 7)
    how: str = ''              # where the figures came from, for the log
    kind = base.POOL

    @property
    def counters_carry_all(self):
        return bool(self.pools)

    def counter_pools(self):
        if not self.pools:
            return None
        return dict(self.pools), {
            p: {t: c.get(p, 0) for t, c in self.costs.items()}
            for p in self.pools}

    def free_after(self, consumed, types):
        remaining = dict(self.pools)
        for type_id, count in consumed.items():
            for pool, units in self.costs.get(type_id, {}).items():
                remaining[pool] -= units * count
        count_left = None
        if self.max_instances is not None:
            count_left = self.max_instances - sum(consumed.values())
        free = {}
        for type_id in types:
            cost = {p: u for p, u in self.costs.get(type_id, {}).items() if u}
            if not cost:
                continue
            n = min(max(0, remaining[p]) // u for p, u in cost.items())
            if count_left is not None:
                n = min(n, max(0, count_left))
            free[type_id] = n
        return free


_GVT_RE = {
    'low_gm': re.compile(r'low_gm_size:\s*([0-9]{1,10})MB'),
    'high_gm': re.compile(r'high_gm_size:\s*([0-9]{1,10})MB'),
    'fence': re.compile(r'fence:\s*([0-9]{1,10})'),
}
# GVT-g allows at most 7 vGPUs (idr limit GVT_MAX_VGPU 8, id 0 idle) and
# available_instances does not show it.
GVT_MAX_VGPUS = 7
MTTY_PORTS = {'mtty-1': 1, 'mtty-2': 2}


def _mtty_costs(types):
    ids = [t.id for t in types]
    if all(t in MTTY_PORTS for t in ids):
        return {t: {'ports': MTTY_PORTS[t]} for t in ids}, None, 'mtty ports'
    return None


def _mdpy_costs(types):
    if all(t.id.startswith('mdpy-') for t in types):
        return ({t.id: {'instances': 1} for t in types}, None,
                'mdev core counter')
    return None


def _mbochs_costs(types):
    if all(t.id.startswith('mbochs-') and
           parse.framebuffer_mb(t.description) is not None for t in types):
        return ({t.id: {'mbytes': parse.framebuffer_mb(t.description)}
                 for t in types}, None, 'mbochs video memory')
    return None


def _gvt_costs(types):
    if not all('GVTg' in t.id for t in types):
        return None
    costs = {}
    for x in types:
        found = {p: r.search(x.description) for p, r in _GVT_RE.items()}
        if not all(found.values()):
            return None
        costs[x.id] = {p: int(m.group(1)) for p, m in found.items()}
    return costs, GVT_MAX_VGPUS, 'GVT-g aperture, hidden memory, fences'


# Each reads the costs one kernel driver's own code fixes, or None; a
# driver of another vendor adds its reader here.
COST_READERS = (_mtty_costs, _mdpy_costs, _mbochs_costs, _gvt_costs)


def known_costs(types):
    """Per-type pool costs the driver's own code fixes, or None.

    types: the parent's MdevType list. Returns ({type: {pool: units}},
    max_instances, source) from the first of COST_READERS that knows
    every type.
    """
    if not types:
        return None
    return next((found for found in (read(types) for read in COST_READERS)
                 if found), None)


def reportable(model):
    """The model, or None when a pool it implies cannot be reported."""
    return model if all(0 <= n <= base.PLACEMENT_INT_MAX
                        for n in model.pools.values()) else None


def pool_from_costs(costs, max_instances, existing, available, source):
    """Pool sizes from known costs and what the kernel shows now.

    Each pool is at least what existing mdevs hold plus what any type could
    still take of it; the smallest such size never offers more than the
    device has, and is exact for a pool that binds some type.
    """
    pools = {}
    for type_id, cost in costs.items():
        for pool, units in cost.items():
            held = sum(existing.get(t, 0) * costs[t].get(pool, 0)
                       for t in costs)
            need = held + available.get(type_id, 0) * units
            pools[pool] = max(pools.get(pool, 0), need)
    return reportable(Pool(pools, costs, max_instances, source))


def infer_single_pool(empty_available):
    """Costs of one shared pool from what each type shows on an empty parent.

    With L the least common multiple of the counts, a type showing C costs
    L / C units of a pool of L. Exact for mtty (24, 12), mbochs (4, 16, 64)
    and mdpy (4, 4, 4); for anything else the kernel check keeps it honest.
    """
    counts = {t: n for t, n in empty_available.items() if n > 0}
    if not counts:
        return None
    size = math.lcm(*counts.values())
    costs = {t: {'units': size // n} for t, n in counts.items()}
    return reportable(Pool({'units': size}, costs, None,
                           'inferred from an empty parent %s'
                           % sorted(counts.items())))
