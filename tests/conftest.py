"""Shared test helpers: a project ConfigOpts built like the commands build it."""
import os
import tempfile

import pytest
from oslo_config import cfg

from vgpu_placement import conf as conf_mod


def make_conf(config_text=None, **options):
    """A parsed ConfigOpts with overrides: make_conf(driver='sysfs',
    sysfs__root='/tmp/x', devices__enabled_mdev_types=['mtty-1']).

    ``group__option`` sets an option of a group; a bare name is [DEFAULT].
    ``config_text`` is parsed as a config file (for options registered
    late: [mdev_<type>] groups, auth plugin options). No other file is read.
    """
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    args = []
    if config_text:
        fd, path = tempfile.mkstemp(suffix='.conf')
        with os.fdopen(fd, 'w') as f:
            f.write(config_text)
        args = ['--config-file', path]
    try:
        conf(args, project='vgpu-placement', default_config_files=[],
             default_config_dirs=[])
    finally:
        if args:
            os.unlink(args[1])      # parsed: oslo.config keeps the values
    for key, value in options.items():
        group, _, name = key.rpartition('__')
        conf.set_override(name, value, group=group or None)
    return conf


@pytest.fixture
def conf_factory():
    return make_conf
