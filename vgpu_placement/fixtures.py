"""Test fixtures for projects that test against vgpu-placement.

``fixtures.Fixture`` classes, as Placement's own ``PlacementFixture`` is:
use them with testtools' ``useFixture`` or call ``setUp``/``cleanUp``
(this project's pytest fixtures do). They need the ``fixtures`` package
and, for EmbeddedPlacement, the ``embedded`` extra.
"""
import functools
import os
import tempfile
import uuid

import fixtures
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


class EmbeddedPlacement(fixtures.Fixture):
    """A real Placement in this process (SQLite, noauth2).

    Placement allows one database per process: every EmbeddedPlacement of
    a process must name the same ``database`` (the first one starts it).
    Attributes once set up: ``ini`` (the config section reaching it) and
    ``client`` (a PlacementClient, independent of any Reporter's).
    """

    def __init__(self, database):
        super().__init__()
        self.database = database

    def _setUp(self):
        from vgpu_placement.placement import client as client_mod
        from vgpu_placement.placement import embedded
        embedded.start(self.database)
        self.ini = ('[embedded_placement]\nenabled = true\n'
                    'database = %s\n' % self.database)
        self.client = client_mod.PlacementClient(
            embedded.adapter(self.database))


class SimulatedHost(fixtures.Fixture):
    """A simulated host (a profile of vgpu_placement/profiles) reporting
    to the Placement that ``placement_ini`` reaches.

    Attributes once set up: ``name`` (its host name, unique unless
    given), ``state_path``, ``conf``; ``reporter`` and ``host`` (its
    standalone Reporter and MdevManager) are built on first use.
    """

    def __init__(self, placement_ini, profile='kernel-samples', name=None,
                 state_path=None, config_text='', **options):
        super().__init__()
        self.placement_ini = placement_ini
        self.profile = profile
        self.name = name or 'host-%s' % uuid.uuid4().hex[:8]
        self.state_path = state_path
        self.config_text = config_text
        self.options = options

    def _setUp(self):
        if self.state_path is None:
            self.state_path = self.useFixture(fixtures.TempDir()).path
        self.conf = make_conf(
            self.placement_ini + self.config_text, driver='simulated',
            simulated__profile=self.profile, state_path=self.state_path,
            host=self.name, **self.options)

    @functools.cached_property
    def reporter(self):
        from vgpu_placement.service import standalone
        return standalone.reporter_for(self.conf)

    @functools.cached_property
    def host(self):
        from vgpu_placement.service import standalone
        return standalone.manager_for(self.reporter)
