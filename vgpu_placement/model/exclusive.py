"""The equal-size rule: one framebuffer size at a time on a GPU."""
import dataclasses
import re

from vgpu_placement.model import base
from vgpu_placement.model import parse


@dataclasses.dataclass(frozen=True)
class Exclusive(base.Model):
    sizes: dict                # type id -> framebuffer size (any unit)
    maxima: dict               # type id -> max vGPUs on the GPU
    slots: int = None          # SR-IOV: number of virtual functions
    kind = base.EXCLUSIVE
    # Any number of same-size vGPUs fits the counters exactly; two sizes
    # on one GPU only the next report closes (provider_tree.counters_for).
    counters_carry_all = True

    def one_size_at_a_time(self):
        return self.sizes

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


_NV_MAX_RE = re.compile(r'max_instance=([0-9]{1,10})')


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
        if sizes[x.id] * maxima[x.id] > base.PLACEMENT_INT_MAX:
            return None         # its framebuffer counter could not be
    return Exclusive(sizes, maxima, slots)
