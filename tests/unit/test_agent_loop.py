"""The agent keeps running through outages, backing off, then reports;
kernel uevents wake a report at once."""
import logging
import socket
import threading

from vgpu_placement import exceptions
from vgpu_placement.service import loop as service_loop
from vgpu_placement.service import scan_gate
from vgpu_placement.service import uevents

UUID = '0a6ed2b4-6d1c-4b8e-9d57-3c1f5f0e2a11'


class ScriptedReporter:
    """Stands in for report.Reporter: plays back outcomes in order."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def report(self):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Result:
    changes = []

    class requests:
        reads = 1
        writes = 0


def test_backoff_doubles_to_the_cap_and_resets_when_placement_returns():
    down = exceptions.PlacementUnavailable('down')
    reporter = ScriptedReporter([Result(), down, down, down, down, down,
                                 Result(), Result()])
    waits = []

    def wait(seconds):
        waits.append(seconds)
        return not reporter.outcomes        # stop when the script ends
    service_loop.ReportLoop(reporter, interval=10,
                            max_backoff=50, wait=wait).run()
    assert waits == [10, 10, 20, 40, 50, 50, 10, 10]
    assert reporter.calls == 8


def test_other_errors_are_logged_and_the_loop_goes_on(caplog):
    reporter = ScriptedReporter([exceptions.ConfigError('[x] y', 'bad',
                                                        'fix'), Result()])
    waits = []
    loop = service_loop.ReportLoop(reporter, 5, 60,
                                   lambda s: waits.append(s) or not
                                   reporter.outcomes)
    loop.run()
    assert waits == [5, 5]
    assert '[x] y: bad; fix' in caplog.text


def waiting(clock, stop):
    """A loop's ``wait``: the fake clock moves by the time waited, a
    little late, as a real one would; True (stop) when ``stop()``."""
    def wait(seconds):
        clock.now += seconds + 0.01
        return stop()
    return wait


def test_reconcile_at_start_then_every_interval_and_after_an_outage():
    down = exceptions.PlacementUnavailable('down')
    reporter = ScriptedReporter([Result()] * 6)
    calls = []

    def reconcile():
        calls.append(reporter.calls)
        if len(calls) == 2:
            raise down           # the second reconcile meets an outage
        return {'recreated': []}
    clock = FakeClock()
    loop = service_loop.ReportLoop(
        reporter, 10, 60, waiting(clock, lambda: not reporter.outcomes),
        reconcile=reconcile, reconcile_interval=30, clock=clock)
    loop.run()
    # Start, then 3 report-only cycles, then the failing reconcile is
    # tried again on the very next cycle.
    assert calls == [0, 3, 3]
    assert reporter.calls == 6


def test_unexpected_errors_back_off_and_the_loop_goes_on(caplog):
    # int('²') in a sysfs read, a corrupt database: not ours, still not
    # a reason to leave the host unreported for good.
    reporter = ScriptedReporter([ValueError("invalid literal for int(): "
                                            "'²'"), KeyError('x'),
                                 Result(), Result()])
    waits = []
    service_loop.ReportLoop(reporter, 10, 60, lambda s: waits.append(s) or not
                            reporter.outcomes or len(waits) > 5).run()
    assert waits == [10, 20, 10, 10]
    assert reporter.calls == 4
    assert 'report cycle failed unexpectedly' in caplog.text


def test_a_failing_reconcile_does_not_stop_the_report():
    reporter = ScriptedReporter([Result(), Result()])
    tried = []

    def reconcile():
        tried.append(reporter.calls)
        raise exceptions.HostStateError('the ownership ledger x is lost')
    waits = []
    clock = FakeClock()
    # Stops when the script ends, or after 4 cycles should it not.
    service_loop.ReportLoop(
        reporter, 10, 60, waiting(clock, lambda: waits.append(1) or not
                                  reporter.outcomes or len(waits) > 3),
        reconcile=reconcile, reconcile_interval=50, clock=clock).run()
    # Both cycles reported; the failed reconcile is tried again next cycle.
    assert reporter.calls == 2 and tried == [0, 1]
    assert len(waits) == 2


def test_no_root_provider_yet_is_said_once_and_tried_each_period(caplog):
    missing = exceptions.RootProviderMissing('cn1')
    reporter = ScriptedReporter([missing, missing, missing, Result()])
    waits = []
    service_loop.ReportLoop(reporter, 10, 60, lambda s: waits.append(s) or not
                            reporter.outcomes or len(waits) > 5).run()
    assert waits == [10, 10, 10, 10]        # no back-off: nova starts soon
    warned = [r for r in caplog.records if 'no root provider' in
              r.getMessage() and r.levelname == 'WARNING']
    assert len(warned) == 1 and 'nova-compute' in warned[0].getMessage()
    assert 'root provider found' in caplog.text


# -- woken by uevents ---------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class ScriptedEvents:
    """Stands in for uevents.EventQueue: each get(timeout) plays the next
    step: a batch (due after ``seconds``), or None (the timeout passes)."""

    def __init__(self, clock, steps):
        self.clock = clock
        self.steps = list(steps)
        self.timeouts = []
        self.cleared = 0

    def get(self, timeout):
        self.timeouts.append(timeout)
        seconds, batch = self.steps.pop(0) if self.steps else (None, None)
        if batch is None:
            self.clock.now += timeout
            return None
        self.clock.now += seconds
        return batch

    def clear(self):
        self.cleared += 1


def batch(*parents):
    b = uevents.Batch(0.0, 0.0)
    for p in parents:
        b.add(uevents.Change('mdev', 'add', p), 0.0)
    return b


def test_uevents_report_at_once_without_moving_the_period_or_reconcile():
    clock = FakeClock()
    reporter = ScriptedReporter([Result()] * 6)
    report_times = []
    play = reporter.report
    reporter.report = lambda: report_times.append(clock.now) or play()
    reconciled = []
    events = ScriptedEvents(clock, [(2, batch('mtty')), (3, batch('mdpy')),
                                    (None, None), (4, batch('mtty')),
                                    (None, None)])
    loop = service_loop.ReportLoop(
        reporter, 10, 60, lambda s: not reporter.outcomes, clock=clock,
        reconcile=lambda: reconciled.append(clock.now) or {},
        reconcile_interval=20, events=events)
    loop.run()
    # Start (t=0): reconcile + report; uevents at 2 and 5 report at once;
    # the periodic report stays at 10, then 20; one at 14 in between;
    # then it waits for the next (the script ends: stop).
    assert events.timeouts == [10, 8, 5, 10, 6, 10]
    assert report_times == [0, 2, 5, 10, 14, 20]
    # Reconciles at start, then once 20 s have passed (the uevent cycles
    # before did not make one due), at the first cycle after: 20.
    assert reconciled == [0, 20]
    # Each periodic report drops what it covers.
    assert events.cleared == 3


def test_an_owed_reconcile_runs_on_the_first_uevent_cycle():
    clock = FakeClock()
    reporter = ScriptedReporter([Result()] * 3)
    tried = []

    def reconcile():
        tried.append(clock.now)
        if len(tried) == 1:
            raise exceptions.HostStateError('the ownership ledger x is lost')
        return {}
    events = ScriptedEvents(clock, [(1, batch('mtty')), (1, batch('mtty'))])
    service_loop.ReportLoop(
        reporter, 10, 60, lambda s: not reporter.outcomes, clock=clock,
        reconcile=reconcile, reconcile_interval=50, events=events).run()
    assert tried == [0, 1]          # retried at once, then not again
    assert reporter.calls == 3


def test_while_backing_off_uevents_wait_for_the_retry(caplog):
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    down = exceptions.PlacementUnavailable('down')
    reporter = ScriptedReporter([Result(), down, Result(), Result()])
    waits = []

    def wait(seconds):
        waits.append(seconds)
        clock.now += seconds
        return not reporter.outcomes
    events = ScriptedEvents(clock, [(1, batch('mtty')), (1, batch('mdpy'))])
    service_loop.ReportLoop(reporter, 10, 60, wait, clock=clock,
                            events=events).run()
    # Start; a uevent at 1 meets the outage: the retry waits its 10 s
    # (wait(10)), ignoring uevents; then uevents wake reports again.
    assert [w for w in waits if w] == [10]
    assert reporter.calls == 4
    assert 'host changed (1 uevent(s) on mtty): reporting now' in caplog.text


def test_the_loop_wakes_on_a_kernel_uevent_through_a_socket(caplog):
    """The agent's wiring, threads and all: a uevent written to the
    listener's socket makes the loop report long before its period."""
    caplog.set_level(logging.INFO)
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    reported = threading.Semaphore(0)

    class Reporter:
        calls = 0

        def report(self):
            self.calls += 1
            reported.release()
            return Result()
    reporter = Reporter()
    stop = threading.Event()
    events = uevents.EventQueue(quiet=0.01, max_delay=1.0)
    listener = uevents.UeventListener(events, open_socket=lambda: ours)
    listener.start()
    loop = service_loop.ReportLoop(reporter, interval=3600, max_backoff=3600,
                                   wait=stop.wait, events=events)
    worker = threading.Thread(target=loop.run, daemon=True)
    worker.start()
    try:
        assert reported.acquire(timeout=30)         # the start's report
        assert listener.watching.wait(30)
        path = '/devices/virtual/mtty/mtty/' + UUID
        kernel.send(('add@%s\0ACTION=add\0DEVPATH=%s\0SUBSYSTEM=mdev\0'
                     'SEQNUM=7\0' % (path, path)).encode())
        assert reported.acquire(timeout=30), 'no report after the uevent'
        assert reporter.calls == 2
    finally:
        stop.set()
        listener.stop()
        events.close()
        worker.join(30)
        kernel.close()
        ours.close()
    assert not worker.is_alive()
    assert 'host changed (1 uevent(s) on mtty): reporting now' in caplog.text


# -- reusing the last host scan ---------------------------------------------

class ScanningReporter:
    """Stands in for report.Reporter: says whether each report read the
    host (a reuse asked for with nothing to reuse reads it too)."""

    def __init__(self):
        self.scan_count = 0
        self.asked = []             # the rescan argument of each report

    def report(self, rescan=True):
        self.asked.append(rescan)
        scanned = rescan or not self.scan_count
        self.scan_count += scanned
        result = Result()
        result.scanned = scanned
        return result


KERNEL_SEQNUM = 4000     # what the kernel's uevent_seqnum says, as heard


def healthy_queue():
    """An EventQueue as a watching listener leaves it, having heard every
    uevent the kernel sent."""
    queue = uevents.EventQueue(0.02, 1.0)
    queue.set_watching(True, KERNEL_SEQNUM)
    return queue


def scan_loop(queue, qualifies=True, full_scan_interval=600,
              reconcile=None, reconcile_interval=None, sent=None):
    """``sent``: a one-item list, the kernel's sequence number (moved by
    the test); by default always what the queue has heard."""
    clock = FakeClock()
    reporter = ScanningReporter()
    kernel = ((lambda: sent[0]) if sent is not None else
              (lambda: queue.heard))
    gate = scan_gate.ScanGate(queue, qualifies, full_scan_interval, clock,
                              kernel_seqnum=kernel, proof_wait=0)
    loop = service_loop.ReportLoop(
        reporter, 60, 300, lambda s: True, clock=clock, events=queue,
        scans=gate, reconcile=reconcile,
        reconcile_interval=reconcile_interval)
    return loop, reporter, clock


def periodic(loop, clock, seconds=60):
    """One periodic cycle, ``seconds`` after the previous one; True when
    it read the host."""
    clock.now += seconds
    before = loop.reporter.scan_count
    loop._periodic()
    return loop.reporter.scan_count > before


def test_healthy_and_quiet_the_periodic_report_reuses_the_last_scan(caplog):
    caplog.set_level(logging.INFO)
    queue = healthy_queue()
    loop, reporter, clock = scan_loop(queue)
    assert [periodic(loop, clock) for _ in range(4)] == [
        True, False, False, False]
    assert reporter.asked == [True, False, False, False]
    assert 'last host scan reused' in caplog.text


def test_a_uevent_makes_the_next_report_read_the_host():
    queue = healthy_queue()
    loop, reporter, clock = scan_loop(queue)
    periodic(loop, clock)
    # A change the periodic cycle drops from the queue (it covers it)
    # still makes that cycle read the host.
    queue.put(uevents.Change('mdev', 'add', 'mtty', UUID))
    assert periodic(loop, clock)
    assert not periodic(loop, clock)
    # Woken by the batch itself: read too.
    queue.put(uevents.Change('mdev', 'remove', 'mtty', UUID))
    loop.run_once(batch('mtty'))
    assert reporter.asked[-1] is True
    assert not periodic(loop, clock)


def test_lost_uevents_or_a_blind_listener_mean_reading_every_time():
    queue = healthy_queue()
    loop, reporter, clock = scan_loop(queue)
    periodic(loop, clock)
    queue.put(uevents.LOST)                 # ENOBUFS
    assert periodic(loop, clock)
    assert not periodic(loop, clock)
    queue.set_watching(False)               # the socket failed, the
    assert [periodic(loop, clock) for _ in range(3)] == [True] * 3  # thread
    queue.set_watching(True, KERNEL_SEQNUM)  # died: blind till it watches
    assert [periodic(loop, clock) for _ in range(2)] == [True, False]


def test_a_listener_that_hears_nothing_is_not_trusted(caplog):
    """A user-namespaced container: the socket opens and watches, but the
    uevents the kernel sends never arrive. The kernel's sequence number
    moves, the listener's does not: every report reads the host, and the
    agent says why once."""
    queue = healthy_queue()
    sent = [KERNEL_SEQNUM]
    loop, reporter, clock = scan_loop(queue, sent=sent)
    assert [periodic(loop, clock) for _ in range(2)] == [True, False]
    sent[0] += 3                # e.g. another owner's mdev: add, bind, ..
    assert queue.state() == (True, 1)     # nothing put, nothing lost
    assert [periodic(loop, clock) for _ in range(3)] == [True] * 3
    deaf = [r.getMessage() for r in caplog.records
            if 'not proven to receive' in r.getMessage()]
    assert deaf == [
        "the uevent listener is not proven to receive the kernel's uevents "
        "(the kernel sent up to #4003, it received up to #4000): the host "
        "is read whenever that is so (a network namespace of a user "
        "namespace of its own gets no uevents)"]
    # It hears again (an unrelated uevent numbered past them): the last
    # read, after which it heard everything, is trusted again.
    queue.note_heard(KERNEL_SEQNUM + 4)
    sent[0] += 1
    assert [periodic(loop, clock) for _ in range(2)] == [False, False]
    # An unreadable sequence number proves nothing.
    sent[0] = None
    assert periodic(loop, clock)


def test_a_scan_racing_a_uevent_is_not_trusted():
    """The mark is taken before the scan: a uevent that arrives while the
    host is read makes the next report read it again."""
    queue = healthy_queue()
    loop, reporter, clock = scan_loop(queue)
    scan = reporter.report

    def report_meeting_a_uevent(rescan=True):
        queue.put(uevents.Change('mdev', 'add', 'mtty', UUID))
        return scan(rescan)
    reporter.report = report_meeting_a_uevent
    periodic(loop, clock)
    reporter.report = scan
    assert periodic(loop, clock)
    assert not periodic(loop, clock)


def test_the_host_is_read_again_after_full_scan_interval():
    loop, reporter, clock = scan_loop(healthy_queue(), full_scan_interval=300)
    assert [periodic(loop, clock, 100) for _ in range(8)] == [
        True, False, False, True, False, False, True, False]


def test_by_default_every_periodic_report_reads_the_host():
    """The safety net is the report interval unless the operator says
    otherwise: a change that raises no uevent is read at the next
    periodic report, even with a listener proven to hear."""
    from vgpu_placement.fixtures import make_conf
    queue = healthy_queue()
    conf = make_conf(agent__report_interval=45)
    gate = service_loop.scan_gate_for(conf, queue, True)
    assert gate.full_scan_interval == 45
    loop, reporter, clock = scan_loop(queue, full_scan_interval=45)
    assert [periodic(loop, clock, 45) for _ in range(3)] == [True] * 3
    conf = make_conf(agent__report_interval=45,
                     agent__full_scan_interval=450)
    assert service_loop.scan_gate_for(
        conf, queue, True).full_scan_interval == 450


def test_a_driver_whose_changes_raise_no_uevent_reads_every_time():
    loop, reporter, clock = scan_loop(healthy_queue(), qualifies=False)
    assert [periodic(loop, clock) for _ in range(3)] == [True] * 3
    # Nor does anything but a watching listener count as healthy.
    for gate in (scan_gate.ScanGate(None, True, 600),
                 scan_gate.ScanGate(healthy_queue(), True, 0)):
        gate.scanned(gate.begin())
        assert gate.why_scan() is not None


def test_a_reconcile_reads_the_host_and_its_cycle_reuses_that_read():
    queue = healthy_queue()
    reconciles = []

    def reconcile():
        # As MdevManager.reconcile: its reading reports, scanning.
        reconciles.append(loop.reporter.report())
        return {}
    loop, reporter, clock = scan_loop(queue, reconcile=reconcile,
                                      reconcile_interval=180)
    read = [periodic(loop, clock) for _ in range(7)]
    assert len(reconciles) == 3 and all(r.scanned for r in reconciles)
    # The reports themselves never read: each reconcile did, just before.
    assert read == [True, False, False, True, False, False, True]
    assert reporter.asked == [True, False, False, False, True, False,
                              False, False, True, False]
