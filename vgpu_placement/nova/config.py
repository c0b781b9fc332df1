"""The project's configuration inside nova-compute.

Nova's CONF gets one option, ``[vgpu_placement] config_file``. The file it
names is read into a ConfigOpts of its own, so the project's ``[libvirt]``
and ``[placement]`` groups never meet Nova's groups of the same names.

``[DEFAULT] host`` of that file is not used: the project's host is Nova's
node name (the hypervisor hostname, the root provider Nova creates), so
that the children are ``<node>_pci_0000_84_00_0`` as Nova names them. A
different value in the file is said once and overridden.
"""
import logging
import os
import socket

from oslo_config import cfg

from vgpu_placement import conf as conf_mod
from vgpu_placement.conf import checks
from vgpu_placement import exceptions
from vgpu_placement.placement import embedded
from vgpu_placement import state_file

LOG = logging.getLogger(__name__)

GROUP = cfg.OptGroup('vgpu_placement', title='vgpu-placement in nova-compute')
OPTS = [
    cfg.StrOpt('config_file',
               default='/etc/vgpu-placement/vgpu-placement.conf',
               help='The vgpu-placement configuration file read by '
                    'nova-compute\'s vgpu_placement compute driver (its '
                    '[DEFAULT] host is replaced by Nova\'s node name).'),
]


def register_nova_opts(nova_conf):
    nova_conf.register_group(GROUP)
    nova_conf.register_opts(OPTS, group=GROUP)


def load(path, node):
    """The project's ConfigOpts from ``path``, its host set to ``node``."""
    if not path or not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise exceptions.ConfigError(
            '[vgpu_placement] config_file',
            '%r is not a readable file' % path,
            'point it at the vgpu-placement configuration (nova.conf)')
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='vgpu-placement', default_config_files=[path],
         default_config_dirs=[])
    written = conf.host
    conf.set_override('host', node)
    if written != node and written != socket.gethostname():
        LOG.warning('[DEFAULT] host %r of %s ignored inside nova-compute: '
                    'the host is Nova\'s node name %r', written, path, node)
    checks.check_values(conf)
    embedded.check_conf(conf)
    state_file.tighten_dir(conf.state_path)
    return conf
