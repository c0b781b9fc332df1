"""[agent]: the agent's report and reconcile periods, uevents, scans."""
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
    cfg.BoolOpt('watch_uevents', default=True,
                help='Listen to the kernel\'s uevents (netlink, no '
                     'privilege needed) and report at once when an mdev '
                     'is created or removed, or a parent device or GPU '
                     'virtual function appears or goes, by this agent or '
                     'anyone else. The periodic report stays as the '
                     'safety net: where the uevent socket cannot be '
                     'opened the agent says so and tries it again every '
                     'minute; a container in a network namespace of its '
                     'own receives no uevents at all.'),
    cfg.IntOpt('full_scan_interval', min=0, max=7 * DAY,
               help='Longest time, in seconds, the agent trusts its last '
                    'read of the host; unset: report_interval, so every '
                    'periodic report reads the host and a change that '
                    'raises no uevent is in Placement within one '
                    'report_interval. Set longer, a periodic report '
                    'reuses the last read (and only reads Placement) '
                    'while all of these hold: watch_uevents works (the '
                    'listener watches, lost no message, and has received '
                    'every uevent up to the kernel\'s sequence number, '
                    'which a silent socket in a user-namespaced container '
                    'fails), the driver\'s host changes all raise a '
                    'uevent (sysfs: yes; nvidia_vfio and simulated: no), '
                    'and no uevent came since. A change that raises no '
                    'uevent then waits up to this long. 0 reads the host '
                    'at every report, uevent-woken ones included.'),
    cfg.FloatOpt('uevent_quiet_window', default=0.02, min=0.0, max=10.0,
                 help='Seconds without a new uevent before the changes '
                      'are reported (an mdev half-way through its create '
                      'or remove is waited for besides). Within a burst '
                      'it doubles at each report, up to uevent_max_delay, '
                      'so a loop creating 50 mdevs gives a handful of '
                      'reports, not 50.'),
    cfg.FloatOpt('uevent_max_delay', default=1.0, min=0.01, max=60.0,
                 help='Longest wait, in seconds, from the first uevent '
                      'of a burst to the start of its report (when no '
                      'report is running), however long the burst goes '
                      'on: a burst gets about one report per this many '
                      'seconds.'),
]


def register_opts(conf):
    groups.register(conf, agent_group, agent_opts)


def list_opts():
    return {agent_group: agent_opts}
