"""[devices] and the dynamic [mdev_<type>] groups (Nova's names)."""
from oslo_config import cfg

from vgpu_placement.conf import groups

# Placement's integers are signed 32-bit (capacity.PLACEMENT_INT_MAX; conf
# imports nothing of the model).
PLACEMENT_INT_MAX = 2 ** 31 - 1

devices_group = cfg.OptGroup(
    'devices', title='Mediated device types to report')

devices_opts = [
    # Nova's deprecated name too, so a nova.conf from before Xena is read.
    cfg.ListOpt('enabled_mdev_types', default=[],
                deprecated_name='enabled_vgpu_types',
                help='The mdev types (e.g. nvidia-35, mtty-2) to report. '
                     'Empty reports every type the host offers on every '
                     'parent (or on its device_addresses), each as '
                     'resource class CUSTOM_MDEV_<TYPE> unless its '
                     '[mdev_<type>] group says otherwise; Nova reports '
                     'nothing then. When types are listed they are read as '
                     'Nova reads them: each defaults to resource class '
                     'VGPU; a type with device_addresses is reported on '
                     'those parents; the first listed type without '
                     'device_addresses is reported on every parent no '
                     'other listed type claims, and later types without '
                     'device_addresses are not reported (a warning says '
                     'so).'),
]


def mdev_type_opts(type_id):
    """The options of [mdev_<type_id>] (fresh objects: each group has its
    own legacy [vgpu_<type_id>] name)."""
    return [
        # Only this option has the legacy group, as in Nova.
        cfg.ListOpt('device_addresses', default=[],
                    deprecated_group=legacy_group_name(type_id),
                    help='Parent devices (PCI addresses such as '
                         '0000:84:00.0, or virtual device names such as '
                         'mtty) on which this type is reported. Empty: '
                         'every parent that offers the type, except, when '
                         '[devices] enabled_mdev_types lists types, those '
                         'listed under another type (as in Nova). A parent '
                         'may be listed under one type only. Also read from '
                         'Nova\'s deprecated group [vgpu_<type>].'),
        cfg.StrOpt('mdev_class', default=None,
                   help='Resource class this type is reported as: VGPU or '
                        'a CUSTOM_* class (not CUSTOM_VGPU_UNITS_*: those '
                        'are the shared counters). Default: VGPU when '
                        '[devices] enabled_mdev_types lists types, '
                        'CUSTOM_MDEV_<TYPE> when it is empty. Also obeyed '
                        'for a type without device_addresses (Nova reports '
                        'that one as VGPU whatever this says).'),
        cfg.IntOpt('max_instances', min=1, max=PLACEMENT_INT_MAX,
                   default=None,
                   help='Host-wide cap on the instances of this type '
                        'reported to Placement (summed over parents, as '
                        'Nova uses it for SR-IOV virtual functions). '
                        'Parents are filled in name order and the one that '
                        'would pass the cap gets what is left (Nova leaves '
                        'that parent out). Unset: what the hardware '
                        'allows.'),
        cfg.ListOpt('vendor_params', default=[],
                    help='Vendor parameters written to each new mdev of '
                         'this type before it is used, as key=value items '
                         'from the driver\'s allow-list (NVIDIA '
                         'vgpu_params: frame_rate_limiter, disable_vnc, '
                         'enable_uvm, enable_debugging, enable_profiling, '
                         'loglevel, intervaltime, vgaintervaltime; each key '
                         'once, values from 0 to 4294967295 in decimal '
                         'digits). Example: frame_rate_limiter=0, '
                         'disable_vnc=1. Only operators set these; flavors '
                         'cannot.'),
        cfg.BoolOpt('live_migratable', default=False,
                    help='Read by nova-compute only, for a type whose '
                         'vGPUs are virtual functions (NVIDIA '
                         'vendor-specific VFIO): the vendor\'s VFIO variant '
                         'driver can migrate them, so a server holding one '
                         'may be live-migrated, as Nova\'s [pci] '
                         'device_spec tag live_migratable says of a VF it '
                         'hands out. Both hosts must say it for the type, '
                         'and run libvirt 10.0.0 and QEMU 8.2.2 or newer. '
                         'False: the pre-check refuses, before anything '
                         'moves. mdev vGPUs follow Nova\'s own mdev live '
                         'migration and ignore this.'),
    ]


def mdev_group_name(type_id):
    return 'mdev_%s' % type_id


def legacy_group_name(type_id):
    """Nova's deprecated name of [mdev_<type>], still read by Nova."""
    return 'vgpu_%s' % type_id


def register_opts(conf):
    groups.register(conf, devices_group, devices_opts)


def register_dynamic_opts(conf, type_ids):
    """Register [mdev_<type>] for each type id (idempotent)."""
    for type_id in type_ids:
        group = mdev_group_name(type_id)
        if group not in conf:
            conf.register_opts(mdev_type_opts(type_id), group=group)


def list_opts():
    # The sample shows the dynamic group under a placeholder name.
    return {devices_group: devices_opts,
            'mdev_$mdev_type': mdev_type_opts('$mdev_type')}
