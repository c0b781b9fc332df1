"""The project inside nova-compute and nova-scheduler (Nova 31 to 34).

``driver`` is the compute driver (a subclass of Nova's libvirt driver)
and ``scheduler`` the packing filter and weigher: both import nova.
``compute`` is the nova-compute command that makes Nova's loader find the
driver; ``node`` holds what the driver decides, ``config`` loads the
project's own configuration next to Nova's, ``tree`` maps the project's
desired tree onto the ProviderTree Nova hands a driver, ``compat`` lists
every touch of Nova beyond a public hook: these import no Nova, and tests
drive them without it.

Nova loads ``[DEFAULT] compute_driver`` as ``nova.virt.<value>`` only
(nova/virt/driver.py load_compute_driver), so the driver is published
there under ``ALIAS`` by ``register()``.
"""
import sys

# nova.conf: [DEFAULT] compute_driver = <COMPUTE_DRIVER>
ALIAS = 'nova.virt.vgpu_placement'
COMPUTE_DRIVER = 'vgpu_placement.VgpuPlacementLibvirtDriver'


def register():
    """Make ``nova.virt.vgpu_placement`` the driver module, for Nova's
    loader (which imports ``nova.virt.<compute_driver>`` and nothing else).
    """
    from vgpu_placement.nova import driver
    sys.modules.setdefault(ALIAS, driver)
    return driver
