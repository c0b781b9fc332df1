#!/usr/bin/env python3
"""Latency of one claim and one realize against the embedded Placement,
and the work one realized vGPU costs.

Each figure is a median over --runs, side by side with a baseline measured
in the same run on the same Placement: a raw PUT /allocations of the same
resources, and a raw GET /allocation_candidates + PUT (what any scheduler
does). Prints ratios; machines here are noisy, so read ratios, not times.

Then, per realize and per release of one vGPU (mean over the runs): host
reads (the driver's ``discover``), those made while a GPU's lock is held
(the target: one per lock), policy loads (``type_config.load_policies``,
which registers the dynamic ``[mdev_*]`` options) and Placement requests
(reads, writes), counted around the calls.

    python3 benches/claim_realize.py [--runs 40]
"""
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import timed  # noqa: E402
from vgpu_placement.conf import type_config  # noqa: E402
from vgpu_placement.placement import flavor  # noqa: E402
from vgpu_placement.placement import scheduler  # noqa: E402


class Counts:
    """Host reads (all, and under a GPU's lock) and policy loads, counted
    by wrapping the calls."""

    def __init__(self, driver, host):
        self.host_reads = self.locked_reads = self.policy_loads = 0
        self.locks_held = 0
        discover = driver.discover

        def counted_discover():
            self.host_reads += 1
            self.locked_reads += bool(self.locks_held)
            return discover()
        driver.discover = counted_discover
        lock = host.lock

        @contextlib.contextmanager
        def counted_lock(provider):
            with lock(provider):
                self.locks_held += 1
                try:
                    yield
                finally:
                    self.locks_held -= 1
        host.lock = counted_lock
        load = type_config.load_policies

        def counted_load(*args, **kwargs):
            self.policy_loads += 1
            return load(*args, **kwargs)
        type_config.load_policies = counted_load

    def around(self, client, call):
        """{host reads, under a lock, policy loads, Placement reads,
        writes} of call()."""
        def now():
            return (self.host_reads, self.locked_reads, self.policy_loads,
                    client.count.reads, client.count.writes)
        before = now()
        call()
        after = now()
        return [b - a for a, b in zip(before, after)]


def main():
    parser = common.arg_parser(__doc__)
    parser.add_argument('--runs', type=int, default=40)
    common.add_smoke(parser, runs=2)
    args = common.parse(parser)
    state = tempfile.mkdtemp(prefix='bench-claim-')
    conf = common.simulated_conf('kernel-samples', state, 'bench-host')
    reporter, host = common.reporter_and_host(conf)
    result = reporter.report()
    client = reporter.client
    root = reporter.cache.root_uuid
    spec = flavor.extra_specs_for_type(result.desired, 'mtty-1')
    request = flavor.parse_extra_specs(spec['extra_specs'])
    query = request.query(limit=50, in_tree=root)
    samples = {k: [] for k in ('raw PUT /allocations', 'raw candidates+PUT',
                               'claim (project)', 'realize (project)',
                               'release (project)')}
    counts = Counts(reporter.driver, host)
    work = {'realize': [], 'release': []}
    for _ in range(args.runs):
        # Baselines: what Placement itself costs for the same claim.
        found = client.get('/allocation_candidates?' + query)
        alloc = found['allocation_requests'][0]['allocations']
        consumer = str(uuid.uuid4())
        samples['raw PUT /allocations'].append(timed(lambda: client.put(
            '/allocations/%s' % consumer,
            common.allocation_body(alloc, 'p', 'u'))))
        client.delete('/allocations/%s' % consumer)
        consumer = str(uuid.uuid4())

        def raw_schedule():
            got = client.get('/allocation_candidates?' + query)
            client.put('/allocations/%s' % consumer, common.allocation_body(
                got['allocation_requests'][0]['allocations'], 'p', 'u'))
        samples['raw candidates+PUT'].append(timed(raw_schedule))
        client.delete('/allocations/%s' % consumer)
        # The project's paths.
        consumer = str(uuid.uuid4())
        samples['claim (project)'].append(timed(lambda: scheduler.claim(
            client, request, consumer, 'p', 'u', in_tree=root)))
        samples['realize (project)'].append(timed(
            lambda: work['realize'].append(counts.around(
                client, lambda: host.realize(consumer)))))
        samples['release (project)'].append(timed(
            lambda: work['release'].append(counts.around(
                client, lambda: host.release(consumer)))))
    base = statistics.median(samples['raw candidates+PUT'])
    print('%-24s %10s %12s' % ('operation', 'median ms',
                               'x raw cand+PUT'))
    for name, values in samples.items():
        med = statistics.median(values)
        print('%-24s %10.1f %12.2f' % (name, med * 1000, med / base))
    print('runs: %d, host: kernel-samples profile, embedded Placement '
          '(SQLite, in-process)' % args.runs)
    print()
    print('%-24s %10s %12s %12s %12s %12s' % (
        'per vGPU (mean)', 'host reads', 'under a lock', 'policy loads',
        'Placement GET', 'writes'))
    for name, rows in work.items():
        means = [sum(column) / len(rows) for column in zip(*rows)]
        print('%-24s %10.1f %12.1f %12.1f %12.1f %12.1f'
              % ((name,) + tuple(means)))
    shutil.rmtree(state, ignore_errors=True)


if __name__ == '__main__':
    main()
