"""One run of the scale run on one Placement: the processes, the phases
(registration, steady load, drain, burst, final check, release all) and
the events the children send, kept for the report."""
import collections
import multiprocessing as mp
import os
import queue
import shutil
import tempfile
import threading
import time

from scale import agents
from scale import config
from scale import now
from scale import procfs
from scale import say
from scale import schedulers


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
        self.reports = []        # (index, start, end, writes, reads, err, lag)
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
                target=agents.agent_main, name='agent-proc-%d' % w,
                daemon=True,
                args=(w, share, a, self.url, state_root,
                      self.worker_queues[w], self.events, results))
            p.start()
            self.procs.append(p)
        for s in range(a.schedulers):
            p = self.ctx.Process(
                target=schedulers.scheduler_main, name='scheduler-%d' % s,
                daemon=True,
                args=(s, a, self.url, self.sched_queues[s], self.events,
                      self.result_queues[s], self.worker_queues, a.seed))
            p.start()
            self.procs.append(p)
        self.reader_thread = threading.Thread(target=self.reader, daemon=True)
        self.reader_thread.start()

    def provider_map(self):
        """{provider uuid: host index} for every provider of our hosts."""
        from tests.conftest import make_conf
        from vgpu_placement.service import standalone
        client = standalone.placement_client(make_conf(config.ini(self.url)))
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
        meter = procfs.CpuMeter(groups)
        cpu0 = meter.sample()
        s0 = now()
        self.scheds_ctl([('steady', a.seconds)] * a.schedulers, 'steady',
                        a.seconds + 300)
        s1 = now()
        fig['_cpu'] = procfs.CpuMeter.text(cpu0, meter.sample(), s1 - s0)
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
        usages = client.get('/usages?project_id=%s' % config.PROJECT,
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
