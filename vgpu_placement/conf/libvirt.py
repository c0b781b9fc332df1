"""[libvirt]: options of the libvirt driver."""
from oslo_config import cfg

from vgpu_placement.conf import groups

libvirt_group = cfg.OptGroup(
    'libvirt', title='The libvirt driver',
    help='The libvirt driver (driver = libvirt) discovers, creates and '
         'removes mdevs through libvirt\'s node-device API, so that they '
         'persist across host reboots as libvirt/mdevctl persist them. It '
         'needs the libvirt-python package and manages the host it runs '
         'on.')
libvirt_opts = [
    cfg.StrOpt('connection_uri', default='qemu:///system',
               help='libvirt connection URI, as Nova\'s [libvirt] '
                    'connection_uri; empty means qemu:///system. It must '
                    'reach the libvirt of this host: the boot id and the '
                    'sysfs reads and vendor parameters are this host\'s.'),
]


def register_opts(conf):
    groups.register(conf, libvirt_group, libvirt_opts)


def list_opts():
    return {libvirt_group: libvirt_opts}
