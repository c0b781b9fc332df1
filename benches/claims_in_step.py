#!/usr/bin/env python3
"""Inventory writes and hidden room under a fill and churn, in Nova's order.

    python3 benches/claims_in_step.py [--builds 40] [--churn 40] [--seeds 3]

Each simulated host (kernel-samples: pool models; nvidia-t4: equal-size;
nvidia-a40-sriov: equal-size with virtual functions) reports to its own
embedded Placement and is driven as nova-compute drives the project's
compute driver: a build is a scheduler's claim (the flavor-spec request,
counters included), the host's report (the resource tracker's, at the
claim), the realize; a delete frees the mdevs, reports (nova-compute
reports before it deletes the allocations), then deletes the allocations,
and no report follows until the next periodic. Right after each delete,
every type the host has room for is looked up in Placement
(allocation_candidates of its flavor): one with no candidate is room
hidden until the next periodic report (60 s under nova-compute).

Two ways, in one run on the same traces:
  before  [capacity] claims_pay_counters = false: reserved follows each
          claim granted and not realized (the tracking inventories);
  after   the default: Placement's accounting carries claims that pay.
Per way and profile: inventory writes per build and per delete (each one
an inventory PUT that races the schedulers' allocation PUTs on the
provider's generation), types hidden after a delete (of the types the
host has room for), and late
failures (a realize the host refused), and the ratio of inventory writes
after/before.
"""
import os
import random
import shutil
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from vgpu_placement import exceptions  # noqa: E402
from vgpu_placement.placement import flavor  # noqa: E402
from vgpu_placement.placement import scheduler  # noqa: E402

PROFILES = ['kernel-samples', 'nvidia-t4', 'nvidia-a40-sriov']
WAYS = [('before', False), ('after', True)]


class Counted:
    """The reporter's client, counting inventory PUTs on GPU providers."""

    def __init__(self, client):
        self.client = client
        self.inventory_writes = 0

    def __getattr__(self, name):
        return getattr(self.client, name)

    def put(self, path, body, **kw):
        if path.endswith('/inventories'):
            self.inventory_writes += 1
        return self.client.put(path, body, **kw)


def run_trace(database, profile, claims_pay, seed, builds, churn):
    """One trace on a host of its own (one embedded Placement, one
    database per process: the hosts share it, each its own tree)."""
    state = tempfile.mkdtemp(prefix='bench-in-step-')
    try:
        conf = common.simulated_conf(
            profile, state, 'h-%s-%d-%d' % (profile, claims_pay, seed),
            capacity__claims_pay_counters=claims_pay,
            embedded_placement__database=database)
        reporter, host = common.reporter_and_host(conf)
        desired = reporter.report().desired
        counted = Counted(reporter.client)
        reporter.client = counted
        root = reporter.cache.root_uuid
        types = sorted({t for c in desired.children for t in c.plan.classes})
        requests = {t: flavor.parse_extra_specs(flavor.extra_specs_for_type(
            desired, t)['extra_specs']) for t in types}
        rng = random.Random(seed)
        live = {}               # instance -> type
        out = dict(builds=0, build_writes=0, deletes=0, delete_writes=0,
                   room=0, hidden=0, late=0)

        def build(type_id):
            instance = str(uuid.uuid4())
            try:
                scheduler.claim(counted.client, requests[type_id], instance,
                                'p', 'u', in_tree=root)
            except scheduler.NoValidHost:
                return None
            before = counted.inventory_writes
            reporter.report()                   # the claim's report
            try:
                host.realize(instance)
            except exceptions.NoCapacity:
                out['late'] += 1
                host.release(instance)
                return None
            out['builds'] += 1
            out['build_writes'] += counted.inventory_writes - before
            live[instance] = type_id
            return instance

        def room_for(type_id, snapshot):
            """Whether the host can create one of the type now (every
            claim here is realized at once: nothing is pending)."""
            return any(t.id == type_id and t.available_instances > 0
                       for p in snapshot.parents for t in p.types)

        def offered(type_id):
            """Whether Placement has a candidate for the type's flavor."""
            found = counted.client.get('/allocation_candidates?' + requests[
                type_id].query(limit=1, in_tree=root))
            return bool(found['allocation_requests'])

        for _ in range(builds):
            build(rng.choice(types))
        for _ in range(churn):
            if not live:
                build(rng.choice(types))
                continue
            instance = rng.choice(sorted(live))
            live.pop(instance)
            before = counted.inventory_writes
            host.free(instance, report=False)   # destroy: mdevs go
            reporter.report()                   # _complete_deletion's
            counted.client.delete('/allocations/%s' % instance)
            out['deletes'] += 1
            out['delete_writes'] += counted.inventory_writes - before
            # At once, no report in between: every type the host has
            # room for must be offered.
            snapshot = reporter.discover()
            for type_id in types:
                if room_for(type_id, snapshot):
                    out['room'] += 1
                    out['hidden'] += not offered(type_id)
            # Fill up again as the cloud would.
            build(rng.choice(types))
        return out
    finally:
        shutil.rmtree(state, ignore_errors=True)


def main():
    parser = common.arg_parser(__doc__)
    parser.add_argument('--builds', type=int, default=40)
    parser.add_argument('--churn', type=int, default=40)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--profiles', type=lambda s: s.split(','),
                        default=PROFILES)
    common.add_smoke(parser, builds=8, churn=6, seeds=1)
    args = common.parse(parser)
    rows = []
    top = tempfile.mkdtemp(prefix='bench-in-step-db-')
    database = os.path.join(top, 'placement.sqlite')
    for profile in args.profiles:
        totals = {}
        for way, claims_pay in WAYS:
            total = {}
            for seed in range(args.seeds):
                got = run_trace(database, profile, claims_pay, seed,
                                args.builds, args.churn)
                for k, v in got.items():
                    total[k] = total.get(k, 0) + v
            totals[way] = total
            rows.append((profile, way, total['builds'],
                         '%.2f' % (total['build_writes'] /
                                   max(1, total['builds'])),
                         '%.2f' % (total['delete_writes'] /
                                   max(1, total['deletes'])),
                         '%d/%d' % (total['hidden'], total['room']),
                         total['late']))
        before, after = totals['before'], totals['after']

        def per_operation(t):
            return (t['build_writes'] + t['delete_writes']) / max(
                1, t['builds'] + t['deletes'])
        rows.append((profile, 'after/before', '', '', '',
                     'writes per build or delete x%.2f' % (
                         per_operation(after) /
                         max(1e-9, per_operation(before))), ''))
    shutil.rmtree(top, ignore_errors=True)
    common.print_command()
    print('Fill and churn in Nova\'s order (builds %d, churn %d, seeds %d)'
          % (args.builds, args.churn, args.seeds))
    header = ('profile', 'way', 'builds', 'inv writes/build',
              'inv writes/delete', 'types hidden after a delete',
              'late failures')
    widths = [max(len(str(r[i])) for r in [header] + rows)
              for i in range(len(header))]
    for row in [header] + rows:
        print('  '.join(str(v).ljust(w) for v, w in zip(row, widths)))


if __name__ == '__main__':
    main()
