#!/usr/bin/env python3
"""Peak RSS and CPU seconds per hour of the agent on a large host, against
a remote Placement and against the embedded one.

The large host is a synthetic sysfs tree (benches/discovery.py's
build_host): 8 GPUs x 32 SR-IOV VFs x 24 NVIDIA types, one foreign mdev on
every fourth VF. The agent runs as it is shipped:

    python3 -m vgpu_placement.cmd.agent --config-file CONF

with the sysfs driver ([sysfs] root = the tree), in two configurations:

  remote    [placement] pointing at Placement as clouds run it:
            tools/placement-server (gunicorn workers on PostgreSQL, its
            own cluster in the work directory, stopped and purged at the
            end). If the harness cannot start (no PostgreSQL, no root to
            install it), the fallback is the embedded Placement served over
            HTTP by another process (embedded.LoopbackServer), said in the
            output. --placement-url uses a Placement already running.
  embedded  [embedded_placement] enabled (SQLite in its state_path).

Both run with [agent] watch_uevents on (as shipped) and
full_scan_interval raised to one full host read per reconcile (600 s /
60 s; the default is one per report), so a periodic report reuses the last
host read while the uevent listener is proven to hear the kernel. The
synthetic tree is plain files: it raises no uevents, so after start-up
only the reconciles (and any real uevent of this machine) read it; the
output counts the cycles that did. Beside it, in the same run, the remote
agent with full_scan_interval = 0 (every report reads the host, as the
default does at every periodic report) shows what the reuse saves.

Each configuration is two agent processes:

  cycles    [agent] report_interval = 1, reconcile_interval = 10 (the
            default ratio of one reconcile every 10 reports, 600 s / 60 s).
            Each 'report done' line on its stderr ends one cycle; the
            bench reads the process's CPU time (utime + stime,
            /proc/<pid>/stat) and peak RSS (VmHWM, /proc/<pid>/status) at
            every such line, then sends SIGTERM. CPU per cycle excludes
            start-up (everything up to the end of cycle 0, which creates
            the tree in Placement and reconciles) and is the mean over
            whole reconcile periods; it includes the cycle's 1 s wait.
  idle      report_interval = 3600 on the same state: after cycle 0 the
            agent waits; its CPU over --idle seconds is its idle rate (the
            main thread's wake-ups, the uevent listener).

CPU s/hour at the default period = mean CPU s/cycle x 60 + idle rate x
3600 (the cycles' own waits are thus counted twice: a slight upper bound).

Baselines measured the same way in the same run, idle for --idle seconds:
  idle python      python3 -c 'import time; time.sleep(N)'
  libraries        a python that imports the libraries a compute host's
                   agent needs (requirements.txt: oslo.config, oslo.log,
                   keystoneauth1, oslo.concurrency, stevedore, os-traits,
                   os-resource-classes, PyYAML, oslo.privsep when
                   installed), idle: the floor of any
                   agent built on them
  project imports  a python that imports every vgpu_placement module, idle
  + Placement      the same plus the embedded Placement started on an
                   empty database, idle
and the polling floor: CPU time of listing the parents and their type
directories and reading every available_instances (os.open/os.read, no
parsing), the least a periodic rescan of this host reads; median of 5, in
this process.

The full-read agent has no idle run of its own: it is the same process
as the remote agent's between cycles, whose idle rate it uses.

Targets (issue 14): the agent with a remote Placement at most 3x the idle
python's peak RSS; at most 5 CPU s per hour at the default period (remote
and embedded, one host read per reconcile; the full-read agent's figure,
the default's cost, is printed beside). Exit status 0 when both hold, 1
otherwise.

    python3 benches/agent_footprint.py [--cycles 30] [--gpus 8]   # ~4 min
"""
import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import discovery  # noqa: E402  (the large host's sysfs tree)

TICK = os.sysconf('SC_CLK_TCK')
DEFAULT_PERIOD = 60            # [agent] report_interval default
DEFAULT_RECONCILE = 600        # [agent] reconcile_interval default
IDLE_INTERVAL = 3600           # the idle run's report_interval
RSS_TARGET = 3.0               # x idle python, remote Placement
CPU_TARGET = 5.0               # CPU s per hour at the default period
HARNESS = os.path.join(ROOT, 'tools', 'placement-server', 'placement-server')

IMPORTS = r'''
import importlib, pkgutil, sys, time
if sys.argv[1] == 'libraries':
    import keystoneauth1.adapter, keystoneauth1.loading, keystoneauth1.session
    import oslo_concurrency.lockutils, oslo_config.cfg, oslo_log.log
    import os_resource_classes, os_traits, stevedore, yaml
    try:
        import oslo_privsep.priv_context   # the sysfs writes' privsep
    except ImportError:
        pass
else:
    import vgpu_placement
    for m in pkgutil.walk_packages(vgpu_placement.__path__,
                                   'vgpu_placement.'):
        try:
            importlib.import_module(m.name)
        except ModuleNotFoundError as e:     # e.g. the Nova driver: nova
            if (e.name or '').startswith('vgpu_placement'):
                raise
if sys.argv[1] == 'placement':
    from vgpu_placement.placement import client, embedded
    client.PlacementClient(embedded.adapter(sys.argv[2])).get(
        '/resource_providers')
print('ready', flush=True)
time.sleep(float(sys.argv[3]))
'''

# The fallback 'remote' Placement: the embedded one over HTTP, in its own
# process.
LOOPBACK = r'''
import sys, time
from vgpu_placement.placement import embedded
with embedded.LoopbackServer(sys.argv[1]) as server:
    print(server.url, flush=True)
    sys.stdin.read()
'''


def proc_sample(pid):
    """(cpu seconds, VmHWM MB, VmRSS MB) of a live process."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK   # utime, stime
    hwm = rss = 0.0
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                hwm = int(line.split()[1]) / 1024
            elif line.startswith('VmRSS:'):
                rss = int(line.split()[1]) / 1024
    return cpu, hwm, rss


def stop(proc, timeout=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_baseline(kind, seconds, db=None):
    """Start-up CPU, idle CPU rate (s/s) and peak RSS of an idle python."""
    if kind == 'sleep':
        cmd = [sys.executable, '-c',
               'import time; print("ready", flush=True); '
               'time.sleep(%g)' % (seconds + 30)]
    else:
        cmd = [sys.executable, '-c', IMPORTS, kind, db or '-',
               str(seconds + 30)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        ready_wall = time.monotonic() - t0
        cpu0, _, _ = proc_sample(proc.pid)
        time.sleep(seconds)
        cpu1, hwm, rss = proc_sample(proc.pid)
    finally:
        stop(proc)
    return {'startup_cpu': cpu0, 'startup_wall': ready_wall,
            'idle_rate': (cpu1 - cpu0) / seconds, 'hwm': hwm, 'rss': rss}


def polling_floor(sysfs_root, runs=5):
    """Median CPU seconds of one bare read of what a rescan must read."""
    bus = os.path.join(sysfs_root, 'class', 'mdev_bus')

    def once():
        for parent in os.listdir(bus):
            pdir = bus + '/' + parent
            os.listdir(pdir)                      # the parent's mdevs
            tdir = pdir + '/mdev_supported_types'
            for type_id in os.listdir(tdir):
                fd = os.open(tdir + '/' + type_id + '/available_instances',
                             os.O_RDONLY)
                try:
                    os.read(fd, 64)
                finally:
                    os.close(fd)
    samples = []
    for _ in range(runs):
        t = time.process_time()
        once()
        samples.append(time.process_time() - t)
    return statistics.median(samples)


def write_conf(path, host, sysfs_root, state, interval, reconcile,
               placement_url=None, full_scan=None):
    if placement_url:
        placement = ('[DEFAULT]\ncreate_root_provider = true\n'
                     '[placement]\nauth_type = admin_token\nendpoint = %s\n'
                     'token = admin\n' % placement_url)
    else:
        placement = '[embedded_placement]\nenabled = true\n'
    with open(path, 'w') as f:
        f.write('[DEFAULT]\nhost = %s\ndriver = sysfs\nstate_path = %s\n\n'
                '[sysfs]\nroot = %s\n\n'
                '[agent]\nreport_interval = %d\nreconcile_interval = %d\n'
                'full_scan_interval = %d\n\n'
                % (host, state, sysfs_root, interval, reconcile,
                   # One full read per reconcile; at
                   # 1 s periods a cycle's own length (5%% of it, not
                   # 0.05%% as at 60 s) would bring the interval one cycle
                   # before the reconcile: one period of slack.
                   reconcile + interval if full_scan is None else full_scan)
                + placement)


def run_agent(conf_path, log, cycles, idle=None):
    """Samples at every 'report done' line (cycle 0 .. cycles); with idle,
    one more sample idle seconds after cycle 0 (cycles must be 0)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vgpu_placement.cmd.agent', '--config-file',
         conf_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, cwd=ROOT)
    samples = []
    try:
        deadline = time.monotonic() + 600
        while len(samples) < cycles + 1:
            ready, _, _ = select.select([proc.stderr], [], [],
                                        max(0, deadline - time.monotonic()))
            if not ready:
                raise RuntimeError('agent silent for 600 s; see %s'
                                   % log.name)
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError('agent exited (rc %s); see %s' % (
                    proc.wait(), log.name))
            log.write(line)
            if 'report done' in line:
                cpu, hwm, rss = proc_sample(proc.pid)
                samples.append({'wall': time.monotonic() - t0, 'cpu': cpu,
                                'hwm': hwm, 'rss': rss,
                                'line': line.strip()})
        if idle:
            # Nothing to read on stderr while it waits (INFO lines only at
            # cycles): sleeping is the measurement window.
            time.sleep(idle)
            cpu, hwm, rss = proc_sample(proc.pid)
            samples.append({'wall': time.monotonic() - t0, 'cpu': cpu,
                            'hwm': hwm, 'rss': rss, 'line': ''})
    finally:
        stop(proc)
        log.write(proc.stderr.read())
    return samples, proc.returncode


def measure_config(name, work, sysfs_root, args, placement_url=None,
                   full_scan=None, idle_of=None):
    """Cycles run and idle run of one configuration (``idle_of``: the
    idle run of another, same binary and host, instead of a new one).
    ``full_scan``: [agent] full_scan_interval (None: the reconcile's)."""
    every = args.reconcile_every
    host = 'bench-%s-%s' % (name.split()[0], uuid.uuid4().hex[:6])
    slug = name.replace(' ', '-')
    state = os.path.join(work, 'state-' + slug)
    shutil.rmtree(state, ignore_errors=True)
    out = {}
    phases = [('cycles', args.interval, args.interval * every)]
    if idle_of is None:
        phases.append(('idle', IDLE_INTERVAL, IDLE_INTERVAL * every))
    for phase, interval, reconcile in phases:
        conf = os.path.join(work, '%s-%s.conf' % (slug, phase))
        write_conf(conf, host, sysfs_root, state, interval, reconcile,
                   placement_url, full_scan)
        with open(os.path.join(work, '%s-%s.log' % (slug, phase)),
                  'w') as log:
            if phase == 'cycles':
                out[phase] = run_agent(conf, log, args.measured)
            else:
                out[phase] = run_agent(conf, log, 0,
                                       idle=args.agent_idle)
    samples, rc = out['cycles']
    idle_samples, idle_rc = out['idle'] if idle_of is None else (
        idle_of['idle_samples'], idle_of['rc'][1])
    lines = [s['line'] for s in samples[1:]]
    reused = sum('last host scan reused' in line for line in lines)
    with open(os.path.join(work, '%s-cycles.log' % slug)) as log:
        watching = 'watching kernel uevents for' in log.read()
    first = samples[0]
    deltas = [b['cpu'] - a['cpu'] for a, b in zip(samples, samples[1:])]
    walls = [b['wall'] - a['wall'] for a, b in zip(samples, samples[1:])]
    # Cycle i (i >= 1) reconciles when i % every == 0 (cycle 0 did).
    recon = [d for i, d in enumerate(deltas, 1) if i % every == 0]
    plain = [d for i, d in enumerate(deltas, 1) if i % every]
    idle_rate = (idle_samples[1]['cpu'] - idle_samples[0]['cpu']) / (
        idle_samples[1]['wall'] - idle_samples[0]['wall'])
    per_cycle = sum(deltas) / len(deltas)
    return {
        'name': name, 'startup_cpu': first['cpu'],
        'startup_wall': first['wall'],
        'hwm': max(s['hwm'] for s in samples + idle_samples),
        'hwm_by_cycle': [samples[i]['hwm'] for i in (
            0, len(samples) // 2, len(samples) - 1)],
        'rss_end': samples[-1]['rss'], 'per_cycle': per_cycle,
        'plain': statistics.median(plain) if plain else float('nan'),
        'recon': statistics.median(recon) if recon else float('nan'),
        'n_cycles': len(deltas), 'n_recon': len(recon),
        'window': samples[-1]['wall'] - first['wall'],
        'cycle_wall': statistics.median(walls), 'idle_rate': idle_rate,
        'idle_window': idle_samples[1]['wall'] - idle_samples[0]['wall'],
        'per_hour': per_cycle * 3600 / DEFAULT_PERIOD + idle_rate * 3600,
        'rc': (rc, idle_rc), 'last': samples[-1]['line'],
        'idle_samples': idle_samples, 'reused': reused,
        'host_reads': len(lines) - reused, 'watching': watching}


class RemotePlacement:
    """The Placement the 'remote' agent reports to (see the docstring)."""

    def __init__(self, work, url=None, loopback=False):
        self.dir = os.path.join(work, 'placement-server')
        self.url, self.kind, self.proc, self.started = url, None, None, False
        self.loopback = loopback
        if url:
            self.kind = 'given: %s' % url

    def __enter__(self):
        if self.url:
            return self
        if not self.loopback:
            t = time.perf_counter()
            proc = subprocess.run(
                [HARNESS, 'start', '--dir', self.dir, '--port', '0',
                 '--workers', '2'], capture_output=True, text=True)
            self.started = True
            if proc.returncode == 0:
                self.url = proc.stdout.strip()
                self.kind = ('tools/placement-server (gunicorn 2 workers, '
                             'PostgreSQL; started in %.1f s)'
                             % (time.perf_counter() - t))
                return self
            why = (proc.stderr.strip().splitlines() or ['?'])[-1]
            print('tools/placement-server did not start (%s): falling back '
                  'to the embedded Placement over HTTP' % why, flush=True)
        db = os.path.join(self.dir, 'loopback', 'placement.sqlite')
        self.proc = subprocess.Popen(
            [sys.executable, '-c', LOOPBACK, db], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.url = self.proc.stdout.readline().strip()
        self.kind = ('fallback: embedded Placement over HTTP in another '
                     'process (%s)' % self.url)
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.stdin.close()
            stop(self.proc)
        if self.started:
            subprocess.run([HARNESS, 'stop', '--dir', self.dir, '--purge'],
                           capture_output=True, text=True)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('--cycles', type=int, default=30,
                        help='cycles measured after start-up; a multiple '
                             'of the reconcile ratio (default 30)')
    parser.add_argument('--gpus', type=int, default=8)
    parser.add_argument('--interval', type=int, default=1,
                        help='[agent] report_interval for the cycles run '
                             '(s)')
    parser.add_argument('--reconcile-every', type=int,
                        default=DEFAULT_RECONCILE // DEFAULT_PERIOD,
                        help='reports per reconcile (default 10, as '
                             '600 s / 60 s)')
    parser.add_argument('--idle', type=float, default=10,
                        help='seconds each baseline is watched (default '
                             '10)')
    parser.add_argument('--agent-idle', type=float, default=60,
                        help='seconds each idle agent is watched (default '
                             '60: CPU time is counted in 1/%d s ticks)'
                             % TICK)
    parser.add_argument('--placement-url',
                        help='a running noauth2 Placement for the remote '
                             'configuration (default: start '
                             'tools/placement-server in the work directory)')
    parser.add_argument('--loopback', action='store_true',
                        help='use the fallback (embedded Placement over '
                             'HTTP in another process) without trying '
                             'tools/placement-server')
    parser.add_argument('--keep', metavar='DIR',
                        help='work in DIR and keep it (agent logs, state)')
    args = parser.parse_args()
    print('command: %s' % ' '.join([os.path.basename(sys.executable)] +
                                   sys.argv))
    every = args.reconcile_every
    args.measured = (args.cycles // every) * every or args.cycles
    print('settings: %d GPUs x %d VFs x 24 types (%d type dirs); cycles run '
          'at report_interval=%d s, reconcile_interval=%d s (1 in %d), %d '
          'cycles after start-up; idle run at report_interval=%d s watched '
          '%g s after cycle 0; scaled to report_interval=%d s (%d '
          'cycles/hour, %d reconciles/hour)' % (
              args.gpus, discovery.VFS, args.gpus * discovery.VFS * 24,
              args.interval, args.interval * every, every, args.measured,
              IDLE_INTERVAL, args.agent_idle, DEFAULT_PERIOD,
              3600 // DEFAULT_PERIOD, 3600 // DEFAULT_RECONCILE))
    work = args.keep or tempfile.mkdtemp(prefix='bench-agent-')
    os.makedirs(work, exist_ok=True)
    t_start = time.perf_counter()
    try:
        sysfs_root = os.path.join(work, 'sysfs')
        if os.path.exists(sysfs_root):
            shutil.rmtree(sysfs_root)
        t = time.perf_counter()
        discovery.build_host(sysfs_root, args.gpus)
        print('sysfs tree built in %.1f s' % (time.perf_counter() - t),
              flush=True)
        floor = polling_floor(sysfs_root)
        base = {'sleep': measure_baseline('sleep', args.idle),
                'libraries': measure_baseline('libraries', args.idle),
                'imports': measure_baseline('imports', args.idle)}
        base['placement'] = measure_baseline(
            'placement', args.idle,
            os.path.join(work, 'empty', 'placement.sqlite'))
        with RemotePlacement(work, args.placement_url,
                             args.loopback) as remote:
            print('remote Placement: %s' % remote.kind, flush=True)
            agents = [measure_config('remote', work, sysfs_root, args,
                                     remote.url)]
            agents.append(measure_config(
                'remote full-scans', work, sysfs_root, args, remote.url,
                full_scan=0, idle_of=agents[0]))
        agents.append(measure_config('embedded', work, sysfs_root, args))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - t_start

    ref = base['sleep']['hwm']
    print()
    print('%-36s %9s %9s %9s %12s %12s %11s' % (
        'process', 'peak RSS', 'x idle', 'start-up', 'CPU s/cycle',
        'CPU s/cycle', 'CPU s/hour'))
    print('%-36s %9s %9s %9s %12s %12s %11s' % (
        '', 'MB', 'python', 'CPU s', 'plain (med)', 'reconcile',
        'at 60 s'))
    for key, name in (('sleep', 'idle python (time.sleep)'),
                      ('libraries', 'python + required libraries'),
                      ('imports', 'python + every project module'),
                      ('placement', 'imports + embedded Placement')):
        b = base[key]
        print('%-36s %9.1f %9.2f %9.2f %12s %12s %11.2f' % (
            name, b['hwm'], b['hwm'] / ref, b['startup_cpu'], '-', '-',
            b['idle_rate'] * 3600))
    for a in agents:
        print('%-36s %9.1f %9.2f %9.2f %12.3f %12.3f %11.1f' % (
            'agent, %s (%d GPUs)' % (a['name'], args.gpus),
            a['hwm'], a['hwm'] / ref, a['startup_cpu'], a['plain'],
            a['recon'], a['per_hour']))
    print()
    for a in agents:
        print('agent, %s: %d cycles measured in a %.1f s window after '
              'start-up (%d reconcile cycles among them); mean %.3f CPU '
              's/cycle; median cycle wall %.2f s at report_interval=%d s; '
              'idle rate %.4f CPU s/s over %.1f s (%.2f s/hour); start-up '
              'to end of cycle 0: %.1f s wall; peak RSS at cycles 0, mid, '
              'last: %s MB; RSS at the end %.1f MB; exit status %s' % (
                  a['name'], a['n_cycles'], a['window'], a['n_recon'],
                  a['per_cycle'], a['cycle_wall'], args.interval,
                  a['idle_rate'], a['idle_window'], a['idle_rate'] * 3600,
                  a['startup_wall'],
                  ', '.join('%.1f' % h for h in a['hwm_by_cycle']),
                  a['rss_end'], '/'.join(str(rc) for rc in a['rc'])))
        print('  last report line: %s' % a['last'])
        print('  uevent listener %s; %d of %d reports after start-up read '
              'the host, %d reused the last read (each reconcile reads it '
              'anyway)' % (
                  'watching' if a['watching'] else
                  'NOT watching (every report reads the host)',
                  a['host_reads'], a['n_cycles'], a['reused']))
    print('CPU s/hour = mean CPU s/cycle x %d + the agent\'s idle rate x '
          '3600 (idle CPU resolution: 1 tick in the window, %.2f s/hour)'
          % (3600 // DEFAULT_PERIOD,
             3600 / TICK / agents[0]['idle_window']))
    print('polling floor (list parents and types, read every '
          'available_instances): %.3f CPU s/read = %.1f s/hour at %d s; '
          'the agent\'s mean cycle is %.1fx it reusing reads, %.1fx '
          'reading every period (remote)' % (
              floor, floor * 3600 / DEFAULT_PERIOD, DEFAULT_PERIOD,
              agents[0]['per_cycle'] / floor,
              agents[1]['per_cycle'] / floor))
    print('libraries floor: %.1f MB = %.2fx idle python; the remote agent '
          'holds %.1f MB beyond it' % (
              base['libraries']['hwm'], base['libraries']['hwm'] / ref,
              agents[0]['hwm'] - base['libraries']['hwm']))
    remote, full, embedded = agents
    ok_rss = remote['hwm'] / ref <= RSS_TARGET
    ok_cpu = all(a['per_hour'] <= CPU_TARGET for a in (remote, embedded))
    print()
    print('target: remote peak RSS <= %.0fx idle python: %.2fx (%.1f / '
          '%.1f MB): %s' % (RSS_TARGET, remote['hwm'] / ref, remote['hwm'],
                            ref, 'met' if ok_rss else 'MISSED'))
    print('libraries floor: %.2fx idle python; the remote agent is %.2fx '
          'the floor' % (base['libraries']['hwm'] / ref,
                         remote['hwm'] / base['libraries']['hwm']))
    print('target: CPU <= %.0f s/hour at %d s: remote %.1f (%.2fx the '
          'target), embedded %.1f (%.2fx): %s' % (
              CPU_TARGET, DEFAULT_PERIOD, remote['per_hour'],
              remote['per_hour'] / CPU_TARGET, embedded['per_hour'],
              embedded['per_hour'] / CPU_TARGET,
              'met' if ok_cpu else 'MISSED'))
    print('remote with a full host read every period (full_scan_interval '
          '= 0): %.1f s/hour (%.2fx the target); reusing the last read '
          'saves %.1fx' % (full['per_hour'], full['per_hour'] / CPU_TARGET,
                           full['per_hour'] / remote['per_hour']))
    print('embedded / remote peak RSS: %.2f'
          % (embedded['hwm'] / remote['hwm']))
    print('total %.0f s' % elapsed)
    return 0 if ok_rss and ok_cpu else 1


if __name__ == '__main__':
    sys.exit(main())
