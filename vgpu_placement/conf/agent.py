from oslo_config import cfg

from vgpu_placement.conf import groups

agent_group = cfg.OptGroup('agent', title='vgpu-placement-agent')
agent_opts = [
    cfg.IntOpt('report_interval', default=60, min=1,
               help='Seconds between two reports to Placement.'),
    cfg.IntOpt('reconcile_interval', default=600, min=1,
               help='Seconds between two reconciles (host, ledger and '
                    'Placement made to agree: owed releases, half-done '
                    'work, mdevs lost to a reboot, orphans, allocations '
                    'without mdevs). The agent also reconciles at start.'),
    cfg.IntOpt('max_backoff', default=300, min=1,
               help='Longest wait, in seconds, between retries while '
                    'Placement is unreachable (the wait doubles from '
                    'report_interval up to this).'),
]


def register_opts(conf):
    groups.register(conf, agent_group, agent_opts)


def list_opts():
    return {agent_group: agent_opts}
