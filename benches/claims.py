#!/usr/bin/env python3
"""Claims per second: the project's claim path against raw Placement calls.

N hosts of 8 GPUs in the real embedded OpenStack Placement (SQLite file,
in-process). --layout simple (default): a root provider with 8 children,
each with one vGPU class inventory of 24 (CUSTOM_MDEV_NVIDIA_558, A40-2Q)
and its type trait. --layout agent: every host is what the agent itself
reports for an 8-GPU A40-like host (the sysfs driver on a synthetic tree of
8 GPUs x 32 VFs x 24 types, no mdevs yet): per GPU 24 type classes, the
shared-counter classes and the traits; the flavor is the one
flavor.extra_specs_for_type gives for nvidia-601 (A40-2Q). For each
size, in one process and against one Placement:

Sustained throughput (the target), --windows windows of --window seconds
per path, alternating (a d, d a, ...), each path claiming back to back:

  (a) raw PUT     PUT /allocations/{consumer} of the candidates of a GET
                  /allocation_candidates made before the window (the raw
                  path gets its candidates for free), the next one on 409;
  (d) project     a new placement.scheduler.Scheduler per window (what
      Scheduler   a scheduler service keeps): its GETs are timed, its
                  candidates remembered for --max-age seconds and claimed
                  from, its own claims added to the usage it remembers, a
                  409 skips the provider until the next query.

One claim at a time, interleaved claim by claim (a b c, b c a, ...):

  (a) raw PUT     as above, from a GET made before the round;
  (b) project     placement.scheduler.claim(), the one-shot path of
      one-shot    `vgpu-placement claim`: GET /allocation_candidates with
                  the project's query and limit, rank, PUT;
  (c) raw GET+PUT GET /allocation_candidates with the same query + PUT of
                  the first candidate: what a scheduler asking every time
                  must do.

The target is judged on (d), the path a scheduler service takes; the
one-shot (b) is bound by Placement's own GET /allocation_candidates
(--profile shows where its time goes) and (b)/(a) is printed beside it.
(a) spreads its PUTs round-robin over the candidates while (d) packs
them onto the fullest GPU; both make the same PUT.

All go through the same PlacementClient (same transport, same
microversion). Claims are released (DELETE /allocations, untimed) after
every round and window, so capacity never runs out. Prints claims/s, the
ratio (d)/(a) (target >= 0.8), latency per claim and the ratios (b)/(a),
(b)/(c), and the time each path spends in each Placement request.

The trees are built once per size in a separate process. --build clone
(default) creates one host through the Placement API (simple) or the
agent's report (agent) and copies its rows with SQL for the others
(seconds for 1000 hosts); --build api creates every host through the API
(simple layout only; about 0.2 s per host, 3.5 min for 1000).
Each size is measured in its own process on a copy of the database.

    python3 benches/claims.py                      # 10 and 100 hosts, ~3 min
    python3 benches/claims.py --hosts 10,100,1000  # full run, ~8 min
    python3 benches/claims.py --layout agent --hosts 10,100,1000 --rounds 5 \
        --claims 5                                 # the agent's trees, ~5 min
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

GPUS = 8
PER_GPU = 24                       # A40-2Q: 24 per 48 GB card
TYPE_ID = 'nvidia-558'
RC = 'CUSTOM_MDEV_NVIDIA_558'      # the class the agent reports for it
TRAIT = 'CUSTOM_MDEV_TYPE_NVIDIA_558'
MANAGED = 'CUSTOM_VGPU_PLACEMENT_MANAGED'
HOST = 'bench-h%05d'
PROJECT, USER = 'bench-project', 'bench-user'
NAMESPACE = uuid.UUID('4f1b1d7e-8e0e-4b43-9d0a-6b3c1f3c0b11')
AGENT_TYPE = 'nvidia-601'          # A40-2Q in benches/discovery.py's types
MODES = 'abc'                      # interleaved claim by claim


def host_name(i):
    return HOST % i


def gpu_name(i, g):
    return '%s_gpu%d' % (host_name(i), g)


def rp_uuid(name):
    return str(uuid.uuid5(NAMESPACE, name))


# -- building the trees -------------------------------------------------------

def count_hosts(db):
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT count(*) FROM resource_providers WHERE "
            "parent_provider_id IS NULL AND name LIKE 'bench-h%'"
        ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _api_build(db, hosts):
    """In a process of its own: hosts [have, hosts) through the API."""
    have = count_hosts(db)
    client = common.embedded_client(db)
    client.put('/resource_classes/' + RC, None)
    for trait in (TRAIT, MANAGED):
        client.put('/traits/' + trait, None)
    for i in range(have, hosts):
        root = rp_uuid(host_name(i))
        client.post('/resource_providers', {'name': host_name(i),
                                            'uuid': root})
        for g in range(GPUS):
            u = rp_uuid(gpu_name(i, g))
            rp = client.post('/resource_providers', {
                'name': gpu_name(i, g), 'uuid': u,
                'parent_provider_uuid': root})
            inv = client.put('/resource_providers/%s/inventories' % u, {
                'resource_provider_generation': rp['generation'],
                'inventories': {RC: {'total': PER_GPU, 'max_unit': PER_GPU}}})
            client.put('/resource_providers/%s/traits' % u, {
                'resource_provider_generation':
                    inv['resource_provider_generation'],
                'traits': [MANAGED, TRAIT]})


def _agent_build(db):
    """In a process of its own: host 0 as the agent reports it; the
    flavor's extra specs for AGENT_TYPE go to <db>.json."""
    import discovery
    from tests.conftest import make_conf
    from vgpu_placement.placement import flavor
    from vgpu_placement.service import standalone
    work = tempfile.mkdtemp(prefix='bench-agent-host-')
    try:
        tree = discovery.build_host(os.path.join(work, 'sys'), GPUS,
                                    mdevs=False)
        conf = make_conf(driver='sysfs', sysfs__root=tree.root,
                         state_path=os.path.join(work, 'state'),
                         host=host_name(0), embedded_placement__enabled=True,
                         embedded_placement__database=db)
        result = standalone.reporter_for(conf).report()
        assert len(result.desired.children) == GPUS
        spec = flavor.extra_specs_for_type(result.desired, AGENT_TYPE)
        with open(db + '.json', 'w') as f:
            json.dump(spec['extra_specs'], f)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_specs(db, layout):
    """The flavor's extra specs (one vGPU, group 1) for this layout."""
    if layout == 'agent':
        with open(db + '.json') as f:
            return json.load(f)
    return {'resources1:%s' % RC: '1', 'trait1:%s' % TRAIT: 'required'}


def _clone(db, hosts):
    """Copy host 0's rows (made through the API) for hosts [have, hosts).

    Same columns, same values but names, uuids and ids: what the API
    writes for a new host, without 25 HTTP requests and transactions.
    """
    con = sqlite3.connect(db)
    try:
        cur = con.cursor()
        root0 = cur.execute(
            'SELECT id, created_at, updated_at, generation FROM '
            'resource_providers WHERE name = ?', (host_name(0),)).fetchone()
        children = cur.execute(
            'SELECT id, name, created_at, updated_at, generation FROM '
            'resource_providers WHERE parent_provider_id = ? ORDER BY id',
            (root0[0],)).fetchall()
        invs = {c[0]: cur.execute(
            'SELECT created_at, updated_at, resource_class_id, total, '
            'reserved, min_unit, max_unit, step_size, allocation_ratio FROM '
            'inventories WHERE resource_provider_id = ?', (c[0],)).fetchall()
            for c in children}
        traits = {c[0]: cur.execute(
            'SELECT created_at, updated_at, trait_id FROM '
            'resource_provider_traits WHERE resource_provider_id = ?',
            (c[0],)).fetchall() for c in children}
        have = count_hosts(db)
        next_id = cur.execute(
            'SELECT max(id) FROM resource_providers').fetchone()[0] + 1
        for i in range(have, hosts):
            root_id = next_id
            next_id += 1
            cur.execute(
                'INSERT INTO resource_providers (created_at, updated_at, id, '
                'uuid, name, generation, root_provider_id, '
                'parent_provider_id) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)',
                (root0[1], root0[2], root_id, rp_uuid(host_name(i)),
                 host_name(i), root0[3], root_id))
            for g, (cid, _name, created, updated, gen) in enumerate(
                    children):
                child_id = next_id
                next_id += 1
                cur.execute(
                    'INSERT INTO resource_providers (created_at, updated_at, '
                    'id, uuid, name, generation, root_provider_id, '
                    'parent_provider_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    (created, updated, child_id, rp_uuid(gpu_name(i, g)),
                     gpu_name(i, g), gen, root_id, root_id))
                for row in invs[cid]:
                    cur.execute(
                        'INSERT INTO inventories (created_at, updated_at, '
                        'resource_provider_id, resource_class_id, total, '
                        'reserved, min_unit, max_unit, step_size, '
                        'allocation_ratio) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '
                        '?, ?)', (row[0], row[1], child_id) + row[2:])
                for row in traits[cid]:
                    cur.execute(
                        'INSERT INTO resource_provider_traits (created_at, '
                        'updated_at, trait_id, resource_provider_id) VALUES '
                        '(?, ?, ?, ?)', (row[0], row[1], row[2], child_id))
        con.commit()
    finally:
        con.close()


def build(db, hosts, method='clone', layout='simple'):
    """Grow the database at ``db`` to ``hosts`` hosts; returns seconds."""
    if layout == 'agent' and method != 'clone':
        raise ValueError('--layout agent is built by clone only')
    start = time.perf_counter()
    if count_hosts(db) < hosts:
        target = 1 if method == 'clone' else hosts
        env = dict(os.environ)
        # Durability is not needed while building; it changes nothing
        # stored (the measuring processes run with the default).
        env['OS_PLACEMENT_DATABASE__SQLITE_SYNCHRONOUS'] = 'False'
        if count_hosts(db) < target:
            subprocess.run([sys.executable, os.path.abspath(__file__),
                            '--_build', db, '--hosts', str(target),
                            '--layout', layout], check=True, env=env)
        if method == 'clone':
            _clone(db, hosts)
    return time.perf_counter() - start


def check_tree(client, hosts):
    """Placement sees every host as built (a check of the clone)."""
    got = client.get('/resource_providers?required=%s' % MANAGED)
    gpus = len(got['resource_providers'])
    assert gpus == hosts * GPUS, (gpus, hosts)
    root0 = client.get('/resource_providers?name=%s' % host_name(0))
    first = [rp for rp in client.get('/resource_providers?in_tree=%s' % (
        root0['resource_providers'][0]['uuid']))['resource_providers']
        if rp['parent_provider_uuid']]
    assert len(first) == GPUS, first
    if hosts > 1:
        last = rp_uuid(gpu_name(hosts - 1, GPUS - 1))
        for what in ('inventories', 'traits'):
            want = client.get('/resource_providers/%s/%s' % (
                first[-1]['uuid'], what))
            got = client.get('/resource_providers/%s/%s' % (last, what))
            want.pop('resource_provider_generation')
            got.pop('resource_provider_generation')
            if what == 'traits':
                want, got = sorted(want['traits']), sorted(got['traits'])
            assert want == got, (what, want, got)
        tree = client.get('/resource_providers?in_tree=%s' % last)
        assert len(tree['resource_providers']) == GPUS + 1, tree


def add_tree_options(parser):
    """--build, --layout, --tree-dir: how the hosts' database is made
    (claims.py and candidates.py)."""
    parser.add_argument('--build', choices=('clone', 'api'),
                        default='clone',
                        help='how hosts 1..N-1 are made (default clone)')
    parser.add_argument('--layout', choices=('simple', 'agent'),
                        default='simple',
                        help='what one host looks like in Placement '
                             '(default simple)')
    parser.add_argument('--tree-dir', metavar='DIR',
                        help='keep the built database here and reuse it '
                             '(default: a temporary directory)')


def tree_dir(args, prefix):
    """(work directory, the hosts' database in it) for these options."""
    work = args.tree_dir or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(work, exist_ok=True)
    return work, os.path.join(work, 'hosts-%s-%s.sqlite' % (args.layout,
                                                            args.build))


def grow(master, hosts, args):
    """Make ``master`` hold ``hosts`` hosts (a cached database bigger than
    asked is started again): (hosts it had, seconds it took)."""
    have = count_hosts(master)
    if have > hosts:
        os.unlink(master)
        have = 0
    return have, build(master, hosts, args.build, args.layout)


# -- measuring ---------------------------------------------------------------

median = common.median
p90 = common.p90


class TimedClient:
    """Wraps a PlacementClient's request() to add up time per request,
    per mode (a few microseconds per request, on every mode alike)."""

    def __init__(self, client):
        self.client = client
        self.mode = None
        self.spent = {}
        self._orig = client.request
        client.request = self._request

    def _request(self, method, path, *a, **kw):
        key = '%s /%s' % (method, path.split('?')[0].split('/')[1])
        if path.startswith('/allocations/'):
            key += '/{consumer}'
        start = time.perf_counter()
        try:
            return self._orig(method, path, *a, **kw)
        finally:
            per_mode = self.spent.setdefault(self.mode, {})
            n, t = per_mode.get(key, (0, 0.0))
            per_mode[key] = (n + 1, t + time.perf_counter() - start)


def package_shares(stats):
    """cProfile tottime summed per package: {package: seconds}."""
    shares = {}
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in \
            stats.stats.items():
        if filename == '~':
            # "<method 'execute' of 'sqlite3.Cursor' objects>",
            # "<built-in method _sqlite3.connect>"
            name = func.strip('<>')
            if ' of ' in name:
                name = name.split(' of ')[1].strip("'").split("'")[0]
            else:
                name = name.split()[-1]
            pkg = 'C: ' + name.split('.')[0].lstrip('_')
        elif '/vgpu_placement/' in filename:
            pkg = 'vgpu_placement'
        elif 'site-packages/' in filename:
            pkg = filename.split('site-packages/')[1].split('/')[0]
        else:
            pkg = 'stdlib'
        shares[pkg] = shares.get(pkg, 0.0) + tt
    return shares


def _measure(args):
    from vgpu_placement import exceptions
    from vgpu_placement.placement import flavor
    from vgpu_placement.placement import scheduler

    client = common.embedded_client(args._measure, tuned=not args.untuned)
    check_tree(client, args.size)
    request = flavor.parse_extra_specs(json.loads(args.specs))
    query = request.query(limit=args.limit)

    def put(consumer, allocations):
        client.put('/allocations/%s' % consumer,
                   common.allocation_body(allocations, PROJECT, USER))

    def claim_a(consumer, cands, i):
        # A candidate from the GET made before the round; one another
        # mode filled meanwhile is skipped (rare: counted in the time).
        for j in range(len(cands)):
            try:
                return put(consumer, cands[(i + j) % len(cands)])
            except exceptions.PlacementConflict:
                continue
        raise RuntimeError('(a) found no candidate with room')

    def claim_b(consumer):
        scheduler.claim(client, request, consumer, PROJECT, USER,
                        limit=args.limit)

    def claim_c(consumer):
        got = client.get('/allocation_candidates?' + query)
        put(consumer, got['allocation_requests'][0]['allocations'])

    timed = TimedClient(client)

    def one_round(n, r=0):
        """n claims of each mode, interleaved (a b c, b c a, c a b, ...);
        per mode the per-claim seconds. Everything released after."""
        timed.mode = 'setup'
        found = client.get('/allocation_candidates?' + query)
        cands = [c['allocations'] for c in found['allocation_requests']]
        times = {m: [] for m in MODES}
        consumers = []
        for i in range(n):
            k = (r + i) % len(MODES)
            for mode in MODES[k:] + MODES[:k]:
                consumer = str(uuid.uuid4())
                consumers.append(consumer)
                timed.mode = mode
                start = time.perf_counter()
                if mode == 'a':
                    claim_a(consumer, cands, i)
                elif mode == 'b':
                    claim_b(consumer)
                else:
                    claim_c(consumer)
                times[mode].append(time.perf_counter() - start)
        timed.mode = 'release'
        for consumer in consumers:
            client.delete('/allocations/%s' % consumer)
        return times

    def sustained(mode, seconds):
        """Claims made back to back for ``seconds``: (a) PUTs of the
        candidates of a GET made before (untimed), (d) a new Scheduler
        (its GETs timed). Released after (untimed)."""
        timed.mode = 'setup'
        found = client.get('/allocation_candidates?' + query)
        cands = [c['allocations'] for c in found['allocation_requests']]
        remembering = scheduler.Scheduler(client, limit=args.limit,
                                          max_age=args.max_age)
        timed.mode = 'sustained ' + mode
        consumers = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            consumer = str(uuid.uuid4())
            consumers.append(consumer)
            if mode == 'a':
                claim_a(consumer, cands, len(consumers))
            else:
                remembering.claim(request, consumer, PROJECT, USER)
        rate = len(consumers) / (time.perf_counter() - start)
        timed.mode = 'release'
        for consumer in consumers:
            client.delete('/allocations/%s' % consumer)
        return rate, len(consumers)

    one_round(2)                             # warm-up, not counted
    timed.spent.clear()
    lat = {m: [] for m in MODES}
    rate = {m: [] for m in MODES}
    for r in range(args.rounds):
        times = one_round(args.claims, r)
        for m in MODES:
            lat[m] += times[m]
            rate[m].append(len(times[m]) / sum(times[m]))
    windows = {'a': [], 'd': []}
    for r in range(args.windows):
        for mode in ('ad' if r % 2 == 0 else 'da'):
            windows[mode].append(sustained(mode, args.window))
    claims_per_mode = args.rounds * args.claims
    spent = {m: {k: [n / claims_per_mode, t / claims_per_mode]
                 for k, (n, t) in timed.spent.get(m, {}).items()}
             for m in MODES}
    gets = {m: timed.spent.get('sustained ' + m, {}).get(
        'GET /allocation_candidates', (0, 0))[0] for m in 'ad'}
    profile = shares = None
    if args.profile:
        import cProfile
        import io
        import pstats
        prof = cProfile.Profile()
        timed.mode = 'b'
        consumers = [str(uuid.uuid4()) for _ in range(args.claims)]
        prof.enable()
        for consumer in consumers:
            claim_b(consumer)
        prof.disable()
        for consumer in consumers:
            client.delete('/allocations/%s' % consumer)
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats('tottime').print_stats(12)
        profile = out.getvalue()
        shares = package_shares(stats)
    print(json.dumps({
        'hosts': args.size, 'query': query,
        'candidates': len(client.get('/allocation_candidates?' +
                                     query)['allocation_requests']),
        'lat': lat, 'rate': rate, 'spent': spent, 'windows': windows,
        'window_gets': gets, 'profile': profile,
        'shares': shares}))


def main():
    parser = common.arg_parser(__doc__, epilog=True)
    parser.add_argument('--hosts', default='10,100', type=common.int_list,
                        help='sizes, comma-separated (default 10,100; the '
                             'full run is 10,100,1000)')
    parser.add_argument('--rounds', type=int, default=10,
                        help='rounds; all claims are released after each '
                             '(default 10)')
    parser.add_argument('--claims', type=int, default=10,
                        help='claims per path per round, interleaved '
                             '(default 10)')
    parser.add_argument('--limit', type=int, default=50,
                        help='the scheduler\'s candidate limit (default 50, '
                             'scheduler.claim\'s default)')
    add_tree_options(parser)
    parser.add_argument('--window', type=float, default=6.0,
                        help='sustained: seconds each path claims back to '
                             'back (default 6)')
    parser.add_argument('--windows', type=int, default=3,
                        help='sustained: windows per path, alternating '
                             '(default 3)')
    parser.add_argument('--max-age', type=float, default=5.0,
                        help='sustained (d): seconds a Scheduler remembers '
                             'candidates (default 5, Scheduler\'s '
                             'default)')
    parser.add_argument('--untuned', action='store_true',
                        help='Placement with default candidate options')
    parser.add_argument('--profile', action='store_true',
                        help='cProfile --claims more (b) claims at each '
                             'size')
    parser.add_argument('--_build', metavar='DB', help=argparse.SUPPRESS)
    parser.add_argument('--_measure', metavar='DB', help=argparse.SUPPRESS)
    parser.add_argument('--size', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--specs', help=argparse.SUPPRESS)
    common.add_smoke(parser, hosts='2', rounds=1, claims=2, window=0.5,
                     windows=1)
    args = common.parse(parser)
    if args._build:
        if args.layout == 'agent':
            return _agent_build(args._build)
        return _api_build(args._build, args.hosts[0])
    if args._measure:
        return _measure(args)

    sizes = sorted(args.hosts)
    common.print_command()
    if args.layout == 'agent' and args.build != 'clone':
        parser.error('--layout agent is built by clone only')
    print('settings: %d GPUs per host, layout %s (%s); %d claims '
          'per path x %d rounds, interleaved; limit=%d; '
          'Placement %s; trees built by %s' % (
              GPUS, args.layout, 'the agent\'s report of an A40 host' if
              args.layout == 'agent' else '%s total %d + trait per GPU' % (
                  RC, PER_GPU), args.claims, args.rounds,
              args.limit, 'untuned' if args.untuned else
              'tuned (project default)', args.build))
    work, master = tree_dir(args, 'bench-claims-')
    results, timings = [], []
    try:
        for size in sizes:
            have, built = grow(master, size, args)
            specs = json.dumps(load_specs(master, args.layout))
            copy = os.path.join(work, 'measure-%d.sqlite' % size)
            shutil.copyfile(master, copy)
            start = time.perf_counter()
            cmd = [sys.executable, os.path.abspath(__file__), '--_measure',
                   copy, '--size', str(size), '--rounds', str(args.rounds),
                   '--claims', str(args.claims), '--limit', str(args.limit),
                   '--max-age', str(args.max_age), '--window',
                   str(args.window), '--windows', str(args.windows),
                   '--specs', specs]
            cmd += ['--untuned'] if args.untuned else []
            cmd += ['--profile'] if args.profile else []
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            results.append(common.last_json_line(out))
            timings.append((size, have, built, time.perf_counter() - start))
            os.unlink(copy)
            print('  %d hosts: built %d->%d in %.1f s, measured in %.1f s'
                  % (size, have, size, built, timings[-1][3]), flush=True)
    finally:
        if not args.tree_dir:
            shutil.rmtree(work, ignore_errors=True)
    report(results, args)


def report(results, args):
    names = {'a': '(a) raw PUT', 'b': '(b) project one-shot',
             'c': '(c) raw GET a_c+PUT', 'd': '(d) project Scheduler'}
    shown = [('b', 'a'), ('b', 'c'), ('c', 'a')]

    def paired(res, x, y):
        """Median over rounds of the round's claims/s ratio x/y."""
        return median([rx / ry for rx, ry in zip(res['rate'][x],
                                                 res['rate'][y])])

    def sustained(res):
        """Median over window pairs of (d)/(a) claims/s."""
        return median([d[0] / a[0] for a, d in zip(res['windows']['a'],
                                                   res['windows']['d'])])

    print()
    print('Sustained: claims/s of one path claiming back to back for '
          '%g s, %d windows each, alternating; (d) a new Scheduler per '
          'window (max_age %g s), its GETs counted; ratio: median over '
          'window pairs' % (args.window, args.windows, args.max_age))
    print('%6s %6s | %-21s %9s %8s %12s | %7s' % (
        'hosts', 'GPUs', 'path', 'claims/s', 'claims', 'GETs a_c',
        '(d)/(a)'))
    for res in results:
        for m in 'ad':
            win = res['windows'][m]
            print('%6s %6s | %-21s %9.1f %8d %12d | %s' % (
                res['hosts'] if m == 'a' else '',
                res['hosts'] * GPUS if m == 'a' else '', names[m],
                median([w[0] for w in win]), sum(w[1] for w in win),
                res['window_gets'][m],
                '%7.2f' % sustained(res) if m == 'a' else ''))
    print('target (d)/(a) >= 0.8: %s' % ', '.join(
        '%d hosts %.2f %s' % (r['hosts'], sustained(r), 'holds' if
                              sustained(r) >= 0.8 else 'MISSED')
        for r in results))
    print()
    print('One claim at a time, interleaved: claims/s: median over rounds '
          'of (claims / their time); ms per claim: median and p90 over all '
          'claims of the path; ratios: median over rounds of the round\'s '
          'claims/s ratio')
    print('%6s %6s | %-21s %9s %8s %8s | %s' % (
        'hosts', 'GPUs', 'path', 'claims/s', 'med ms', 'p90 ms',
        ' '.join('(%s)/(%s)' % xy for xy in shown)))
    for res in results:
        for m in sorted(MODES):
            lat = res['lat'][m]
            ratios = ' '.join('%7.2f' % paired(res, x, y) for x, y in
                              shown) if m == 'a' else ''
            print('%6s %6s | %-21s %9.1f %8.1f %8.1f | %s' % (
                res['hosts'] if m == 'a' else '',
                res['hosts'] * GPUS if m == 'a' else '', names[m],
                median(res['rate'][m]), median(lat) * 1000,
                p90(lat) * 1000, ratios))
    print('(b) one-shot against the fair baseline (c): %s' % ', '.join(
        '%d hosts %.2f' % (r['hosts'], paired(r, 'b', 'c'))
        for r in results))
    print()
    print('mean ms per claim spent in each Placement request, by path '
          '(requests per claim in brackets):')
    keys = ['GET /allocations/{consumer}', 'GET /allocation_candidates',
            'PUT /allocations/{consumer}']
    print('%6s %-21s | %s | %10s | %10s' % (
        'hosts', 'path', ' | '.join('%-27s' % k for k in keys),
        'outside', 'total'))
    for res in results:
        for m in sorted(MODES):
            spent = res['spent'][m]
            total = sum(res['lat'][m]) / len(res['lat'][m])
            cells = []
            for k in keys:
                n, t = spent.get(k, (0, 0.0))
                cells.append('%8.1f ms [%4.2f] %7.0f%%' % (
                    t * 1000, n, 100 * t / total) if n else '%-27s' % '-')
            inside = sum(t for n, t in spent.values())
            print('%6s %-21s | %s | %7.2f ms | %7.1f ms' % (
                res['hosts'] if m == 'a' else '', names[m],
                ' | '.join(cells), (total - inside) * 1000, total * 1000))
    print('("outside": time in the caller between requests: the '
          'scheduler\'s ranking, building the body)')
    print()
    print('query (b) and (c): GET /allocation_candidates?%s '
          '(%s candidates returned)' % (results[-1]['query'],
                                        results[-1]['candidates']))
    for res in results:
        if res.get('profile'):
            total = sum(res['shares'].values())
            top = sorted(res['shares'].items(), key=lambda kv: -kv[1])[:8]
            print('\ncProfile of %d (b) claims at %d hosts: own time by '
                  'package: %s' % (args.claims, res['hosts'], ', '.join(
                      '%s %.0f%%' % (k, 100 * v / total) for k, v in top)))
            lines = res['profile'].splitlines()
            at = next((i for i, x in enumerate(lines)
                       if 'ncalls' in x), 0)
            print('\n'.join(x.replace(
                '/root/.pyenv/versions/3.11.7/lib/python3.11/', '')
                for x in lines[at:at + 13]))


if __name__ == '__main__':
    sys.exit(main())
