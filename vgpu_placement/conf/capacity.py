"""[capacity]: how types on one parent reduce each other."""
from oslo_config import cfg

from vgpu_placement.conf import groups

capacity_group = cfg.OptGroup(
    'capacity', title='Cross-type capacity',
    help='Creating an mdev of one type can lower what other types can '
         'still get on the same parent. A model per parent predicts it; '
         'the kernel\'s available_instances is checked against it after '
         'every change and the smaller is believed.')

capacity_opts = [
    cfg.ListOpt('models', default=[],
                help='Model per parent device, as <parent>=<model> with '
                     'model one of independent, pool, exclusive, and * for '
                     'every other parent; unlisted parents are detected '
                     '(NVIDIA: exclusive, the equal-size rule; mtty, '
                     'mbochs, mdpy, GVT-g: pool with their known costs; '
                     'others: one pool inferred from an empty parent). '
                     'Example: 0000:84:00.0=exclusive, *=pool'),
    cfg.BoolOpt('shared_counters', default=True,
                help='Give each parent with a pool model one counter class '
                     'per pool (CUSTOM_VGPU_UNITS_<KIND>[_<POOL>]) sized as '
                     'the pool. A flavor asking for a type and its cost in '
                     'the same request group is then enforced by Placement '
                     'atomically; "vgpu-placement flavor-spec <type>" '
                     'prints those extra specs.'),
    cfg.BoolOpt('claims_pay_counters', default=True,
                help='Flavors ask for their type\'s counters (as '
                     '"vgpu-placement flavor-spec" prints them): Placement '
                     'then checks every claim against the counters, and the '
                     'inventories change only when the host does, never per '
                     'claim (no write racing the schedulers; freed room is '
                     'offered as soon as the allocation goes). A parent '
                     'where a claim did not pay is tracked as with false '
                     'until it has none. false: every claim granted and not '
                     'yet realized moves the other types\' reserved at the '
                     'next report, which protects flavors that ask for a '
                     'type alone on a parent whose types share capacity, at '
                     'the cost of an inventory write per claim.'),
]


def register_opts(conf):
    groups.register(conf, capacity_group, capacity_opts)


def list_opts():
    return {capacity_group: capacity_opts}
