"""The agents and compute services of a share of the hosts: one process.

Each host (HostSim) has its agent, a Reporter reporting every
--report-interval seconds, and its compute service, realizing and
releasing what the schedulers place on it. The process answers the main
process's commands (idle, pause_agents, check, release_all, empty_check,
exit) and sends it events (report, realize, release, crash, logs, ctl).
"""
import collections
import contextlib
import heapq
import os
import queue
import threading
import time
import traceback

import common
from scale import child_signals
from scale import config
from scale import err_text
from scale import logs as logs_mod
from scale import now

# Counters of the final check that must be zero on every host.
BAD_KEYS = ('lost_allocations', 'leaked_allocations',
            'allocations_without_mdev', 'leaked_mdevs', 'ledger_mismatch',
            'usage_mismatch', 'reconcile_actions', 'releases_owed')


class HostSim:
    """One simulated host: its agent's Reporter and its compute service.

    The compute service runs up to ``builds`` operations at once (Nova's
    max_concurrent_builds), each on an MdevManager of its own (an
    MdevManager and its Reporter are not shared between threads); they
    meet in the per-parent inter-process locks, the ledger and Placement.
    """

    def __init__(self, index, name, conf, builds):
        from vgpu_placement.service import standalone
        self.index, self.name, self.conf = index, name, conf
        self.agent = standalone.reporter_for(conf)
        self.slots = threading.Semaphore(builds)
        self.pool = []                     # idle MdevManager objects
        self.pool_lock = threading.Lock()
        self.compute = self._new_host()    # also the one the checks use
        self.pool.append(self.compute)
        self.held = {}                     # consumer -> (type, phase)

    def _new_host(self):
        return common.reporter_and_host(self.conf)[1]

    @contextlib.contextmanager
    def host(self):
        """An MdevManager for one compute operation."""
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
        """MdevManager.release, tried again (as a compute service deleting an
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
        from vgpu_placement.host import facts as host_facts
        from vgpu_placement.host import ledger as ledger_mod
        host = h.compute
        ours = host.our_providers()            # a report first
        here = host.allocations_here(ours)      # consumer -> rp -> rc -> n
        wanted = {w.uuid: (c, w) for c, allocs in here.items()
                  for w in host_facts.wanted(c, allocs, ours)}
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
                    h = HostSim(index, name, config.host_conf(
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
        logs = logs_mod.count_logs()
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


def agent_main(*a):
    AgentProcess(*a).run()
