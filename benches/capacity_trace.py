#!/usr/bin/env python3
"""Mixed-demand capacity trace: static one-type-per-GPU split vs dynamic.

For every host profile and every seed, instances of several mdev types
arrive in random order (i.i.d. draws from the profile's mix) until the first
one Placement refuses (no allocation candidate: the scheduler's
NoValidHost). Every arrival is scheduled against the real embedded
OpenStack Placement, the granted claim is realized on the simulated host
(create_mdev), and the host reports again before the next arrival (as the
agent does after a create; --burst N schedules N arrivals between two
reports, like concurrent boots). A create the host refuses after Placement
granted the claim is a *late failure*: it is counted, the claim released,
and the trace goes on.

Two configurations run on the same arrival sequence per seed:

static   Nova / Cyborg / KubeVirt today: each GPU (parent) pinned to one
         type ([devices] enabled_mdev_types + [mdev_<type>]
         device_addresses, one CUSTOM_STATIC_<TYPE> class per type),
         reported as Nova does ([capacity] models = *=independent,
         shared_counters = false: total = existing + available_instances).
         The split is the best one for the profile's mean mix: every
         assignment of one mix type per parent is scored by the expected
         number of instances placed before the first refusal, over
         --planning-samples traces drawn independently of the benchmark
         seeds, using the simulated kernel's own arithmetic.
dynamic  this project's default: every type on every parent
         (CUSTOM_MDEV_<TYPE>), the capacity model detected per parent,
         shared counter classes for pool models, flavors from
         vgpu_placement.placement.flavor.extra_specs_for_type.

Candidates are chosen to pack, not spread: a provider already holding the
requested class first, then the one where the fewest more instances of the
type fit.

Usage: python3 benches/capacity_trace.py [--seeds N] [--profiles P ...]
A profile is a name in benches/profiles/, a shipped profile name, or a path;
its optional top-level ``bench:`` mapping gives the mix and the capacity
unit (see benches/README.md).
"""
import argparse
import collections
import itertools
import logging
import os
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import os_resource_classes as orc  # noqa: E402

from vgpu_placement.drivers.nvidia import mixed as nv_mixed  # noqa: E402
from vgpu_placement.drivers.simulated import profile as sim_profile  # noqa
from vgpu_placement.drivers.simulated import rules as sim_rules  # noqa: E402
from vgpu_placement import exceptions  # noqa: E402
from vgpu_placement.fixtures import make_conf  # noqa: E402
from vgpu_placement.host import ledger as ledger_mod  # noqa: E402
from vgpu_placement.model import exclusive  # noqa: E402
from vgpu_placement.placement import client as client_mod  # noqa: E402
from vgpu_placement.placement import embedded  # noqa: E402
from vgpu_placement.placement import flavor  # noqa: E402
from vgpu_placement.service import standalone  # noqa: E402

DEFAULT_PROFILES = ('kernel-samples', 'nvidia-t4x4', 'nvidia-a40x2-sriov',
                    'gvt-g-x2', 'nvidia-l40sx2-vfio', 'nvidia-a10x2-vfio',
                    'nvidia-l40sx2-vfio-mixed', 'nvidia-a100x2-mig')
STATIC, DYNAMIC = 'static', 'dynamic'
CONFIG_LABEL = {STATIC: 'static split (Nova)', DYNAMIC: 'dynamic (this)'}


# -- profiles ---------------------------------------------------------------

class Profile:
    """A simulated host profile plus the bench's mix and capacity units."""

    def __init__(self, arg):
        local = os.path.join(HERE, 'profiles', arg + '.yaml')
        if os.sep not in arg and os.path.exists(local):
            self.path = local
        else:
            self.path = sim_profile.find(arg)
        self.name = os.path.splitext(os.path.basename(self.path))[0]
        self.specs, _mdevs = sim_profile.load_profile(self.path)
        if _mdevs:
            raise SystemExit('%s: profiles with pre-existing mdevs are not '
                             'supported by this bench' % self.path)
        with open(self.path) as f:
            bench = (yaml.safe_load(f) or {}).get('bench') or {}
        offered = sorted({t.id for s in self.specs for t in s.types})
        mix = bench.get('mix') or {t: 1 for t in offered}
        unknown = set(mix) - set(offered)
        if unknown:
            raise SystemExit('%s: bench mix names types no parent offers: %s'
                             % (self.path, ', '.join(sorted(unknown))))
        total = float(sum(mix.values()))
        self.mix = {t: mix[t] / total for t in sorted(mix) if mix[t] > 0}
        self.description = bench.get('description', '')
        self.unit_labels = bench.get('unit_labels') or {}
        units = bench.get('units')
        self.unit_of = {}       # parent name -> pool name or 'framebuffer'
        for spec in self.specs:
            if spec.rule == 'exclusive' or spec.rule in sim_profile.VF_RULES:
                self.unit_of[spec.name] = 'framebuffer'
            elif isinstance(units, dict) and spec.name in units:
                self.unit_of[spec.name] = units[spec.name]
            elif isinstance(units, str) and units in spec.pools:
                self.unit_of[spec.name] = units
            else:
                self.unit_of[spec.name] = sorted(spec.pools)[0]
        self.spec_by_kernel_parent = {
            kp: spec for spec in self.specs
            for kp, _ in sim_rules.kernel_parents(spec)}

    # The simulated kernel's arithmetic, for the planner and the units.
    def single_type_capacity(self, spec, type_id):
        """How many mdevs of type_id the parent holds when alone on it."""
        type_spec = spec.type(type_id)
        if type_spec is None:
            return 0
        mdevs = []
        while sim_rules.refuse_create(spec, mdevs, type_spec) is None and (
                spec.rule not in sim_profile.VF_RULES or
                len(mdevs) < spec.vfs):
            mdevs.append(type_id)
        return len(mdevs)

    def unit_label(self, spec):
        unit = self.unit_of[spec.name]
        default = 'framebuffer GB' if unit == 'framebuffer' else unit
        return str(self.unit_labels.get(unit, default))

    def unit_total(self, spec):
        unit = self.unit_of[spec.name]
        if unit == 'framebuffer' and spec.rule == 'vfio-mig':
            # MIG: the framebuffer of the GPU instances the operator made.
            size = {t.gi_profile: t.size for t in spec.types}
            return sum(n * size.get(p, 0) for p, n in
                       spec.gpu_instances.items()) / 1024.0
        if unit == 'framebuffer':
            return max(t.size * t.max for t in spec.types) / 1024.0
        return spec.pools[unit]

    def unit_cost(self, spec, type_id):
        unit = self.unit_of[spec.name]
        if unit == 'framebuffer':
            return spec.type(type_id).size / 1024.0
        return spec.type(type_id).cost.get(unit, 0)

    def room_for(self, mdevs, type_id):
        """True if some parent could still create type_id, given the mdevs
        (discovered.Mdev) on the host: the simulated kernel's own check."""
        for spec in self.specs:
            type_spec = spec.type(type_id)
            if type_spec is None:
                continue
            # In creation order for vfio-mixed/-mig (their arithmetic
            # replays it): the bench fills free VFs in name order.
            held = [m.type_id for m in sorted(mdevs, key=lambda m: m.parent)
                    if self.spec_by_kernel_parent[m.parent] is spec]
            if sim_rules.refuse_create(spec, held, type_spec) is None and (
                    spec.rule not in sim_profile.VF_RULES or
                    len(held) < spec.vfs):
                return True
        return False

    def units(self, mdevs):
        """{label: [used, total]} for the mdevs (discovered.Mdev) on the
        host."""
        out = collections.OrderedDict()
        for spec in self.specs:
            entry = out.setdefault(self.unit_label(spec), [0, 0])
            entry[1] += self.unit_total(spec)
        for m in mdevs:
            spec = self.spec_by_kernel_parent[m.parent]
            out[self.unit_label(spec)][0] += self.unit_cost(spec, m.type_id)
        return out


def arrivals(profile, seed):
    """The arrival sequence of one seed (the same for both configs)."""
    rng = random.Random('trace:%s:%d' % (profile.name, seed))
    types = sorted(profile.mix)
    weights = [profile.mix[t] for t in types]
    while True:
        yield rng.choices(types, weights)[0]


def placed_before_refusal(sequence, capacities):
    """Arrivals served before the first one whose type is full, when each
    type has a fixed capacity (one type per parent, nothing shared)."""
    used = collections.Counter()
    for i, type_id in enumerate(sequence):
        if used[type_id] >= capacities.get(type_id, 0):
            return i
        used[type_id] += 1
    return len(sequence)


# -- the best static split ----------------------------------------------------

def _spec_signature(spec):
    return repr((spec.rule, sorted(spec.pools.items()), spec.max_instances,
                 spec.vfs, spec.types))


def plan_static(profile, samples):
    """The assignment {parent: type} maximizing the expected instances
    placed before the first refusal, and its score.

    Every parent gets one type of the mix it can hold (leaving a parent
    idle never helps); assignments equal up to identical parents are
    scored once. Scores use ``samples`` planning traces, drawn apart from
    the benchmark's seeds, with each type's capacity its single-type
    capacity summed over its parents.
    """
    options = []
    for spec in profile.specs:
        fits = [t for t in profile.mix
                if profile.single_type_capacity(spec, t) > 0]
        options.append([(spec, t) for t in fits] or [(spec, None)])
    longest = 1 + sum(max(profile.single_type_capacity(s, t) for t in
                          profile.mix) for s in profile.specs)
    types = sorted(profile.mix)
    weights = [profile.mix[t] for t in types]
    rng = random.Random('plan:%s' % profile.name)
    # Per planning trace and type: the positions of its arrivals.
    positions = []
    for _ in range(samples):
        seq = rng.choices(types, weights, k=longest)
        pos = collections.defaultdict(list)
        for i, t in enumerate(seq):
            pos[t].append(i)
        positions.append(pos)
    seen, scored = set(), []
    for combo in itertools.product(*options):
        key = tuple(sorted((_spec_signature(s), t or '') for s, t in combo))
        if key in seen:
            continue
        seen.add(key)
        caps = collections.Counter()
        for spec, t in combo:
            if t:
                caps[t] += profile.single_type_capacity(spec, t)
        total = 0
        for pos in positions:
            total += min(pos[t][caps[t]] if len(pos[t]) > caps[t]
                         else longest for t in types)
        scored.append((total / samples, {s.name: t for s, t in combo if t},
                       dict(caps)))
    scored.sort(key=lambda x: -x[0])
    best = scored[0]
    return {'assignment': best[1], 'expected': best[0], 'samples': samples,
            'capacities': best[2], 'candidates': len(scored),
            'runner_up': scored[1][0] if len(scored) > 1 else None}


def static_class(type_id):
    return orc.normalize_name('STATIC_' + type_id)


def static_config_text(assignment):
    by_type = collections.defaultdict(list)
    for parent, type_id in sorted(assignment.items()):
        by_type[type_id].append(parent)
    lines = ['[devices]', 'enabled_mdev_types = ' + ', '.join(sorted(
        by_type))]
    for type_id, parents in sorted(by_type.items()):
        lines += ['[mdev_%s]' % type_id,
                  'device_addresses = ' + ', '.join(parents),
                  'mdev_class = ' + static_class(type_id)]
    lines += ['[capacity]', 'models = *=independent',
              'shared_counters = false', '']
    return '\n'.join(lines)


# -- one trace against Placement ----------------------------------------------

def model_kind(model):
    if isinstance(model, exclusive.Exclusive) and model.slots:
        return 'sriov'
    return model.kind


# The model kind the dynamic configuration detects per profile rule, for
# the zero-late-failure target (MIG-backed types are a Pool).
RULE_KIND = {'pool': 'pool', 'sriov': 'sriov', 'vfio': 'sriov',
             'vfio-mixed': nv_mixed.MIXED, 'vfio-mig': 'pool'}


class TraceRun:
    """One host, one configuration, one arrival sequence."""

    def __init__(self, bench, profile, config, seed):
        self.bench, self.profile, self.config = bench, profile, config
        self.seed = seed
        self.host = 'bench-%s-%s-%d-%s' % (profile.name, config, seed,
                                           uuid.uuid4().hex[:6])
        self.tmp = tempfile.mkdtemp(prefix='trace-', dir=bench.tmp)
        text = None
        if config == STATIC:
            text = static_config_text(bench.plans[profile.name]['assignment'])
        conf = make_conf(
            text, driver='simulated', simulated__profile=profile.path,
            state_path=self.tmp, host=self.host,
            embedded_placement__enabled=True,
            embedded_placement__database=bench.db)
        self.reporter = standalone.reporter_for(conf)
        # What the host side records of each mdev it makes for a claim: the
        # report counts only these as claims made real.
        self.ledger = ledger_mod.Ledger(ledger_mod.path_in(self.tmp))
        self.pc = bench.pc
        self.consumers = {}          # consumer -> (device, type, mdev uuid)
        self.result = {'placed': 0, 'arrivals': 0, 'late': 0,
                       'late_by_kind': collections.Counter(),
                       'conflicts': 0, 'refused': None, 'reports': 0}

    def report(self):
        res = self.reporter.report()
        self.result['reports'] += 1
        return res

    def setup(self):
        res = self.report()
        self.root = self.reporter.cache.root_uuid
        self.device_of = {c.uuid: c.device for c in res.desired.children}
        self.kind_of = {c.device: model_kind(c.plan.model)
                        for c in res.desired.children}
        self.class_of, self.query = {}, {}
        for type_id in self.profile.mix:
            if self.config == STATIC:
                if type_id in self.bench.plans[
                        self.profile.name]['assignment'].values():
                    rc = static_class(type_id)
                    self.class_of[type_id] = rc
                    self.query[type_id] = 'resources1=%s:1' % rc
                continue
            try:
                spec = flavor.extra_specs_for_type(res.desired, type_id)
            except exceptions.VgpuPlacementError:
                continue
            self.query[type_id] = spec['placement_query']
            self.class_of[type_id] = next(
                c.plan.classes[type_id] for c in res.desired.children
                if type_id in c.plan.classes)

    def _pick_order(self, type_id, found):
        rc = self.class_of[type_id]
        summaries = found['provider_summaries']
        keyed = []
        for cand in found['allocation_requests']:
            rp = next((u for u, a in cand['allocations'].items()
                       if rc in a['resources']), None)
            if rp is None:
                continue
            have = summaries[rp]['resources']
            holds = have.get(rc, {}).get('used', 0) > 0
            # How many more of the type fit: its own class says it (a
            # mixed-size GPU's counters also cap a burst, not capacity).
            fit = have[rc]['capacity'] - have[rc]['used']
            keyed.append(((not holds, fit, self.device_of.get(rp, rp)),
                          rp, cand))
        keyed.sort(key=lambda k: k[0])
        return [(rp, cand) for _, rp, cand in keyed]

    def claim(self, type_id):
        """Schedule one instance; its consumer and device, or None."""
        query = self.query.get(type_id)
        if query is None:
            return None          # no provider offers the type at all
        found = self.pc.get('/allocation_candidates?%s&in_tree1=%s&limit=50'
                            % (query, self.root))
        for rp, cand in self._pick_order(type_id, found):
            consumer = str(uuid.uuid4())
            try:
                self.pc.put('/allocations/%s' % consumer, {
                    'allocations': cand['allocations'],
                    'consumer_generation': None, 'project_id': 'p',
                    'user_id': 'u', 'consumer_type': 'INSTANCE'})
            except exceptions.PlacementConflict:
                self.result['conflicts'] += 1
                continue
            device = self.device_of[rp]
            self.consumers[consumer] = (device, type_id, None)
            return consumer
        return None

    def realize(self, consumer):
        """Create the mdev of a granted claim; False on a late failure."""
        device, type_id, _ = self.consumers[consumer]
        driver = self.reporter.driver
        target = device
        spec = next(s for s in self.profile.specs if s.name == device)
        mdev = str(uuid.uuid4())
        try:
            if spec.rule in sim_profile.VF_RULES:
                free = sorted(p.name for p in driver.discover().parents
                              if p.physfn == device and not p.mdevs)
                if not free:
                    raise exceptions.NoCapacity(
                        'create', '%s on %s: no free virtual function'
                        % (type_id, device))
                target = free[0]
            driver.create_mdev(target, type_id, mdev)
            self.ledger.put(ledger_mod.Record(
                mdev, consumer, device, target, type_id, ledger_mod.ACTIVE,
                driver.boot_id()))
        except exceptions.NoCapacity:
            self.result['late'] += 1
            self.result['late_by_kind'][self.kind_of[device]] += 1
            self.pc.delete('/allocations/%s' % consumer)
            del self.consumers[consumer]
            return False
        self.consumers[consumer] = (device, type_id, mdev)
        self.result['placed'] += 1
        return True

    def run(self, burst):
        self.setup()
        sequence = []
        source = arrivals(self.profile, self.seed)
        while self.result['refused'] is None:
            granted = []
            for _ in range(burst):
                type_id = next(source)
                sequence.append(type_id)
                self.result['arrivals'] += 1
                consumer = self.claim(type_id)
                if consumer is None:
                    self.result['refused'] = type_id
                    break
                granted.append(consumer)
            for consumer in granted:
                self.realize(consumer)
            self.report()
        mdevs = self.reporter.driver.discover().mdevs()
        self.result['sequence'] = sequence
        self.result['units'] = self.profile.units(mdevs)
        self.result['room'] = self.profile.room_for(mdevs,
                                                    self.result['refused'])
        return self.result

    def cleanup(self):
        """Release every claim and delete the host's providers, so the one
        Placement database stays small for the traces that follow."""
        for consumer in list(self.consumers):
            self.pc.delete('/allocations/%s' % consumer)
        children = [u for u, _p in self.reporter.cache.children().values()]
        for rp in children + [self.root]:
            try:
                self.pc.delete('/resource_providers/%s' % rp)
            except exceptions.PlacementError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- the run ------------------------------------------------------------------

class Bench:

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='vgpu-capacity-trace-')
        # make_conf writes a temporary config file per call: keep them here.
        tempfile.tempdir = self.tmp
        self.db = os.path.join(self.tmp, 'placement.sqlite')
        self.pc = client_mod.PlacementClient(embedded.adapter(self.db))
        self.plans = {}

    def close(self):
        tempfile.tempdir = None
        if self.args.keep:
            print('kept run directory %s' % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run_profile(self, profile, seeds):
        plan = self.plans[profile.name] = plan_static(
            profile, self.args.planning_samples)
        results = {STATIC: [], DYNAMIC: []}
        for seed in seeds:
            for config in (STATIC, DYNAMIC):
                trace = TraceRun(self, profile, config, seed)
                try:
                    results[config].append(trace.run(self.args.burst))
                finally:
                    trace.cleanup()
        return plan, results


def _pct(a, b):
    return 100.0 * a / b if b else 0.0


def _fmt_num(x):
    return ('%.1f' % x) if abs(x - round(x)) > 1e-9 else '%d' % round(x)


def print_profile(profile, plan, results, seeds, burst, elapsed):
    mix = ', '.join('%s %.0f%%' % (t, 100 * w)
                    for t, w in sorted(profile.mix.items()))
    print()
    print('== %s  (%s)' % (profile.name, os.path.relpath(profile.path,
                                                         os.getcwd())))
    if profile.description:
        print('   host: %s' % profile.description)
    print('   mix:  %s' % mix)
    split = ', '.join('%s=%s' % (p, t)
                      for p, t in sorted(plan['assignment'].items()))
    print('   static split: %s' % split)
    print('     chosen as the best of %d distinct one-type-per-parent '
          'assignments by expected instances placed before the first '
          'refusal (%.2f; runner-up %s) over %d planning traces drawn apart '
          'from the seeds' % (
              plan['candidates'], plan['expected'],
              '-' if plan['runner_up'] is None else '%.2f'
              % plan['runner_up'], plan['samples']))
    header = ('   %-20s %-22s %-34s %-16s %s' % (
        'configuration', 'placed mean [min-max]',
        'capacity units used (mean)', 'late failures',
        'refused with room left'))
    print(header)
    print('   ' + '-' * (len(header) - 3))
    refused_lines = []
    for config in (STATIC, DYNAMIC):
        rs = results[config]
        placed = [r['placed'] for r in rs]
        placed_txt = '%.1f [%d-%d]' % (statistics.mean(placed), min(placed),
                                       max(placed))
        units = []
        for label in rs[0]['units']:
            used = statistics.mean(r['units'][label][0] for r in rs)
            total = rs[0]['units'][label][1]
            units.append('%s/%s %s (%.0f%%)' % (
                _fmt_num(round(used, 1)), _fmt_num(total), label,
                _pct(used, total)))
        late = sum(r['late'] for r in rs)
        late_txt = '%d (%d traces)' % (late, sum(1 for r in rs if r['late']))
        refusals = collections.Counter(r['refused'] for r in rs)
        refused_lines.append('%s: %s' % (config, ', '.join(
            '%s %d' % (t, n) for t, n in sorted(refusals.items()))))
        room_txt = '%d/%d traces' % (sum(1 for r in rs if r['room']),
                                     len(rs))
        print('   %-20s %-22s %-34s %-16s %s' % (
            CONFIG_LABEL[config], placed_txt, units[0], late_txt, room_txt))
        for more in units[1:]:
            print('   %-20s %-22s %s' % ('', '', more))
    print('   first refusal by type: ' + '; '.join(refused_lines))
    static = [r['placed'] for r in results[STATIC]]
    dynamic = [r['placed'] for r in results[DYNAMIC]]
    wins = sum(1 for s, d in zip(static, dynamic) if d > s)
    ties = sum(1 for s, d in zip(static, dynamic) if d == s)
    print('   dynamic places more than static on %d/%d seeds (%d ties, %d '
          'fewer); mean gain %+.1f instances (%+.0f%%)' % (
              wins, len(seeds), ties, len(seeds) - wins - ties,
              statistics.mean(dynamic) - statistics.mean(static),
              _pct(statistics.mean(dynamic) - statistics.mean(static),
                   statistics.mean(static))))
    # The static run is fully determined by the kernel arithmetic: check
    # that Placement placed exactly what the pure computation says.
    expected = [placed_before_refusal(r['sequence'], plan['capacities'])
                for r in results[STATIC]]
    same = sum(1 for e, r in zip(expected, results[STATIC])
               if e == r['placed'])
    print('   static through Placement == pure arithmetic on the same '
          'arrivals: %d/%d seeds%s' % (
              same, len(seeds), '' if burst == 1 else
              ' (may differ with --burst > 1)'))
    kinds = collections.Counter()
    for r in results[DYNAMIC]:
        kinds.update(r['late_by_kind'])
    if kinds:
        print('   dynamic late failures by parent model: %s' % ', '.join(
            '%s %d' % kv for kv in sorted(kinds.items())))
    conflicts = sum(r['conflicts'] for c in results.values() for r in c)
    if conflicts:
        print('   claim conflicts (409, next candidate tried): %d'
              % conflicts)
    print('   time: %.1f s for %d traces' % (
        elapsed, sum(len(c) for c in results.values())))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', type=int, default=10,
                        help='traces per profile and configuration '
                             '(seeds first-seed .. first-seed+N-1; '
                             'default 10)')
    parser.add_argument('--first-seed', type=int, default=0)
    parser.add_argument('--profiles', nargs='+', default=DEFAULT_PROFILES,
                        metavar='PROFILE',
                        help='names in benches/profiles/, shipped profile '
                             'names, or paths (default: %s)'
                             % ' '.join(DEFAULT_PROFILES))
    parser.add_argument('--burst', type=int, default=1,
                        help='arrivals scheduled between two host reports '
                             '(1: the host reports after every create, as '
                             'the agent does; N > 1: N concurrent boots)')
    parser.add_argument('--planning-samples', type=int, default=4000,
                        help='traces scoring each static split (default '
                             '4000)')
    parser.add_argument('--keep', action='store_true',
                        help='keep the run directory (Placement database)')
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.burst < 1 or args.planning_samples < 1:
        parser.error('--seeds, --burst and --planning-samples must be >= 1')
    # The project's warnings (model vs kernel disagreements, expected on
    # SR-IOV where the VFs' counts sum to more than the card holds) would
    # drown the table.
    logging.basicConfig(level=logging.ERROR)

    started = time.time()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    profiles = [Profile(p) for p in args.profiles]
    print('command: python3 %s' % ' '.join(shlex.quote(a) for a in (
        [os.path.relpath(os.path.abspath(__file__), os.getcwd())] +
        (sys.argv[1:] if argv is None else list(argv)))))
    print('settings: seeds %s (%d per profile and configuration), burst %d, '
          'planning samples %d' % (
              '%d..%d' % (seeds[0], seeds[-1]) if len(seeds) > 1
              else seeds[0], len(seeds), args.burst, args.planning_samples))
    print('each trace: arrivals drawn from the mix (random.Random('
          '"trace:<profile>:<seed>"), the same for both configurations) '
          'until the first refusal; embedded Placement, one database, one '
          'fresh host per trace')
    print('late failures: claims Placement granted that the host then '
          'refused (counted, released, the trace goes on); refused with '
          'room left: traces whose first refusal came while some parent '
          'could still have created the refused type')
    bench = Bench(args)
    targets = []
    try:
        for profile in profiles:
            t0 = time.time()
            plan, results = bench.run_profile(profile, seeds)
            print_profile(profile, plan, results, seeds, args.burst,
                          time.time() - t0)
            sys.stdout.flush()
            targets.append((profile, results))
    finally:
        bench.close()

    print()
    print('targets')
    all_ok = True
    for profile, results in targets:
        kinds = collections.Counter()
        for r in results[DYNAMIC]:
            kinds.update(r['late_by_kind'])
        checked = sorted({RULE_KIND[s.rule] for s in profile.specs
                          if s.rule in RULE_KIND})
        if checked:
            bad = sum(kinds[k] for k in checked)
            ok = bad == 0
            all_ok &= ok
            print('  %-20s zero late failures on %s parents (dynamic): '
                  '%s (%d)' % (profile.name, '/'.join(checked),
                               'yes' if ok else 'NO', bad))
        shared = any(sum(1 for t in profile.mix if spec.type(t)) > 1
                     for spec in profile.specs)
        s = statistics.mean(r['placed'] for r in results[STATIC])
        d = statistics.mean(r['placed'] for r in results[DYNAMIC])
        if shared:
            ok = d > s
            all_ok &= ok
            print('  %-20s more instances placed than the static split: '
                  '%s (%.1f vs %.1f)' % (profile.name,
                                         'yes' if ok else 'NO', d, s))
        else:
            print('  %-20s no mix types share a parent: placed %.1f vs %.1f '
                  '(target n/a)' % (profile.name, d, s))
    print('all targets hold: %s' % ('yes' if all_ok else 'NO'))
    print('total time: %.1f s' % (time.time() - started))
    return 0 if all_ok else 1


if __name__ == '__main__':
    sys.exit(main())
