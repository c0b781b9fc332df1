"""A scheduler process: claims through its scheduler.Scheduler across the
whole cloud and sends each granted claim to the process owning the host.

Commands from the main process: setup (provider map, flavors, weights),
steady (seconds), burst (count), exit.
"""
import random
import threading
import time
import traceback
import uuid

from scale import child_signals
from scale import config
from scale import err_text
from scale import logs as logs_mod
from scale import now


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
        from vgpu_placement.placement import scheduler
        type_id = self.rng.choices(self.types, self.weights)[0]
        consumer = str(uuid.uuid4())
        if wait_inflight:
            while not self.inflight.acquire(timeout=0.5):
                if now() > self.deadline:
                    return 'late'
        start = now()
        try:
            claim = self.scheduler.claim(self.requests_[type_id], consumer,
                                         config.PROJECT, config.USER)
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
        logs = logs_mod.count_logs()
        from tests.conftest import make_conf
        from vgpu_placement.placement import flavor
        from vgpu_placement.service import standalone
        conf = make_conf(config.ini(self.url))
        self.client = standalone.placement_client(conf)
        from vgpu_placement.placement import scheduler
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
