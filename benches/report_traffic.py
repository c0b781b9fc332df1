#!/usr/bin/env python3
"""Placement traffic per report: ours against Nova's report client.

    python3 benches/report_traffic.py [--no-nova] [--details]

Counts the requests (reads = GET, writes = everything else) that one report
sends to Placement, on the server side, for this project's Reporter and for
Nova's SchedulerReportClient driven as Nova's resource tracker drives it,
on the same provider tree: a simulated host with 8 T4-like GPUs (equal-size
rule), once with one class (VGPU, one type enabled, Nova style) and once with
four custom classes (four types, each its CUSTOM_MDEV_<TYPE>).

Every measurement gets its own embedded Placement (a fresh SQLite database)
served over loopback HTTP by a child process of this script (``--serve``),
behind a WSGI middleware that logs each request. Nova runs in a separate
virtualenv, .cache/nova-venv, made on the first run from
benches/nova-requirements.txt (1-2 minutes), as a child process of this
script (``--nova-worker``). Exit status: 0 when every target holds, 1
otherwise.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (stdlib only: Nova's virtualenv imports it)

HERE, ROOT = common.HERE, common.ROOT
VENV = os.path.join(ROOT, '.cache', 'nova-venv')
VENV_PYTHON = os.path.join(VENV, 'bin', 'python')
NOVA_REQUIREMENTS = os.path.join(HERE, 'nova-requirements.txt')
INSTALL_LOG = os.path.join(ROOT, '.cache', 'nova-venv-install.log')

GPUS = ['0000:%02x:00.0' % bus for bus in range(0x81, 0x89)]     # 8 cards
TYPES = [   # T4-like, equal-size rule: (id, name, framebuffer MB, max, res)
    ('nvidia-230', 'GRID T4-1Q', 1024, 16, '5120x2880'),
    ('nvidia-231', 'GRID T4-2Q', 2048, 8, '7680x4320'),
    ('nvidia-232', 'GRID T4-4Q', 4096, 4, '7680x4320'),
    ('nvidia-233', 'GRID T4-8Q', 8192, 2, '7680x4320'),
]
ONE_TYPE = 'nvidia-231'
CONFIGS = [
    # (key, title, extra config, class claimed in the usage scenario)
    ('one', 'one class: [devices] enabled_mdev_types = %s -> VGPU'
     % ONE_TYPE, '[devices]\nenabled_mdev_types = %s\n' % ONE_TYPE, 'VGPU'),
    ('four', 'four custom classes: enabled_mdev_types empty, 4 types -> '
     'CUSTOM_MDEV_<TYPE>', '', 'CUSTOM_MDEV_NVIDIA_231'),
]
CREATED_ON, GONE, CLAIMED_ON = GPUS[0], GPUS[-1], GPUS[1]
HEADERS = {'x-auth-token': 'admin', 'OpenStack-API-Version': 'placement 1.39',
           'Content-Type': 'application/json'}


# -- the server: embedded Placement over HTTP, counting (project's python) --

class CountingApp:
    """WSGI middleware logging [method, path?query, status] per request.

    GET /_bench/log?since=N answers the log from entry N (not logged).
    """

    def __init__(self, app):
        self.app = app
        self.log = []

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        query = environ.get('QUERY_STRING', '')
        if path == '/_bench/log':
            since = int(urllib.parse.parse_qs(query).get('since', ['0'])[0])
            body = json.dumps({'n': len(self.log),
                               'entries': self.log[since:]}).encode()
            start_response('200 OK', [('Content-Type', 'application/json'),
                                      ('Content-Length', str(len(body)))])
            return [body]
        status = []

        def counting_start_response(st, headers, exc_info=None):
            status.append(int(st.split()[0]))
            return start_response(st, headers, exc_info)

        result = list(self.app(environ, counting_start_response))
        self.log.append([environ['REQUEST_METHOD'],
                         path + ('?' + query if query else ''),
                         status[0] if status else 0])
        return result


def serve(database):
    """Serve a fresh embedded Placement on 127.0.0.1 until stdin closes."""
    import threading
    from wsgiref import simple_server

    from vgpu_placement.placement import embedded

    class Quiet(simple_server.WSGIRequestHandler):
        def log_message(self, *args):
            pass

    embedded.start(database)
    app = CountingApp(embedded._started[os.path.abspath(database)][1])
    httpd = simple_server.make_server('127.0.0.1', 0, app,
                                      handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    print('http://127.0.0.1:%d' % httpd.server_port, flush=True)
    sys.stdin.read()
    httpd.shutdown()
    httpd.server_close()


def server_log(url, since=0):
    with urllib.request.urlopen('%s/_bench/log?since=%d' % (url, since),
                                timeout=60) as resp:
        return json.load(resp)


def claim(url, rp_uuid, resource_class):
    """PUT /allocations by 'another client' (a scheduler): one unit."""
    body = common.allocation_body(
        {rp_uuid: {'resources': {resource_class: 1}}}, 'bench-project',
        'bench-user')
    req = urllib.request.Request(
        '%s/allocations/%s' % (url, uuid.uuid4()), method='PUT',
        data=json.dumps(body).encode(), headers=HEADERS)
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 204, resp.status


def tally(entries):
    reads = sum(1 for e in entries if e[0] == 'GET')
    return {'reads': reads, 'writes': len(entries) - reads,
            'entries': entries}


class Server:
    """A --serve child process with a fresh database in ``tmp``."""

    def __init__(self, tmp, label):
        self.log_path = os.path.join(tmp, 'server-%s.log' % label)
        self.stderr = open(self.log_path, 'w')
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--serve',
             os.path.join(tmp, 'placement-%s.sqlite' % label)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith('http://'):
            self.close()
            raise RuntimeError('Placement server did not start; see %s'
                               % self.log_path)

    def count(self):
        return server_log(self.url, 10 ** 9)['n']

    def since(self, n):
        return server_log(self.url, n)['entries']

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(30)
        except Exception:
            self.proc.kill()
        self.stderr.close()


# -- our side (project's python) ------------------------------------------

def write_profile(path):
    lines = ['# bench: 8 T4-like cards, equal-size rule, four types',
             'parents:']
    for gpu in GPUS:
        lines += ['  - name: "%s"' % gpu,
                  '    capacity: {rule: exclusive, errno: ENOSPC}',
                  '    types:']
        for type_id, name, size, maximum, res in TYPES:
            lines.append(
                '      - {id: %s, name: %s, size: %d, max: %d, description: '
                '"num_heads=4, frl_config=60, framebuffer=%dM, '
                'max_resolution=%s, max_instance=%d"}'
                % (type_id, name, size, maximum, size, res, maximum))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def tree_of(reporter, host):
    """What Placement holds for our host's children after a report (the
    cache equals it then): {name suffix: {inventories, traits}}."""
    root = reporter.cache.root_uuid
    return {name[len(host) + 1:]: {'inventories': p.inventories,
                                   'traits': sorted(p.traits)}
            for name, (_u, p) in reporter.cache.children().items()
            if p.parent == root}


def run_ours(tmp, key, extra_ini, claim_class):
    from vgpu_placement.placement import provider_tree
    from vgpu_placement.service import standalone

    host = 'ours-%s' % key
    profile = os.path.join(tmp, 'profile-8xT4.yaml')
    write_profile(profile)
    state = os.path.join(tmp, 'state-%s' % key)
    os.makedirs(state)
    server = Server(tmp, 'ours-%s' % key)
    try:
        conf = common.simulated_conf(profile, state, host, url=server.url,
                                     config_text=extra_ini,
                                     create_root_provider=True)
        rows, plan = [], []
        reporters = {}

        def scenario(label, nova_label, client, make_reporter=None,
                     before=None, check=None):
            if before:
                before()
            n0 = server.count()
            if make_reporter:
                reporters['r'] = standalone.reporter_for(conf)
            result = reporters['r'].report()
            counts = tally(server.since(n0))
            counts['client'] = result.requests.as_dict()
            counts['changed'] = len({c.provider for c in result.changes})
            counts['changes'] = [c.as_dict() for c in result.changes]
            counts['check'] = check() if check else None
            rows.append(dict(counts, label=label))
            plan.append({'label': label, 'nova_label': nova_label,
                         'client': client, 'claim': None,
                         'children': tree_of(reporters['r'], host)})

        def uuid_of(gpu):
            return str(uuid.uuid5(provider_tree.PROVIDER_NAMESPACE,
                                  provider_tree.provider_name(host, gpu)))

        def do_claim():
            claim(server.url, uuid_of(CLAIMED_ON), claim_class)

        def noticed():
            usages = reporters['r'].cache.get(uuid_of(CLAIMED_ON)).usages
            return usages.get(claim_class) == 1

        scenario('first report', 'first sync', 'new', make_reporter=True)
        scenario('no change, same Reporter', 'no change, same client',
                 'same')
        scenario('no change, new Reporter (restart)',
                 'no change, new client (restart)', 'new',
                 make_reporter=True)
        scenario('no change, 5 min later', 'no change, associations '
                 'stale ([compute] resource_provider_association_refresh '
                 '= 300 s elapsed)', 'same')
        plan[-1]['age_associations'] = True
        scenario('one mdev created (GPU 1)', 'one inventory changed',
                 'same', before=lambda: reporters['r'].driver.create_mdev(
                     CREATED_ON, ONE_TYPE, str(uuid.uuid4())))
        scenario('one parent gone (GPU 8 unplugged)',
                 'one GPU child removed', 'same',
                 before=lambda: reporters['r'].driver.unplug_parent(GONE))
        scenario('usage changed in Placement (claim on GPU 2)',
                 'same claim, then sync', 'same', before=do_claim,
                 check=noticed)
        plan[-1]['claim'] = {'suffix': provider_tree.provider_name(
            'x', CLAIMED_ON)[2:], 'rc': claim_class}
        scenario('no change, that claim still pending',
                 'no change (claim pending)', 'same')
        return rows, plan
    finally:
        server.close()


# -- Nova's side (runs in .cache/nova-venv's python) -----------------------

def nova_worker(plan_path):
    """Drive nova's SchedulerReportClient as ResourceTracker does."""
    import logging
    import warnings
    warnings.simplefilter('ignore')
    logging.basicConfig(level=logging.ERROR)

    with open(plan_path) as f:
        plan = json.load(f)
    url, host = plan['url'], plan['host']
    conf_file = plan_path + '.nova.conf'
    with open(conf_file, 'w') as f:
        f.write(common.remote_ini(url))

    import nova.conf
    from nova import context as nova_context
    from nova import exception
    from nova.scheduler.client import report

    CONF = nova.conf.CONF
    CONF(['--config-file', conf_file], project='nova',
         default_config_files=[])
    ctx = nova_context.get_admin_context()
    root_uuid = str(uuid.uuid4())      # the compute node's uuid
    prefix = host + '_'

    def driver_update_provider_tree(tree, children):
        """What a virt driver's update_provider_tree does: children per
        GPU with their inventories and traits; gone GPUs removed."""
        for suffix, want in sorted(children.items()):
            name = prefix + suffix
            if not tree.exists(name):
                tree.new_child(name, host)
            tree.update_inventory(name, want['inventories'])
            tree.update_traits(name, want['traits'])
        for u in tree.get_provider_uuids(host)[1:]:
            name = tree.data(u).name
            if name[len(prefix):] not in children:
                tree.remove(name)

    def update_to_placement(client, children):
        """ResourceTracker._update_to_placement, retried (4 attempts) on a
        generation conflict like its @retrying decorator; the compute
        capability traits of the root and PCI-in-placement are left out
        (our root has no traits or inventories either)."""
        for attempt in range(1, 5):
            try:
                tree = client.get_provider_subtree_and_ensure_root(
                    ctx, root_uuid, name=host)
                client.get_allocations_for_provider_tree(ctx, host)
                driver_update_provider_tree(tree, children)
                client.update_from_provider_tree(ctx, tree)
                return attempt
            except (exception.ResourceProviderUpdateConflict,
                    exception.PlacementReshapeConflict):
                if attempt == 4:
                    raise
        return None

    results = []
    client = None
    for sc in plan['scenarios']:
        children = sc['children']
        if not plan['traits']:
            children = {s: dict(c, traits=[]) for s, c in children.items()}
        if sc['claim']:
            name = prefix + sc['claim']['suffix']
            claim(url, client._provider_tree.data(name).uuid,
                  sc['claim']['rc'])
        if sc.get('age_associations'):
            # As if the refresh interval had passed since the last one.
            client._association_refresh_time = {
                u: 0 for u in client._association_refresh_time}
        n0 = server_log(url, 10 ** 9)['n']
        if sc['client'] == 'new' or client is None:
            client = report.SchedulerReportClient()
        attempts = update_to_placement(client, children)
        counts = tally(server_log(url, n0)['entries'])
        counts.update(label=sc['nova_label'], attempts=attempts)
        results.append(counts)
    print(json.dumps(results))


# -- the nova virtualenv -------------------------------------------------

def nova_importable():
    if not os.path.exists(VENV_PYTHON):
        return False
    check = subprocess.run(
        [VENV_PYTHON, '-c', 'import nova.scheduler.client.report, '
         'nova.compute.provider_tree, nova.context'],
        capture_output=True, text=True)
    return check.returncode == 0


def ensure_nova_venv():
    """Return None if nova is usable, else one line saying why not."""
    if nova_importable():
        return None
    print('creating %s from %s (once; 1-2 minutes) ...'
          % (os.path.relpath(VENV, ROOT), os.path.relpath(
              NOVA_REQUIREMENTS, ROOT)), flush=True)
    start = time.perf_counter()
    os.makedirs(os.path.dirname(VENV), exist_ok=True)
    with open(INSTALL_LOG, 'w') as log:
        steps = [('python3 -m venv', [sys.executable, '-m', 'venv', '--clear',
                                      VENV]),
                 ('pip install -r ' + os.path.basename(NOVA_REQUIREMENTS),
                  [os.path.join(VENV, 'bin', 'pip'), 'install',
                   '--disable-pip-version-check', '-r', NOVA_REQUIREMENTS])]
        for what, cmd in steps:
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT
                              ).returncode != 0:
                log.flush()
                with open(INSTALL_LOG) as f:
                    tail = [line.strip() for line in f if line.strip() and
                            not line.startswith('WARNING: Location')][-1:]
                return '%s failed (%s); log: %s' % (
                    what, tail[0] if tail else 'no output', INSTALL_LOG)
    if not nova_importable():
        err = subprocess.run(
            [VENV_PYTHON, '-c', 'import nova.scheduler.client.report'],
            capture_output=True, text=True).stderr.strip().splitlines()
        return 'nova does not import in %s: %s' % (
            VENV, err[-1] if err else '?')
    print('nova venv ready in %.0f s' % (time.perf_counter() - start),
          flush=True)
    return None


def run_nova(tmp, key, plan, traits=True):
    label = 'nova-%s%s' % (key, '' if traits else '-notraits')
    server = Server(tmp, label)
    try:
        plan_path = os.path.join(tmp, 'plan-%s.json' % label)
        with open(plan_path, 'w') as f:
            json.dump({'url': server.url, 'host': label, 'traits': traits,
                       'scenarios': plan}, f)
        proc = subprocess.run([VENV_PYTHON, os.path.abspath(__file__),
                               '--nova-worker', plan_path],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()
            raise RuntimeError('nova worker failed: %s' % (
                tail[-1] if tail else proc.returncode))
        return common.last_json_line(proc.stdout)
    finally:
        server.close()


# -- the table ------------------------------------------------------------

def is_alloc_read(entry):
    """Reads the resource tracker makes for allocations
    (get_allocations_for_provider_tree), not for the tree itself."""
    method, path = entry[0], entry[1].split('?')[0]
    return method == 'GET' and (path.endswith('/allocations') or
                                path.startswith('/allocations/'))


def fmt(counts):
    return '%d/%d/%d' % (counts['reads'], counts['writes'],
                         counts['reads'] + counts['writes'])


def verdict(i, ours, nova, key):
    """(met, why) for row i against its targets."""
    total = ours['reads'] + ours['writes']
    problems = []
    if ours['client'] != {'reads': ours['reads'], 'writes': ours['writes']}:
        problems.append('own count differs from the server\'s')
    # A provider with claims not yet realized gets its usages read again
    # (a release by DELETE bumps no generation: placement/consumers.py),
    # and a custom trait or class is created once per Placement.
    usage_reads = sum(1 for e in ours['entries'] if e[0] == 'GET' and
                      e[1].split('?')[0].endswith('/usages'))
    new_names = sum(1 for e in ours['entries'] if e[0] == 'PUT' and (
        '/traits/' in e[1] or '/resource_classes/' in e[1]))
    if ours['label'].startswith('no change'):
        if ours['writes'] or ours['reads'] > 1 + usage_reads:
            problems.append('want 0 writes, <=1 read (+1 per provider '
                            'with claims pending)')
    elif i > 0 and ours['writes'] > len(ours['changes']) + new_names:
        problems.append('%d writes for %d changes'
                        % (ours['writes'], len(ours['changes'])))
    if ours['check'] is False:
        problems.append('claim not noticed')
    if nova is not None:
        nova_total = nova['reads'] + nova['writes']
        if total > nova_total:
            problems.append('more than Nova RT (%d > %d)'
                            % (total, nova_total))
        elif key == 'four' and i == 0 and total >= nova_total:
            problems.append('not fewer than Nova with custom classes')
    return not problems, '; '.join(problems)


def rc_only(nova):
    """Nova's figures without the resource tracker's allocation reads."""
    return tally([e for e in nova['entries'] if not is_alloc_read(e)])


def print_table(title, key, ours_rows, nova_rows, details):
    print()
    print('== %s' % title)
    head = ('scenario', 'ours r/w/tot', 'own count', 'changed',
            'Nova RT r/w/tot', 'Nova RC r/w/tot', 'vs RC', 'target met?')
    widths = (43, 12, 9, 11, 15, 15, 5)
    print(' | '.join(h.ljust(w) for h, w in zip(head, widths + (0,))))
    print('-|-'.join('-' * w for w in widths + (11,)))
    all_met = True
    for i, ours in enumerate(ours_rows):
        nova = nova_rows[i] if nova_rows else None
        met, why = verdict(i, ours, nova, key)
        all_met &= met
        changed = str(ours['changed'])
        if ours['check'] is not None:
            changed += ', noticed' if ours['check'] else ', MISSED'
        versus = 'n/a'
        if nova:
            rc = rc_only(nova)
            mine, theirs = (ours['reads'] + ours['writes'],
                            rc['reads'] + rc['writes'])
            versus = '<' if mine < theirs else '=' if mine == theirs else '>'
        cells = (ours['label'], fmt(ours), '%(reads)d/%(writes)d'
                 % ours['client'], changed,
                 fmt(nova) if nova else 'n/a',
                 fmt(rc_only(nova)) if nova else 'n/a', versus)
        print(' | '.join(c.ljust(w) for c, w in zip(cells, widths)) +
              ' | ' + ('yes' if met else 'NO: ' + why))
    if details:
        for i, ours in enumerate(ours_rows):
            print('\n-- %s' % ours['label'])
            print('   ours:', ', '.join('%s %s %s' % tuple(e)
                                        for e in ours['entries']) or '-')
            for c in ours['changes']:
                print('      change: %(action)s %(provider)s %(detail)s' % c)
            if nova_rows:
                print('   nova (%s, %d attempt(s)):' % (
                    nova_rows[i]['label'], nova_rows[i]['attempts']),
                    ', '.join('%s %s %s' % tuple(e)
                              for e in nova_rows[i]['entries']) or '-')
    return all_met


NOTES = """\
GPU 1..8 = 0000:81:00.0 .. 0000:88:00.0; the mdev is a %s, the claim one unit
of the row's class (VGPU / CUSTOM_MDEV_NVIDIA_231) by another client.
[capacity] shared_counters = true (default): it adds classes for pool-model
parents only, and these equal-size parents get none.
r/w/tot = reads (GET) / writes (PUT, POST, DELETE) / total, counted by the
server; own count = the Reporter's result.requests (reads/writes).
changed = providers the report changed; "noticed" = the claimed unit is in
our cached usages after the report.
Nova RT = what ResourceTracker._update_to_placement sends to Placement:
get_provider_subtree_and_ensure_root + get_allocations_for_provider_tree +
update_from_provider_tree, retried on a generation conflict, one client
object kept across periods (a new one on restart), fed the same tree as ours
(children, inventory records, traits). Nova RC = those figures less the
allocation reads (GET .../allocations), i.e. the report client's tree sync
alone; "vs RC" compares our total with it. "target met?" compares with
Nova RT. A new Nova client first sends GET / (openstacksdk version
discovery), counted.""" % ONE_TYPE


def main():
    parser = common.arg_parser(__doc__)
    parser.add_argument('--no-nova', action='store_true',
                        help="print only the project's figures")
    parser.add_argument('--details', action='store_true',
                        help='list every request of every scenario')
    parser.add_argument('--install-nova', action='store_true',
                        help='only make .cache/nova-venv (nova 34.0.0, for '
                             'this bench and tests/functional/'
                             'test_beside_nova.py) and exit')
    parser.add_argument('--serve', help=argparse.SUPPRESS)
    parser.add_argument('--nova-worker', help=argparse.SUPPRESS)
    common.add_smoke(parser, what='only the first configuration, no '
                     'calibration without traits')
    args = common.parse(parser)
    if args.install_nova:
        reason = ensure_nova_venv()
        if reason:
            print('nova venv: %s' % reason, file=sys.stderr)
        return 1 if reason else 0
    if args.serve:
        return serve(args.serve)
    if args.nova_worker:
        return nova_worker(args.nova_worker)

    start = time.perf_counter()
    nova_reason = 'skipped (--no-nova)' if args.no_nova else None
    if nova_reason is None:
        nova_reason = ensure_nova_venv()
    tmp = tempfile.mkdtemp(prefix='bench-traffic-')
    all_met = True
    calibration = {}
    for key, title, extra_ini, claim_class in (
            CONFIGS[:1] if args.smoke else CONFIGS):
        ours_rows, plan = run_ours(tmp, key, extra_ini, claim_class)
        nova_rows = None
        if nova_reason is None:
            try:
                nova_rows = run_nova(tmp, key, plan)
                if not args.smoke:
                    calibration[key] = run_nova(tmp, key, plan,
                                                traits=False)
            except Exception as e:          # reported below
                nova_reason = str(e)
                nova_rows = None
        all_met &= print_table(title, key, ours_rows, nova_rows,
                               args.details)
    print()
    print(NOTES)
    if calibration:
        def pick(rows, label):
            row = next(r for r in rows if r['label'] == label)
            discovery = sum(1 for e in row['entries'] if e[1] == '/')
            return '%s (%d without GET /; RC %s)' % (
                fmt(row), row['reads'] + row['writes'] - discovery,
                fmt(rc_only(row)))
        print('Nova RT on the same trees without traits (the issue\'s '
              'setup):')
        for key, rows in calibration.items():
            print('  %s: first sync %s, one inventory changed %s' % (
                key, pick(rows, 'first sync'),
                pick(rows, 'one inventory changed')))
    if nova_reason is None:
        print('nova 34.0.0 from %s' % os.path.relpath(VENV, ROOT))
    else:
        print("Nova's figures could not be measured: %s" % nova_reason)
    print('targets %s; %.0f s' % ('all met' if all_met else 'NOT all met',
                                  time.perf_counter() - start))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all_met else 1


if __name__ == '__main__':
    sys.exit(main())
