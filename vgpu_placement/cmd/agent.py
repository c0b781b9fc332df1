"""vgpu-placement-agent: report this host to Placement as it changes.

Start-up checks the configuration against the host and stops with one line
if anything is wrong, then reconciles (after a reboot: the mdevs come back
with their UUIDs). Afterwards nothing stops the loop but SIGTERM/SIGINT:
it reports every [agent] report_interval and reconciles every
reconcile_interval; while Placement is unreachable, or a cycle fails for
any other reason, it logs, retries with a doubling wait (up to
max_backoff) and catches up as soon as it can. A reconcile that fails
does not stop the report of the same cycle.

With [agent] watch_uevents, the kernel's uevents (mdevs created or
removed, parents and GPU VFs appearing or going; ``uevents.py``) wake the
loop: it reports at once, coalescing bursts, and reconciles only when one
is due anyway. Such a report does not move the periodic one, which stays
the safety net (lost uevents, a host without them). While backing off,
uevents wait for the retry.

Reading the host is most of a report's cost. With [agent]
full_scan_interval set longer than report_interval, while uevents are
healthy (proven received, ``scan_gate``) and the driver's host changes
all raise one, a periodic report reuses the last scan (Placement is still
read, so claims still change the offers); any uevent, a listener not
watching, lost or unheard messages, a reconcile (always on a fresh read)
and full_scan_interval make the next report read the host again.

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
import time

from vgpu_placement.cmd import common
from vgpu_placement import exceptions
from vgpu_placement import scan_gate
from vgpu_placement import standalone
from vgpu_placement import uevents

LOG = logging.getLogger('vgpu_placement.agent')

STOP_GRACE = 3.0        # seconds a stopping agent waits for its cycle
START_WATCH_WAIT = 1.0  # seconds the start waits for the uevent socket


class ReportLoop:
    """The agent's loop; ``wait(seconds)`` returns True when asked to stop.

    ``events``: None, or a uevents.EventQueue whose batches wake a report
    between the periodic ones (``get(timeout)``; closed when stopping).
    ``scans``: None (every report reads the host: ``reporter.report()``),
    or a scan_gate.ScanGate telling when the last scan may be reused
    (``reporter.report(rescan=...)``, its ``scan_count``).
    """

    def __init__(self, reporter, interval, max_backoff, wait,
                 reconcile=None, reconcile_every=None, events=None,
                 clock=time.monotonic, scans=None):
        self.reporter = reporter
        self.events = events
        self.scans = scans
        self.clock = clock
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
        mark = self.scans.begin() if self.scans else None
        scans_before = getattr(self.reporter, 'scan_count', None)
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
        if mark is not None and self.reporter.scan_count != scans_before:
            # It read the host through the reporter after the mark: this
            # cycle's report may reuse that read.
            self.scans.scanned(mark)
        changed = {k: len(v) for k, v in summary.items() if v}
        if changed:
            LOG.warning('reconciled: %s', changed)

    def _one_cycle(self, periodic):
        # Only periodic cycles count towards the next reconcile, so
        # uevents add none; one that is due (at start, after a failure,
        # every reconcile_every periods) runs at the first cycle of
        # either kind.
        if self.reconcile is not None and self.cycles_to_reconcile <= 0:
            self._reconcile()
        elif periodic:
            self.cycles_to_reconcile -= 1
        if self.scans is None:
            return self.reporter.report()
        why = self.scans.why_scan()
        mark = self.scans.begin()
        result = self.reporter.report(rescan=why is not None)
        if result.scanned:
            LOG.debug('host read (%s)', why or 'the last scan was partial')
            self.scans.scanned(mark)
        return result

    def _backoff(self, delay):
        return self.interval if delay is None else min(delay * 2,
                                                       self.max_backoff)

    def backing_off(self):
        """True while retrying: uevents then wait for the retry."""
        return (self.outage_delay is not None or
                self.error_delay is not None or self.waiting_for_root)

    def run_once(self, batch=None):
        """One cycle (woken by ``batch`` of uevents, or periodic); returns
        the seconds to wait before the next periodic one."""
        if batch is not None:
            LOG.info('host changed (%s): reporting now', batch.describe())
        try:
            result = self._one_cycle(periodic=batch is None)
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
        LOG.info('report done: %d change(s), %d read(s), %d write(s)%s',
                 len(result.changes), result.requests.reads,
                 result.requests.writes,
                 '' if getattr(result, 'scanned', True) else
                 ', last host scan reused')
        return self.interval

    def _periodic(self):
        if self.events is not None:
            # This report reads the host after every change queued so
            # far: reporting them again would say nothing new.
            self.events.clear()
        return self.run_once()

    def run(self):
        delay = self._periodic()
        while True:
            if self.events is None or self.backing_off():
                if self.wait(delay):
                    return
                delay = self._periodic()
                continue
            # Reports woken by uevents until the periodic one is due.
            deadline = self.clock() + delay
            while True:
                batch = self.events.get(max(0.0, deadline - self.clock()))
                if self.wait(0):
                    return
                if batch is None:
                    delay = self._periodic()
                    break
                after = self.run_once(batch)
                if self.backing_off():
                    delay = after
                    break


def scan_gate_for(conf, events, driver_qualifies):
    """The agent's ScanGate: full_scan_interval unset is the report
    interval, so a periodic report reads the host unless the operator
    says otherwise."""
    full_scan_interval = conf.agent.full_scan_interval
    if full_scan_interval is None:
        full_scan_interval = conf.agent.report_interval
    return scan_gate.ScanGate(events, driver_qualifies, full_scan_interval)


def _start(args):
    conf = common.load_conf(args, prog='vgpu-placement-agent', quiet=False)
    reporter = standalone.reporter_for(conf)
    # Check the configuration against the host before looping.
    reporter.desired_tree(reporter.discover())
    host = standalone.manager_for(reporter)
    stop = threading.Event()
    events = listener = None
    if conf.agent.watch_uevents:
        events = uevents.EventQueue(conf.agent.uevent_quiet_window,
                                    conf.agent.uevent_max_delay)
        listener = uevents.UeventListener(events).start()
        # A first scan taken while the socket opens would not count as
        # covered (scan_gate): wait for it, briefly, to read the host once.
        listener.watching.wait(START_WATCH_WAIT)

    def on_signal(signum, frame):
        LOG.info('signal %d: stopping', signum)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    LOG.info('agent started for host %s (every %ds)', conf.host,
             conf.agent.report_interval)
    every = max(1, conf.agent.reconcile_interval //
                conf.agent.report_interval)
    scans = scan_gate_for(conf, events,
                          reporter.driver.host_changes_raise_uevents)
    LOG.info('%s', scans.describe())
    loop = ReportLoop(reporter, conf.agent.report_interval,
                      conf.agent.max_backoff, stop.wait,
                      reconcile=host.reconcile, reconcile_every=every,
                      events=events, scans=scans)
    worker = threading.Thread(target=loop.run, name='report-loop',
                              daemon=True)
    worker.start()
    while worker.is_alive() and not stop.wait(1.0):
        pass
    if listener is not None:
        listener.stop()
        events.close()      # the worker's wait for uevents returns now
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
