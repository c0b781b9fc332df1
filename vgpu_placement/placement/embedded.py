"""OpenStack Placement (openstack-placement) inside this process.

SQLite file, noauth2, reached through keystoneauth1 over wsgi-intercept (no
socket). Two rules (measured and explained in
doc/source/reference/placement.rst, 'The embedded Placement'): one
Placement database per process (oslo.db's facade is configured once), and
SQLite must never serve two requests at once, so every request goes through
one lock.

The server is the optional extra 'embedded' (openstack-placement,
SQLAlchemy, wsgi-intercept and what they pull in): this module imports it
only inside start(), and check_installed() says in one line what to
install when it is missing. Importing this module costs keystoneauth1 only.
"""
import importlib.util
import logging
import os
import threading

from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from vgpu_placement.conf import checks
from vgpu_placement import exceptions

LOG = logging.getLogger(__name__)

_lock = threading.Lock()
_started = {}            # database path -> (endpoint url, wsgi app)

EXTRA = 'vgpu-placement[embedded]'
# Top-level modules of the extra that this module imports (directly, or
# SQLAlchemy through Placement's database layer).
SERVER_MODULES = ('placement', 'sqlalchemy', 'wsgi_intercept')


def missing_modules():
    """The server modules that cannot be imported here (none imported)."""
    return [name for name in SERVER_MODULES
            if importlib.util.find_spec(name) is None]


def check_conf(conf):
    """With [embedded_placement] enabled: the server installed and its
    database a file this user can write (ConfigError otherwise)."""
    if not conf.embedded_placement.enabled:
        return
    check_installed()
    checks.check_file('[embedded_placement] database',
                      conf.embedded_placement.database, make_dirs=True)


def check_installed():
    """Raise ConfigError naming the extra if the server is not installed."""
    missing = missing_modules()
    if missing:
        raise exceptions.ConfigError(
            '[embedded_placement] enabled',
            'true, but the embedded Placement is not installed (no module '
            '%s)' % ', '.join(missing),
            "install it with: pip install '%s'" % EXTRA)


class _SerializedApp:
    """Let one request at a time into the app (SQLite is not concurrent)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


# What every SQLite 3 database file starts with.
SQLITE_HEADER = b'SQLite format 3\x00'


def _build_app(db_url, tuned=True):
    from oslo_config import cfg
    from placement import conf as placement_conf
    from placement import db_api
    from placement import deploy

    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    conf.set_override('auth_strategy', 'noauth2', group='api')
    conf.set_override('connection', db_url, group='placement_database')
    conf.set_override('sync_on_startup', True, group='placement_database')
    if tuned:
        # Multi-vGPU requests on wide trees explode in allocation_candidates
        # unless candidates are capped and generated breadth-first
        # (upstream bugs 2070257, 2126751; measured 38 s -> 0.3 s: see
        # doc/source/reference/placement.rst, 'Candidates on wide trees').
        conf.set_override('max_allocation_candidates', 1000,
                          group='placement')
        conf.set_override('allocation_candidates_generation_strategy',
                          'breadth-first', group='placement')
        conf.set_override('optimize_for_wide_provider_trees', True,
                          group='workarounds')
    conf([], project='placement', default_config_files=[])
    db_api.configure(conf)
    return deploy.loadapp(conf)


def start(database, tuned=True):
    """Start (once per process) and return the endpoint URL.

    tuned=False leaves Placement's candidate options at their defaults
    (for benchmarks comparing the two).
    """
    check_installed()
    from wsgi_intercept import interceptor

    database = os.path.abspath(database)
    with _lock:
        if database in _started:
            return _started[database][0]
        if _started:
            raise exceptions.VgpuPlacementError(
                'embedded Placement already runs in this process on %s; '
                'one database per process' % next(iter(_started)))
        os.makedirs(os.path.dirname(database), mode=0o700, exist_ok=True)
        # SQLite would create the file with the umask's mode: make it 0600.
        try:
            os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
            with open(database, 'rb') as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as e:
            raise exceptions.HostStateError(
                'the embedded Placement database %s cannot be opened: %s'
                % (database, e.strerror))
        if head and head != SQLITE_HEADER:
            raise exceptions.HostStateError(
                'the embedded Placement database %s is not an SQLite '
                'database; move it aside (a new one is made)' % database)
        for noisy in ('placement', 'alembic'):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from oslo_db import exception as db_exc
        # oslo.db logs a traceback of its own for a bad file: the one
        # line below says it.
        filters = logging.getLogger('oslo_db.sqlalchemy.exc_filters')
        level = filters.level
        filters.setLevel(logging.CRITICAL)
        try:
            app = _SerializedApp(_build_app('sqlite:///' + database, tuned))
        except db_exc.DBError as e:
            raise exceptions.HostStateError(
                'the embedded Placement database %s cannot be used (%s); '
                'move it aside (a new one is made)'
                % (database, str(e).splitlines()[0][:200]))
        finally:
            filters.setLevel(level)
        url = 'http://embedded-placement:80/placement'
        interceptor.RequestsInterceptor(lambda: app, url=url) \
            .install_intercept()
        _started[database] = (url, app)
        LOG.debug('embedded Placement on %s', database)
        return url


def adapter(database):
    """A keystoneauth1 adapter talking to the embedded Placement."""
    url = start(database)
    auth = token_endpoint.Token(url, 'admin')   # noauth2: admin token
    session = ks_session.Session(auth=auth)
    return ks_adapter.Adapter(session, service_type='placement')


class LoopbackServer:
    """The embedded Placement over real HTTP on 127.0.0.1, for other
    processes (several agents or CLI calls at once) and outage tests.

    Requests are served one at a time (SQLite).
    """

    def __init__(self, database, port=0):
        from wsgiref import simple_server

        class QuietHandler(simple_server.WSGIRequestHandler):
            def log_message(self, *args):
                pass

        start(database)
        app = _started[os.path.abspath(database)][1]
        self.httpd = simple_server.make_server(
            '127.0.0.1', port, app, handler_class=QuietHandler)
        self.port = self.httpd.server_port
        self.url = 'http://127.0.0.1:%d' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       name='placement-http', daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
