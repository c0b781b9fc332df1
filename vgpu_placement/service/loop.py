"""The agent's service loop: report every [agent] report_interval,
reconcile every reconcile_interval, report at once on kernel uevents,
back off while Placement or the host fail.

Afterwards nothing stops the loop but its ``wait`` returning True; while
Placement is unreachable, or a cycle fails for any other reason, it logs,
retries with a doubling wait (up to max_backoff) and catches up as soon as
it can. A reconcile that fails does not stop the report of the same
cycle.

With [agent] watch_uevents, the kernel's uevents (mdevs created or
removed, parents and GPU VFs appearing or going; ``uevents``) wake the
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
"""
import logging
import time

from vgpu_placement import exceptions
from vgpu_placement.host import schedule
from vgpu_placement.service import scan_gate

LOG = logging.getLogger('vgpu_placement.agent')


class ReportLoop:
    """The agent's loop; ``wait(seconds)`` returns True when asked to stop.

    ``events``: None, or a uevents.EventQueue whose batches wake a report
    between the periodic ones (``get(timeout)``; closed when stopping).
    ``scans``: None (every report reads the host: ``reporter.report()``),
    or a scan_gate.ScanGate telling when the last scan may be reused
    (``reporter.report(rescan=...)``, its ``scan_count``).
    """

    def __init__(self, reporter, interval, max_backoff, wait,
                 reconcile=None, reconcile_interval=None, events=None,
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
        # Cycles come every interval, give or take: half of one early
        # still counts, so reconcile runs on every Nth cycle.
        self.reconcile_schedule = schedule.ReconcileSchedule(
            reconcile_interval or interval, clock, early=interval / 2)

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
        self.reconcile_schedule.finished()
        if mark is not None and self.reporter.scan_count != scans_before:
            # It read the host through the reporter after the mark: this
            # cycle's report may reuse that read.
            self.scans.scanned(mark)
        changed = {k: len(v) for k, v in summary.items() if v}
        if changed:
            LOG.warning('reconciled: %s', changed)

    def _one_cycle(self):
        # A reconcile that is due (at start, after a failure, every
        # reconcile_interval) runs at the first cycle of either kind.
        if self.reconcile is not None and self.reconcile_schedule.due():
            self._reconcile()
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
