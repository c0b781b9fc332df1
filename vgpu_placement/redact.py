"""Hide the secret part of URLs (scheme://user:password@host) in text.

Endpoints may carry credentials; every error line, log line and state
file that could show one goes through redact().
"""
import logging
import re

# The userinfo of a URL: user:password@ (the password may hold '@' or ':',
# so it runs to the last '@' before the path) or token@.
_USERINFO_RE = re.compile(
    r'(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?:(?P<user>[^/?#\s@:]*):)?'
    r'[^/?#\s]*@')


def _hide(match):
    user = match.group('user')
    return match.group('scheme') + (
        '***@' if user is None else user + ':***@')


def redact(text):
    """text with URL passwords (and bare tokens) replaced by ***."""
    return _USERINFO_RE.sub(_hide, text) if text else text


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and redacts the finished line.

    Not a logging.Filter on the record: oslo.log's formatter adds what a
    record does not hold (a summary of the exception being handled, the
    traceback), and a secret there would pass a filter.
    """

    def __init__(self, inner):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record):
        return redact(self.inner.format(record))


def redact_handlers(logger=None):
    """Redact what every handler of ``logger`` (the root) writes: our
    records and every library's (keystoneauth logs the endpoint)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))
