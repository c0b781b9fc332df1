"""NVIDIA's mixed-size (heterogeneous) mode on one GPU.

The GPU is a run of slots; each type takes ``placement_size`` slots
starting at one of its placement IDs, and the driver gives a new vGPU the
first placement of its type that is still free
(doc/source/reference/nvidia-vgpu.rst). Claims granted and not created
yet may be created in any order, so a count is offered only if every
order fits; mixed_burst_limits bounds the shared counters so that any mix
of sizes granted before the next report fits too.
"""
import dataclasses
import functools
import heapq
import math

from vgpu_placement.model import base
from vgpu_placement.model import pool

MIXED = 'mixed'             # detected only (no config override)


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
class Mixed(pool.Pool):
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
    window_capped = True

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

    def window_limits(self, pending, offered, free, costs):
        """The framebuffer and VF counters' most before the next report:
        mixed_burst_limits."""
        if 'framebuffer' not in free:
            return None
        units, vfs = mixed_burst_limits(
            self, pending, offered, free.get('slots'), free['framebuffer'],
            costs=costs.get('framebuffer'))
        limits = {'framebuffer': units}
        if 'slots' in free:
            limits['slots'] = vfs
        return limits


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
    if region > base.PLACEMENT_INT_MAX:
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
