#!/usr/bin/env python3
"""allocation_candidates latency for K vGPUs on separate GPUs, wide trees.

1000 hosts (by default) of 8 GPUs each, built once into a SQLite file
(benches/claims.py's builder: a root + 8 children with CUSTOM_MDEV_NVIDIA_558
total 24 and the type trait). For K = 1, 2, 4, 8 vGPUs on K different GPUs
of one host, the time to get the offers is measured in two configurations:

  default  Placement's candidate options at their defaults
           (embedded.start(db, tuned=False)) and a naive request: one
           GET /allocation_candidates of K isolated single-vGPU groups,
           no limit: resources1=C:1&...&resourcesK=C:1&group_policy=isolate
  ours     the project's embedded Placement (tuned: max_allocation_candidates
           =1000, breadth-first, optimize_for_wide_provider_trees) and the
           project's scheduler:
           vgpu_placement.placement.scheduler.Scheduler.offers()
           for flavor.parse_extra_specs of K groups (resourcesN:C=1,
           traitN:TRAIT=required, group_policy=isolate), limit 50. K
           identical isolated groups are asked as ONE group (limit 50),
           and K distinct GPUs are picked per tree from the provider
           summaries; only when no tree within the limit has K does it
           ask again without the limit (--layout agent: the group is what
           flavor.extra_specs_for_type gives, with the shared-counter
           classes)

(--configs also takes tuned-naive and untuned-ours, to tell what the
tuning and what the request shape each bring.)

Each (K, configuration) runs in its own process (one embedded Placement per
process) on its own copy of the database. Every request is bounded: a
request still running after --cap seconds gets its process killed and the
cell reads "> cap". (Placement forms the product of the K groups' matches,
G^K combinations per host, then drops the non-isolated ones, and applies
limit after that: at K=8, 8^8 = 16.7M per host of which 8! = 40320 are
kept. optimize_for_wide_provider_trees prunes only prefixes that exceed a
GPU's capacity or max_unit, which a GPU of 24 with max_unit 24 never
does; max_allocation_candidates stops after 1000 kept.) A cell stops
repeating once it has spent --cap seconds in total. The process's address
space is capped (--mem-gb) so an exploding request fails instead of
swapping.

    python3 benches/candidates.py              # ~4 min on 2 cores
    python3 benches/candidates.py --layout agent   # the agent's trees
    python3 benches/candidates.py \\
        --configs default,ours,tuned-naive,untuned-ours
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import claims  # noqa: E402  (the tree builder)
import common  # noqa: E402

CONFIGS = {
    # name: (tuned Placement, the project's scheduler and limit)
    'default': (False, False),
    'ours': (True, True),
    'tuned-naive': (True, False),
    'untuned-ours': (False, True),
}


def type_class(specs):
    """The vGPU type's class in one vGPU's extra specs (group 1)."""
    return next(k.split(':', 1)[1] for k in specs
                if k.startswith('resources1:CUSTOM_MDEV_'))


def naive_query(k, specs):
    rc = type_class(specs)
    parts = ['resources%d=%s:1' % (i, rc) for i in range(1, k + 1)]
    return '&'.join(parts + ['group_policy=isolate'])


def project_request(k, specs):
    """One vGPU's extra specs (group 1) repeated in groups 1..K."""
    from vgpu_placement.placement import flavor
    if k > 1:
        specs = flavor.on_different_parents(specs, k)
    return flavor.parse_extra_specs(specs)


def _child(args):
    """One configuration, one K: print a JSON line per request."""
    from vgpu_placement.placement import scheduler
    tuned, shaped = CONFIGS[args.config]
    client = common.embedded_client(args._run, tuned=tuned)
    client.get('/resource_providers?name=warm-up')
    specs = json.loads(args.specs)
    asked = []
    if shaped:
        # The project's scheduler: the GETs it makes to find its offers.
        sched = scheduler.Scheduler(client, limit=args.limit, max_age=0)
        request = project_request(args.k, specs)
        get = client.get

        def recording_get(path, **kw):
            asked.append(path)
            return get(path, **kw)
        client.get = recording_get

        def offers():
            return sched.offers(request)
    else:
        query = naive_query(args.k, specs)
        asked.append('/allocation_candidates?' + query)

        def offers():
            got = client.get('/allocation_candidates?' + query)
            return [{rp: a['resources'] for rp, a in r['allocations'].items()}
                    for r in got['allocation_requests']]
    print(json.dumps({'ready': True}), flush=True)
    spent = 0.0
    for run in range(args.runs):
        start = time.perf_counter()
        got = offers()
        took = time.perf_counter() - start
        spent += took
        if not run:
            print(json.dumps({'query': ' then '.join(asked)}), flush=True)
        first = got[0] if got else {}
        roots = {client.get('/resource_providers/%s' % rp)[
            'root_provider_uuid'] for rp in first}
        print(json.dumps({
            'seconds': took, 'candidates': len(got),
            # Every candidate must put the K vGPUs on K GPUs of one host.
            'first_gpus': len(first), 'first_roots': len(roots)}),
            flush=True)
        if spent > args.cap:
            break


def run_cell(db, k, config, specs, args):
    """Returns {'samples': [...], 'status': ok|cap|error, ...}."""
    cmd = [sys.executable, os.path.abspath(__file__), '--_run', db,
           '--k', str(k), '--config', config, '--runs', str(args.runs),
           '--cap', str(args.cap), '--limit', str(args.limit),
           '--specs', json.dumps(specs)]
    got = common.run_bounded(cmd, args.cap, args.mem_gb)
    cell = {'samples': [], 'status': got['status'], 'query': None}
    if got['status'] == 'cap':
        cell['hung_for'] = args.cap
    if 'error' in got:
        cell['error'] = got['error']
    for msg in got['messages']:
        if msg.get('ready'):
            pass
        elif 'query' in msg:
            cell['query'] = msg['query']
        else:
            cell['samples'].append(msg)
    return cell


def fmt_cell(cell, cap):
    s = cell['samples']
    if cell['status'] == 'cap' and not s:
        return '> %d s' % cap, None
    if cell['status'] == 'error' and not s:
        return 'failed (%s)' % cell['error'], None
    med = statistics.median(x['seconds'] for x in s)
    text = '%.3f s' % med
    if cell['status'] == 'cap':
        text += ' then > %d s' % cap
    return text, med


def main():
    parser = common.arg_parser(__doc__, epilog=True)
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--k', default='1,2,4,8',
                        help='vGPUs per request (default 1,2,4,8)')
    parser.add_argument('--runs', type=int, default=3,
                        help='requests per cell, median (default 3)')
    parser.add_argument('--cap', type=float, default=60,
                        help='seconds one request may take (default 60)')
    parser.add_argument('--limit', type=int, default=50,
                        help='ours: the query\'s limit (default 50)')
    parser.add_argument('--configs', default='default,ours',
                        help='from %s; the first is the baseline of the '
                             'ratio (default default,ours)' %
                             ','.join(CONFIGS))
    parser.add_argument('--mem-gb', type=float, default=6,
                        help='address-space cap of each process (GB)')
    claims.add_tree_options(parser)
    parser.add_argument('--_run', metavar='DB', help=argparse.SUPPRESS)
    parser.add_argument('--config', help=argparse.SUPPRESS)
    parser.add_argument('--specs', help=argparse.SUPPRESS)
    common.add_smoke(parser, hosts=2, k='2', runs=1, cap=30)
    args = common.parse(parser)
    if args._run:
        args.k = int(args.k)
        return _child(args)

    ks = common.int_list_option(parser, args.k, '--k')
    configs = args.configs.split(',')
    for c in configs:
        if c not in CONFIGS:
            parser.error('unknown configuration %r' % c)
    common.print_command()
    if args.layout == 'agent' and args.build != 'clone':
        parser.error('--layout agent is built by clone only')
    print('settings: %d hosts x %d GPUs (%s); K=%s; '
          '%d requests per cell (fewer once a cell spent %g s); per-request '
          'cap %g s; limit=%d (ours); %g GB address space per process' % (
              args.hosts, claims.GPUS, 'as the agent reports an A40 host'
              if args.layout == 'agent' else '%s total %d, trait %s' % (
                  claims.RC, claims.PER_GPU, claims.TRAIT), args.k,
              args.runs, args.cap, args.cap, args.limit, args.mem_gb))
    work, master = claims.tree_dir(args, 'bench-cands-')
    t0 = time.perf_counter()
    try:
        have, built = claims.grow(master, args.hosts, args)
        specs = claims.load_specs(master, args.layout)
        print('tree: %d -> %d hosts in %.1f s (%s)' % (
            have, args.hosts, built, args.build), flush=True)
        results = {}
        for k in ks:
            for config in configs:
                db = os.path.join(work, 'cell.sqlite')
                shutil.copyfile(master, db)
                start = time.perf_counter()
                results[k, config] = run_cell(db, k, config, specs, args)
                os.unlink(db)
                cell = results[k, config]
                print('  K=%d %-16s %-28s %3d request(s), %.0f s' % (
                    k, config, fmt_cell(cell, args.cap)[0],
                    len(cell['samples']), time.perf_counter() - start),
                    flush=True)
    finally:
        if not args.tree_dir:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t0

    print()
    base = configs[0]
    head = '%3s | ' % 'K' + ' | '.join('%-26s' % c for c in configs)
    head += ' | ' + ' | '.join('%s/%s' % (base, c) for c in configs[1:])
    print(head)
    print('-' * len(head))
    for k in ks:
        cells, meds = [], []
        for c in configs:
            text, med = fmt_cell(results[k, c], args.cap)
            s = results[k, c]['samples']
            if s:
                text += ' (%d cand)' % s[0]['candidates']
            cells.append('%-26s' % text)
            meds.append(med)
        ratios = []
        for c, med in zip(configs[1:], meds[1:]):
            bcell = results[k, base]
            if med is None:
                ratios.append('n/a')
            elif meds[0] is None or (bcell['status'] == 'cap' and
                                     not bcell['samples']):
                ratios.append('> %.0fx' % (args.cap / med))
            else:
                ratios.append('%.1fx' % (meds[0] / med))
        print('%3d | %s | %s' % (k, ' | '.join(cells), ' | '.join(
            '%*s' % (len(base) + len(c) + 1, r) for c, r in
            zip(configs[1:], ratios))))
    print()
    print('median seconds to get the offers (offers returned: candidate '
          'allocations, each K GPUs of one host); "> N s": still running '
          'after the cap, its process was killed')
    shown = min([k for k in ks if k > 1] or ks)
    for c in configs:
        print('%-12s tuned=%s GET (K=%d): %s' % (
            c, CONFIGS[c][0], shown, results[shown, c]['query']))
    bad = [(k, c) for (k, c), cell in results.items() for s in
           cell['samples'] if not s['candidates'] or
           s['first_gpus'] != k or s['first_roots'] != 1]
    print('candidate check (some, each on K GPUs of one host): %s' % (
        'ok' if not bad else 'WRONG for %s' % bad))
    print('total %.0f s' % total)


if __name__ == '__main__':
    sys.exit(main())
