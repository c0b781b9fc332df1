"""list_opts() for oslo-config-generator (entry point oslo.config.opts)."""
from vgpu_placement.conf import agent
from vgpu_placement.conf import base
from vgpu_placement.conf import capacity
from vgpu_placement.conf import devices
from vgpu_placement.conf import drivers
from vgpu_placement.conf import libvirt
from vgpu_placement.conf import placement
from vgpu_placement import privsep


def list_opts():
    grouped = {}
    # privsep: [privsep_sysfs], oslo.privsep's own options, registered by
    # the sysfs driver as it starts (vgpu_placement.privsep.configure).
    for module in (base, devices, capacity, drivers, libvirt, placement,
                   agent, privsep):
        for group, opts in module.list_opts().items():
            grouped.setdefault(group, []).extend(opts)
    return list(grouped.items())
