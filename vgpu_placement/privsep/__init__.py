"""The privilege-separated side of the agent (oslo.privsep).

Only the sysfs writes run with privilege: ``sysfs_pctxt`` is the one
context, and its entry points live in vgpu_placement.privsep.sysfs. The
agent's own process (which parses Placement's answers and the operator's
input) reads sysfs unprivileged and asks the daemon for each write.

Capabilities: sysfs attribute files are owned by root with mode 0200
(``create``, ``remove``) or 0644 (NVIDIA ``vgpu_params``), and the mdev
core checks no capability of its own: a write needs uid 0 as the owner,
or CAP_DAC_OVERRIDE under any other uid. The daemon keeps CAP_DAC_OVERRIDE
and nothing else, so it may also run as an unprivileged ``user``.

oslo.privsep reads its options from the global ``cfg.CONF``, while this
project parses its own ConfigOpts: ``configure(conf)`` registers the
``[privsep_sysfs]`` options on the project's conf (so they sit in the same
file as everything else) and hands their values to oslo.privsep.

In tests the context runs in-process (``sysfs_pctxt.set_client_mode
(False)``, as Nova's tests do): the entry points run unchanged, without a
daemon and without privilege.
"""
import copy
import os
import shlex
import shutil
import sys

from oslo_config import cfg
from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

GROUP = 'privsep_sysfs'
CAPABILITIES = [caps.CAP_DAC_OVERRIDE]

sysfs_pctxt = priv_context.PrivContext(
    'vgpu_placement',
    cfg_section=GROUP,
    pypath=__name__ + '.sysfs_pctxt',
    capabilities=CAPABILITIES,
)

_group = cfg.OptGroup(
    GROUP, title='The privileged sysfs writer (oslo.privsep)',
    help='The daemon that performs the sysfs writes (mdev create and '
         'remove, NVIDIA vgpu_params) for the agent. It keeps only the '
         'capabilities listed here. Without helper_command the agent '
         'starts it as "privsep-helper --config-file <the agent\'s '
         'files>", through sudo when the agent does not run as root.')


def _opts():
    opts = copy.deepcopy(priv_context.OPTS)
    for opt in opts:
        if opt.dest == 'capabilities':
            opt.default = [caps.CAPS_BYVALUE[c] for c in CAPABILITIES]
        elif opt.dest == 'helper_command':
            opt.help = (
                'Command that starts the privsep daemon; it must accept '
                'the --privsep_context and --privsep_sock_path arguments '
                'appended to it. Unset: privsep-helper beside the agent\'s '
                'interpreter with the agent\'s --config-file and '
                '--config-dir arguments, through sudo unless the agent '
                'runs as root.')
        elif opt.dest == 'user':
            opt.help += (' Writing sysfs needs CAP_DAC_OVERRIDE under any '
                         'user other than root; with it, an unprivileged '
                         'user such as nobody is enough.')
    return opts


OPTS = _opts()


def list_opts():
    return {_group: OPTS}


def default_helper_command(conf, euid=None):
    """privsep-helper with the agent's config files; sudo only when the
    agent is not root (as root, no setuid program is needed, so the
    daemon starts under NoNewPrivileges too)."""
    euid = os.geteuid() if euid is None else euid
    here = os.path.join(os.path.dirname(sys.executable), 'privsep-helper')
    helper = here if os.access(here, os.X_OK) else (
        shutil.which('privsep-helper') or 'privsep-helper')
    cmd = ([] if euid == 0 else ['sudo']) + [helper]
    for flag in ('config_file', 'config_dir'):
        try:
            paths = conf[flag] or ()
        except cfg.NoSuchOptError:      # a conf that was never parsed
            paths = ()
        for path in paths:
            cmd += ['--' + flag.replace('_', '-'), os.path.abspath(path)]
    return shlex.join(cmd)


def register_opts(conf):
    """[privsep_sysfs] on the project's conf (vgpu_placement.conf does it
    for every command; idempotent)."""
    if GROUP not in conf:
        conf.register_group(_group)
        conf.register_opts(OPTS, group=_group)


def configure(conf):
    """Give oslo.privsep the values of the project's [privsep_sysfs]
    (before the daemon starts; later calls change nothing for a daemon
    already running)."""
    register_opts(conf)
    section = conf[GROUP]
    for opt in OPTS:
        value = section[opt.dest]
        if opt.dest == 'helper_command' and not value:
            value = default_helper_command(conf)
        cfg.CONF.set_override(opt.dest, value, group=GROUP)
