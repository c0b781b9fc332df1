"""The project's packing inside nova-scheduler: a filter and a weigher.

nova-scheduler claims each host's first allocation candidate
(``host_state.allocation_candidates[0]``, nova/scheduler/manager.py), in
the order Placement listed them, and its default weighers spread servers
over hosts by free RAM, CPU and disk. With vGPUs that spreads one type
over many GPUs and strands the room a larger type needs.

``VgpuPackingFilter`` orders each host's candidates by the project's
packing rule (placement.packing, the rule of the project's own claim
path): a GPU already running the requested type first, then the fullest.
It drops no candidate and refuses no host.

``VgpuPackingWeigher`` ranks hosts by their best candidate under the same
rule: with a positive multiplier, hosts whose GPUs already run the type,
then the fullest, come first (pack); a negative one spreads.

Both read the provider summaries of the request's own allocation
candidates query (Placement's usage and capacity of every provider the
candidates name, nova.compat): no request to Placement of their own. A
request they cannot read (no summaries, a candidate naming providers the
summaries lack, no vGPU asked) is left as Nova has it, said once in the
log; nothing they do raises inside nova-scheduler.

nova.conf of nova-scheduler::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = vgpu_placement.nova.scheduler.VgpuPackingFilter
    enabled_filters = ...,VgpuPackingFilter
    weight_classes = nova.scheduler.weights.all_weighers,<weigher>

where ``<weigher>`` is ``vgpu_placement.nova.scheduler.VgpuPackingWeigher``,
and::

    [vgpu_placement]
    packing_weight_multiplier = 10.0
"""
import logging as std_logging

from oslo_config import cfg
from oslo_log import log as logging

import nova.conf
from nova.scheduler import filters
from nova.scheduler import utils
from nova.scheduler import weights

from vgpu_placement.nova import compat
from vgpu_placement import once
from vgpu_placement.placement import consumers
from vgpu_placement.placement import packing

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
_say_once = once.SayOnce(LOG)
# Above any free room a host's GPUs can have (Placement's integers are
# 32-bit).
_SPAN = 2 ** 32

GROUP = cfg.OptGroup('vgpu_placement', title='vgpu-placement')
OPTS = [
    cfg.FloatOpt('packing_weight_multiplier', default=10.0,
                 help='Multiplier of VgpuPackingWeigher (nova-scheduler). '
                      'Positive packs vGPU servers: hosts whose GPUs '
                      'already run the requested type, then the fullest, '
                      'first. Negative spreads them. The default outweighs '
                      'the spreading of Nova\'s RAM, CPU and disk weighers '
                      '(1.0 each) and yields to its build-failure and '
                      'cross-cell weighers (1000000.0). Aggregate metadata '
                      'vgpu_packing_weight_multiplier overrides it per '
                      'host aggregate, as Nova\'s weighers allow.'),
]


def register_nova_opts(nova_conf):
    nova_conf.register_group(GROUP)
    nova_conf.register_opts(OPTS, group=GROUP)


register_nova_opts(CONF)


def _readable(candidates, providers, who):
    """The candidates as {provider: {class: n}}, or None when none asks
    for a vGPU, or when one is malformed or names a provider the
    summaries lack (said once)."""
    try:
        plain = [consumers.resources_of(c['allocations'])
                 for c in candidates]
    except (KeyError, TypeError, AttributeError):
        _say_once(std_logging.WARNING, ('malformed', who),
                  'vgpu-placement: %s cannot read an allocation candidate '
                  '(%.200r): candidates left in Placement\'s order', who,
                  candidates)
        return None
    if not any(packing.weighs(c, providers) for c in plain):
        return None
    unknown = sorted({rp for c in plain for rp in c} - set(providers))
    if unknown:
        _say_once(std_logging.WARNING, ('unknown-provider', who),
                  'vgpu-placement: %s found candidates naming providers '
                  'the summaries lack (%s): candidates left in '
                  'Placement\'s order', who, ', '.join(unknown))
        return None
    return plain


def _host_view(host_state, who):
    """(candidates as Nova has them, the same as {rp: {class: n}}, the
    request's providers), or None (said once) when not readable."""
    candidates = getattr(host_state, 'allocation_candidates', None)
    if not candidates:
        return None
    scheduling = compat.current()
    if scheduling is None or not scheduling.providers:
        _say_once(
            std_logging.WARNING, ('no-summaries', who),
            'vgpu-placement: %s found no provider summaries for this '
            'request (is it loaded by nova-scheduler through '
            '[filter_scheduler]?): candidates left in Placement\'s order',
            who)
        return None
    plain = _readable(candidates, scheduling.providers, who)
    if plain is None:
        return None
    return candidates, plain, scheduling.providers


class VgpuPackingFilter(filters.BaseHostFilter):
    """Orders each host's allocation candidates: the best GPU first."""

    # Candidates are not known on a rebuild (Nova's note on the base).
    RUN_ON_REBUILD = False

    def __init__(self):
        super().__init__()
        compat.observe_scheduling()

    def host_passes(self, host_state, spec_obj):
        try:
            view = _host_view(host_state, 'VgpuPackingFilter')
            if view is not None:
                candidates, plain, providers = view
                order = sorted(range(len(candidates)), key=lambda i: (
                    packing.score(plain[i], providers), i))
                host_state.allocation_candidates = [
                    candidates[i] for i in order]
        except Exception as e:
            _say_once(std_logging.ERROR, ('filter-error', type(e)),
                      'vgpu-placement: VgpuPackingFilter left the '
                      'candidates of %s in Placement\'s order: %r',
                      getattr(host_state, 'host', '?'), e)
        return True


class VgpuPackingWeigher(weights.BaseHostWeigher):
    """Ranks hosts by their best candidate under the packing rule."""

    def __init__(self):
        super().__init__()
        compat.observe_scheduling()

    def weight_multiplier(self, host_state):
        return utils.get_weight_multiplier(
            host_state, 'vgpu_packing_weight_multiplier',
            CONF.vgpu_placement.packing_weight_multiplier)

    def _weigh_object(self, host_state, weight_properties):
        """Higher wins: more of the requested type already there first,
        then less free room; 0 (the least packed) for a host it cannot
        read. Nova normalizes each weigher's weights over the hosts, so
        only the order counts: a score's two parts in one number."""
        try:
            view = _host_view(host_state, 'VgpuPackingWeigher')
            if view is None:
                return 0.0
            _, plain, providers = view
            minus_same, free = min(packing.score(c, providers)
                                   for c in plain)
            room = _SPAN - 1 - min(max(free, 0), _SPAN - 1)
            return float(-minus_same * _SPAN + room)
        except Exception as e:
            _say_once(std_logging.ERROR, ('weigher-error', type(e)),
                      'vgpu-placement: VgpuPackingWeigher gave %s no '
                      'weight: %r', getattr(host_state, 'host', '?'), e)
            return 0.0
