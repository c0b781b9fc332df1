"""nova-compute with the project's compute driver loadable.

    python3 -m vgpu_placement.nova.compute --config-file /etc/nova/nova.conf

runs Nova's own ``nova-compute`` (nova.cmd.compute.main, same arguments)
after publishing the driver as ``nova.virt.vgpu_placement``, the only place
Nova 34's loader looks: ``[DEFAULT] compute_driver =
vgpu_placement.VgpuPlacementLibvirtDriver``. Nothing is written into Nova's
installed package.
"""
import sys

import vgpu_placement.nova
from vgpu_placement.nova import release


def main():
    # nova.cmd first: it sets up Nova's concurrency mode on import.
    from nova.cmd import compute
    from nova import version
    refused = release.refusal(version.version_string())
    if refused:
        print(refused, file=sys.stderr)
        return 2
    vgpu_placement.nova.register()
    return compute.main()


if __name__ == '__main__':
    sys.exit(main())
