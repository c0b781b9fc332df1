#!/usr/bin/env python3
"""Scale run: many hosts' agents and concurrent schedulers on one Placement.

    python3 benches/scale_run.py [--hosts 200] [--schedulers 8] [--seconds 60]
                                 [--profile kernel-samples] [--url URL]
                                 [--conflict-retries 1,10] [--workers 4]
                                 [--report-interval 10] [--burst 100]

The defaults are the issue's full run: 200 hosts, 8 schedulers, 60 s, on
both Placement settings; about 7 min on this project's shared 2-core
machine (3.5 min per setting: registration 30-40 s, steady 65 s, burst and
convergence 35-40 s, checks 50 s). The agents report every 10 s: at 2 s
(--report-interval 2) 200 agents alone saturate that machine (72 reports/s
done of the 100 due, each starting 2.5 s late, claims/s halved).

Against the production-shaped Placement of tools/placement-server (gunicorn
workers, PostgreSQL, loopback). Without --url the script starts it itself,
once per --conflict-retries value (a fresh database each time, in a
temporary --dir on a free port), and stops and purges it at the end, also
on error or Ctrl-C. With --url it uses that Placement as it is (one run; its
settings are unknown to the script, it should hold no other hosts) and
deletes the providers it created at the end.

Per run:

1. Hosts: --hosts simulated hosts (driver ``simulated``, --profile, each
   with its own state_path in a temporary directory and its own host name).
   They are split round-robin over --agent-procs processes (2: one per
   CPU, away from the GIL of the schedulers). In each, every host has
   * its agent: a ``report.Reporter`` reporting every --report-interval
     seconds (first reports staggered over one interval; a late report
     starts at once, missed ones are not caught up), run by a pool of
     --agent-threads threads per process;
   * its compute service: ``host.Host`` objects over Reporters of their
     own, realizing (``Host.realize``) and releasing (``Host.release``)
     what the schedulers place on that host, up to --builds-per-host at
     once (Nova's max_concurrent_builds; like concurrent ``vgpu-placement
     realize`` commands), --compute-threads threads per process.
   Registration is every host's first report.
2. Steady load, --seconds: --schedulers processes loop: pick a type from the
   mix (the profile's ``bench: mix`` in benches/profiles, else every type
   equally; --mix overrides), its flavor from ``flavor.extra_specs_for_type``
   (type class + shared counter classes + type trait in one group),
   ``flavor.parse_extra_specs``, then its ``scheduler.Scheduler``'s claim
   (candidates remembered --remember seconds) across the whole cloud (no
   in_tree) for a new consumer. The claim is sent to the process
   owning the chosen host, whose compute realizes it, holds it --hold
   seconds (uniform) and releases it. A scheduler does not wait for the
   build (Nova's conductor casts it) but keeps at most --inflight builds
   outstanding. Counted: claims/s, 409 retries (a Claim's attempts - 1),
   NoValidHost, late failures (Placement granted, the host refused with
   NoCapacity; the claim is then released), other build failures. A
   release that raises or says it is owed is tried again (3 times).
3. Drain: schedulers stop, every build finishes, every hold is released;
   then the time until every host's agent has made a report with no write.
4. Burst: --burst claims at once, split over the schedulers, each as fast
   as it can, not waiting for builds; held until the end. Measured: how
   long the claims took, when the last build finished, and when every
   host's next agent report (started after its last build) made zero
   writes: converged, Placement holds exactly what every host would report.
5. Final check, agents stopped, the burst still held: for every host,
   Placement's allocations on its providers against the instances the bench
   holds there, the mdevs of the simulated host and the ledger's records;
   each provider's usages against its mdevs (type classes and shared
   counters); ``Host.reconcile()`` must find nothing to do. Then every
   instance is released and the cloud must be empty (no allocation, usage,
   mdev, ledger record or owed release left).

Also printed: CPU seconds of Placement, PostgreSQL, the bench's processes
and everything else on the machine during the steady load, and what
Placement's log says (claims granted over capacity, by class).

Targets (from the issue): late failures 0 for pool-model parents with the
setting the project recommends (allocation_conflict_retry_count = 1; the
default 10 has the over-capacity bug of tools/placement-server/README.md
and is run for comparison); allocations lost or leaked 0 in every run.
Exit status 0 when those hold.

A demand that races for the last slots all the time shows that bug:

    python3 benches/scale_run.py --hosts 10 --seconds 40 --burst 30 \\
        --mix mdpy-hd=1,mdpy-vga=1 --report-interval 5      # ~3 min
"""
import argparse
import collections
import contextlib
import heapq
import logging
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HARNESS = os.path.join(ROOT, 'tools', 'placement-server', 'placement-server')
BENCH_PROFILES = os.path.join(ROOT, 'benches', 'profiles')
PROJECT, USER = 'scale-run-project', 'scale-run-user'
INI = """\
[DEFAULT]
create_root_provider = true
[placement]
auth_type = admin_token
endpoint = %s
token = admin
"""
EXTRA_INI = ''          # --connect-retries adds a line here

now = time.monotonic      # CLOCK_MONOTONIC: one clock for all processes


def say(*args):
    print(*args, file=sys.stderr, flush=True)


# -- configuration of one host ------------------------------------------------

def ini(url):
    return INI % url + EXTRA_INI


def host_conf(url, profile, state_dir, host):
    from tests.conftest import make_conf
    return make_conf(ini(url), driver='simulated',
                     simulated__profile=profile, state_path=state_dir,
                     host=host)


def load_mix(profile, mix_arg, type_ids):
    """{type: weight}: --mix, else the bench profile's mix, else equal."""
    if mix_arg:
        mix = {}
        for part in mix_arg.split(','):
            name, _, weight = part.partition('=')
            mix[name.strip()] = float(weight or 1)
        return mix, '--mix'
    path = os.path.join(BENCH_PROFILES, profile + '.yaml')
    if os.path.exists(path):
        import yaml
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        mix = (doc.get('bench') or {}).get('mix')
        if mix:
            return ({t: float(w) for t, w in mix.items()},
                    'benches/profiles/%s.yaml' % profile)
    return {t: 1.0 for t in type_ids}, 'every type, equal weights'


def flavors_for(profile, mix_arg):
    """(flavors {type: extra specs}, weights {type: w}, mix source, models
    {parent: kind}) from a throw-away simulated host of the profile."""
    from vgpu_placement import flavor
    from vgpu_placement import standalone
    tmp = tempfile.mkdtemp(prefix='scale-run-flavors-')
    try:
        # The endpoint is never contacted: the tree is built offline.
        conf = host_conf('http://127.0.0.1:9', profile, tmp, 'flavor-host')
        reporter = standalone.reporter_for(conf)
        desired = reporter.desired_tree(reporter.discover())
        type_ids = sorted({t for c in desired.children
                           for t in c.plan.classes})
        models = {c.device: c.plan.model.kind for c in desired.children}
        mix, source = load_mix(profile, mix_arg, type_ids)
        flavors, skipped = {}, {}
        for type_id in sorted(mix):
            try:
                flavors[type_id] = flavor.extra_specs_for_type(
                    desired, type_id)['extra_specs']
            except Exception as e:      # noqa: a type the host lacks, etc.
                skipped[type_id] = str(e)
        weights = {t: mix[t] for t in flavors if mix[t] > 0}
        if not weights:
            raise SystemExit('scale_run: no type of the mix can be asked '
                             'for: %s' % skipped)
        return flavors, weights, source, models, skipped
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- CPU accounting (procfs) ---------------------------------------------------

TICK = os.sysconf('SC_CLK_TCK')


def proc_table():
    """{pid: (ppid, CPU seconds so far)} of every process."""
    out = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(')') + 2:].split()
        out[int(d)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK)
    return out


def tree_cpu(table, roots, own_only=False):
    """CPU seconds of the processes under roots (themselves included)."""
    children = collections.defaultdict(list)
    for pid, (ppid, _cpu) in table.items():
        children[ppid].append(pid)
    seen, stack, total = set(), list(roots), 0.0
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        if not own_only:
            stack.extend(children[pid])
    return total


def machine_cpu():
    """(busy, total) CPU seconds of the machine since boot."""
    with open('/proc/stat') as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / TICK, sum(vals) / TICK


class CpuMeter:
    """CPU seconds per component over a window."""

    def __init__(self, groups):
        self.groups = groups          # {name: (pids, own_only)}

    def sample(self):
        table = proc_table()
        busy, total = machine_cpu()
        out = {name: tree_cpu(table, pids, own) for name, (pids, own) in
               self.groups.items()}
        out['_busy'], out['_total'] = busy, total
        return out

    @staticmethod
    def text(before, after, seconds):
        d = {k: after[k] - before[k] for k in after}
        ours = sum(v for k, v in d.items() if not k.startswith('_'))
        parts = ['machine %.0f%% busy of %d CPUs' % (
            100 * d['_busy'] / max(1e-9, d['_total']), os.cpu_count())]
        parts += ['%s %.0f s (%.2f CPU)' % (k, v, v / seconds)
                  for k, v in d.items() if not k.startswith('_')]
        parts.append('anything else %.0f s' % max(0.0, d['_busy'] - ours))
        return '; '.join(parts)


# -- Placement harness ------------------------------------------------------

class Harness:
    """tools/placement-server in a directory of our own."""

    def __init__(self, directory, workers, threads):
        self.dir = directory
        self.workers = workers
        self.threads = threads
        self.running = False
        self.log_offset = 0

    def start(self, retries):
        cmd = [HARNESS, 'start', '--dir', self.dir, '--port', '0',
               '--fresh', '--workers', str(self.workers),
               '--conflict-retries', str(retries)]
        if self.threads:
            cmd += ['--threads', str(self.threads)]
        t = now()
        self.running = True     # a failed start stops what it started
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            self.running = False
            raise SystemExit('scale_run: placement-server start failed: %s'
                             % (out.stderr.strip().splitlines() or ['?'])[-1])
        url = out.stdout.strip().splitlines()[-1]
        try:
            self.log_offset = os.path.getsize(self.log_path)
        except OSError:
            self.log_offset = 0
        return url, now() - t

    @property
    def log_path(self):
        return os.path.join(self.dir, 'placement.log')

    def log_lines(self, needle):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(self.log_offset)
                return [line.decode('utf-8', 'replace') for line in f
                        if needle in line]
        except OSError:
            return []

    def log_summary(self):
        """What Placement's log says about capacity in this run."""
        import re
        granted = collections.Counter()
        for line in self.log_lines(b'reduces existing overage'):
            m = re.search(r'Over capacity for (\S+) on resource provider '
                          r'(\S+) but', line)
            granted[m.group(1) if m else '?'] += 1
        return '%d claims granted over capacity ("reduces existing ' \
            'overage"%s), %d refused at capacity, %d "Exceeded retry ' \
            'limit"' % (sum(granted.values()), ''.join(
                '; %s %d' % kv for kv in sorted(granted.items())),
                len(self.log_lines(b'. Needed: ')),
                len(self.log_lines(b'Exceeded retry limit')))

    def pids(self):
        """(gunicorn master, PostgreSQL postmaster) from state.json."""
        import json
        try:
            with open(os.path.join(self.dir, 'state.json')) as f:
                state = json.load(f)
        except (OSError, ValueError):
            return None, None
        return state.get('placement_pid'), state.get('pg_pid')

    def stop(self, purge=False):
        if not self.running and not purge:
            return
        cmd = [HARNESS, 'stop', '--dir', self.dir] + (
            ['--purge'] if purge else [])
        subprocess.run(cmd, capture_output=True, text=True)
        self.running = False


# -- logging: counted, not printed --------------------------------------------

class CountingHandler(logging.Handler):
    """Counts WARNING+ records by message template; keeps one example."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.counts = collections.Counter()
        self.example = {}

    def emit(self, record):
        key = (record.levelname, record.name, str(record.msg)[:120])
        self.counts[key] += 1
        if key not in self.example:
            try:
                self.example[key] = record.getMessage()[:300]
            except Exception:       # noqa: a bad format: keep the template
                self.example[key] = str(record.msg)[:300]

    def summary(self):
        return [(k, n, self.example[k]) for k, n in self.counts.items()]


def count_logs():
    handler = CountingHandler()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    return handler


def err_text(e):
    return '%s: %s' % (type(e).__name__, str(e).splitlines()[0][:200]
                       if str(e) else '')


# -- agent + compute process ------------------------------------------------

class HostSim:
    """One simulated host: its agent's Reporter and its compute service.

    The compute service runs up to ``builds`` operations at once (Nova's
    max_concurrent_builds), each on a Host object of its own (a Host and
    its Reporter are not shared between threads); they meet in the
    per-parent inter-process locks, the ledger and Placement.
    """

    def __init__(self, index, name, conf, builds):
        from vgpu_placement import standalone
        self.index, self.name, self.conf = index, name, conf
        self.agent = standalone.reporter_for(conf)
        self.slots = threading.Semaphore(builds)
        self.pool = []                     # idle Host objects
        self.pool_lock = threading.Lock()
        self.compute = self._new_host()    # also the one the checks use
        self.pool.append(self.compute)
        self.held = {}                     # consumer -> (type, phase)

    def _new_host(self):
        from vgpu_placement import standalone
        return standalone.host_for(standalone.reporter_for(self.conf))

    @contextlib.contextmanager
    def host(self):
        """A Host object for one compute operation."""
        with self.slots:
            with self.pool_lock:
                host = self.pool.pop() if self.pool else None
            if host is None:
                host = self._new_host()
            try:
                yield host
            finally:
                with self.pool_lock:
                    self.pool.append(host)


class AgentProcess:
    """Agents and compute services of a share of the hosts."""

    def __init__(self, wid, hosts, args, url, state_root, requests, events,
                 results):
        self.wid = wid
        self.host_specs = hosts               # [(index, name)]
        self.args = args
        self.url = url
        self.state_root = state_root
        self.requests = requests              # mp.Queue: jobs and commands
        self.events = events                  # mp.Queue: to the main process
        self.results = results                # {scheduler id: mp.Queue}
        self.hosts = {}
        self.cond = threading.Condition()
        self.heap = []                        # (due, index) agent reports
        self.agents_paused = False
        self.agents_running = 0
        self.stopping = False
        self.jobs = queue.Queue()             # compute jobs
        self.timers = []                      # (due, seq, job) releases
        self.timer_cond = threading.Condition()
        self.busy = 0                         # compute jobs running/queued
        self.seq = 0

    def emit(self, *event):
        self.events.put(event)

    # -- agent reports --------------------------------------------------------
    def report_once(self, h, due):
        start = now()
        writes = reads = 0
        err = None
        try:
            result = h.agent.report()
            writes, reads = result.requests.writes, result.requests.reads
        except Exception as e:       # noqa: counted, the agent goes on
            err = err_text(e)
        end = now()
        self.emit('report', h.index, start, end, writes, reads, err,
                  start - due if due is not None else None)

    def agent_loop(self):
        while True:
            with self.cond:
                while True:
                    if self.stopping:
                        return
                    if not self.agents_paused and self.heap:
                        wait = self.heap[0][0] - now()
                        if wait <= 0:
                            break
                        self.cond.wait(min(wait, 0.5))
                    else:
                        self.cond.wait(0.5)
                due, index = heapq.heappop(self.heap)
                self.agents_running += 1
            try:
                self.report_once(self.hosts[index], due)
            finally:
                with self.cond:
                    self.agents_running -= 1
                    t = now()
                    nxt = due + self.args.report_interval
                    heapq.heappush(self.heap, (max(nxt, t), index))
                    self.cond.notify_all()

    # -- compute ------------------------------------------------------------
    def compute_loop(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                self.run_job(job)
            except Exception:       # noqa: a bug of this script: say it
                self.emit('crash', 'agent-proc %d' % self.wid,
                          traceback.format_exc())
            finally:
                with self.timer_cond:
                    self.busy -= 1

    def submit(self, job):
        with self.timer_cond:
            self.busy += 1
        self.jobs.put(job)

    def timer_loop(self):
        while True:
            with self.timer_cond:
                while not self.stopping and (
                        not self.timers or self.timers[0][0] > now()):
                    wait = self.timers[0][0] - now() if self.timers else 0.5
                    self.timer_cond.wait(max(0.01, min(wait, 0.5)))
                if self.stopping:
                    return
                _due, _seq, job = heapq.heappop(self.timers)
                self.busy += 1       # counted before it leaves the timers
            self.jobs.put(job)

    def hold(self, seconds, job):
        with self.timer_cond:
            self.seq += 1
            heapq.heappush(self.timers, (now() + seconds, self.seq, job))
            self.timer_cond.notify_all()

    def run_job(self, job):
        from vgpu_placement import exceptions
        op = job[0]
        if op == 'realize':
            _op, index, consumer, type_id, phase, sched, hold_s = job
            h = self.hosts[index]
            start = now()
            outcome, err = 'ok', None
            with h.host() as compute:
                try:
                    compute.realize(consumer)
                    h.held[consumer] = (type_id, phase)
                except exceptions.NoCapacity as e:
                    outcome, err = 'late', err_text(e)
                except Exception as e:   # noqa: counted by class
                    outcome, err = 'error', err_text(e)
                if outcome == 'error' and compute.ledger.records(consumer):
                    err += ' [after its mdevs were created]'
                if outcome != 'ok':
                    # The build failed: free what it made, drop the claim.
                    self.release(h, compute, consumer, phase, type_id)
                end = now()
            self.emit('realize', index, consumer, type_id, phase, start, end,
                      outcome, err)
            if sched is not None:
                self.results[sched].put((consumer, outcome))
            if outcome == 'ok' and hold_s is not None:
                self.hold(hold_s, ('release', index, consumer, phase))
        elif op == 'release':
            _op, index, consumer, phase = job
            h = self.hosts[index]
            with h.host() as compute:
                self.release(h, compute, consumer, phase,
                             h.held.get(consumer, (None,))[0])

    def release(self, h, compute, consumer, phase, type_id):
        """Host.release, tried again (as a compute service deleting an
        instance would) until it says it is done, at most 3 times."""
        start = now()
        first_err = None
        for attempt in range(1, 4):
            try:
                _freed, done = compute.release(consumer)
                err = None if done else 'release owed (Placement unreachable)'
            except Exception as e:       # noqa: counted
                err = err_text(e)
            if err is None:
                h.held.pop(consumer, None)
                break
            first_err = first_err or err
            time.sleep(0.2 * attempt)
        else:
            h.held[consumer] = (type_id, phase + '-unreleased')
        self.emit('release', h.index, consumer, phase, start, now(),
                  'ok' if err is None else 'failed', first_err, attempt)

    # -- commands -------------------------------------------------------------
    def wait_compute_idle(self, timeout):
        deadline = now() + timeout
        while now() < deadline:
            with self.timer_cond:
                if self.busy == 0 and not self.timers:
                    return True
            time.sleep(0.05)
        return False

    def pause_agents(self):
        with self.cond:
            self.agents_paused = True
            while self.agents_running:
                self.cond.wait(0.5)

    def check_host(self, h):
        """Placement vs the bench's instances vs mdevs vs ledger."""
        from vgpu_placement import ledger as ledger_mod
        host = h.compute
        ours = host._our_providers()            # a report first
        here = host.allocations_here(ours)      # consumer -> rp -> rc -> n
        wanted = {w.uuid: (c, w) for c, allocs in here.items()
                  for w in host.wanted(c, allocs, ours)}
        mdevs = {m.uuid: m for m in host.driver.discover().mdevs()}
        records = {r.uuid: r for r in host.ledger.records()}
        held = set(h.held)
        out = collections.Counter()
        out['held'] = len(held)
        out['allocations'] = len(here)
        out['mdevs'] = len(mdevs)
        # The bench's instances against Placement.
        out['lost_allocations'] = len(held - set(here))
        out['leaked_allocations'] = len(set(here) - held)
        # Placement against the host.
        out['allocations_without_mdev'] = sum(
            1 for u in wanted if u not in mdevs)
        out['leaked_mdevs'] = sum(1 for u in mdevs if u not in wanted)
        out['ledger_mismatch'] = sum(
            1 for u in set(records) | set(wanted)
            if u not in records or u not in wanted or
            records[u].state != ledger_mod.ACTIVE or
            records[u].consumer != wanted[u][0])
        out['releases_owed'] = len(host.ledger.releases_owed())
        # Each provider's usages against the mdevs on its parent.
        view = dict(host.tree.reporter.placement_view(refresh=True))
        for child, _types in ours.values():
            usages = view.get(child.name, {}).get('usages', {})
            on_parent = collections.Counter(
                m.type_id for m in mdevs.values()
                if (wanted[m.uuid][1].device if m.uuid in wanted
                    else m.parent) == child.device)
            for type_id, rc in child.plan.classes.items():
                if usages.get(rc, 0) != on_parent.get(type_id, 0):
                    out['usage_mismatch'] += 1
            for counter in child.plan.counters:
                cost = sum(on_parent.get(t, 0) * u
                           for t, u in counter.costs.items())
                if usages.get(counter.resource_class, 0) != cost:
                    out['usage_mismatch'] += 1
                if usages.get(counter.resource_class, 0) > counter.size:
                    out['over_capacity'] += 1
        summary = host.reconcile()
        out['reconcile_actions'] = sum(len(v) for v in summary.values())
        return out

    def check_all(self, threads=8):
        todo = queue.Queue()
        for h in self.hosts.values():
            todo.put(h)
        total = collections.Counter()
        errors = []
        lock = threading.Lock()

        def work():
            while True:
                try:
                    h = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    got = self.check_host(h)
                except Exception as e:   # noqa: counted
                    with lock:
                        errors.append('%s: %s' % (h.name, err_text(e)))
                    continue
                with lock:
                    total.update(got)
                    if any(got[k] for k in BAD_KEYS):
                        total['hosts_with_problems'] += 1
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return dict(total), errors

    def release_all(self):
        for h in self.hosts.values():
            for consumer, (_t, phase) in sorted(h.held.items()):
                self.submit(('release', h.index, consumer, 'end'))
        return self.wait_compute_idle(600)

    def empty_check(self):
        """After release_all: nothing left anywhere."""
        out = collections.Counter()
        for h in self.hosts.values():
            host = h.compute
            try:
                view = dict(host.tree.reporter.placement_view(refresh=True))
                for _name, rp in view.items():
                    if any(rp.get('usages', {}).values()):
                        out['providers_in_use'] += 1
                    got = host.client.get(
                        '/resource_providers/%s/allocations' % rp['uuid'])
                    out['allocations_left'] += len(got['allocations'])
                out['mdevs_left'] += len(list(host.driver.discover().mdevs()))
                out['ledger_left'] += len(host.ledger.records())
                out['releases_owed'] += len(host.ledger.releases_owed())
            except Exception as e:       # noqa: counted
                out['check_errors'] += 1
                self.emit('crash', h.name, err_text(e))
        return dict(out)

    def command(self, cmd):
        name = cmd[1]
        if name == 'idle':
            with self.timer_cond:
                reply = (self.busy, len(self.timers))
        elif name == 'pause_agents':
            self.pause_agents()
            reply = self.wait_compute_idle(120)
        elif name == 'check':
            reply = self.check_all()
        elif name == 'release_all':
            reply = self.release_all()
        elif name == 'empty_check':
            reply = self.empty_check()
        else:
            reply = 'unknown command %r' % (name,)
        self.emit('ctl', 'agent', self.wid, name, reply)

    # -- the process ------------------------------------------------------
    def register(self):
        todo = queue.Queue()
        for index, name in self.host_specs:
            todo.put((index, name))
        lock = threading.Lock()
        failures = []

        def work():
            while True:
                try:
                    index, name = todo.get_nowait()
                except queue.Empty:
                    return
                state = os.path.join(self.state_root, name)
                try:
                    h = HostSim(index, name, host_conf(
                        self.url, self.args.profile, state, name),
                        self.args.builds_per_host)
                    h.agent.report()
                    with lock:
                        self.hosts[index] = h
                except Exception as e:   # noqa: said to the main process
                    with lock:
                        failures.append('%s: %s' % (name, err_text(e)))
        pool = [threading.Thread(target=work)
                for _ in range(self.args.agent_threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return failures

    def run(self):
        child_signals()
        logs = count_logs()
        t = now()
        failures = self.register()
        self.emit('ctl', 'agent', self.wid, 'registered',
                  (now() - t, failures))
        # Staggered over one interval, across all processes.
        n = self.args.hosts
        start = now()
        for index in self.hosts:
            due = start + self.args.report_interval * index / n
            heapq.heappush(self.heap, (due, index))
        threads = [threading.Thread(target=self.agent_loop, daemon=True)
                   for _ in range(self.args.agent_threads)]
        threads += [threading.Thread(target=self.compute_loop, daemon=True)
                    for _ in range(self.args.compute_threads)]
        threads.append(threading.Thread(target=self.timer_loop, daemon=True))
        for th in threads:
            th.start()
        while True:
            msg = self.requests.get()
            if msg[0] == 'realize':
                self.submit(msg)
            elif msg[0] == 'ctl' and msg[1] == 'exit':
                break
            elif msg[0] == 'ctl':
                threading.Thread(target=self.command, args=(msg,),
                                 daemon=True).start()
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        with self.timer_cond:
            self.timer_cond.notify_all()
        for _ in range(self.args.compute_threads):
            self.jobs.put(None)
        self.emit('logs', 'agent-proc %d' % self.wid, logs.summary())
        self.emit('ctl', 'agent', self.wid, 'exit', None)


BAD_KEYS = ('lost_allocations', 'leaked_allocations',
            'allocations_without_mdev', 'leaked_mdevs', 'ledger_mismatch',
            'usage_mismatch', 'reconcile_actions', 'releases_owed')


def child_signals():
    """The main process stops its children: Ctrl-C is for it alone, and
    SIGTERM (its terminate()) ends a child at once, quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def agent_main(*a):
    AgentProcess(*a).run()


# -- scheduler process ----------------------------------------------------------

class SchedulerProcess:

    def __init__(self, sid, args, url, control, events, results,
                 worker_queues, seed):
        self.sid = sid
        self.args = args
        self.url = url
        self.control = control
        self.events = events
        self.results = results
        self.worker_queues = worker_queues
        self.rng = random.Random('%s:%d' % (seed, sid))
        self.inflight = threading.Semaphore(args.inflight)
        self.outstanding = 0
        self.out_lock = threading.Lock()

    def emit(self, *event):
        self.events.put(event)

    def listen(self):
        while True:
            got = self.results.get()
            if got is None:
                return
            with self.out_lock:
                self.outstanding -= 1
            self.inflight.release()

    def claim_one(self, phase, hold_s, wait_inflight):
        from vgpu_placement import exceptions
        from vgpu_placement.placement import consumers
        from vgpu_placement import scheduler
        type_id = self.rng.choices(self.types, self.weights)[0]
        consumer = str(uuid.uuid4())
        if wait_inflight:
            while not self.inflight.acquire(timeout=0.5):
                if now() > self.deadline:
                    return 'late'
        start = now()
        try:
            claim = self.scheduler.claim(self.requests_[type_id],
                                         consumer, PROJECT, USER)
        except scheduler.NoValidHost:
            self.emit('claim', self.sid, phase, type_id, consumer, start,
                      now(), 'novalidhost', 0, None)
            if wait_inflight:
                self.inflight.release()
            return 'novalidhost'
        except exceptions.VgpuPlacementError as e:
            self.emit('claim', self.sid, phase, type_id, consumer, start,
                      now(), 'error', 0, err_text(e))
            if wait_inflight:
                self.inflight.release()
            return 'error'
        end = now()
        hosts = {self.rp_map.get(rp) for rp in claim.allocations}
        index = hosts.pop() if len(hosts) == 1 else None
        if index is None:
            # Not one of our hosts (a foreign provider, with --url).
            self.emit('claim', self.sid, phase, type_id, consumer, start, end,
                      'foreign', claim.attempts, None)
            consumers.release(self.client, consumer,
                              set(claim.allocations).__contains__)
            if wait_inflight:
                self.inflight.release()
            return 'foreign'
        self.emit('claim', self.sid, phase, type_id, consumer, start, end,
                  'ok', claim.attempts, index)
        if wait_inflight:
            with self.out_lock:
                self.outstanding += 1
        self.worker_queues[index % len(self.worker_queues)].put(
            ('realize', index, consumer, type_id, phase,
             self.sid if wait_inflight else None, hold_s))
        return 'ok'

    def steady(self, seconds):
        self.deadline = deadline = now() + seconds
        lo, hi = self.args.hold
        while now() < deadline:
            got = self.claim_one('steady', self.rng.uniform(lo, hi), True)
            if got in ('novalidhost', 'error'):
                time.sleep(0.1)      # a full cloud: do not spin
        # Builds still out: wait for them (bounded).
        limit = now() + 120
        while now() < limit:
            with self.out_lock:
                if self.outstanding == 0:
                    break
            time.sleep(0.05)

    def burst(self, count):
        for _ in range(count):
            self.claim_one('burst', None, False)

    def run(self):
        child_signals()
        logs = count_logs()
        from vgpu_placement import flavor
        from vgpu_placement import standalone
        from tests.conftest import make_conf
        conf = make_conf(ini(self.url))
        self.client = standalone.placement_client(conf)
        from vgpu_placement import scheduler
        self.scheduler = scheduler.Scheduler(self.client,
                                             max_age=self.args.remember)
        listener = threading.Thread(target=self.listen, daemon=True)
        listener.start()
        while True:
            msg = self.control.get()
            name = msg[0]
            if name == 'setup':
                self.rp_map, flavors, weights = msg[1:]
                self.types = sorted(weights)
                self.weights = [weights[t] for t in self.types]
                self.requests_ = {t: flavor.parse_extra_specs(flavors[t])
                                  for t in self.types}
                reply = None
            elif name == 'steady':
                self.steady(msg[1])
                reply = None
            elif name == 'burst':
                self.burst(msg[1])
                reply = None
            elif name == 'exit':
                self.emit('logs', 'scheduler %d' % self.sid, logs.summary())
                self.emit('ctl', 'scheduler', self.sid, 'exit', None)
                return
            self.emit('ctl', 'scheduler', self.sid, name, reply)


def scheduler_main(*a):
    try:
        SchedulerProcess(*a).run()
    except Exception:       # noqa: a bug of this script: say it
        a[4].put(('crash', 'scheduler %d' % a[0], traceback.format_exc()))
        raise


# -- the main process: one run ---------------------------------------------------

class Run:
    """One Placement setting: processes, phases, figures."""

    def __init__(self, args, url, label, flavors, weights, server_pids=None):
        self.server_pids = server_pids or (None, None)
        self.args = args
        self.url = url
        self.label = label
        self.flavors = flavors
        self.weights = weights
        self.ctx = mp.get_context('fork')
        self.events = self.ctx.Queue()
        self.ctl = queue.Queue()
        self.reports = []          # (index, start, end, writes, reads, err, lag)
        self.claims = []
        self.realizes = []
        self.releases = []
        self.crashes = []
        self.logs = []
        self.procs = []
        self.lock = threading.Lock()
        self.stop_reader = False
        self.fig = collections.OrderedDict()

    # -- events ---------------------------------------------------------------
    def reader(self):
        while True:
            try:
                ev = self.events.get(timeout=0.5)
            except queue.Empty:
                if self.stop_reader:
                    return
                continue
            kind = ev[0]
            with self.lock:
                if kind == 'report':
                    self.reports.append(ev[1:])
                elif kind == 'claim':
                    self.claims.append(ev[1:])
                elif kind == 'realize':
                    self.realizes.append(ev[1:])
                elif kind == 'release':
                    self.releases.append(ev[1:])
                elif kind == 'crash':
                    self.crashes.append(ev[1:])
                    say('scale_run: error in %s: %s' % (ev[1], ev[2].strip()
                                                        .splitlines()[-1]))
                elif kind == 'logs':
                    self.logs.append(ev[1:])
            if kind == 'ctl':
                self.ctl.put(ev[1:])

    def wait_ctl(self, who, name, count, timeout):
        got = {}
        deadline = now() + timeout
        while len(got) < count:
            left = deadline - now()
            if left <= 0:
                raise RuntimeError('no answer to %s from %d %s processes '
                                   'within %d s' % (name, count - len(got),
                                                    who, timeout))
            try:
                w, i, n, reply = self.ctl.get(timeout=min(left, 1))
            except queue.Empty:
                for p in self.procs:
                    if not p.is_alive() and p.exitcode not in (0, None):
                        raise RuntimeError('%s exited with %s' % (
                            p.name, p.exitcode))
                continue
            if w == who and n == name:
                got[i] = reply
        return got

    def agents_ctl(self, name, timeout=600):
        for q in self.worker_queues:
            q.put(('ctl', name))
        return self.wait_ctl('agent', name, len(self.worker_queues), timeout)

    def scheds_ctl(self, msgs, name, timeout=600):
        for q, msg in zip(self.sched_queues, msgs):
            q.put(msg)
        return self.wait_ctl('scheduler', name, len(self.sched_queues),
                             timeout)

    # -- phases ---------------------------------------------------------------
    def start_processes(self, state_root):
        a = self.args
        nproc = min(a.agent_procs, a.hosts)
        names = ['%s-h%03d' % (a.host_prefix, i) for i in range(a.hosts)]
        self.names = names
        self.worker_queues = [self.ctx.Queue() for _ in range(nproc)]
        self.result_queues = [self.ctx.Queue() for _ in range(a.schedulers)]
        self.sched_queues = [self.ctx.Queue() for _ in range(a.schedulers)]
        results = dict(enumerate(self.result_queues))
        for w in range(nproc):
            share = [(i, names[i]) for i in range(a.hosts) if i % nproc == w]
            p = self.ctx.Process(
                target=agent_main, name='agent-proc-%d' % w, daemon=True,
                args=(w, share, a, self.url, state_root,
                      self.worker_queues[w], self.events, results))
            p.start()
            self.procs.append(p)
        for s in range(a.schedulers):
            p = self.ctx.Process(
                target=scheduler_main, name='scheduler-%d' % s, daemon=True,
                args=(s, a, self.url, self.sched_queues[s], self.events,
                      self.result_queues[s], self.worker_queues, a.seed))
            p.start()
            self.procs.append(p)
        self.reader_thread = threading.Thread(target=self.reader, daemon=True)
        self.reader_thread.start()

    def provider_map(self):
        """{provider uuid: host index} for every provider of our hosts."""
        from vgpu_placement import standalone
        from tests.conftest import make_conf
        client = standalone.placement_client(make_conf(ini(self.url)))
        index = {n: i for i, n in enumerate(self.names)}
        rps = client.get('/resource_providers')['resource_providers']
        roots = {rp['uuid']: index[rp['name']] for rp in rps
                 if rp['name'] in index}
        found = {rp['uuid']: roots[rp['root_provider_uuid']] for rp in rps
                 if rp['root_provider_uuid'] in roots}
        foreign = len(rps) - len(found)
        return found, foreign, client

    def wait_idle(self, timeout):
        deadline = now() + timeout
        while now() < deadline:
            got = self.agents_ctl('idle', 60)
            if all(busy == 0 and timers == 0 for busy, timers in
                   got.values()):
                return True
            time.sleep(0.25)
        return False

    def wait_converged(self, since, timeout):
        """Wait until every host has an agent report that started after
        its last change (since[host], default since[None]) and made zero
        writes; a later report with writes takes that back. Returns
        ({host: (end of confirming report, end of its last writing
        report)}, hosts never confirmed)."""
        deadline = now() + timeout
        pos = 0
        hosts = set(range(len(self.names)))
        confirmed = {}
        last_write = {}
        while True:
            with self.lock:
                new = self.reports[pos:]
                pos = len(self.reports)
            for index, start, end, writes, _r, err, _lag in new:
                base = since.get(index, since[None])
                if start < since[None]:
                    continue
                if writes or err:
                    last_write[index] = max(last_write.get(index, 0), end)
                    confirmed.pop(index, None)
                    continue
                if index not in confirmed and start >= base:
                    confirmed[index] = end
            if len(confirmed) == len(hosts) or now() > deadline:
                return ({i: (confirmed.get(i), last_write.get(i))
                         for i in hosts}, hosts - set(confirmed))
            time.sleep(0.1)

    # -- the whole run ------------------------------------------------------
    def execute(self):
        a = self.args
        fig = self.fig
        state_root = tempfile.mkdtemp(prefix='scale-run-hosts-')
        clean = False
        try:
            self._execute(state_root)
            clean = True
        finally:
            try:
                self.shutdown(wait=30 if clean else 0)
            finally:
                if not a.keep:
                    shutil.rmtree(state_root, ignore_errors=True)
                else:
                    fig['host state kept in'] = state_root
        return fig

    def _execute(self, state_root):
        a = self.args
        fig = self.fig
        t0 = now()
        self.start_processes(state_root)
        got = self.wait_ctl('agent', 'registered', len(self.worker_queues),
                            1200)
        failures = [f for _t, fs in got.values() for f in fs]
        fig['registration'] = '%d hosts in %.1f s (%d failed%s)' % (
            a.hosts - len(failures), now() - t0, len(failures),
            ': ' + failures[0] if failures else '')
        if failures:
            raise RuntimeError('registration failed: %s' % failures[0])
        rp_map, foreign, client = self.provider_map()
        self.client = client
        fig['providers'] = '%d ours, %d others in Placement' % (
            len(rp_map), foreign)
        self.scheds_ctl([('setup', rp_map, self.flavors, self.weights)] *
                        a.schedulers, 'setup', 120)

        # -- steady load ----------------------------------------------------
        say('scale_run [%s]: steady load for %d s' % (self.label, a.seconds))
        groups = collections.OrderedDict()
        gunicorn, postgres = self.server_pids
        if gunicorn:
            groups['Placement'] = ([gunicorn], False)
        if postgres:
            groups['PostgreSQL'] = ([postgres], False)
        groups['agents+compute'] = ([p.pid for p in self.procs
                                     if p.name.startswith('agent')], False)
        groups['schedulers'] = ([p.pid for p in self.procs
                                 if p.name.startswith('sched')], False)
        groups['bench main'] = ([os.getpid()], True)
        meter = CpuMeter(groups)
        cpu0 = meter.sample()
        s0 = now()
        self.scheds_ctl([('steady', a.seconds)] * a.schedulers, 'steady',
                        a.seconds + 300)
        s1 = now()
        fig['_cpu'] = CpuMeter.text(cpu0, meter.sample(), s1 - s0)
        drained = self.wait_idle(300)
        s2 = now()
        quiet, never = self.wait_converged({None: s2},
                                           a.report_interval * 5 + 60)
        s3 = now()
        self.steady_window = (s0, s1)
        fig['_steady'] = (s0, s1, s2, s3, drained, len(never))

        # -- burst ----------------------------------------------------------
        say('scale_run [%s]: burst of %d claims' % (self.label, a.burst))
        per = [a.burst // a.schedulers + (1 if s < a.burst % a.schedulers
                                          else 0)
               for s in range(a.schedulers)]
        b0 = now()
        self.scheds_ctl([('burst', n) for n in per], 'burst', 600)
        b1 = now()
        self.wait_idle(600)
        b2 = now()
        with self.lock:
            built = [r for r in self.realizes if r[3] == 'burst']
        since = {None: b0}
        for index, _c, _t, _p, _s, end, _o, _e in built:
            since[index] = max(since.get(index, b0), end)
        conv, never = self.wait_converged(since,
                                          a.report_interval * 5 + 120)
        fig['_burst'] = (b0, b1, b2, conv, never, since)

        # -- final check ----------------------------------------------------
        say('scale_run [%s]: final check' % self.label)
        c0 = now()
        paused = self.agents_ctl('pause_agents', 300)
        checks = self.agents_ctl('check', 1200)
        total = collections.Counter()
        errors = []
        for got_total, errs in checks.values():
            total.update(got_total)
            errors.extend(errs)
        fig['_check'] = (dict(total), errors, all(paused.values()))
        self.agents_ctl('release_all', 900)
        empty = collections.Counter()
        for got in self.agents_ctl('empty_check', 900).values():
            empty.update(got)
        # 1.37: from 1.38 on (consumer types) openstack-placement 16.0.0
        # answers this query 500 on PostgreSQL (a GROUP BY error).
        usages = client.get('/usages?project_id=%s' % PROJECT,
                            microversion='1.37')['usages']
        fig['_empty'] = (dict(empty), {k: v for k, v in usages.items() if v})
        if a.url:
            # Someone else's Placement: take our providers away again.
            left = 0
            rps = client.get('/resource_providers')['resource_providers']
            ours = [rp for rp in rps if rp['uuid'] in rp_map]
            for rp in sorted(ours, key=lambda rp: rp['parent_provider_uuid']
                             is None):
                try:
                    client.delete('/resource_providers/%s' % rp['uuid'])
                except Exception:    # noqa: said below
                    left += 1
            fig['cleanup'] = '%d of our %d providers deleted from %s' % (
                len(ours) - left, len(ours), self.url)
        fig['_check_time'] = now() - c0
        fig['_total_time'] = now() - t0

    def shutdown(self, wait=30):
        """Ask the children to exit (wait seconds), then terminate them."""
        for q in getattr(self, 'sched_queues', []):
            q.put(('exit',))
        for q in getattr(self, 'worker_queues', []):
            q.put(('ctl', 'exit'))
        for q in getattr(self, 'result_queues', []):
            q.put(None)
        deadline = now() + wait
        for p in self.procs:
            p.join(max(0.1, deadline - now()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        self.stop_reader = True
        if getattr(self, 'reader_thread', None):
            self.reader_thread.join(10)


# -- figures ----------------------------------------------------------------

def pct(values, q):
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def ms(values):
    if not values:
        return '-'
    return 'p50 %.0f / p95 %.0f / max %.0f ms' % (
        pct(values, .5) * 1000, pct(values, .95) * 1000, max(values) * 1000)


def summarize(run, harness_info):
    """Rows (name, value) of one run, and the targets."""
    a = run.args
    fig = run.fig
    rows = []
    add = lambda k, v: rows.append((k, v))
    add('Placement', harness_info)
    add('registration', fig['registration'])
    add('providers', fig['providers'])
    s0, s1, s2, s3, drained, never_quiet = fig['_steady']
    dur = s1 - s0

    steady = [c for c in run.claims if c[1] == 'steady']
    ok = [c for c in steady if c[6] == 'ok']
    retries = sum(c[7] - 1 for c in steady if c[6] in ('ok', 'foreign'))
    raced = sum(1 for c in steady if c[6] == 'ok' and c[7] > 1)
    nvh = sum(1 for c in steady if c[6] == 'novalidhost')
    cerr = collections.Counter(c[8] for c in steady if c[6] == 'error')
    foreign = sum(1 for c in steady if c[6] == 'foreign')
    add('steady: claims', '%d granted in %.1f s = %.1f claims/s '
        '(%d schedulers)' % (len(ok), dur, len(ok) / dur, a.schedulers))
    add('steady: 409 retries', '%d (%.2f per claim; %d claims needed more '
        'than one PUT)' % (retries, retries / max(1, len(ok)), raced))
    add('steady: NoValidHost', nvh)
    add('steady: claim errors', sum(cerr.values()) if not cerr else
        '%d (%s)' % (sum(cerr.values()), '; '.join(
            '%d x %s' % (n, e) for e, n in cerr.most_common(3))))
    if foreign:
        add('steady: claims on foreign providers', foreign)
    add('steady: claim latency', ms([c[5] - c[4] for c in ok]))
    by_type = collections.Counter(c[2] for c in ok)
    add('steady: mix granted', ', '.join('%s %d' % kv for kv in
                                         sorted(by_type.items())))

    sreal = [r for r in run.realizes if r[3] == 'steady']
    late = [r for r in sreal if r[6] == 'late']
    rerr = collections.Counter(r[7] for r in sreal if r[6] == 'error')
    add('steady: builds', '%d realized, %d late failures, %d other errors'
        % (sum(1 for r in sreal if r[6] == 'ok'), len(late),
           sum(rerr.values())))
    if late:
        add('  late failures by type', ', '.join(
            '%s %d' % kv for kv in sorted(collections.Counter(
                r[2] for r in late).items())))
        add('  e.g.', late[0][7])
    for e, n in rerr.most_common(3):
        add('  build error', '%d x %s' % (n, e))
    add('steady: realize latency', ms([r[5] - r[4] for r in sreal
                                        if r[6] == 'ok']))
    rel = [r for r in run.releases if r[2] == 'steady']
    relerr = collections.Counter(r[6] for r in rel if r[6])
    add('steady: releases', '%d done (%d of them only when tried again), %d '
        'failed 3 times' % (sum(1 for r in rel if r[5] == 'ok'),
                            sum(1 for r in rel if r[5] == 'ok' and r[7] > 1),
                            sum(1 for r in rel if r[5] != 'ok')))
    for e, n in relerr.most_common(3):
        add('  release error', '%d x %s' % (n, e))
    add('steady: drain', 'builds and holds done %.1f s after the schedulers '
        'stopped%s; every agent report zero writes %.1f s later%s' % (
            s2 - s1, '' if drained else ' (TIMED OUT)', s3 - s2,
            '' if not never_quiet else ' (%d hosts never quiet)'
            % never_quiet))

    # Agent reports during the steady window.
    rep = [r for r in run.reports if s0 <= r[1] < s1]
    lags = [r[6] for r in rep if r[6] is not None]
    rerrs = collections.Counter(r[5] for r in run.reports if r[5])
    add('agents: reports (steady)', '%d = %.1f/s (interval %g s, %d hosts); '
        '%d with writes, %d writes' % (
            len(rep), len(rep) / dur, a.report_interval, a.hosts,
            sum(1 for r in rep if r[3]), sum(r[3] for r in rep)))
    add('agents: report latency', ms([r[2] - r[1] for r in rep]))
    add('CPU (steady window)', fig['_cpu'])
    add('agents: start lag', ms(lags))
    add('agents: report errors (whole run)', sum(rerrs.values()) if not rerrs
        else '%d (%s)' % (sum(rerrs.values()), '; '.join(
            '%d x %s' % (n, e) for e, n in rerrs.most_common(3))))

    # Burst.
    b0, b1, b2, conv, never, since = fig['_burst']
    burst = [c for c in run.claims if c[1] == 'burst']
    bok = [c for c in burst if c[6] == 'ok']
    breal = [r for r in run.realizes if r[3] == 'burst']
    touched = {r[0] for r in breal}
    blate = sum(1 for r in breal if r[6] == 'late')
    berr = sum(1 for r in breal if r[6] == 'error')
    add('burst: claims', '%d granted of %d in %.2f s = %.1f claims/s; '
        '%d 409 retries, %d NoValidHost' % (
            len(bok), len(burst), b1 - b0, len(bok) / max(1e-9, b1 - b0),
            sum(c[7] - 1 for c in bok),
            sum(1 for c in burst if c[6] == 'novalidhost')))
    add('burst: builds', '%d realized on %d hosts, %d late failures, '
        '%d other errors; last done at +%.1f s' % (
            sum(1 for r in breal if r[6] == 'ok'), len(touched), blate,
            berr, max([r[5] for r in breal] or [b0]) - b0))
    last_write = max([w for i, (c, w) in conv.items() if w] +
                     [r[5] for r in breal] + [b0])
    confirmed = [c for c, _w in conv.values() if c]
    for e, n in collections.Counter(r[7] for r in breal
                                    if r[6] != 'ok').most_common(3):
        add('  burst build failure', '%d x %s' % (n, e))
    add('burst: converged', '%s after the burst began (every host\'s next '
        'agent report after its last build made zero writes; last write '
        'to their providers, by a build or an agent, at +%.1f s)%s' % (
            ('%.1f s' % (max(confirmed) - b0)) if not never else
            'NOT within the timeout', last_write - b0,
            '' if not never else '; %d hosts never converged' % len(never)))
    untouched_writes = sum(1 for r in run.reports
                           if r[1] >= b0 and r[0] not in touched and r[3])
    if untouched_writes:
        add('burst: reports with writes on untouched hosts',
            untouched_writes)

    # Final check.
    total, errors, paused = fig['_check']
    lost = total.get('lost_allocations', 0)
    leaked = total.get('leaked_allocations', 0)
    add('final: instances held', '%d (burst), %d allocations, %d mdevs in '
        'Placement/hosts' % (total.get('held', 0),
                             total.get('allocations', 0),
                             total.get('mdevs', 0)))
    add('final: allocations lost / leaked', '%d / %d' % (lost, leaked))
    add('final: allocations without mdev / leaked mdevs', '%d / %d' % (
        total.get('allocations_without_mdev', 0),
        total.get('leaked_mdevs', 0)))
    add('final: ledger mismatches / usage mismatches / over capacity',
        '%d / %d / %d' % (total.get('ledger_mismatch', 0),
                          total.get('usage_mismatch', 0),
                          total.get('over_capacity', 0)))
    add('final: reconcile actions / releases owed', '%d / %d' % (
        total.get('reconcile_actions', 0), total.get('releases_owed', 0)))
    if errors:
        add('final: check errors', '%d (%s)' % (len(errors), errors[0]))
    empty, usages = fig['_empty']
    add('after releasing all', 'allocations %d, providers in use %d, mdevs '
        '%d, ledger records %d, owed %d, project usages %s' % (
            empty.get('allocations_left', 0),
            empty.get('providers_in_use', 0), empty.get('mdevs_left', 0),
            empty.get('ledger_left', 0), empty.get('releases_owed', 0),
            usages or '{}'))
    if run.crashes:
        add('bench errors', '%d (%s)' % (len(run.crashes),
                                         run.crashes[0][1].strip()
                                         .splitlines()[-1]))
    logs = collections.Counter()
    example = {}
    for _who, items in run.logs:
        for key, n, ex in items:
            logs[key] += n
            example.setdefault(key, ex)
    for key, n in logs.most_common(4):
        add('log %s %s' % (key[0], key[1]), '%d x %s' % (n, example[key]))
    if fig.get('cleanup'):
        add('cleanup', fig['cleanup'])
    add('time', 'run %.0f s (check and release %.0f s)' % (
        fig['_total_time'], fig['_check_time']))

    bad_final = (lost + leaked + sum(total.get(k, 0) for k in BAD_KEYS) +
                 sum(empty.values()) + len(errors) + len(run.crashes) +
                 len(usages))
    return rows, {
        'late': len(late) + blate, 'lost_leaked': lost + leaked,
        'final_ok': bad_final == 0,
        'build_errors': sum(rerr.values()) + berr,
        'builds': len(sreal) + len(breal),
        'release_retried': sum(1 for r in run.releases if r[7] > 1)}


def print_table(title, rows):
    width = max(len(k) for k, _v in rows)
    print()
    print(title)
    print('-' * len(title))
    for k, v in rows:
        print('%-*s  %s' % (width, k, v))
    sys.stdout.flush()


# -- main -----------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
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
    args = p.parse_args(argv)
    lo, _, hi = args.hold.partition(',')
    args.hold = (float(lo), float(hi or lo))
    args.retries = [int(x) for x in args.conflict_retries.split(',') if x]
    args.host_prefix = 'scale-%s' % uuid.uuid4().hex[:6]
    if args.connect_retries is not None:
        global EXTRA_INI
        EXTRA_INI = 'connect_retries = %d\n' % args.connect_retries
    if args.hosts < 1 or args.schedulers < 1:
        p.error('--hosts and --schedulers must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    wall = now()
    flavors, weights, source, models, skipped = flavors_for(args.profile,
                                                            args.mix)
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
            harness = Harness(own_dir, args.workers, args.threads)
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
            rows, verdict = summarize(run, info)
            if over is not None:
                rows.insert(-1, ('Placement log', over))
            title = 'Placement %s' % ('given by --url' if retries is None else
                                      'allocation_conflict_retry_count = %d'
                                      % retries)
            print_table(title, rows)
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


if __name__ == '__main__':
    sys.exit(main())
