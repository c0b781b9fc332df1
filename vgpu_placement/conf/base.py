"""[DEFAULT]: the host's name, the driver, the state directory, the root
provider and retired providers."""
import socket

from oslo_config import cfg

opts = [
    cfg.StrOpt('host', default=socket.gethostname(),
               sample_default='<current_hostname>',
               help='Name of this host. The root resource provider has this '
                    'name (Nova names its compute node provider the same '
                    'way, so an existing one is found and reused) and each '
                    'parent device provider is named <host>_<device>. '
                    'At most 183 characters (Placement names are at most '
                    '200, <host>_pci_0000_84_00_0 included), no whitespace '
                    'or control characters.'),
    cfg.StrOpt('driver', default='sysfs',
               help='The mediated-device driver, by its name in the '
                    'vgpu_placement.drivers entry point namespace: sysfs '
                    '(the Linux mdev interface) or simulated (a host '
                    'described by a profile file).'),
    cfg.StrOpt('state_path', default='/var/lib/vgpu-placement',
               help='Absolute path of the directory for this host\'s '
                    'state files (Placement cache, simulated host, embedded '
                    'Placement database, locks). Files are created with '
                    'mode 0600; the directory is made 0700 (also an '
                    'existing one owned by this user, empty or holding '
                    'this project\'s state, unless it is sticky and shared '
                    'like /tmp).'),
    cfg.BoolOpt('create_root_provider', default=None,
                help='Create this host\'s root resource provider when '
                     'Placement has none. In a Nova deployment the root is '
                     'nova-compute\'s compute node (its UUID is the compute '
                     'node\'s): leave this unset and the agent reports '
                     'nothing until nova-compute has created it. Unset: '
                     'created only with [embedded_placement] enabled (a '
                     'trial on its own); set true for a standalone host '
                     'reporting to a shared Placement.'),
    cfg.IntOpt('delete_retired_providers_after', default=None, min=0,
               help='Seconds after which a provider whose device is gone, '
                    'and which holds no allocation, is deleted from '
                    'Placement. Until then it stays, with no inventory and '
                    'the trait CUSTOM_VGPU_PLACEMENT_RETIRED: nova-compute '
                    'caches the tree between association refreshes '
                    '([compute] resource_provider_association_refresh, '
                    '300 s by default, or never) and fails its periodic '
                    'task on a provider deleted under it. Unset: never '
                    'automatically; "vgpu-placement report '
                    '--delete-retired" deletes them on request.'),
]


def create_root_provider(conf):
    """Whether this host may create its root provider."""
    if conf.create_root_provider is not None:
        return conf.create_root_provider
    return conf.embedded_placement.enabled


def register_opts(conf):
    conf.register_opts(opts)


def list_opts():
    return {'DEFAULT': opts}
