"""What every capacity model answers, and what Placement may grant from it.

* Independent (independent.py): types do not interact (what the kernel
  says is all we know).
* Pool (pool.py): each type costs units of one or more shared pools (mtty:
  24 ports, 1 or 2 each; mbochs: MB of video memory; mdpy: one counter of
  4; GVT-g: aperture, hidden memory and fences), optionally under a hidden
  cap on the number of instances (GVT-g's 7). MIG-backed NVIDIA types are
  a Pool: one pool per GPU-instance profile and one of virtual functions.
* Exclusive (exclusive.py): the equal-size rule. Once a vGPU of one
  framebuffer size exists, every other size is unavailable; a type is
  creatable while the vGPUs on the GPU number fewer than its own maximum.
  ``slots`` caps the count too (SR-IOV: one vGPU per virtual function).
* NVIDIA's mixed-size mode (drivers/nvidia/mixed.py).
"""
import abc
import dataclasses

INDEPENDENT, POOL, EXCLUSIVE = 'independent', 'pool', 'exclusive'
MODELS = (INDEPENDENT, POOL, EXCLUSIVE)

# Placement's integers are signed 32-bit: a figure (or a pool made of
# figures) beyond this cannot be reported, so a description claiming one
# is not believed and the type falls back to a more careful model.
PLACEMENT_INT_MAX = 2 ** 31 - 1


class Model(abc.ABC):
    """What a capacity model answers for one parent device.

    ``kind``: its name in logs and the config. ``free_after(consumed,
    types)``: {type: how many more can be created} once ``consumed``
    ({type: mdevs created or granted}) are taken, or None when it cannot
    say. ``counter_pools()``: the shared counters that carry its coupling
    in Placement, ({pool: size}, {pool: {type: units}}), or None.
    ``counters_carry_all``: True when those counters are the whole
    coupling, so that a claim paying them needs no inventory to move.
    ``one_size_at_a_time()``: {type: size} where only one size may exist
    at a time (the equal-size rule), else None. ``window_limits()``:
    where counters alone would let through a mix of claims that does not
    fit, the most each may still grant before the next report.
    """
    kind = None
    counters_carry_all = False
    # True where window_limits may bound the counters (published as the
    # WINDOW_CAPPED trait).
    window_capped = False

    @abc.abstractmethod
    def free_after(self, consumed, types):
        """See the class docstring."""

    def counter_pools(self):
        return None

    def one_size_at_a_time(self):
        return None

    def window_limits(self, pending, offered, free, costs):
        """{pool: units Placement may still grant of it before the next
        report}, or None: no bound beyond each counter's own free.

        pending: {type: granted, not created yet}; offered: {type: what
        Placement may grant of it alone}; free: {pool: the counter's
        free}; costs: {pool: {type: units}} as the counters carry them.
        """
        return None


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


def empty_capacity(model, type_id):
    """What the model says one type can have on an empty parent."""
    free = model.free_after({}, [type_id])
    return (free or {}).get(type_id, 0)
