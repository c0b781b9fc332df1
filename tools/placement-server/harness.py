#!/usr/bin/env python3
"""Placement as clouds run it: gunicorn workers on a throw-away PostgreSQL.

    placement-server start [--port P] [--workers N] [--threads T] [--dir D]
                           [--fresh] [--no-wide-tree-tuning]
                           [--max-allocation-candidates N]
    placement-server status [--dir D]
    placement-server stop [--dir D] [--purge]

``start`` prints the endpoint URL as the only line on stdout; progress and
errors go to stderr, a failure is one line starting ``placement-server:``
and exit status 1. Everything runs on 127.0.0.1 and lives in ``--dir``
(default ``<checkout>/.cache/placement-server``). See README.md.
"""
import argparse
import fcntl
import glob
import hashlib
import importlib
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import releases

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DIR = os.path.join(CHECKOUT, '.cache', 'placement-server')
DEFAULT_PORT = 8778
DEFAULT_WORKERS = 4
DEFAULT_THREADS = 4
DEFAULT_MAX_CANDIDATES = 1000
# Placement's own default; see README (retries and over-capacity claims).
DEFAULT_CONFLICT_RETRIES = 10
MARKER = '.placement-server'
DB_NAME = DB_USER = 'placement'
# import name -> what pip installs when it is missing
PIP_REQUIREMENTS = {'gunicorn': 'gunicorn>=23.0',
                    'psycopg2': 'psycopg2-binary>=2.9.9'}
APT_PACKAGES = ['postgresql']
READY_TIMEOUT = 180
STOP_TIMEOUT = 30
# oslo.config reads OS_<GROUP>__<OPTION> from the environment: keep the
# caller's out of the servers so the config file is the whole truth.
_OSLO_ENV = re.compile(r'^OS_[A-Z0-9_]*__[A-Z0-9_]+$')


class Fail(Exception):
    """One-line failure."""


def log(msg):
    print('placement-server: %s' % msg, file=sys.stderr, flush=True)


class Layout:
    """Where things live in --dir."""

    def __init__(self, path):
        self.dir = os.path.abspath(path)

        def j(*parts):
            return os.path.join(self.dir, *parts)
        self.marker = j(MARKER)
        self.lock = j('.lock')
        self.state = j('state.json')
        self.etc = j('etc')
        self.conf = j('etc', 'placement.conf')
        self.password = j('db-password')
        self.pidfile = j('gunicorn.pid')
        self.log = j('placement.log')
        self.setup_log = j('setup.log')
        self.pg_inside = j('pg')
        digest = hashlib.sha1(os.path.realpath(self.dir).encode()).hexdigest()
        # Used only when the postgres user cannot reach --dir (e.g. under
        # a 0700 home directory).
        self.pg_outside = '/var/tmp/placement-server-%s' % digest[:12]

    def pg_root(self):
        """The existing PostgreSQL directory, or None."""
        for root in (self.pg_inside, self.pg_outside):
            if os.path.exists(os.path.join(root, 'data', 'PG_VERSION')):
                return root
        return None

    def read_state(self):
        try:
            with open(self.state) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def write_state(self, state):
        tmp = self.state + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(tmp, self.state)


# -- processes ---------------------------------------------------------------

def alive(pid):
    """True if pid runs and is not a zombie."""
    if not pid:
        return False
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rpartition(')')[2].split()[0] != 'Z'


def cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''


def group_members(pgid):
    """Live processes whose process group is pgid."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rpartition(')')[2].split()
        except OSError:
            continue
        if fields[0] != 'Z' and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return not any(alive(p) for p in pids)


def run_logged(cmd, layout, what, **kw):
    """Run cmd with its output appended to setup.log; Fail on error."""
    with open(layout.setup_log, 'ab') as out:
        out.write(('\n$ %s\n' % ' '.join(cmd)).encode())
        out.flush()
        try:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, **kw).returncode
        except OSError as e:
            raise Fail('%s: %s' % (what, e))
    if rc != 0:
        raise Fail('%s failed (exit %d): %s (full output in %s)' % (
            what, rc, last_line(layout.setup_log), layout.setup_log))


def last_line(path, pattern=None):
    """The last non-empty line of a log (matching pattern if given)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = f.read().decode(errors='replace').splitlines()
    except OSError:
        return '(no log)'
    lines = [ln.strip() for ln in lines if ln.strip()]
    if pattern:
        matching = [ln for ln in lines if re.search(pattern, ln)]
        if matching:
            return matching[-1]
    return lines[-1] if lines else '(empty log)'


def clean_env(layout):
    env = {k: v for k, v in os.environ.items()
           if not _OSLO_ENV.match(k) and k != 'OS_PLACEMENT_CONFIG_DIR'}
    env['OS_PLACEMENT_CONFIG_DIR'] = layout.etc
    return env


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_get(url, token=None, timeout=5):
    req = urllib.request.Request(url)
    if token:
        req.add_header('x-auth-token', token)
        req.add_header('OpenStack-API-Version', 'placement 1.39')
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


# -- installation ------------------------------------------------------------

def is_root():
    return os.geteuid() == 0


def pg_bindirs():
    """{major version: bin dir} of Debian's PostgreSQL server packages."""
    found = {}
    for pg_ctl in glob.glob('/usr/lib/postgresql/*/bin/pg_ctl'):
        bindir = os.path.dirname(pg_ctl)
        version = os.path.basename(os.path.dirname(bindir))
        if version.isdigit() and os.path.exists(
                os.path.join(bindir, 'initdb')):
            found[int(version)] = bindir
    return found


def online_clusters():
    """Debian's own clusters that are running (pg_lsclusters)."""
    if not shutil.which('pg_lsclusters'):
        return set()
    out = subprocess.run(['pg_lsclusters', '-h'], capture_output=True,
                         text=True).stdout
    return {tuple(line.split()[:2]) for line in out.splitlines()
            if len(line.split()) > 3 and line.split()[3].startswith('online')}


def ensure_postgresql(layout):
    if pg_bindirs():
        return False
    if not shutil.which('apt-get'):
        raise Fail('cannot install postgresql: no apt-get on this machine')
    if is_root():
        prefix = []
    elif shutil.which('sudo') and subprocess.run(
            ['sudo', '-n', 'true'], capture_output=True).returncode == 0:
        prefix = ['sudo', '-n']
    else:
        raise Fail('cannot install postgresql: not root and no password-less '
                   'sudo; install Debian\'s postgresql package first')
    log('installing %s from Debian (apt-get; output in %s)'
        % (' '.join(APT_PACKAGES), layout.setup_log))
    before = online_clusters()
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    run_logged(prefix + ['apt-get', 'update'], layout,
               'cannot install postgresql: apt-get update', env=env)
    run_logged(prefix + ['apt-get', 'install', '-y',
                         '--no-install-recommends'] + APT_PACKAGES, layout,
               'cannot install postgresql: apt-get install', env=env)
    # Debian's package creates and may start a system cluster ("main" on
    # 5432): this harness does not use it, so leave it as it was, stopped.
    for version, name in sorted(online_clusters() - before):
        log('stopping the system cluster %s/%s that apt-get started'
            % (version, name))
        subprocess.run(prefix + ['pg_ctlcluster', version, name, 'stop'],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if not pg_bindirs():
        raise Fail('cannot install postgresql: apt-get installed no server '
                   'under /usr/lib/postgresql')
    return True


def ensure_python_packages(layout):
    if importlib.util.find_spec('placement.wsgi') is None:
        raise Fail('openstack-placement is not installed for %s: run `%s -m '
                   "pip install -e '%s[embedded]'` first" % (
                       sys.executable, sys.executable, CHECKOUT))
    missing = [req for mod, req in PIP_REQUIREMENTS.items()
               if importlib.util.find_spec(mod) is None]
    if not missing:
        return False
    log('installing %s with pip into %s' % (' '.join(missing),
                                            sys.executable))
    run_logged([sys.executable, '-m', 'pip', 'install',
                '--disable-pip-version-check'] + missing, layout,
               'cannot install %s' % ' '.join(missing))
    importlib.invalidate_caches()
    still = [mod for mod in PIP_REQUIREMENTS
             if importlib.util.find_spec(mod) is None]
    if still:
        raise Fail('cannot install %s: pip succeeded but %s does not import'
                   % (' '.join(missing), ' '.join(still)))
    return True


# -- PostgreSQL --------------------------------------------------------------

def postgres_user():
    try:
        return pwd.getpwnam('postgres')
    except KeyError:
        raise Fail("PostgreSQL refuses to run as root and there is no "
                   "'postgres' user (Debian's postgresql-common makes it)")


def as_pg(cmd):
    """PostgreSQL refuses to run as root: run as the postgres user then."""
    if is_root():
        return ['runuser', '-u', 'postgres', '--'] + cmd
    return cmd


def pg_can_use(path):
    return subprocess.run(as_pg(['test', '-w', path, '-a', '-x', path]),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def make_pg_root(layout):
    """A directory the server's user owns: <dir>/pg if it can reach it."""
    if not is_root():
        os.makedirs(layout.pg_inside, mode=0o700, exist_ok=True)
        return layout.pg_inside
    user = postgres_user()
    for root in (layout.pg_inside, layout.pg_outside):
        created = not os.path.isdir(root)
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        if pg_can_use(root):
            if root == layout.pg_outside:
                log('user postgres cannot reach %s; its cluster lives in %s'
                    % (layout.dir, root))
            return root
        if created:
            os.rmdir(root)
    raise Fail('user postgres can write neither %s nor %s'
               % (layout.pg_inside, layout.pg_outside))


def pg_paths(root):
    return os.path.join(root, 'data'), os.path.join(root, 'postgresql.log')


def initdb(layout, bindir, root):
    data, _ = pg_paths(root)
    password = secrets.token_hex(16)
    pwfile = os.path.join(root, '.pwfile')
    with open(pwfile, 'w') as f:
        f.write(password + '\n')
    os.chmod(pwfile, 0o600)
    if is_root():
        user = postgres_user()
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    try:
        run_logged(as_pg([os.path.join(bindir, 'initdb'), '-D', data,
                          '-U', DB_USER, '--pwfile', pwfile,
                          '-A', 'scram-sha-256', '-E', 'UTF8', '--no-locale',
                          '--no-sync']), layout,
                   'cannot start PostgreSQL: initdb', cwd=root)
    except Fail:
        shutil.rmtree(data, ignore_errors=True)
        raise
    finally:
        os.unlink(pwfile)
    with open(os.path.join(data, 'postgresql.conf'), 'a') as f:
        f.write('\n# placement-server: loopback TCP only, no Unix socket\n'
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n")
    fd = os.open(layout.password, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(password + '\n')


def postmaster_pid(data):
    try:
        with open(os.path.join(data, 'postmaster.pid')) as f:
            pid = int(f.readline())
    except (OSError, ValueError):
        return None
    if alive(pid) and data in cmdline(pid):
        return pid
    return None


def pg_start(layout, bindir, root, port, max_connections):
    data, pglog = pg_paths(root)
    cmd = as_pg([os.path.join(bindir, 'pg_ctl'), '-D', data, '-l', pglog,
                 '-w', '-t', '60', '-o',
                 '-p %d -c max_connections=%d' % (port, max_connections),
                 'start'])
    with open(layout.setup_log, 'ab') as out:
        out.write(('\n$ %s\n' % ' '.join(cmd)).encode())
        out.flush()
        # Its own session: the caller's Ctrl-C or job control does not
        # reach the server.
        rc = subprocess.run(cmd, cwd=root, stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True).returncode
    pid = postmaster_pid(data)
    if rc != 0 or not pid:
        raise Fail('cannot start PostgreSQL on 127.0.0.1:%d: %s (log %s)' % (
            port, last_line(pglog, r'FATAL|ERROR|PANIC|could not'), pglog))
    return pid


def pg_stop(layout, bindir=None):
    root = layout.pg_root()
    if not root:
        return False
    data, _ = pg_paths(root)
    pid = postmaster_pid(data)
    if not pid:
        return False
    bindir = bindir or pg_bindirs().get(pg_major(root))
    if bindir:
        subprocess.run(as_pg([os.path.join(bindir, 'pg_ctl'), '-D', data,
                              '-m', 'fast', '-w', '-t', str(STOP_TIMEOUT),
                              'stop']), cwd=root, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_gone([pid], 5 if bindir else 0):
        os.kill(pid, signal.SIGQUIT)     # PostgreSQL's immediate shutdown
        if not wait_gone([pid], 10):
            for p in group_members(os.getpgid(pid)) or [pid]:
                os.kill(p, signal.SIGKILL)
            wait_gone([pid], 5)
    return True


def pg_major(root):
    try:
        with open(os.path.join(root, 'data', 'PG_VERSION')) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def ensure_database(layout, port, fresh):
    import psycopg2
    with open(layout.password) as f:
        password = f.read().strip()
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg2.connect(host='127.0.0.1', port=port, user=DB_USER,
                                    password=password, dbname='postgres',
                                    connect_timeout=5)
            break
        except psycopg2.OperationalError as e:
            if time.monotonic() > deadline:
                raise Fail('cannot connect to PostgreSQL on 127.0.0.1:%d: %s'
                           % (port, str(e).strip().splitlines()[0]))
            time.sleep(0.2)
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute('SELECT 1 FROM pg_database WHERE datname = %s',
                    (DB_NAME,))
        exists = cur.fetchone() is not None
        if exists and fresh:
            log('--fresh: dropping database %s' % DB_NAME)
            cur.execute('DROP DATABASE %s' % DB_NAME)
            exists = False
        if not exists:
            cur.execute("CREATE DATABASE %s ENCODING 'UTF8'" % DB_NAME)
    finally:
        conn.close()
    return password


# -- Placement ---------------------------------------------------------------

def sync_fingerprint():
    """What the schema and the standard traits/classes depend on."""
    import importlib.metadata as md
    return {name: md.version(name) for name in
            ('openstack-placement', 'os-traits', 'os-resource-classes')}


def schema_revision(port, password):
    import psycopg2
    conn = psycopg2.connect(host='127.0.0.1', port=port, user=DB_USER,
                            password=password, dbname=DB_NAME,
                            connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute('SELECT version_num FROM alembic_version')
        row = cur.fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def write_placement_conf(layout, settings, pg_port, password):
    threads = settings['threads']
    tuning = settings['wide_tree_tuning']
    max_cand = settings['max_allocation_candidates']
    strategy = 'breadth-first' if tuning else 'depth-first'
    optimize = 'true' if tuning else 'false'
    retries = settings['conflict_retries']
    connection = 'postgresql+psycopg2://%s:%s@127.0.0.1:%d/%s' % (
        DB_USER, password, pg_port, DB_NAME)
    text = f"""\
# Written by tools/placement-server at every start; edits are lost.
[DEFAULT]
use_stderr = true

[api]
# Tests only: any request with x-auth-token admin is an admin.
auth_strategy = noauth2

[placement_database]
connection = {connection}
# Migrations run once before the workers start (placement-server db-sync).
sync_on_startup = false
# At most one connection per worker thread, plus as many in overflow.
max_pool_size = {threads}
max_overflow = {threads}

[placement]
# Server-side retries of a claim on a provider generation conflict (1 = none).
allocation_conflict_retry_count = {retries}
# Wide provider trees (many GPUs per host, several vGPUs per request):
# cap the candidates generated and spread them across the tree.
max_allocation_candidates = {max_cand}
allocation_candidates_generation_strategy = {strategy}

[workarounds]
optimize_for_wide_provider_trees = {optimize}
"""
    os.makedirs(layout.etc, exist_ok=True)
    fd = os.open(layout.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)


def cmd_db_sync(args):
    """What `placement-manage db sync` does (alembic upgrade to head), plus
    the trait and resource-class sync each worker otherwise makes at boot,
    so that the workers do not race each other inserting them."""
    from oslo_config import cfg
    from placement import conf as placement_conf
    from placement.db.sqlalchemy import migration
    from placement import db_api
    from placement.objects import resource_class
    from placement.objects import trait
    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    conf(['--config-file', args.config_file], project='placement',
         default_config_files=[], default_config_dirs=[])
    db_api.configure(conf)
    migration.upgrade('head')
    ctx = db_api.DbContext()
    trait.ensure_sync(ctx)
    resource_class.ensure_sync(ctx)
    print('schema at %s' % migration.version())
    return 0


def gunicorn_cmd(layout, settings):
    import gunicorn.config
    known = {s.name for s in gunicorn.config.KNOWN_SETTINGS}
    threads = settings['threads']
    cmd = [sys.executable, '-m', 'gunicorn',
           '--bind', '127.0.0.1:%d' % settings['port'],
           '--workers', str(settings['workers']),
           '--threads', str(threads),
           '--worker-class', 'gthread' if threads > 1 else 'sync',
           # allocation candidates on big trees can take minutes
           '--timeout', '300', '--graceful-timeout', '10',
           '--pid', layout.pidfile, '--error-logfile', '-',
           '--name', 'placement-server',
           '--config', os.path.join(HERE, 'gunicorn.conf.py')]
    if 'control_socket_disable' in known:
        # gunicorn >= 25 opens ~/.gunicorn/gunicorn.ctl by default, shared
        # by every instance of the user.
        cmd.append('--no-control-socket')
    return cmd + ['placement.wsgi.api:application']


def gunicorn_pid(layout, state):
    """The running gunicorn master of this directory, or None."""
    candidates = [state.get('placement_pid')]
    try:
        with open(layout.pidfile) as f:
            candidates.append(int(f.read().strip()))
    except (OSError, ValueError):
        pass
    for pid in candidates:
        if pid and alive(pid):
            line = cmdline(pid)
            if 'gunicorn' in line and layout.pidfile in line:
                return pid
    return None


def placement_stop(layout, state):
    pid = gunicorn_pid(layout, state)
    pgid = state.get('placement_pgid') or pid
    if pid:
        os.kill(pid, signal.SIGTERM)          # graceful: workers finish
        wait_gone([pid], STOP_TIMEOUT)
    # Workers (and the master if TERM was not enough) are in the master's
    # own process group.
    leftovers = group_members(pgid) if pgid else []
    for p in leftovers:
        if 'gunicorn' in cmdline(p):
            os.kill(p, signal.SIGKILL)
    wait_gone(leftovers, 5)
    try:
        os.unlink(layout.pidfile)
    except OSError:
        pass
    return bool(pid or leftovers)


def wait_ready(proc, layout, url):
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        rc = proc.poll()
        if rc is not None:
            raise Fail('placement (gunicorn) exited with status %d: %s '
                       '(log %s)'
                       % (rc,
                          last_line(layout.log,
                                    r'Error|error|Exception|refused'),
                          layout.log))
        try:
            if http_get(url + '/', timeout=2) == 200:
                break
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise Fail('placement did not answer GET %s/ within %d s (log %s)'
                       % (url, READY_TIMEOUT, layout.log))
        time.sleep(0.1)
    # One call through the database.
    status = http_get(url + '/resource_providers', token='admin', timeout=30)
    if status != 200:
        raise Fail('placement answers GET / but GET /resource_providers gave '
                   '%s: %s (log %s)' % (status, last_line(
                       layout.log, r'Error|error|Exception'), layout.log))


# -- commands ----------------------------------------------------------------

class Lock:
    def __init__(self, layout):
        self.layout = layout

    def __enter__(self):
        self.fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + 600
        said = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if not said:
                    log('waiting for another placement-server command on %s'
                        % self.layout.dir)
                    said = True
                if time.monotonic() > deadline:
                    raise Fail('another placement-server command holds %s'
                               % self.layout.lock)
                time.sleep(0.2)

    def __exit__(self, *exc):
        os.close(self.fd)


def health(layout):
    """(state, placement pid, postmaster pid, answers GET /)."""
    state = layout.read_state()
    gpid = gunicorn_pid(layout, state)
    root = layout.pg_root()
    ppid = postmaster_pid(pg_paths(root)[0]) if root else None
    answers = False
    if gpid and state.get('url'):
        try:
            answers = http_get(state['url'] + '/', timeout=5) == 200
        except (OSError, urllib.error.URLError):
            pass
    return state, gpid, ppid, answers


def describe(state, gpid, ppid, layout):
    return ('running at %s: gunicorn pid %s (%s workers x %s threads), '
            'PostgreSQL pid %s on 127.0.0.1:%s, files in %s' % (
                state.get('url'), gpid, state.get('workers'),
                state.get('threads'), ppid, state.get('pg_port'), layout.dir))


def stop_all(layout, quiet=False):
    state = layout.read_state()
    stopped_placement = placement_stop(layout, state)
    stopped_pg = pg_stop(layout)
    if os.path.exists(layout.state):
        state.pop('placement_pid', None)
        state.pop('placement_pgid', None)
        state['running'] = False
        layout.write_state(state)
    if not quiet:
        if stopped_placement or stopped_pg:
            log('stopped (%s)' % ', '.join(
                w for w, s in (('placement', stopped_placement),
                               ('PostgreSQL', stopped_pg)) if s))
        else:
            log('not running')


def requested_settings(args, state):
    """What the caller asked for, None where it left the choice."""
    asked = {'port': args.port, 'workers': args.workers,
             'threads': args.threads,
             'wide_tree_tuning': args.wide_tree_tuning,
             'max_allocation_candidates': args.max_allocation_candidates,
             'conflict_retries': args.conflict_retries,
             'release': args.release}
    return {k: v for k, v in asked.items() if v is not None}


def resolve_settings(args):
    tuning = args.wide_tree_tuning is not False
    max_cand = args.max_allocation_candidates
    if max_cand is None:
        max_cand = DEFAULT_MAX_CANDIDATES if tuning else -1
    return {'port': DEFAULT_PORT if args.port is None else args.port,
            'workers': args.workers or DEFAULT_WORKERS,
            'threads': args.threads or DEFAULT_THREADS,
            'wide_tree_tuning': tuning,
            'max_allocation_candidates': max_cand,
            'conflict_retries': (DEFAULT_CONFLICT_RETRIES
                                 if args.conflict_retries is None
                                 else args.conflict_retries),
            'release': releases.installed_major()}


def cmd_start(args, layout):
    t0 = time.monotonic()
    os.makedirs(layout.dir, exist_ok=True)
    with open(layout.marker, 'a'):
        pass
    with Lock(layout):
        state, gpid, ppid, answers = health(layout)
        if gpid and ppid and answers:
            asked = requested_settings(args, state)
            if args.port == 0:
                asked.pop('port')
            differ = ['%s=%s' % (k, state.get(k)) for k, v in
                      sorted(asked.items()) if state.get(k) != v]
            if args.fresh:
                differ.append('its data (--fresh)')
            if differ:
                raise Fail('already running at %s with %s; run '
                           '`placement-server stop` first'
                           % (state['url'], ', '.join(differ)))
            log(describe(state, gpid, ppid, layout))
            print(state['url'], flush=True)
            return 0
        if gpid or ppid or state.get('running'):
            log('cleaning up what a previous start left running')
            stop_all(layout, quiet=True)
        return start_fresh(args, layout, t0)


def start_fresh(args, layout, t0):
    settings = resolve_settings(args)
    if min(settings['workers'], settings['threads'],
           settings['conflict_retries']) < 1:
        raise Fail('--workers, --threads and --conflict-retries must be at '
                   'least 1')
    if settings['port'] == 0:
        settings['port'] = free_port()
    elif not port_free(settings['port']):
        raise Fail('port %d on 127.0.0.1 is busy (another process listens '
                   'there): pass --port P, or --port 0 for a free one'
                   % settings['port'])
    times = {}
    mark = time.monotonic()
    installed = ensure_postgresql(layout)
    installed = ensure_python_packages(layout) or installed
    times['install'] = time.monotonic() - mark

    started = {}
    try:
        mark = time.monotonic()
        root = layout.pg_root()
        if root is None:
            root = make_pg_root(layout)
            bindir = pg_bindirs()[max(pg_bindirs())]
            log('initialising a PostgreSQL %s cluster in %s'
                % (os.path.basename(os.path.dirname(bindir)), root))
            initdb(layout, bindir, root)
        else:
            bindir = pg_bindirs().get(pg_major(root))
            if not bindir:
                raise Fail('the cluster in %s was made by PostgreSQL %s, '
                           'which is not installed; run `stop --purge`'
                           % (root, pg_major(root)))
            if not os.path.exists(layout.password):
                raise Fail('%s is missing, so the cluster in %s cannot be '
                           'used; run `stop --purge`'
                           % (layout.password, root))
        pg_port = free_port()
        max_conn = max(100, settings['workers'] * settings['threads'] * 2
                       + 20)
        started['pg'] = True
        ppid = pg_start(layout, bindir, root, pg_port, max_conn)
        password = ensure_database(layout, pg_port, args.fresh)
        times['postgresql'] = time.monotonic() - mark

        mark = time.monotonic()
        write_placement_conf(layout, settings, pg_port, password)
        # Skip the sync when neither the code nor the schema changed since
        # the last one (it costs a Python start and Placement's imports).
        fingerprint = sync_fingerprint()
        synced = layout.read_state().get('synced')
        if (args.fresh or synced != dict(
                fingerprint, revision=schema_revision(pg_port, password))):
            run_logged([sys.executable, os.path.abspath(__file__),
                        'db-sync', '--config-file', layout.conf], layout,
                       'placement db sync', env=clean_env(layout))
            synced = dict(fingerprint,
                          revision=schema_revision(pg_port, password))
            times['db sync'] = time.monotonic() - mark

        mark = time.monotonic()
        url = 'http://127.0.0.1:%d' % settings['port']
        with open(layout.log, 'ab') as out:
            out.write(('\n==== placement-server start %s\n' % time.strftime(
                '%Y-%m-%d %H:%M:%S')).encode())
            out.flush()
            proc = subprocess.Popen(
                gunicorn_cmd(layout, settings), cwd=layout.dir,
                env=clean_env(layout), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        started['placement'] = proc.pid
        state = dict(settings, url=url, running=True,
                     placement_pid=proc.pid, placement_pgid=proc.pid,
                     pg_port=pg_port, pg_pid=ppid, pg_data=pg_paths(root)[0],
                     synced=synced,
                     started_at=time.strftime('%Y-%m-%dT%H:%M:%S'))
        layout.write_state(state)
        wait_ready(proc, layout, url)
        times['placement'] = time.monotonic() - mark
    except BaseException as e:
        if started:
            # Leave nothing running behind a failed start.
            stop_all(layout, quiet=True)
        if isinstance(e, KeyboardInterrupt):
            raise Fail('interrupted; stopped what this start had started')
        raise
    total = time.monotonic() - t0
    log('ready in %.1f s (%s)%s' % (total, ', '.join(
        '%s %.1f s' % kv for kv in times.items()),
        ' including installs' if installed else ''))
    log(describe(state, proc.pid, ppid, layout))
    print(url, flush=True)
    return 0


def cmd_stop(args, layout):
    if not os.path.isdir(layout.dir):
        log('not running (no %s)' % layout.dir)
        return 0
    with Lock(layout):
        stop_all(layout)
        if args.purge:
            if not os.path.exists(layout.marker):
                raise Fail('%s was not made by placement-server: not '
                           'removing it' % layout.dir)
            for root in (layout.pg_inside, layout.pg_outside):
                shutil.rmtree(root, ignore_errors=True)
            for entry in os.listdir(layout.dir):
                if entry == '.lock':
                    continue
                path = os.path.join(layout.dir, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            log('removed the database and files in %s' % layout.dir)
    return 0


def cmd_status(args, layout):
    if not os.path.isdir(layout.dir):
        log('stopped (no %s)' % layout.dir)
        return 3
    state, gpid, ppid, answers = health(layout)
    if gpid and ppid and answers:
        log(describe(state, gpid, ppid, layout))
        print(state['url'], flush=True)
        return 0
    if not gpid and not ppid:
        log('stopped')
        return 3
    log('broken: placement %s, PostgreSQL %s; `start` or `stop` cleans up'
        % ('pid %s%s' % (gpid, '' if answers else ' (not answering)')
           if gpid else 'not running',
           'pid %s' % ppid if ppid else 'not running'))
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='placement-server',
        description='OpenStack Placement under gunicorn on a throw-away '
                    'PostgreSQL, on 127.0.0.1.')
    sub = parser.add_subparsers(dest='command', required=True)

    def add_dir(p):
        p.add_argument('--dir',
                       help='where the cluster, config, logs and pids live '
                            '(default: %s; .cache/placement-server-<N> with '
                            '--release N)' % DEFAULT_DIR)
        p.add_argument('--release', type=int,
                       help='the openstack-placement major release to run: '
                            '%s (default: the one this interpreter has, '
                            'from the checkout\'s extra embedded)' % ', '.join(
                                map(str, sorted(releases.RELEASES))))

    start = sub.add_parser('start', help='start (or confirm) the servers and '
                                         'print the endpoint URL')
    add_dir(start)
    start.add_argument('--port', type=int,
                       help='Placement port on 127.0.0.1 (default %d; 0 = '
                            'any free port)' % DEFAULT_PORT)
    start.add_argument('--workers', type=int,
                       help='gunicorn worker processes (default %d)'
                            % DEFAULT_WORKERS)
    start.add_argument('--threads', type=int,
                       help='threads per worker (default %d; 1 = sync '
                            'workers)' % DEFAULT_THREADS)
    start.add_argument('--fresh', action='store_true',
                       help='drop and recreate the placement database')
    start.add_argument('--wide-tree-tuning', dest='wide_tree_tuning',
                       action='store_true', default=None,
                       help='(default) [placement] max_allocation_candidates '
                            '= %d, allocation_candidates_generation_strategy'
                            ' = breadth-first, [workarounds] '
                            'optimize_for_wide_provider_trees = true'
                            % DEFAULT_MAX_CANDIDATES)
    start.add_argument('--no-wide-tree-tuning', dest='wide_tree_tuning',
                       action='store_false',
                       help='Placement\'s defaults instead (-1, depth-first, '
                            'false)')
    start.add_argument('--max-allocation-candidates', type=int,
                       help='[placement] max_allocation_candidates (default '
                            '%d with the tuning, -1 without)'
                            % DEFAULT_MAX_CANDIDATES)
    start.add_argument('--conflict-retries', type=int,
                       help='[placement] allocation_conflict_retry_count '
                            '(default %d, Placement\'s; 1 = no server-side '
                            'retry, see README)' % DEFAULT_CONFLICT_RETRIES)
    stop = sub.add_parser('stop', help='stop Placement and PostgreSQL')
    add_dir(stop)
    stop.add_argument('--purge', action='store_true',
                      help='also delete the database and every file in --dir')
    status = sub.add_parser('status', help='print the URL if running '
                                           '(exit 0), else exit 3 (1 if '
                                           'half running)')
    add_dir(status)
    dbsync = sub.add_parser('db-sync', help=argparse.SUPPRESS)
    dbsync.add_argument('--config-file', required=True)

    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.command == 'db-sync':
        return cmd_db_sync(args)
    if args.dir is None:
        args.dir = (DEFAULT_DIR if args.release is None
                    else releases.release_dir(args.release))
    if args.command == 'start' and args.release is not None:
        try:
            python = releases.venv_python(args.release)
        except releases.ReleaseError as e:
            log(str(e))
            return 1
        if python != sys.executable:
            # The release's own interpreter runs the rest (db-sync and
            # gunicorn use sys.executable).
            os.execv(python, [python, os.path.abspath(__file__)] + argv +
                     ['--dir', args.dir])
    layout = Layout(args.dir)
    try:
        return {'start': cmd_start, 'stop': cmd_stop,
                'status': cmd_status}[args.command](args, layout)
    except Fail as e:
        log(str(e))
        return 1


if __name__ == '__main__':
    sys.exit(main())
