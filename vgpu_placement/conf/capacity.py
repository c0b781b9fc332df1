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
]


def register_opts(conf):
    groups.register(conf, capacity_group, capacity_opts)


def list_opts():
    return {capacity_group: capacity_opts}
