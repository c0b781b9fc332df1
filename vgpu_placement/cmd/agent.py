"""vgpu-placement-agent: report this host to Placement periodically.

Start-up checks the configuration against the host and stops with one line
if anything is wrong, then reconciles (after a reboot: the mdevs come back
with their UUIDs). Afterwards nothing stops the loop but SIGTERM/SIGINT:
it reports every [agent] report_interval and reconciles every
reconcile_interval; while Placement is unreachable, or a cycle fails for
any other reason, it logs, retries with a doubling wait (up to
max_backoff) and catches up as soon as it can. A reconcile that fails
does not stop the report of the same cycle.

The loop runs in a worker thread, so that a signal stops the agent within
STOP_GRACE seconds whatever the worker is waiting on (a hung Placement, a
lock): work cut short there is finished by the next start's reconcile,
as after a crash.
"""
import argparse
import logging
import signal
import sys
import threading

from vgpu_placement.cmd import common
from vgpu_placement import exceptions
from vgpu_placement import standalone

LOG = logging.getLogger('vgpu_placement.agent')

STOP_GRACE = 3.0        # seconds a stopping agent waits for its cycle


class ReportLoop:
    """The agent's loop; ``wait(seconds)`` returns True when asked to stop."""

    def __init__(self, reporter, interval, max_backoff, wait,
                 reconcile=None, reconcile_every=None):
        self.reporter = reporter
        self.interval = interval
        self.max_backoff = max_backoff
        self.wait = wait
        self.outage_delay = None        # set while Placement is unreachable
        self.error_delay = None         # set while cycles fail otherwise
        self.waiting_for_root = False   # said once: no root provider yet
        self.reconcile = reconcile      # callable, or None: report only
        self.reconcile_every = reconcile_every or 1
        self.cycles_to_reconcile = 0    # 0: reconcile on this cycle

    def _reconcile(self):
        """Reconcile; a failure other than an outage is said and left for
        the next reconcile (this cycle's report still runs)."""
        try:
            summary = self.reconcile()
        except (exceptions.PlacementUnavailable,
                exceptions.RootProviderMissing):
            raise
        except exceptions.VgpuPlacementError as e:
            LOG.error('reconcile failed: %s', e)
            return
        except Exception:
            LOG.exception('reconcile failed unexpectedly')
            return
        self.cycles_to_reconcile = self.reconcile_every - 1
        changed = {k: len(v) for k, v in summary.items() if v}
        if changed:
            LOG.warning('reconciled: %s', changed)

    def _one_cycle(self):
        if self.reconcile is not None and self.cycles_to_reconcile <= 0:
            self._reconcile()
        else:
            self.cycles_to_reconcile -= 1
        return self.reporter.report()

    def _backoff(self, delay):
        return self.interval if delay is None else min(delay * 2,
                                                       self.max_backoff)

    def run_once(self):
        """One cycle; returns the seconds to wait before the next."""
        try:
            result = self._one_cycle()
        except exceptions.PlacementUnavailable as e:
            if self.outage_delay is None:
                LOG.warning('%s; retrying', e)
            self.outage_delay = self._backoff(self.outage_delay)
            return self.outage_delay
        except exceptions.RootProviderMissing as e:
            # Normal while nova-compute starts: said once, tried each period.
            (LOG.debug if self.waiting_for_root else LOG.warning)(
                '%s; waiting', e)
            self.waiting_for_root = True
            return self.interval
        except exceptions.VgpuPlacementError as e:
            # The host or Placement refused something: say it, keep going.
            LOG.error('report failed: %s', e)
            self.error_delay = self._backoff(self.error_delay)
            return self.error_delay
        except Exception:
            # A bug or a value nobody foresaw: an agent that runs for years
            # says it and carries on rather than leaving the host
            # unreported.
            LOG.exception('report cycle failed unexpectedly')
            self.error_delay = self._backoff(self.error_delay)
            return self.error_delay
        self.error_delay = None
        if self.waiting_for_root:
            LOG.warning('root provider found; host reported')
            self.waiting_for_root = False
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
    reporter = standalone.reporter_for(conf)
    # Check the configuration against the host before looping.
    reporter.desired_tree(reporter.discover())
    host = standalone.host_for(reporter)
    stop = threading.Event()

    def on_signal(signum, frame):
        LOG.info('signal %d: stopping', signum)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    LOG.info('agent started for host %s (every %ds)', conf.host,
             conf.agent.report_interval)
    every = max(1, conf.agent.reconcile_interval //
                conf.agent.report_interval)
    loop = ReportLoop(reporter, conf.agent.report_interval,
                      conf.agent.max_backoff, stop.wait,
                      reconcile=host.reconcile, reconcile_every=every)
    worker = threading.Thread(target=loop.run, name='report-loop',
                              daemon=True)
    worker.start()
    while worker.is_alive() and not stop.wait(1.0):
        pass
    worker.join(STOP_GRACE)
    if worker.is_alive():
        LOG.warning('stopping in the middle of a cycle (Placement or the '
                    'host did not answer in %.0f s); the next start '
                    'reconciles', STOP_GRACE)
    LOG.info('agent stopped')


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='vgpu-placement-agent', description=__doc__.splitlines()[0])
    common.add_config_args(parser)
    args = parser.parse_args(argv)
    return common.run(_start, args, prog='vgpu-placement-agent')


if __name__ == '__main__':
    sys.exit(main())
