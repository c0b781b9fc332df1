"""What the bench scripts share.

Importing this module puts the repository first on sys.path (the scripts
import ``vgpu_placement`` and ``tests`` from the checkout they sit in).
It holds:

* command line pieces: a parser from a script's docstring, the
  comma-separated sizes, ``--smoke`` (the smallest run, for CI's
  benches/smoke) and the ``command:`` line;
* figures: medians, percentiles, timing a call, key/value tables;
* builders: an embedded Placement and its client, the ``[placement]``
  section of a remote one, a simulated host (configuration, Reporter and
  MdevManager), the body of a ``PUT /allocations``.

Nothing here measures or decides anything: the scripts keep their own
baselines, targets and table layouts.
"""
import argparse
import json
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

# The [placement] section of a noauth2 Placement at URL (x-auth-token
# admin), as tools/placement-server and the loopback servers run it.
REMOTE_INI = """\
[placement]
auth_type = admin_token
endpoint = %s
token = admin
"""


# -- command line -------------------------------------------------------------

def run_bounded(cmd, cap, mem_gb, env=None, startup=120, error_chars=120):
    """Run a bench child that prints one JSON message per line, bounded.

    The child gets ``startup`` seconds for its first line and ``cap``
    seconds for each next one; then it is killed (status ``cap``). Its
    address space is capped at ``mem_gb`` GB so an exploding request fails
    instead of swapping. Returns {'messages': [...], 'status': ok|cap|error,
    'peak_gb', and 'error' (the last line it wrote to stderr) for error}.
    """
    limit = int(mem_gb * 2 ** 30)

    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    errfile = tempfile.TemporaryFile(mode='w+')
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errfile,
                            text=True, preexec_fn=preexec, env=env)
    out = {'messages': [], 'status': 'ok'}
    deadline = time.monotonic() + startup
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                out['status'] = 'cap'
                break
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                break                            # exited
            out['messages'].append(json.loads(line))
            deadline = time.monotonic() + cap
    finally:
        # Not proc.kill()/poll(): they would reap the child before wait4
        # reads its own peak resident memory (a zombie takes the signal).
        os.kill(proc.pid, signal.SIGKILL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
    out['peak_gb'] = usage.ru_maxrss / 2 ** 20
    errfile.seek(0)
    err = errfile.read()
    errfile.close()
    if out['status'] == 'ok' and returncode != 0:
        out['status'] = 'error'
        lines = [x for x in err.strip().splitlines() if x.strip()]
        out['error'] = lines[-1][:error_chars] if lines else \
            'rc %s' % returncode
    return out


def arg_parser(doc, epilog=False):
    """A parser whose description is the docstring's first line; with
    ``epilog``, the rest of the docstring is shown after the options as
    written."""
    if not epilog:
        return argparse.ArgumentParser(description=doc.splitlines()[0])
    return argparse.ArgumentParser(
        description=doc.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(doc.splitlines()[1:]))


def int_list(text):
    """'10,100' -> [10, 100] (argparse type: a bad list is a one-line
    usage error naming the value)."""
    try:
        values = [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            'want whole numbers separated by commas, got %r' % text)
    if not values:
        raise argparse.ArgumentTypeError('want at least one number')
    return values


def int_list_option(parser, text, option):
    """int_list(text), or the parser's usage error naming ``option``."""
    try:
        return int_list(text)
    except argparse.ArgumentTypeError as e:
        parser.error('argument %s: %s' % (option, e))


def add_smoke(parser, what=None, **smallest):
    """--smoke: the smallest run (CI runs every bench once with it, see
    benches/smoke); ``smallest`` are option defaults ({dest: value}), and
    options given on the command line still win; ``what`` says what else
    the script leaves out (it reads args.smoke). Parse with parse()."""
    parts = ['--%s %s' % (k.replace('_', '-'), v)
             for k, v in sorted(smallest.items())] + ([what] if what else [])
    parser.add_argument(
        '--smoke', action='store_true',
        help='the smallest run, to check that the bench works (%s); '
             'options given still apply' % ', '.join(parts))
    parser.set_defaults(_smoke_defaults=smallest)


def parse(parser, argv=None):
    """parser.parse_args, with --smoke's defaults when it is given."""
    args = parser.parse_args(argv)
    if getattr(args, 'smoke', False):
        parser.set_defaults(**args._smoke_defaults)
        args = parser.parse_args(argv)
    return args


def print_command():
    """The 'command:' line the benches start their output with."""
    print('command: %s' % ' '.join([os.path.basename(sys.executable)] +
                                   sys.argv))


# -- figures -----------------------------------------------------------------

def median(values):
    """statistics.median; NaN for no values."""
    return statistics.median(values) if values else float('nan')


def p90(values):
    """The value 90% of the way up the sorted values (rank floor(0.9 n))."""
    values = sorted(values)
    return values[min(len(values) - 1, int(0.9 * len(values)))]


def percentile(values, q):
    """Nearest rank round(q (n - 1)) of the sorted values; NaN for none."""
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def timed(func):
    """Seconds one call of func() takes."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_time(func, runs):
    """Median seconds of ``runs`` calls of func()."""
    return statistics.median(timed(func) for _ in range(runs))


def print_rows(title, rows):
    """A titled table of (name, value) rows, names aligned."""
    width = max(len(k) for k, _v in rows)
    print()
    print(title)
    print('-' * len(title))
    for k, v in rows:
        print('%-*s  %s' % (width, k, v))
    sys.stdout.flush()


def last_json_line(text):
    """The JSON document on the last line of a child's stdout."""
    return json.loads(text.strip().splitlines()[-1])


# -- Placement and hosts ----------------------------------------------------

def embedded_client(database, tuned=True):
    """A PlacementClient on the embedded Placement (SQLite ``database``,
    in this process; ``tuned``: the project's candidate options)."""
    from vgpu_placement.placement import client as client_mod
    from vgpu_placement.placement import embedded
    embedded.start(database, tuned=tuned)
    return client_mod.PlacementClient(embedded.adapter(database))


def remote_ini(url):
    """The [placement] section for a noauth2 Placement at ``url``."""
    return REMOTE_INI % url


def allocation_body(allocations, project, user):
    """The body of PUT /allocations/{new consumer}: an instance's claim
    (consumer type INSTANCE, as vgpu_placement.placement.consumers sends;
    not imported from there: report_traffic.py's Nova worker runs this in
    Nova's virtualenv)."""
    return {'allocations': allocations, 'consumer_generation': None,
            'project_id': project, 'user_id': user,
            'consumer_type': 'INSTANCE'}


def simulated_conf(profile, state_path, host, url=None, config_text='',
                   **options):
    """The configuration of a simulated host (driver ``simulated``,
    ``profile``): against the Placement at ``url`` (noauth2), or the
    embedded one when ``url`` is None. ``config_text`` and ``options`` as
    tests.conftest.make_conf takes them."""
    from tests.conftest import make_conf
    if url is None:
        options.setdefault('embedded_placement__enabled', True)
    else:
        config_text = remote_ini(url) + config_text
    return make_conf(config_text or None, driver='simulated',
                     simulated__profile=profile, state_path=state_path,
                     host=host, **options)


def reporter_and_host(conf):
    """(Reporter, MdevManager) of one host, as vgpu-placement builds them."""
    from vgpu_placement.service import standalone
    reporter = standalone.reporter_for(conf)
    return reporter, standalone.manager_for(reporter)
