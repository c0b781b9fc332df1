"""How many more servers of one flavor fit, from Placement's figures; pure.

Contract: ``headroom(request, gpus)`` answers, for one flavor at a time
and no other claim meanwhile, how many more of its servers Placement can
grant now on each GPU provider, each host and the whole cloud, and which
GPU the next one would take (the project's packing rule, the order its
own claim path and nova-scheduler's packing filter follow). ``gpus``:
Gpu records, each what Placement holds for one provider the project
manages (inventories, usages, traits) and its host (the root's name).

What it counts: the flavor's request groups that ask for a vGPU; the
host's own classes (VCPU, MEMORY_MB, ...) are not counted. A flavor of
one group: the sum over a host's GPUs of what each can grant
(provider_tree.grantable, Placement's capacity rule). K alike groups
with ``group_policy=isolate`` (K vGPUs on K different GPUs): the most
servers s such that the host's GPUs, each giving at most s, give K * s.

The figures are Placement's, not the host's: what the project published
at its last report, less what was granted since. They are the model's
exact answer wherever claims pay their counters (the default). On a
GPU whose counters cap what one report window may grant (NVIDIA's
mixed-size mode; the provider bears traits.WINDOW_CAPPED) the type
classes carry the model's capacity and the counters only that window's:
there a GPU's figure leaves the counters out, and ``this_window`` says
what Placement grants before the next report.
"""
import dataclasses

from vgpu_placement import exceptions
from vgpu_placement.placement import packing
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import traits as traits_mod


@dataclasses.dataclass(frozen=True)
class Gpu:
    """One provider the project manages, as Placement holds it."""
    uuid: str
    name: str
    host: str
    root: str
    inventories: dict            # class -> Placement's inventory record
    usages: dict                 # class -> used
    traits: frozenset


@dataclasses.dataclass
class Headroom:
    per_gpu: dict                # GPU name -> servers (0 left out)
    per_host: dict               # host -> servers (every host)
    # GPU name -> what it grants before the next report, where that is
    # less (WINDOW_CAPPED GPUs).
    this_window: dict
    cloud: int
    # Where the next one goes (one-vGPU flavors; None if none fits).
    next_gpu: str


def _vgpu_groups(request):
    """(the group, K): the request's groups that ask for a vGPU class
    (CUSTOM_ or VGPU, a non-zero amount), all alike; VgpuPlacementError
    otherwise."""
    groups = [g for g in request.groups
              if any(n and (rc.startswith('CUSTOM_') or rc == 'VGPU')
                     for rc, n in g.resources.items())]
    if not groups:
        raise exceptions.VgpuPlacementError(
            'the flavor asks for no vGPU (no CUSTOM_ or VGPU class)')
    first = groups[0]
    if any((g.resources, g.required, g.forbidden) !=
           (first.resources, first.required, first.forbidden)
           for g in groups[1:]):
        raise exceptions.VgpuPlacementError(
            'the flavor\'s vGPU groups differ: headroom is counted for '
            'one group, or K alike (what flavor-spec --count K prints)')
    if len(groups) > 1 and request.group_policy != 'isolate':
        raise exceptions.VgpuPlacementError(
            '%d vGPU groups without group_policy=isolate: headroom is '
            'counted for K vGPUs on K different GPUs' % len(groups))
    return first, len(groups)


def per_gpu(group, gpu, window=False):
    """How many more times ``gpu`` can grant ``group``: the model's
    figure, or (``window``) Placement's before the next report."""
    if not group.required <= gpu.traits or group.forbidden & gpu.traits:
        return 0
    wanted = {rc: n for rc, n in group.resources.items() if n}
    if not window and traits_mod.WINDOW_CAPPED in gpu.traits:
        # The type class carries the model's capacity there (a group of
        # counters alone keeps them: nothing else bounds it).
        wanted = {rc: n for rc, n in wanted.items()
                  if not rc.startswith(provider_tree.COUNTER_PREFIX)} or \
            wanted
    return provider_tree.grantable(gpu.inventories, gpu.usages, wanted)


def isolated(counts, k):
    """The most servers of K vGPUs on K different GPUs that GPUs able to
    give ``counts`` vGPUs each can hold."""
    low, high = 0, sum(counts) // k if k else 0
    while low < high:
        s = (low + high + 1) // 2
        if sum(min(c, s) for c in counts) >= k * s:
            low = s
        else:
            high = s - 1
    return low


def _providers(gpus):
    return {g.uuid: packing.Provider(
        g.root, g.traits,
        {rc: provider_tree.capacity(inv)
         for rc, inv in g.inventories.items()}, dict(g.usages))
        for g in gpus}


def headroom(request, gpus):
    """Headroom of ``request`` (flavor.Request) on ``gpus``."""
    group, k = _vgpu_groups(request)
    counts = {g.uuid: per_gpu(group, g) for g in gpus}
    by_name = {g.name: g.uuid for g in gpus}
    per_host = {}
    for host in sorted({g.host for g in gpus}):
        mine = [counts[g.uuid] for g in gpus if g.host == host]
        per_host[host] = isolated(mine, k) if k > 1 else sum(mine)
    windows = {g.name: per_gpu(group, g, window=True) for g in gpus}
    providers = _providers(gpus)
    able = [g for g in gpus if counts[g.uuid] and per_host[g.host]
            and k == 1]
    best = min(able, key=lambda g: (packing.score(
        {g.uuid: group.resources}, providers), g.name), default=None)
    return Headroom(
        per_gpu={g.name: counts[g.uuid] for g in gpus if counts[g.uuid]},
        per_host=per_host, cloud=sum(per_host.values()),
        this_window={name: n for name, n in windows.items()
                     if n < counts[by_name[name]]},
        next_gpu=best.name if best else None)
