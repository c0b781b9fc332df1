"""Options of the shipped drivers."""
from oslo_config import cfg

from vgpu_placement.conf import groups

sysfs_group = cfg.OptGroup('sysfs', title='The sysfs driver')
sysfs_opts = [
    cfg.StrOpt('root', default='/sys',
               help='Where sysfs is mounted. Point it at a copied tree to '
                    'inspect another host or in tests; mediated devices '
                    'are read from <root>/class/mdev_bus.'),
    cfg.StrOpt('boot_id_file', default='/proc/sys/kernel/random/boot_id',
               help='The kernel\'s boot id; when it changes the host has '
                    'rebooted and reconcile recreates the mdevs it owns.'),
]

simulated_group = cfg.OptGroup('simulated', title='The simulated driver')
simulated_opts = [
    cfg.StrOpt('profile',
               help='Host profile (YAML) describing parents, types, capacity '
                    'rules and pre-existing mdevs; shipped profiles live in '
                    'etc/vgpu-placement/profiles. Required with driver = '
                    'simulated.'),
    cfg.StrOpt('state_file', default='$state_path/simulated-host.json',
               help='Where the simulated host keeps its mdevs, so that '
                    'separate commands see one host. Delete it to start '
                    'again from the profile.'),
]


def register_opts(conf):
    groups.register(conf, sysfs_group, sysfs_opts)
    groups.register(conf, simulated_group, simulated_opts)


def list_opts():
    return {sysfs_group: sysfs_opts, simulated_group: simulated_opts}
