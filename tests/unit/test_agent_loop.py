"""The agent keeps running through outages, backing off, then reports."""
from vgpu_placement.cmd import agent
from vgpu_placement import exceptions


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
    agent.ReportLoop(reporter, interval=10, max_backoff=50, wait=wait).run()
    assert waits == [10, 10, 20, 40, 50, 50, 10, 10]
    assert reporter.calls == 8


def test_other_errors_are_logged_and_the_loop_goes_on(caplog):
    reporter = ScriptedReporter([exceptions.ConfigError('[x] y', 'bad',
                                                        'fix'), Result()])
    waits = []
    loop = agent.ReportLoop(reporter, 5, 60,
                            lambda s: waits.append(s) or not
                            reporter.outcomes)
    loop.run()
    assert waits == [5, 5]
    assert '[x] y: bad; fix' in caplog.text


def test_reconcile_at_start_then_every_n_cycles_and_after_an_outage():
    down = exceptions.PlacementUnavailable('down')
    reporter = ScriptedReporter([Result()] * 6)
    calls = []

    def reconcile():
        calls.append(reporter.calls)
        if len(calls) == 2:
            raise down           # the second reconcile meets an outage
        return {'recreated': []}
    loop = agent.ReportLoop(reporter, 10, 60,
                            lambda s: not reporter.outcomes,
                            reconcile=reconcile, reconcile_every=3)
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
    agent.ReportLoop(reporter, 10, 60, lambda s: waits.append(s) or not
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
    # Stops when the script ends, or after 4 cycles should it not.
    agent.ReportLoop(reporter, 10, 60, lambda s: waits.append(s) or not
                     reporter.outcomes or len(waits) > 3,
                     reconcile=reconcile, reconcile_every=5).run()
    # Both cycles reported; the failed reconcile is tried again next cycle.
    assert reporter.calls == 2 and tried == [0, 1]
    assert waits == [10, 10]


def test_no_root_provider_yet_is_said_once_and_tried_each_period(caplog):
    missing = exceptions.RootProviderMissing('cn1')
    reporter = ScriptedReporter([missing, missing, missing, Result()])
    waits = []
    agent.ReportLoop(reporter, 10, 60, lambda s: waits.append(s) or not
                     reporter.outcomes or len(waits) > 5).run()
    assert waits == [10, 10, 10, 10]        # no back-off: nova starts soon
    warned = [r for r in caplog.records if 'no root provider' in
              r.getMessage() and r.levelname == 'WARNING']
    assert len(warned) == 1 and 'nova-compute' in warned[0].getMessage()
    assert 'root provider found' in caplog.text
