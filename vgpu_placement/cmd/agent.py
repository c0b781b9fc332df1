"""vgpu-placement-agent: report this host to Placement periodically.

Start-up checks the configuration against the host and stops with one line
if anything is wrong. Afterwards nothing stops the loop but SIGTERM/SIGINT:
while Placement is unreachable the agent retries with a doubling wait
(up to [agent] max_backoff) and reports as soon as it is back.
"""
import argparse
import logging
import signal
import sys
import threading

from vgpu_placement.cmd import common
from vgpu_placement import exceptions
from vgpu_placement import report

LOG = logging.getLogger('vgpu_placement.agent')


class ReportLoop:
    """The agent's loop; ``wait(seconds)`` returns True when asked to stop."""

    def __init__(self, reporter, interval, max_backoff, wait):
        self.reporter = reporter
        self.interval = interval
        self.max_backoff = max_backoff
        self.wait = wait
        self.outage_delay = None        # set while Placement is unreachable

    def run_once(self):
        """One report; returns the seconds to wait before the next."""
        try:
            result = self.reporter.report()
        except exceptions.PlacementUnavailable as e:
            if self.outage_delay is None:
                LOG.warning('%s; retrying', e)
                self.outage_delay = self.interval
            else:
                self.outage_delay = min(self.outage_delay * 2,
                                        self.max_backoff)
            return self.outage_delay
        except exceptions.VgpuPlacementError as e:
            # The host or Placement refused something: say it, keep going.
            LOG.error('report failed: %s', e)
            return self.interval
        if self.outage_delay is not None:
            LOG.warning('Placement is reachable again; host reported')
            self.outage_delay = None
        LOG.info('report done: %d change(s), %d read(s), %d write(s)',
                 len(result.changes), result.requests.reads,
                 result.requests.writes)
        return self.interval

    def run(self):
        while not self.wait(self.run_once()):
            pass


def _start(args):
    conf = common.load_conf(args, prog='vgpu-placement-agent', quiet=False)
    reporter = report.Reporter(conf)
    # Check the configuration against the host before looping.
    reporter.desired_tree(reporter.discover())
    stop = threading.Event()

    def on_signal(signum, frame):
        LOG.info('signal %d: stopping', signum)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    LOG.info('agent started for host %s (every %ds)', conf.host,
             conf.agent.report_interval)
    ReportLoop(reporter, conf.agent.report_interval,
               conf.agent.max_backoff, stop.wait).run()
    LOG.info('agent stopped')


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='vgpu-placement-agent', description=__doc__.splitlines()[0])
    common.add_config_args(parser)
    args = parser.parse_args(argv)
    return common.run(_start, args, prog='vgpu-placement-agent')


if __name__ == '__main__':
    sys.exit(main())
