"""The scale run's command line and the whole run: one Run per Placement
setting, its table, then the targets."""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import uuid

import common
from scale import config
from scale import harness as harness_mod
from scale import now
from scale import report
from scale.run import Run
from scale import say


def parse_args(argv=None, description=None):
    p = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--hosts', type=int, default=200)
    p.add_argument('--schedulers', type=int, default=8)
    p.add_argument('--seconds', type=float, default=60,
                   help='steady load per run (default 60)')
    p.add_argument('--profile', default='kernel-samples',
                   help='simulated host profile (default kernel-samples)')
    p.add_argument('--mix', help='type=weight,... (default: the profile\'s '
                   'bench mix in benches/profiles, else equal weights)')
    p.add_argument('--url', help='use this Placement (x-auth-token admin, '
                   'noauth2) instead of starting tools/placement-server')
    p.add_argument('--conflict-retries', default='1,10',
                   help='allocation_conflict_retry_count values, one run '
                   'each (default 1,10; ignored with --url)')
    p.add_argument('--workers', type=int, default=4,
                   help='gunicorn workers of the harness (default 4)')
    p.add_argument('--threads', type=int, default=None,
                   help='threads per gunicorn worker (harness default 4)')
    p.add_argument('--report-interval', type=float, default=10.0,
                   help='seconds between two reports of one agent (default '
                   '10; 2 saturates a 2-core machine with 200 hosts)')
    p.add_argument('--connect-retries', type=int, default=None,
                   help='[placement] connect_retries for every client '
                   '(keystoneauth; default: not set, as the project ships)')
    p.add_argument('--hold', default='1,5',
                   help='LO,HI: an instance of the steady load lives a '
                   'uniform LO..HI seconds (default 1,5)')
    p.add_argument('--remember', type=float, default=5.0,
                   help='seconds each scheduler\'s scheduler.Scheduler '
                        'claims from one candidates answer (default 5; 0: '
                        'asks Placement for every claim)')
    p.add_argument('--burst', type=int, default=100,
                   help='claims at once after the steady load (default 100)')
    p.add_argument('--inflight', type=int, default=4,
                   help='builds one scheduler may have outstanding '
                   '(default 4)')
    p.add_argument('--agent-procs', type=int, default=2,
                   help='processes running the hosts\' agents and compute '
                   'services, hosts split round-robin (default 2)')
    p.add_argument('--agent-threads', type=int, default=6,
                   help='agent report threads per process (default 6)')
    p.add_argument('--compute-threads', type=int, default=6,
                   help='compute (realize/release) threads per process '
                   '(default 6)')
    p.add_argument('--builds-per-host', type=int, default=4,
                   help='compute operations one host runs at once '
                   '(default 4)')
    p.add_argument('--seed', default='scale-run')
    p.add_argument('--placement-dir', help='harness --dir (default: a new '
                   'temporary directory, purged at the end)')
    p.add_argument('--keep', action='store_true',
                   help='keep the hosts\' state directories')
    common.add_smoke(p, hosts=2, schedulers=1, seconds=3, burst=2,
                     conflict_retries='1', report_interval=1, agent_procs=1,
                     workers=1)
    args = common.parse(p, argv)
    lo, _, hi = args.hold.partition(',')
    args.hold = (float(lo), float(hi or lo))
    args.retries = [int(x) for x in args.conflict_retries.split(',') if x]
    args.host_prefix = 'scale-%s' % uuid.uuid4().hex[:6]
    if args.connect_retries is not None:
        config.set_connect_retries(args.connect_retries)
    if args.hosts < 1 or args.schedulers < 1:
        p.error('--hosts and --schedulers must be at least 1')
    return args


def main(argv=None, description=None):
    """The scale run; ``description``: the --help text's first line."""
    args = parse_args(argv, description)
    wall = now()
    flavors, weights, source, models, skipped = config.flavors_for(
        args.profile, args.mix)
    pool_only = all(k == 'pool' for k in models.values())
    print('Scale run: %d hosts (profile %s: %s), %d schedulers (candidates '
          'remembered %g s), %g s steady load, burst %d' % (
              args.hosts, args.profile, ', '.join(
                  '%s %s' % kv for kv in sorted(models.items())),
              args.schedulers, args.remember, args.seconds, args.burst))
    total_w = sum(weights.values())
    print('mix (%s): %s' % (source, ', '.join(
        '%s %.0f%%' % (t, 100 * w / total_w) for t, w in
        sorted(weights.items()))))
    if skipped:
        print('types left out of the mix: %s' % skipped)
    print('agents: every %g s, staggered; %d processes x (%d report + %d '
          'compute threads), hosts round-robin; up to %d compute operations '
          'per host at once; steady instances live %g-%g s; at most %d '
          'builds outstanding per scheduler' % (
              args.report_interval, min(args.agent_procs, args.hosts),
              args.agent_threads, args.compute_threads,
              args.builds_per_host, args.hold[0], args.hold[1],
              args.inflight))
    print('host names %s-h000...; machine: %d CPUs, load average %s' % (
        args.host_prefix, os.cpu_count(),
        ' '.join('%.1f' % x for x in os.getloadavg())))
    sys.stdout.flush()

    harness = None
    results = []
    status = 0
    own_dir = None

    def on_term(signum, _frame):
        raise KeyboardInterrupt('signal %d' % signum)
    signal.signal(signal.SIGTERM, on_term)
    try:
        if args.url:
            settings = [(None, args.url.rstrip('/'),
                         'given by --url (settings unknown to the bench)')]
        else:
            own_dir = args.placement_dir or tempfile.mkdtemp(
                prefix='scale-run-placement-')
            os.makedirs(own_dir, exist_ok=True)
            os.chmod(own_dir, 0o755)       # PostgreSQL runs as postgres
            harness = harness_mod.Harness(own_dir, args.workers, args.threads)
            settings = [(r, None, None) for r in args.retries]
        for retries, url, info in settings:
            if harness is not None:
                say('scale_run: starting Placement (conflict retries %d)'
                    % retries)
                url, took = harness.start(retries)
                info = ('tools/placement-server at %s: %d gunicorn workers x '
                        '%s threads, PostgreSQL; allocation_conflict_retry_'
                        'count = %d%s; started in %.1f s' % (
                            url, args.workers, args.threads or 4, retries,
                            ' (recommended)' if retries == 1 else
                            ' (Placement default)' if retries == 10 else '',
                            took))
            label = 'url' if retries is None else 'retries=%d' % retries
            run = Run(args, url, label, flavors, weights,
                      harness.pids() if harness else None)
            try:
                run.execute()
                over = harness.log_summary() if harness else None
            finally:
                if harness is not None:
                    harness.stop()
            rows, verdict = report.summarize(run, info)
            if over is not None:
                rows.insert(-1, ('Placement log', over))
            title = 'Placement %s' % ('given by --url' if retries is None else
                                      'allocation_conflict_retry_count = %d'
                                      % retries)
            report.print_table(title, rows)
            results.append((retries, verdict))
    except KeyboardInterrupt:
        say('scale_run: interrupted')
        status = 130
    finally:
        if harness is not None:
            harness.stop(purge=args.placement_dir is None)
            if args.placement_dir is None and own_dir:
                shutil.rmtree(own_dir, ignore_errors=True)
    if status:
        return status

    print()
    print('Targets')
    print('-------')
    for retries, v in results:
        name = 'url' if retries is None else 'retries %d' % retries
        exempt = retries is not None and retries > 1
        late_ok = v['late'] == 0 or not pool_only
        print('%-10s late failures %d: %s' % (
            name, v['late'],
            'n/a (not every parent is a pool model)' if not pool_only else
            'holds' if v['late'] == 0 else
            'MISSED%s' % (' (Placement\'s over-capacity bug with retries > 1;'
                          ' not counted against the project)' if exempt
                          else '')))
        print('%-10s allocations lost/leaked %d, final check %s: %s' % (
            name, v['lost_leaked'], 'clean' if v['final_ok'] else 'NOT clean',
            'holds' if v['lost_leaked'] == 0 and v['final_ok'] else 'MISSED'))
        print('%-10s (not a target) builds failed for other reasons: %d of '
              '%d; releases that had to be tried again: %d' % (
                  name, v['build_errors'], v['builds'],
                  v['release_retried']))
        if (not late_ok and not exempt) or v['lost_leaked'] or \
                not v['final_ok']:
            status = 1
    print('wall time %.0f s' % (now() - wall))
    return status
