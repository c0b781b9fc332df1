"""Say a thing once: for what stays true from one pass to the next."""


class SayOnce:
    """Logs each distinct ``key`` once for the life of this object (a
    process's reporter or host), so a loop repeating the same finding does
    not repeat it in the log."""

    def __init__(self, logger):
        self.logger = logger
        self._said = set()

    def __call__(self, level, key, text, *args):
        """Log text % args at level unless key was said; True if logged."""
        if key in self._said:
            return False
        self._said.add(key)
        self.logger.log(level, text, *args)
        return True
