"""Logging in the run's children: WARNING+ records counted by message
template (one example kept), none printed; the main process sums them."""
import collections
import logging


class CountingHandler(logging.Handler):
    """Counts WARNING+ records by message template; keeps one example."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.counts = collections.Counter()
        self.example = {}

    def emit(self, record):
        key = (record.levelname, record.name, str(record.msg)[:120])
        self.counts[key] += 1
        if key not in self.example:
            try:
                self.example[key] = record.getMessage()[:300]
            except Exception:       # noqa: a bad format: keep the template
                self.example[key] = str(record.msg)[:300]

    def summary(self):
        return [(k, n, self.example[k]) for k, n in self.counts.items()]


def count_logs():
    handler = CountingHandler()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    return handler
