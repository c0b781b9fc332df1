"""[placement]: how to reach Placement, with the options Nova's has."""
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from vgpu_placement.conf import groups

placement_group = cfg.OptGroup(
    'placement', title='Placement service',
    help='How to reach the Placement service: keystoneauth1 session, auth '
         'and adapter options, as in Nova\'s [placement] section.')

# Nova drops the adapter's version options: the client pins microversions.
_VERSION_OPTS = ('version', 'min-version', 'max-version')

embedded_group = cfg.OptGroup(
    'embedded_placement', title='Placement run inside this process',
    help='Run the openstack-placement application in-process on a SQLite '
         'file instead of reaching a Placement service: for the demo, '
         'tests and single-host trials. SQLite serves one request at a '
         'time; use a real Placement service for a cloud.')
embedded_opts = [
    cfg.BoolOpt('enabled', default=False,
                help='Use an embedded Placement instead of [placement].'),
    cfg.StrOpt('database', default='$state_path/placement.sqlite',
               help='SQLite file of the embedded Placement; state persists '
                    'between commands.'),
]


# keystoneauth's session has no timeout by default: a Placement that
# accepts connections and never answers (stopped, or behind a stuck proxy)
# would hang every command and the agent for good.
DEFAULT_TIMEOUT = 30
# keystoneauth's retry counts, bounded: each retry is another wait.
RETRY_OPTS = ('connect_retries', 'status_code_retries')
RETRIES_MAX = 20


def _session_opts():
    opts = ks_loading.get_session_conf_options()
    for opt in opts:
        if opt.dest == 'timeout':
            opt.default = DEFAULT_TIMEOUT
            opt.help = ('Seconds to wait for Placement to answer one '
                        'attempt of a request. keystoneauth makes '
                        'connect_retries more attempts after a timeout '
                        '(back-offs 0.5, 1, 2... s), so a hung Placement '
                        'holds a request at most timeout x '
                        '(connect_retries + 1) plus those back-offs before '
                        'it counts as unreachable (123.5 s with the '
                        'defaults).')
    return opts


def _adapter_opts(include_versions=False):
    opts = [o for o in ks_loading.get_adapter_conf_options(
        include_deprecated=False) if include_versions or o.dest not in
        [v.replace('-', '_') for v in _VERSION_OPTS]]
    for opt in opts:
        if opt.dest == 'service_type':
            opt.default = 'placement'
        elif opt.dest == 'valid_interfaces':
            opt.default = ['internal', 'public']
        elif opt.dest == 'connect_retries':
            # Reads only: the client retries a write only when its
            # connection was never made (placement/client.py), since a
            # delayed write sent again would land twice.
            opt.default = 3
            opt.help = ('Retries of a read after a connection failure or '
                        'timeout. A write is retried this many times only '
                        'when the connection could not be made at all; '
                        'after a timeout or a dropped connection it is '
                        'not sent again.')
        if opt.dest in RETRY_OPTS:
            # keystoneauth takes any integer; below 0 means nothing sane.
            opt.type = cfg.types.Integer(min=0, max=RETRIES_MAX)
    return opts


def register_opts(conf):
    conf.register_group(cfg.OptGroup(placement_group.name,
                                     title=placement_group.title,
                                     help=placement_group.help))
    # As ks_loading.register_session_conf_options does, with our default.
    conf.register_opts(_session_opts(), group=placement_group.name)
    ks_loading.register_auth_conf_options(conf, placement_group.name)
    # The version options are registered (keystoneauth's loader reads
    # them) but not documented: the client pins its microversion.
    conf.register_opts(_adapter_opts(include_versions=True),
                       group=placement_group.name)
    groups.register(conf, embedded_group, embedded_opts)


def list_opts():
    return {
        placement_group: (
            _session_opts() +
            ks_loading.get_auth_common_conf_options() +
            ks_loading.get_auth_plugin_conf_options('password') +
            ks_loading.get_auth_plugin_conf_options('admin_token') +
            _adapter_opts()),
        embedded_group: embedded_opts,
    }
