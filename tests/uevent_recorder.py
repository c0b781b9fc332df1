"""A stand-in for uevents.EventQueue, for the uevent listener's tests
(unit and kernel tier): it records what the listener hands a queue."""
import threading


class Recorder:
    """Every host change put, in order, and each time the listener began
    (True) or stopped (False) watching the kernel's socket.

    ``wait``: seconds the waits below allow before they fail.
    """

    def __init__(self, wait=10):
        self.wait = wait
        self.changes = []
        self.watching = []
        self.heard = []             # (baseline) and every SEQNUM noted
        self.cond = threading.Condition()

    def put(self, change):
        with self.cond:
            self.changes.append(change)
            self.cond.notify_all()

    def set_watching(self, watching, heard=None):
        with self.cond:
            self.watching.append(watching)
            if watching:
                self.heard.append(heard)

    def note_heard(self, seqnum):
        with self.cond:
            self.heard.append(seqnum)
            self.cond.notify_all()

    def wait_for_count(self, n):
        """Wait until n changes were seen; returns them all."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.changes) >= n,
                                      self.wait), self.changes
            return list(self.changes)

    def wait_for(self, *wanted):
        """Wait until every wanted change was seen; returns all seen."""
        with self.cond:
            assert self.cond.wait_for(
                lambda: all(w in self.changes for w in wanted), self.wait), (
                'wanted %s, saw %s' % (wanted, self.changes))
            return list(self.changes)
