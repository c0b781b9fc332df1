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
                    'existing one owned by this user, unless it is sticky '
                    'and shared like /tmp).'),
]


def register_opts(conf):
    conf.register_opts(opts)


def list_opts():
    return {'DEFAULT': opts}
