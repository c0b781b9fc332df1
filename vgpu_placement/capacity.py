"""Cross-type capacity models: pure functions, no I/O.

A model answers one question for a parent device: given how many mdevs of
each type are consumed (created, or granted by Placement and not created
yet), how many more of each type can still be created?

* Independent: types do not interact (what the kernel says is all we know).
* Pool: each type costs units of one or more shared pools (mtty: 24 ports,
  1 or 2 each; mbochs: MB of video memory; mdpy: one counter of 4; GVT-g:
  aperture, hidden memory and fences), optionally under a hidden cap on the
  number of instances (GVT-g's 7).
* Exclusive: NVIDIA's equal-size rule. Once a vGPU of one framebuffer size
  exists, every other size is unavailable; a type is creatable while the
  vGPUs on the GPU number fewer than its own maximum. ``slots`` caps the
  count too (SR-IOV: one vGPU per virtual function).
* Mixed: NVIDIA's mixed-size (heterogeneous) mode. The GPU is a run of
  slots; each type takes ``placement_size`` slots starting at one of its
  placement IDs, and the driver gives a new vGPU the first placement of
  its type that is still free. Claims granted and not created yet may be
  created in any order, so a count is offered only if every order fits;
  mixed_burst_limits bounds the shared counters so that any mix of sizes
  granted before the next report fits too.
* MIG-backed NVIDIA types are a Pool: one pool per GPU-instance profile
  (the GPU instances the operator made) and one of virtual functions.
"""
import abc
import dataclasses
import functools
import heapq
import math
import re

from vgpu_placement import nvidia
from vgpu_placement import parse

INDEPENDENT, POOL, EXCLUSIVE = 'independent', 'pool', 'exclusive'
MODELS = (INDEPENDENT, POOL, EXCLUSIVE)
MIXED = 'mixed'             # detected only (no config override)


class Model(abc.ABC):
    """What a capacity model answers for one parent device.

    ``kind``: its name in logs and the config. ``free_after(consumed,
    types)``: {type: how many more can be created} once ``consumed``
    ({type: mdevs created or granted}) are taken, or None when it cannot
    say. ``counter_pools()``: the shared counters that carry its coupling
    in Placement, ({pool: size}, {pool: {type: units}}), or None.
    ``counters_carry_all``: True when those counters are the whole
    coupling, so that a claim paying them needs no inventory to move.
    """
    kind = None
    counters_carry_all = False

    @abc.abstractmethod
    def free_after(self, consumed, types):
        """See the class docstring."""

    def counter_pools(self):
        return None


@dataclasses.dataclass(frozen=True)
class Independent(Model):
    kind = INDEPENDENT

    def free_after(self, consumed, types):
        return None            # nothing to predict: the kernel's word only


@dataclasses.dataclass(frozen=True)
class Pool(Model):
    pools: dict                # pool name -> size in units
    costs: dict                # type id -> {pool name: units}
    max_instances: int = None  # hidden cap on the count (GVT-g: 7)
    how: str = ''              # where the figures came from, for the log
    kind = POOL

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


@dataclasses.dataclass(frozen=True)
class Exclusive(Model):
    sizes: dict                # type id -> framebuffer size (any unit)
    maxima: dict               # type id -> max vGPUs on the GPU
    slots: int = None          # SR-IOV: number of virtual functions
    kind = EXCLUSIVE
    # Any number of same-size vGPUs fits the counters exactly; two sizes
    # on one GPU only the next report closes (provider_tree.counters_for).
    counters_carry_all = True

    def counter_pools(self):
        pools = {'framebuffer': max(self.maxima[t] * self.sizes[t]
                                    for t in self.sizes)}
        costs = {'framebuffer': dict(self.sizes)}
        if self.slots is not None:
            pools['slots'] = self.slots
            costs['slots'] = {t: 1 for t in self.sizes}
        return pools, costs

    def free_after(self, consumed, types):
        live = {t: n for t, n in consumed.items() if n}
        sizes_in_use = {self.sizes.get(t) for t in live}
        total = sum(live.values())
        free = {}
        for type_id in types:
            if type_id not in self.sizes:
                continue
            if sizes_in_use - {self.sizes[type_id]}:
                free[type_id] = 0
                continue
            n = self.maxima[type_id] - total
            if self.slots is not None:
                n = min(n, self.slots - total)
            free[type_id] = max(0, n)
        return free


# -- NVIDIA mixed-size mode -------------------------------------------------

# States one offer (or burst limit) computation may visit before it gives
# up and offers nothing more (never more than is safe).
MIXED_SEARCH_BUDGET = 20000


def placement_mask(placement_id, size):
    """The slots a vGPU at placement_id takes, as a bit mask."""
    return ((1 << size) - 1) << placement_id


def first_fit(ids, size, occupied):
    """The placement the driver gives a new vGPU: the first of its type's
    IDs whose slots are all free; None if there is none."""
    for placement_id in ids:
        if not occupied & placement_mask(placement_id, size):
            return placement_id
    return None


def fits_in_every_order(occupied, shapes, counts, memo, budget):
    """True if counts[i] vGPUs of shapes[i] = (size, ids) can be created
    one by one in any order, each at its first free placement.

    memo: {(occupied, counts): bool} shared between calls on the same
    shapes; budget: [states left]; when it runs out the answer is False.
    """
    key = (occupied, counts)
    found = memo.get(key)
    if found is not None:
        return found
    if budget[0] <= 0:
        return False
    budget[0] -= 1
    ok = True
    for i, n in enumerate(counts):
        if not n:
            continue
        size, ids = shapes[i]
        at = first_fit(ids, size, occupied)
        if at is None or not fits_in_every_order(
                occupied | placement_mask(at, size), shapes,
                counts[:i] + (n - 1,) + counts[i + 1:], memo, budget):
            ok = False
            break
    memo[key] = ok
    return ok


@dataclasses.dataclass(frozen=True)
class Mixed(Pool):
    """Mixed-size mode on one GPU (a Pool for its shared counters: the
    slots of the placement region and the virtual functions)."""
    shapes: dict = None        # type id -> (placement size, placement ids)
    occupied: int = 0          # slots the existing vGPUs hold (bit mask)
    existing: dict = None      # type id -> vGPUs that exist
    slots: int = None          # virtual functions
    kind = MIXED
    # The order vGPUs are created in matters: the counters are bounded
    # for each report window instead (mixed_burst_limits).
    counters_carry_all = False

    def free_after(self, consumed, types):
        existing = self.existing or {}
        occupied = self.occupied
        if any(consumed.get(t, 0) < n for t, n in existing.items()):
            # Fewer than exist (what an empty GPU allows): from scratch.
            occupied, existing = 0, {}
        order = sorted(self.shapes)
        shapes = tuple(self.shapes[t] for t in order)
        pending = tuple(max(0, consumed.get(t, 0) - existing.get(t, 0))
                        for t in order)
        total = sum(consumed.values()) if existing else sum(pending)
        left = None if self.slots is None else self.slots - total
        memo, budget = {}, [MIXED_SEARCH_BUDGET]
        settled = fits_in_every_order(occupied, shapes, pending, memo,
                                      budget)
        free = {}
        for type_id in types:
            if type_id not in self.shapes:
                continue
            i = order.index(type_id)
            n = 0
            limit = len(shapes[i][1]) if left is None else min(
                left, len(shapes[i][1]))
            while settled and n < limit:
                more = pending[:i] + (pending[i] + n + 1,) + pending[i + 1:]
                if not fits_in_every_order(occupied, shapes, more, memo,
                                           budget):
                    break
                n += 1
            free[type_id] = n
        return free


def _framebuffer_costs(model):
    """{type: framebuffer units of one vGPU} of a Mixed model."""
    return {t: c.get('framebuffer', 0) for t, c in model.costs.items()}


def mixed_burst_budget(model, pending, offered, vfs_left, free_units,
                       costs=None, budget=MIXED_SEARCH_BUDGET):
    """Framebuffer units Placement may still grant on a mixed-size GPU so
    that any mix of claims it can grant before the next report fits.

    Placement checks each class alone: between two reports it grants any
    x with x[t] <= offered[t], sum(x) <= vfs_left and sum(costs[t] * x[t])
    <= the framebuffer counter's free. Two sizes that each fit alone may
    not fit together (alignment), so the counter's free is lowered to B.

    model: the GPU's Mixed model (its vGPUs); pending: {type: granted, not
    created yet}; offered: {type: what Placement may grant of it alone};
    vfs_left: free virtual functions, or None; free_units: the counter's
    free without B; costs: {type: framebuffer units of one vGPU} (default:
    the model's, its placement size).

    Returns B <= free_units such that every such x with sum(costs * x) <=
    B, made with what is pending, fits in every order of creation (as
    fits_in_every_order means it). B is the largest such figure: the least
    weight of an x that does not fit, less one, or free_units if every x
    fits. That x is the new vGPUs of a shortest creation sequence (each
    vGPU at its first free placement, pending ones free of charge) that
    ends in a vGPU with no free placement: a shortest path, searched
    cheapest first. When ``budget`` states are spent, B is the weight
    reached less one: smaller than the exact figure, never larger.
    """
    if costs is None:
        costs = _framebuffer_costs(model)
    # Types with one shape and cost are one kind: only their sum matters.
    merged = {}
    for type_id, shape in model.shapes.items():
        kind = merged.setdefault((shape, costs.get(type_id, 0)), [0, 0])
        kind[0] += pending.get(type_id, 0)
        kind[1] += max(0, offered.get(type_id, 0))
    kinds = tuple((shape_cost, tuple(counts))
                  for shape_cost, counts in sorted(merged.items()))
    if any(cost <= 0 and most for (_s, cost), (_p, most) in kinds):
        return 0                # a type free of charge: nothing bounds it
    vfs = math.inf if vfs_left is None else vfs_left
    return _burst_budget(model.occupied, kinds, vfs, free_units, budget)


def mixed_burst_limits(model, pending, offered, vfs_left, free_units,
                       costs=None, budget=MIXED_SEARCH_BUDGET):
    """(framebuffer units, virtual functions) Placement may still grant on
    a mixed-size GPU before the next report: any mix within both, and
    within each type's alone-offer, fits in every order.

    The budget alone (mixed_burst_budget) can fall below the cost of one
    large vGPU that fits (an empty L40S: 1B + 2 x 16Q does not fit, 33
    slots, so B = 32 and a 48Q, alone on the GPU, is refused). Since any
    one vGPU that is offered fits, capping the count of new vGPUs lifts
    the budget: the count is the largest (at most vfs_left) whose budget
    still admits the costliest type offered, and the budget is the one
    for that count. So no type offered alone is closed by the counters,
    and bursts are as large as that allows. Arguments as for
    mixed_burst_budget; vfs_left None (no VF counter): no cap.
    """
    def units(vfs):
        return mixed_burst_budget(model, pending, offered, vfs, free_units,
                                  costs, budget)
    if costs is None:
        costs = _framebuffer_costs(model)
    whole = units(vfs_left)
    need = min(free_units, max([costs.get(t, 0) for t, n in offered.items()
                                if n > 0] or [0]))
    if vfs_left is None or whole >= need:
        return whole, vfs_left
    # Budgets shrink as the count grows; one vGPU always fits (so 1 keeps
    # every offered type open).
    count = 1
    while count + 1 < vfs_left and units(count + 1) >= need:
        count += 1
    return units(count), count


@functools.lru_cache(maxsize=256)
def _burst_budget(occupied, kinds, vfs, free_units, budget):
    """mixed_burst_budget on hashable arguments (reports repeat them)."""
    # First without counting what Placement grants of each kind (fewer
    # states); the sequence found is the answer if it keeps to the counts,
    # else search again counting them.
    least, made, left = _uncounted(occupied, kinds, free_units, budget)
    if made is not None and (sum(made) > vfs or any(
            n > most for n, (_k, (_p, most)) in zip(made, kinds))):
        least, made = _least_failing_weight(occupied, kinds, vfs, True,
                                            free_units, [left])
    return max(0, min(free_units, least - 1))


@functools.lru_cache(maxsize=64)
def _uncounted(occupied, kinds, free_units, budget):
    """The search without counts (the same for every VF cap), and the
    states it left."""
    states = [budget]
    least, made = _least_failing_weight(occupied, kinds, None, False,
                                        free_units, states)
    return least, made, states[0]


def _least_failing_weight(occupied, kinds, vfs, counted, free_units,
                          states):
    """(least weight, new vGPUs per kind) of a creation sequence that ends
    in a vGPU with no free placement; (weight reached, None) when the
    budget ``states`` ran out or no sequence costs free_units or less.

    kinds: (((size, ids), cost), (pending, offered)); new vGPUs are of
    offered kinds only, and, if ``counted``, at most offered of a kind
    and vfs in all.
    """
    # Each kind's placements as slot masks, in the driver's order.
    masks = [tuple(placement_mask(i, size) for i in ids)
             for ((size, ids), _c), _n in kinds]
    costs = [cost for (_s, cost), _n in kinds]
    most = [m for _k, (_p, m) in kinds]
    # A state: (slots taken, pending left per kind[, new per kind]); with
    # no limits the new vGPUs are not part of it.
    start = (occupied, tuple(p for _k, (p, _m) in kinds))
    none = (0,) * len(kinds)
    if counted:
        start += (none,)
    dist, heap = {start: 0}, [(0, start, none)]
    best, witness = math.inf, None
    while heap:
        weight, state, made = heapq.heappop(heap)
        if weight > dist[state]:
            continue            # reached cheaper already
        if weight >= best:
            return best, witness
        if weight > free_units:
            break
        states[0] -= 1
        if states[0] < 0:
            return weight, None     # every cheaper sequence was searched
        taken, left = state[0], state[1]
        full = counted and sum(made) >= vfs
        for k, cost in enumerate(costs):
            if left[k]:
                cost, grown = 0, made  # granted: made first, no charge
            elif not most[k] or full or counted and made[k] >= most[k]:
                continue        # Placement cannot grant one more
            else:
                grown = made[:k] + (made[k] + 1,) + made[k + 1:]
            at = next((m for m in masks[k] if not taken & m), None)
            if at is None:
                if weight + cost < best:
                    best, witness = weight + cost, grown
                continue
            after = (taken | at, left[:k] + (left[k] - 1,) + left[k + 1:]
                     if left[k] else left)
            if counted:
                after += (grown,)
            if weight + cost < dist.get(after, math.inf):
                dist[after] = weight + cost
                heapq.heappush(heap, (weight + cost, after, grown))
    return (best, witness) if best <= free_units else (free_units + 1, None)


def mixed_from_types(parent):
    """The mixed-size model of a GPU whose types all carry placements,
    or None (a vGPU whose placement is not known: nothing is certain)."""
    shapes = {}
    for t in parent.types:
        info = t.vgpu
        if info is None or not info.placement_size or not \
                info.placement_ids:
            return None
        shapes[t.id] = (info.placement_size, tuple(info.placement_ids))
    region = max(i + s for s, ids in shapes.values() for i in ids)
    if region > PLACEMENT_INT_MAX:
        return None
    occupied, existing = 0, {}
    for m in parent.mdevs:
        if m.type_id not in shapes or m.placement_id is None:
            return None
        mask = placement_mask(m.placement_id, shapes[m.type_id][0])
        if occupied & mask:
            return None         # overlapping vGPUs: not what we think
        occupied |= mask
        existing[m.type_id] = existing.get(m.type_id, 0) + 1
    slots = len(parent.members) or None
    pools = {'framebuffer': region}
    costs = {t: {'framebuffer': s} for t, (s, _ids) in shapes.items()}
    if slots:
        pools['slots'] = slots
        for cost in costs.values():
            cost['slots'] = 1
    return Mixed(pools, costs, None, 'mixed-size placements',
                 shapes=shapes, occupied=occupied, existing=existing,
                 slots=slots)


def mig_from_types(parent):
    """MIG-backed types: a Pool of the GPU instances of each profile and
    of the virtual functions; None unless every type names its profile."""
    pools, costs = {}, {}
    for t in parent.types:
        info = t.vgpu
        if info is None or info.gi_profile is None or info.gi_count is None \
                or not re.fullmatch(r'[A-Za-z0-9_.+]{1,40}', info.gi_profile):
            return None
        pool = 'gi_' + info.gi_profile
        if pools.get(pool, info.gi_count) != info.gi_count:
            return None         # two counts for one profile: unsure
        pools[pool] = info.gi_count
        costs[t.id] = {pool: 1}
    if parent.members:
        pools['slots'] = len(parent.members)
        for cost in costs.values():
            cost['slots'] = 1
    return _reportable(Pool(pools, costs, None, 'MIG GPU instances'))


# -- what Placement may still grant --------------------------------------

@dataclasses.dataclass(frozen=True)
class TypeOffer:
    free: int                  # how many more Placement may grant
    predicted: int = None      # model's available_instances (no pending)
    observed: int = None       # the kernel's available_instances


def offers(model, existing, pending, available):
    """How many more of each type Placement may grant on one parent.

    existing: {type: mdevs on the parent}; pending: {type: granted by
    Placement, not created yet}; available: {type: the kernel's
    available_instances}. When the model and the kernel disagree on what
    exists now, the smaller is believed (the difference is carried over).
    """
    types = sorted(available)
    consumed = {t: existing.get(t, 0) + pending.get(t, 0)
                for t in set(existing) | set(pending)}
    predicted = model.free_after(existing, types)
    after_pending = model.free_after(consumed, types)
    result = {}
    for t in types:
        if predicted is None or t not in predicted:
            if predicted is not None:
                # A type the model does not know: close it while anything
                # is pending here, since we cannot tell what it costs.
                busy = any(n for n in pending.values())
                result[t] = TypeOffer(0 if busy else available[t])
                continue
            result[t] = TypeOffer(max(0, available[t] - pending.get(t, 0)))
            continue
        shortfall = max(0, predicted[t] - available[t])
        free = max(0, after_pending[t] - shortfall)
        result[t] = TypeOffer(free, predicted[t], available[t])
    return result


def disagreements(type_offers):
    """[(type, predicted, observed)] where the kernel and model differ."""
    return [(t, o.predicted, o.observed) for t, o in sorted(
        type_offers.items()) if o.predicted is not None and
        o.predicted != o.observed]


# -- building models from what the kernel shows ----------------------------

# Placement's integers are signed 32-bit: a figure (or a pool made of
# figures) beyond this cannot be reported, so a description claiming one
# is not believed and the type falls back to a more careful model.
PLACEMENT_INT_MAX = 2 ** 31 - 1

_GVT_RE = {
    'low_gm': re.compile(r'low_gm_size:\s*([0-9]{1,10})MB'),
    'high_gm': re.compile(r'high_gm_size:\s*([0-9]{1,10})MB'),
    'fence': re.compile(r'fence:\s*([0-9]{1,10})'),
}
_NV_MAX_RE = re.compile(r'max_instance=([0-9]{1,10})')
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


def _reportable(model):
    """The model, or None when a pool it implies cannot be reported."""
    return model if all(0 <= n <= PLACEMENT_INT_MAX
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
    return _reportable(Pool(pools, costs, max_instances, source))


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
    return _reportable(Pool({'units': size}, costs, None,
                            'inferred from an empty parent %s'
                            % sorted(counts.items())))


def exclusive_from_descriptions(types, existing, slots=None):
    """NVIDIA equal-size model from "framebuffer=NM, max_instance=K"."""
    sizes, maxima = {}, {}
    for x in types:
        fb = parse.framebuffer_mb(x.description)
        mx = _NV_MAX_RE.search(x.description)
        if fb is None:
            return None
        sizes[x.id] = fb
        if mx:
            maxima[x.id] = int(mx.group(1))
        elif not any(existing.values()):
            maxima[x.id] = x.available_instances
        else:
            return None
        if sizes[x.id] * maxima[x.id] > PLACEMENT_INT_MAX:
            return None         # its framebuffer counter could not be
    return Exclusive(sizes, maxima, slots)


@dataclasses.dataclass(frozen=True)
class ParentFacts:
    """What a model detector sees of one parent."""
    parent: object          # discovered.ParentDevice (VFs grouped)
    override: str           # a model name from the config, or None
    empty_seen: dict        # {type: available} seen with no mdevs, or None
    existing: dict          # {type: mdevs now}
    available: dict         # {type: available_instances now}
    slots: int              # virtual functions (one vGPU each), or None
    is_nvidia: bool


UNKNOWN_COSTS = 'costs unknown: types close while claims are pending'


def _configured_independent(facts):
    if facts.override == INDEPENDENT:
        return Independent(), 'configured independent'
    return None


def _nvidia_vgpu_kind(facts, wanted, builder, missing):
    """NVML's figures of one kind (GPU instances, placements) on every
    type: the model they give, or a closed one when some are missing."""
    if facts.override is not None or not facts.is_nvidia or not any(
            t.vgpu is not None and wanted(t.vgpu)
            for t in facts.parent.types):
        return None
    model = builder(facts.parent)
    if model is not None:
        return model, model.how
    return Pool({}, {}), missing


def _nvidia_mig(facts):
    return _nvidia_vgpu_kind(
        facts, lambda vgpu: vgpu.gi_profile, mig_from_types,
        'MIG-backed types without GPU-instance counts: types close while '
        'claims are pending')


def _nvidia_mixed(facts):
    return _nvidia_vgpu_kind(
        facts, lambda vgpu: vgpu.placement_ids, mixed_from_types,
        'mixed-size mode without every placement known: types close while '
        'claims are pending')


def _equal_size(facts):
    if not (facts.override == EXCLUSIVE or facts.override is None and (
            facts.is_nvidia or facts.slots)):
        return None
    types = facts.parent.types
    model = exclusive_from_descriptions(types, facts.existing, facts.slots)
    if model is not None:
        return model, 'equal-size rule from type descriptions'
    named = nvidia.equal_size_from_names({t.id: t.name for t in types})
    if named is not None and all(n * named[1][t] <= PLACEMENT_INT_MAX
                                 for t, n in named[0].items()):
        return Exclusive(named[0], named[1], facts.slots), (
            'equal-size rule from type names and the board\'s '
            'framebuffer (no descriptions)')
    return None


def _nvidia_unknown(facts):
    if facts.override is None and facts.is_nvidia:
        # Never a pool inferred from counts: it would let sizes mix.
        return Pool({}, {}), ('NVIDIA types without descriptions, NVML or '
                              'a known board: types close while claims are '
                              'pending')
    return None


def _known_pool(facts):
    known = facts.override in (None, POOL) and known_costs(
        facts.parent.types)
    if not known:
        return None
    costs, cap, source = known
    model = pool_from_costs(costs, cap, facts.existing, facts.available,
                            source)
    if model is not None and facts.empty_seen and \
            set(facts.empty_seen) == set(facts.available):
        # Pools are constants: what the parent showed empty bounds them
        # too, often closer (a remainder no type can use yet is invisible
        # once mdevs exist).
        seen = pool_from_costs(costs, cap, {}, facts.empty_seen, source)
        if seen is not None:
            model = dataclasses.replace(model, pools={
                p: max(n, seen.pools.get(p, 0))
                for p, n in model.pools.items()})
    return (model, source) if model is not None else None


def _inferred_pool(facts):
    if facts.override not in (None, POOL):
        return None
    empty = facts.available if not any(facts.existing.values()) else \
        facts.empty_seen
    if empty and set(empty) == set(facts.available):
        model = infer_single_pool(empty)
        if model is not None:
            return model, model.how
    return None


# Tried in order; the first that answers gives the parent's model. A
# vendor's detector goes before the generic ones it must win over.
DETECTORS = (_configured_independent, _nvidia_mig, _nvidia_mixed,
             _equal_size, _nvidia_unknown, _known_pool, _inferred_pool)


def choose_model(parent, override=None, empty_seen=None,
                 detectors=DETECTORS):
    """The model for one parent and a note saying where it came from.

    override: a model name from config, or None to detect. empty_seen:
    {type: available} remembered from a time the parent had no mdevs (to
    infer costs of a driver we do not know). ``detectors``: functions
    ParentFacts -> (model, note) or None, tried in order; when none
    answers, every type closes while anything is pending (costs unknown).
    """
    facts = ParentFacts(
        parent, override, empty_seen,
        existing={t.id: parent.count_mdevs(t.id) for t in parent.types},
        available={t.id: t.available_instances for t in parent.types},
        slots=len(parent.members) or None,
        is_nvidia=bool(parent.types) and all(
            nvidia.is_nvidia_type(t.id) for t in parent.types))
    for detect in detectors:
        found = detect(facts)
        if found is not None:
            return found
    return Pool({}, {}), UNKNOWN_COSTS


def empty_capacity(model, type_id):
    """What the model says one type can have on an empty parent."""
    free = model.free_after({}, [type_id])
    return (free or {}).get(type_id, 0)
