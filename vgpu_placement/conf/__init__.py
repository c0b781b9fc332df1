"""Configuration options (oslo.config), registered on a ConfigOpts."""
from oslo_log import log as logging

from vgpu_placement.conf import agent
from vgpu_placement.conf import base
from vgpu_placement.conf import capacity
from vgpu_placement.conf import devices
from vgpu_placement.conf import drivers
from vgpu_placement.conf import libvirt
from vgpu_placement.conf import placement
from vgpu_placement import privsep


def register_opts(conf):
    """Register every static option, and oslo.log's, on ``conf``."""
    for module in (base, devices, capacity, drivers, libvirt, placement,
                   agent, privsep):
        module.register_opts(conf)
    logging.register_options(conf)
