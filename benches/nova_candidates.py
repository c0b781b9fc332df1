#!/usr/bin/env python3
"""allocation_candidates latency for Nova's own request: K vGPU groups.

What nova-scheduler (nova 34) sends for a flavor with VCPU, MEMORY_MB and
DISK_GB plus K numbered vGPU groups under group_policy=isolate, measured
against the Placement settings a Nova cloud can choose. The query is made
by Nova's own code (ResourceRequest.from_request_spec, the two request
filters that act on a plain boot, to_querystring) run in .cache/nova-venv
(python3 benches/report_traffic.py --install-nova); without it, the same
query built here, and the output says so:

  limit=1000 ([scheduler] max_placement_results)
  resources=DISK_GB:40,MEMORY_MB:8192,VCPU:4     the unnumbered group
  resourcesN=CUSTOM_MDEV_NVIDIA_558:1, requiredN=CUSTOM_MDEV_TYPE_...
                                                 N = 1..K (flavor-spec's)
  group_policy=isolate                           (K >= 2)
  root_required=OWNER_NOVA,!COMPUTE_STATUS_DISABLED
  sent at microversion 1.36, as Nova's report client does

Hosts: --hosts of 8 GPUs, benches/claims.py's builder (a root + 8 children
with CUSTOM_MDEV_NVIDIA_558 total 24, max_unit 24, the type trait), plus
what nova-compute reports on the root: VCPU 128, MEMORY_MB 1048576,
DISK_GB 4000 and the trait OWNER_NOVA (host 0 through the API, copied by
SQL to the others).

Configurations (Placement options as placement.conf sets them; here
through OS_<GROUP>__<OPTION> variables, which oslo.config reads):

  default        Placement's defaults
  recommended    [placement] max_allocation_candidates = --max-candidates,
                 allocation_candidates_generation_strategy = breadth-first,
                 [workarounds] optimize_for_wide_provider_trees = true
  depth-capped   as recommended but depth-first (how a cap hides hosts)
  max-unit-1     as recommended, and the vGPU class's max_unit set to 1 on
                 every GPU (an inventory change, not a Placement option:
                 the optimisation then prunes non-isolated prefixes)

Each (K, configuration) runs in its own process on its own copy of the
database. A request still running after --cap seconds gets its process
killed ("> cap"); the address space is capped (--mem-gb), so a request
that explodes fails ("MemoryError") instead of swapping. A cell stops
repeating once it has spent --cap seconds. For each answer: how many of
its candidates put K vGPUs of one host on K distinct GPUs with the
unnumbered group on that host's root (valid), and how many hosts those
candidates cover, out of all hosts (all are empty, so all fit).

    python3 benches/nova_candidates.py --hosts 100      # ~3 min
    python3 benches/nova_candidates.py                  # 1000 hosts
"""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import claims  # noqa: E402  (the tree builder)
import common  # noqa: E402

NOVA_PYTHON = os.path.join(common.ROOT, '.cache', 'nova-venv', 'bin',
                           'python')
NOVA_MICROVERSION = '1.36'   # nova/scheduler/client/report.py
LIMIT = 1000                 # [scheduler] max_placement_results default
FLAVOR = {'vcpus': 4, 'memory_mb': 8192, 'root_gb': 40}
ROOT_INVENTORY = {'VCPU': 128, 'MEMORY_MB': 1048576, 'DISK_GB': 4000}
ROOT_TRAITS = ['OWNER_NOVA', 'COMPUTE_NODE']

CONFIGS = {
    # name: (Placement options {(group, option): value}, max_unit 1)
    'default': ({}, False),
    'recommended': ({('placement', 'max_allocation_candidates'): None,
                     ('placement', 'allocation_candidates_generation_'
                                   'strategy'): 'breadth-first',
                     ('workarounds', 'optimize_for_wide_provider_trees'):
                         'true'}, False),
    'depth-capped': ({('placement', 'max_allocation_candidates'): None,
                      ('workarounds', 'optimize_for_wide_provider_trees'):
                          'true'}, False),
}
CONFIGS['max-unit-1'] = (CONFIGS['recommended'][0], True)


def flavor_specs(k):
    """The flavor's extra specs: one vGPU (the simple layout's group 1)
    in groups 1..K, as `vgpu-placement flavor-spec` and
    flavor.on_different_parents write them."""
    specs = {'resources%d:%s' % (i, claims.RC): '1' for i in
             range(1, k + 1)}
    specs.update(('trait%d:%s' % (i, claims.TRAIT), 'required')
                 for i in range(1, k + 1))
    if k > 1:
        specs['group_policy'] = 'isolate'
    return specs


def built_query(k):
    """Nova's query for k, built here (what _nova_queries prints)."""
    from urllib import parse
    q = [('limit', LIMIT),
         ('resources', 'DISK_GB:%(root_gb)d,MEMORY_MB:%(memory_mb)d,'
                       'VCPU:%(vcpus)d' % FLAVOR),
         ('root_required', 'OWNER_NOVA,!COMPUTE_STATUS_DISABLED')]
    if k > 1:
        q.append(('group_policy', 'isolate'))
    for i in range(1, k + 1):
        q += [('resources%d' % i, '%s:1' % claims.RC),
              ('required%d' % i, claims.TRAIT)]
    return parse.urlencode(sorted(q))


def _nova_queries(ks):
    """In Nova's virtualenv: {k: the query nova-scheduler sends}."""
    import warnings
    warnings.simplefilter('ignore')
    from nova import conf as nova_conf
    from nova import objects
    from nova.scheduler import request_filter
    from nova.scheduler import utils
    from unittest import mock
    objects.register_all()
    nova_conf.CONF([], project='nova', default_config_files=[])
    out = {}
    for k in ks:
        flavor = objects.Flavor(ephemeral_gb=0, swap=0,
                                extra_specs=flavor_specs(k), **FLAVOR)
        spec = objects.RequestSpec(
            flavor=flavor, is_bfv=False, scheduler_hints={},
            num_instances=1, requested_resources=[],
            request_level_params=objects.RequestLevelParams(),
            image=objects.ImageMeta.from_dict({'properties': {}}))
        # The request filters (scheduler/manager.py runs them all): with
        # nova.conf's defaults and a plain flavor and image only these two
        # change the query; owner_nova_filter acts once every nova-compute
        # is new enough (a service-version query, answered yes here).
        with mock.patch.object(request_filter, '_should_filter_by_owner',
                               return_value=True):
            request_filter.compute_status_filter(None, spec)
            request_filter.owner_nova_filter(None, spec)
        res = utils.resources_from_request_spec(None, spec, None)
        out[k] = res.to_querystring()
    print(json.dumps(out))


def queries(ks, nova_python):
    """({k: query}, where it came from)."""
    built = {k: built_query(k) for k in ks}
    if not os.path.exists(nova_python):
        return built, ('built here (no %s: python3 benches/report_traffic.py'
                       ' --install-nova)' % nova_python)
    got = subprocess.run(
        [nova_python, os.path.abspath(__file__), '--_nova-queries',
         ','.join(map(str, ks))], capture_output=True, text=True)
    if got.returncode:
        sys.exit('Nova failed to build the query: %s' %
                 got.stderr.strip().splitlines()[-1])
    nova = {int(k): v for k, v in common.last_json_line(got.stdout).items()}
    return nova, "Nova's ResourceRequest (%s built here)" % (
        'same as' if nova == built else 'DIFFERENT from')


# -- the hosts ---------------------------------------------------------------

def _root_zero(db):
    """In a process of its own: what nova-compute reports on host 0's root."""
    client = common.embedded_client(db, tuned=False)
    root = claims.rp_uuid(claims.host_name(0))
    gen = client.get('/resource_providers/%s' % root)['generation']
    inv = client.put('/resource_providers/%s/inventories' % root, {
        'resource_provider_generation': gen,
        'inventories': {rc: {'total': n, 'max_unit': n}
                        for rc, n in ROOT_INVENTORY.items()}})
    client.put('/resource_providers/%s/traits' % root, {
        'resource_provider_generation': inv['resource_provider_generation'],
        'traits': ROOT_TRAITS})


def nova_roots(db):
    """Roots with the VCPU inventory (0 if no database)."""
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT count(*) FROM inventories i JOIN resource_classes c ON "
            "c.id = i.resource_class_id JOIN resource_providers p ON p.id = "
            "i.resource_provider_id WHERE p.parent_provider_id IS NULL AND "
            "c.name = 'VCPU'").fetchone()[0]
    except sqlite3.OperationalError:
        # Placement keeps standard classes out of resource_classes.
        return con.execute(
            "SELECT count(DISTINCT i.resource_provider_id) FROM inventories "
            "i JOIN resource_providers p ON p.id = i.resource_provider_id "
            "WHERE p.parent_provider_id IS NULL").fetchone()[0]
    finally:
        con.close()


def _copy_root_zero(db):
    """Host 0's root inventories and traits, copied to every other root."""
    con = sqlite3.connect(db)
    try:
        cur = con.cursor()
        root0 = cur.execute('SELECT id FROM resource_providers WHERE name = ?',
                            (claims.host_name(0),)).fetchone()[0]
        invs = cur.execute(
            'SELECT created_at, updated_at, resource_class_id, total, '
            'reserved, min_unit, max_unit, step_size, allocation_ratio FROM '
            'inventories WHERE resource_provider_id = ?', (root0,)).fetchall()
        traits = cur.execute(
            'SELECT created_at, updated_at, trait_id FROM '
            'resource_provider_traits WHERE resource_provider_id = ?',
            (root0,)).fetchall()
        others = [r[0] for r in cur.execute(
            "SELECT id FROM resource_providers WHERE parent_provider_id IS "
            "NULL AND name LIKE 'bench-h%' AND id != ?", (root0,))]
        for rid in others:
            cur.executemany(
                'INSERT INTO inventories (created_at, updated_at, '
                'resource_provider_id, resource_class_id, total, reserved, '
                'min_unit, max_unit, step_size, allocation_ratio) VALUES '
                '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                [(r[0], r[1], rid) + r[2:] for r in invs])
            cur.executemany(
                'INSERT INTO resource_provider_traits (created_at, '
                'updated_at, trait_id, resource_provider_id) VALUES '
                '(?, ?, ?, ?)', [r + (rid,) for r in traits])
        con.commit()
    finally:
        con.close()


def build_hosts(db, hosts):
    """The hosts' database (reused when it already holds them): seconds."""
    start = time.perf_counter()
    if claims.count_hosts(db) == hosts and nova_roots(db) == hosts:
        return 0.0
    if os.path.exists(db):
        os.unlink(db)
    claims.build(db, hosts)
    subprocess.run([sys.executable, os.path.abspath(__file__), '--_root',
                    db], check=True)
    _copy_root_zero(db)
    if nova_roots(db) != hosts:
        sys.exit('building the hosts failed: %d of %d roots have VCPU' % (
            nova_roots(db), hosts))
    return time.perf_counter() - start


def set_max_unit_1(db):
    con = sqlite3.connect(db)
    try:
        con.execute(
            'UPDATE inventories SET max_unit = 1 WHERE resource_class_id = '
            '(SELECT id FROM resource_classes WHERE name = ?)', (claims.RC,))
        gpus = con.execute('SELECT changes()').fetchone()[0]
        con.commit()
        return gpus
    finally:
        con.close()


# -- one cell ----------------------------------------------------------------

def check_answer(got, k):
    """(valid candidates, hosts they cover): valid = the unnumbered group
    on a root and K single vGPUs on K distinct GPUs of that root's tree."""
    summaries = got['provider_summaries']
    valid, roots = 0, set()
    for areq in got['allocation_requests']:
        allocs = areq['allocations']
        trees = {summaries[rp]['root_provider_uuid'] for rp in allocs}
        gpus = [r['resources'] for rp, r in allocs.items()
                if summaries[rp]['parent_provider_uuid']]
        root = [r['resources'] for rp, r in allocs.items()
                if not summaries[rp]['parent_provider_uuid']]
        if (len(trees) == 1 and len(gpus) == k and
                all(g == {claims.RC: 1} for g in gpus) and
                root == [{'DISK_GB': FLAVOR['root_gb'],
                          'MEMORY_MB': FLAVOR['memory_mb'],
                          'VCPU': FLAVOR['vcpus']}]):
            valid += 1
            roots |= trees
    return valid, len(roots)


def _child(args):
    """One configuration, one K: a JSON line per request."""
    from oslo_config import cfg
    from placement import conf as placement_conf
    from vgpu_placement.placement import embedded
    # The options as Placement reads them in this process (environment).
    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    conf.set_override('connection', 'sqlite://', group='placement_database')
    conf([], project='placement', default_config_files=[])
    effective = {
        'max_allocation_candidates':
            conf.placement.max_allocation_candidates,
        'strategy': conf.placement.allocation_candidates_generation_strategy,
        'optimize': conf.workarounds.optimize_for_wide_provider_trees}
    embedded.start(args._run, tuned=False)
    placement = embedded.adapter(args._run)
    placement.get('/', microversion=NOVA_MICROVERSION)
    print(json.dumps({'ready': effective}), flush=True)
    spent = 0.0
    for _run in range(args.runs):
        start = time.perf_counter()
        resp = placement.get('/allocation_candidates?' + args.query,
                             microversion=NOVA_MICROVERSION,
                             raise_exc=False)
        took = time.perf_counter() - start
        spent += took
        if resp.status_code != 200:
            sys.exit('GET /allocation_candidates: %d %s' % (
                resp.status_code, resp.text[:200]))
        got = resp.json()
        valid, hosts = check_answer(got, args.k)
        print(json.dumps({'seconds': took,
                          'candidates': len(got['allocation_requests']),
                          'valid': valid, 'hosts': hosts}), flush=True)
        if spent > args.cap:
            break


def child_env(config, max_candidates):
    env = dict(os.environ)
    for (group, option), value in CONFIGS[config][0].items():
        if value is None:
            value = max_candidates
        env['OS_%s__%s' % (group.upper(), option.upper())] = str(value)
    return env


def expected_conf(config, max_candidates):
    """What _child must report for this configuration."""
    opts = CONFIGS[config][0]
    return {
        'max_allocation_candidates': max_candidates if (
            'placement', 'max_allocation_candidates') in opts else -1,
        'strategy': opts.get(('placement', 'allocation_candidates_'
                                           'generation_strategy'),
                             'depth-first'),
        'optimize': ('workarounds', 'optimize_for_wide_provider_trees')
        in opts}


def run_cell(db, k, config, query, args):
    """{'samples': [...], 'status': ok|cap|error, 'conf', 'peak_gb'}."""
    cmd = [sys.executable, os.path.abspath(__file__), '--_run', db,
           '--k', str(k), '--runs', str(args.runs), '--cap', str(args.cap),
           '--query', query]
    got = common.run_bounded(cmd, args.cap, args.mem_gb,
                             env=child_env(config, args.max_candidates),
                             error_chars=100)
    cell = {'samples': [], 'status': got['status'], 'conf': None,
            'peak_gb': got['peak_gb']}
    if 'error' in got:
        cell['error'] = got['error']
    for msg in got['messages']:
        if 'ready' in msg:
            cell['conf'] = msg['ready']
        else:
            cell['samples'].append(msg)
    return cell


# -- the table ---------------------------------------------------------------

def seconds(cell, cap):
    """(text, median or None)."""
    s = cell['samples']
    if not s:
        if cell['status'] == 'cap':
            return '> %g s' % cap, None
        return 'failed: %s' % cell.get('error', '?'), None
    med = statistics.median(x['seconds'] for x in s)
    text = '%.2f s' % med
    if cell['status'] != 'ok':
        text += ' then %s' % ('> %g s' % cap if cell['status'] == 'cap'
                              else 'failed')
    return text, med


def ratio(base, med, cap):
    if med is None:
        return 'n/a'
    if base['samples']:
        return '%.1fx' % (statistics.median(
            x['seconds'] for x in base['samples']) / med)
    if base['status'] == 'cap':
        return '> %.0fx' % (cap / med)
    return 'n/a'


def report(results, ks, configs, hosts, args):
    base = configs[0]
    width = 22
    print()
    head = '%2s | ' % 'K' + ' | '.join('%-*s' % (width, c) for c in configs)
    head += ' | ' + ' | '.join('%s/%s' % (base, c) for c in configs[1:])
    print(head)
    print('-' * len(head))
    for k in ks:
        row = [seconds(results[k, c], args.cap) for c in configs]
        ratios = [ratio(results[k, base], med, args.cap)
                  for (_t, med) in row[1:]]
        print('%2d | %s | %s' % (k, ' | '.join(
            '%-*s' % (width, t) for t, _m in row), ' | '.join(
            '%*s' % (len(base) + len(c) + 1, r)
            for c, r in zip(configs[1:], ratios))))
    print()
    print('median seconds of GET /allocation_candidates (Nova\'s query); '
          '"> N s": killed after the cap; failed: the process died '
          '(address space capped at %g GB)' % args.mem_gb)
    print()
    head = '%2s | ' % 'K' + ' | '.join('%-*s' % (width, c) for c in configs)
    print(head)
    print('-' * len(head))
    for k in ks:
        cells = []
        for c in configs:
            s = results[k, c]['samples']
            if s:
                cells.append('%d/%d hosts, %d cand' % (
                    s[0]['hosts'], hosts, s[0]['candidates']) + (
                    '' if s[0]['valid'] == s[0]['candidates'] else
                    ' (%d INVALID)' % (s[0]['candidates'] - s[0]['valid'])))
            else:
                cells.append('-')
        print('%2d | %s' % (k, ' | '.join('%-*s' % (width, t)
                                          for t in cells)))
    print()
    print('hosts covered by the valid candidates (K vGPUs on K distinct '
          'GPUs of one host, the root\'s VCPU/MEMORY_MB/DISK_GB), out of '
          'all hosts; cand: candidates returned (limit %d)' % LIMIT)
    print('peak memory per cell (GB): %s' % ', '.join(
        'K=%d %s %.1f' % (k, c, results[k, c]['peak_gb'])
        for k in ks for c in configs))


def main():
    parser = common.arg_parser(__doc__, epilog=True)
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--k', default='1,2,4,8',
                        help='vGPUs per flavor (default 1,2,4,8)')
    parser.add_argument('--configs',
                        default='default,recommended,depth-capped,'
                                'max-unit-1',
                        help='from %s; the first is the baseline of the '
                             'ratios (default: all)' % ','.join(CONFIGS))
    parser.add_argument('--max-candidates', type=int, default=1000,
                        help='[placement] max_allocation_candidates of the '
                             'capped configurations (default 1000)')
    parser.add_argument('--runs', type=int, default=3,
                        help='requests per cell, median (default 3)')
    parser.add_argument('--cap', type=float, default=60,
                        help='seconds one request may take (default 60)')
    parser.add_argument('--mem-gb', type=float, default=6,
                        help='address-space cap of each process (GB)')
    parser.add_argument('--nova-python', default=NOVA_PYTHON,
                        help='python of the virtualenv with nova (default '
                             '.cache/nova-venv)')
    parser.add_argument('--tree-dir', metavar='DIR',
                        help='keep the hosts\' database here and reuse it')
    parser.add_argument('--_run', metavar='DB', help=argparse.SUPPRESS)
    parser.add_argument('--_root', metavar='DB', help=argparse.SUPPRESS)
    parser.add_argument('--_nova-queries', help=argparse.SUPPRESS)
    parser.add_argument('--query', help=argparse.SUPPRESS)
    common.add_smoke(parser, hosts=2, k='2', runs=1, cap=30)
    args = common.parse(parser)
    if args._nova_queries:
        return _nova_queries([int(k) for k in args._nova_queries.split(',')])
    if args._root:
        return _root_zero(args._root)
    if args._run:
        args.k = int(args.k)
        return _child(args)

    ks = common.int_list_option(parser, args.k, '--k')
    configs = args.configs.split(',')
    for c in configs:
        if c not in CONFIGS:
            parser.error('unknown configuration %r (want some of %s)' % (
                c, ', '.join(CONFIGS)))
    if args.hosts < 1:
        parser.error('--hosts: want at least 1')
    common.print_command()
    asked, source = queries(ks, args.nova_python)
    print('settings: %d hosts x %d GPUs (%s total %d); K=%s; %d requests '
          'per cell (fewer once a cell spent %g s); cap %g s per request, '
          '%g GB address space per process; max_allocation_candidates=%d '
          '(capped configurations)' % (
              args.hosts, claims.GPUS, claims.RC, claims.PER_GPU, args.k,
              args.runs, args.cap, args.cap, args.mem_gb,
              args.max_candidates))
    print('query: %s' % source)
    for k in ks:
        print('  K=%d GET /allocation_candidates?%s' % (k, asked[k]))
    work = args.tree_dir or tempfile.mkdtemp(prefix='bench-nova-cands-')
    os.makedirs(work, exist_ok=True)
    master = os.path.join(work, 'nova-hosts.sqlite')
    t0 = time.perf_counter()
    results = {}
    try:
        print('tree: %d hosts ready in %.1f s' % (
            args.hosts, build_hosts(master, args.hosts)), flush=True)
        for k in ks:
            for config in configs:
                db = os.path.join(work, 'cell.sqlite')
                shutil.copyfile(master, db)
                if CONFIGS[config][1] and set_max_unit_1(db) != \
                        args.hosts * claims.GPUS:
                    sys.exit('max_unit 1 was not set on every GPU')
                start = time.perf_counter()
                cell = results[k, config] = run_cell(db, k, config,
                                                     asked[k], args)
                os.unlink(db)
                if cell['conf'] and cell['conf'] != expected_conf(
                        config, args.max_candidates):
                    sys.exit('K=%d %s: Placement runs with %s, not the '
                             'configuration\'s options' % (
                                 k, config, cell['conf']))
                print('  K=%d %-13s %-26s %d request(s), %.0f s %s' % (
                    k, config, seconds(cell, args.cap)[0],
                    len(cell['samples']), time.perf_counter() - start,
                    cell['conf']), flush=True)
    finally:
        if not args.tree_dir:
            shutil.rmtree(work, ignore_errors=True)
    report(results, ks, configs, args.hosts, args)
    print('total %.0f s' % (time.perf_counter() - t0))


if __name__ == '__main__':
    sys.exit(main())
