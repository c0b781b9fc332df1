"""When reconcile runs: one schedule for the agent and nova-compute."""
import time


class ReconcileSchedule:
    """Reconcile at start, then every ``interval`` seconds after the last
    one that finished; one that failed (or never ran) is due again at
    the next chance the caller has (the agent's next report cycle,
    nova-compute's next update_provider_tree).

    ``early``: how much sooner than ``interval`` a chance may come and
    still count (the agent's cycles come every report_interval, a little
    late or early: half a cycle keeps reconcile on every Nth one).
    Owned by its one caller; not thread-safe.
    """

    def __init__(self, interval, clock=time.monotonic, early=0):
        self.interval = interval
        self.clock = clock
        self.early = early
        self._finished_at = None        # None: due now

    def due(self):
        return self._finished_at is None or \
            self.clock() - self._finished_at >= self.interval - self.early

    def finished(self):
        """The reconcile just run finished (whatever it changed)."""
        self._finished_at = self.clock()
