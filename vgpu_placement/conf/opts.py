"""list_opts() for oslo-config-generator (entry point oslo.config.opts)."""
from vgpu_placement.conf import agent
from vgpu_placement.conf import base
from vgpu_placement.conf import capacity
from vgpu_placement.conf import devices
from vgpu_placement.conf import drivers
from vgpu_placement.conf import placement


def list_opts():
    grouped = {}
    for module in (base, devices, capacity, drivers, placement, agent):
        for group, opts in module.list_opts().items():
            grouped.setdefault(group, []).extend(opts)
    return list(grouped.items())
