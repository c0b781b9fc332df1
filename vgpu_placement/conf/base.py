import socket

from oslo_config import cfg

opts = [
    cfg.StrOpt('host', default=socket.gethostname(),
               sample_default='<current_hostname>',
               help='Name of this host. The root resource provider has this '
                    'name (Nova names its compute node provider the same '
                    'way, so an existing one is found and reused) and each '
                    'parent device provider is named <host>_<device>.'),
    cfg.StrOpt('driver', default='sysfs',
               help='The mediated-device driver, by its name in the '
                    'vgpu_placement.drivers entry point namespace: sysfs '
                    '(the Linux mdev interface) or simulated (a host '
                    'described by a profile file).'),
    cfg.StrOpt('state_path', default='/var/lib/vgpu-placement',
               help='Directory for this host\'s state files (Placement '
                    'cache, simulated host, embedded Placement database). '
                    'Files are created with mode 0600.'),
]


def register_opts(conf):
    conf.register_opts(opts)


def list_opts():
    return {'DEFAULT': opts}
