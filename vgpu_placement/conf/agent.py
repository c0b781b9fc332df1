from oslo_config import cfg

from vgpu_placement.conf import groups

# Waits are bounded: a day (a week between reconciles) is already more than
# a sane setting, and a huge value overflows the wait (OverflowError).
DAY = 86400

agent_group = cfg.OptGroup('agent', title='vgpu-placement-agent')
agent_opts = [
    cfg.IntOpt('report_interval', default=60, min=1, max=DAY,
               help='Seconds between two reports to Placement.'),
    cfg.IntOpt('reconcile_interval', default=600, min=1, max=7 * DAY,
               help='Seconds between two reconciles (host, ledger and '
                    'Placement made to agree: owed releases, half-done '
                    'work, mdevs lost to a reboot, orphans, allocations '
                    'without mdevs). The agent also reconciles at start.'),
    cfg.IntOpt('max_backoff', default=300, min=1, max=DAY,
               help='Longest wait, in seconds, between retries while '
                    'Placement is unreachable (the wait doubles from '
                    'report_interval up to this).'),
]


def register_opts(conf):
    groups.register(conf, agent_group, agent_opts)


def list_opts():
    return {agent_group: agent_opts}
