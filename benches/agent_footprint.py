#!/usr/bin/env python3
"""Peak RSS and CPU seconds per hour of the agent on a large host.

The large host is a synthetic sysfs tree (benches/discovery.py's
build_host): 8 GPUs x 32 SR-IOV VFs x 24 NVIDIA types, one foreign mdev on
every fourth VF. The agent runs as it is shipped:

    python3 -m vgpu_placement.cmd.agent --config-file CONF

with the sysfs driver ([sysfs] root = the tree), the embedded Placement
(SQLite file in its state_path) and [agent] report_interval = 1,
reconcile_interval = 10, i.e. the default ratio of one reconcile every 10
reports (600 s / 60 s). Each 'report done' line on its stderr ends one
cycle; the bench reads the process's CPU time (utime + stime,
/proc/<pid>/stat) and peak RSS (VmHWM, /proc/<pid>/status) at every such
line, then sends SIGTERM. CPU per cycle excludes start-up (everything up to
the end of cycle 0, which creates the tree in Placement and reconciles);
the per-hour figure is the mean over whole reconcile periods x 60 cycles
per hour (the default 60 s period) plus the idle rate of the process
between cycles.

Baselines measured the same way in the same run:
  idle python      python3 -c 'import time; time.sleep(N)'
  project imports  a python that imports every vgpu_placement module, idle
  + Placement      the same plus the embedded Placement started on an
                   empty database, idle (what the agent holds before it
                   reads the host)

    python3 benches/agent_footprint.py [--cycles 30] [--gpus 8]   # ~1.5 min
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import discovery  # noqa: E402  (the large host's sysfs tree)

TICK = os.sysconf('SC_CLK_TCK')
DEFAULT_PERIOD = 60            # [agent] report_interval default
DEFAULT_RECONCILE = 600        # [agent] reconcile_interval default

IMPORTS = r'''
import importlib, pkgutil, sys, time
import vgpu_placement
for m in pkgutil.walk_packages(vgpu_placement.__path__, 'vgpu_placement.'):
    importlib.import_module(m.name)
if sys.argv[1] == 'placement':
    from vgpu_placement.placement import client, embedded
    client.PlacementClient(embedded.adapter(sys.argv[2])).get(
        '/resource_providers')
print('ready', flush=True)
time.sleep(float(sys.argv[3]))
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
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
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


def write_conf(path, sysfs_root, state, interval, reconcile):
    with open(path, 'w') as f:
        f.write('[DEFAULT]\nhost = bench-large-host\ndriver = sysfs\n'
                'state_path = %s\n\n[sysfs]\nroot = %s\n\n'
                '[agent]\nreport_interval = %d\nreconcile_interval = %d\n\n'
                '[embedded_placement]\nenabled = true\n'
                % (state, sysfs_root, interval, reconcile))


def measure_agent(conf_path, cycles, log):
    """Samples at every 'report done' line (cycle 0 .. cycles)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vgpu_placement.cmd.agent', '--config-file',
         conf_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    samples, idle = [], None
    try:
        deadline = time.monotonic() + 600
        while len(samples) < cycles + 1:
            ready, _, _ = select.select([proc.stderr], [], [],
                                        max(0, deadline - time.monotonic()))
            if not ready:
                raise RuntimeError('agent silent for 600 s')
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
    finally:
        stop(proc)
        rest = proc.stderr.read()
        log.write(rest)
    return samples, proc.returncode, rest


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
                        help='[agent] report_interval for the run (s)')
    parser.add_argument('--reconcile-every', type=int,
                        default=DEFAULT_RECONCILE // DEFAULT_PERIOD,
                        help='reports per reconcile (default 10, as '
                             '600 s / 60 s)')
    parser.add_argument('--idle', type=float, default=10,
                        help='seconds each baseline idles (default 10)')
    parser.add_argument('--keep', metavar='DIR',
                        help='work in DIR and keep it (agent log, state)')
    args = parser.parse_args()
    print('command: %s' % ' '.join([os.path.basename(sys.executable)] +
                                   sys.argv))
    every = args.reconcile_every
    measured = (args.cycles // every) * every or args.cycles
    print('settings: %d GPUs x %d VFs x 24 types (%d type dirs), '
          'report_interval=%d s, reconcile_interval=%d s (1 in %d), %d '
          'cycles after start-up; scaled to report_interval=%d s (%d '
          'cycles/hour, %d reconciles/hour)' % (
              args.gpus, discovery.VFS, args.gpus * discovery.VFS * 24,
              args.interval, args.interval * every, every, measured,
              DEFAULT_PERIOD, 3600 // DEFAULT_PERIOD,
              3600 // DEFAULT_RECONCILE))
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
        state = os.path.join(work, 'state')
        shutil.rmtree(state, ignore_errors=True)
        conf_path = os.path.join(work, 'agent.conf')
        write_conf(conf_path, sysfs_root, state, args.interval,
                   args.interval * every)

        base = {}
        base['sleep'] = measure_baseline('sleep', args.idle)
        base['imports'] = measure_baseline('imports', args.idle)
        empty_db = os.path.join(work, 'empty', 'placement.sqlite')
        base['placement'] = measure_baseline('placement', args.idle,
                                             empty_db)
        with open(os.path.join(work, 'agent.log'), 'w') as log:
            samples, rc, _ = measure_agent(conf_path, measured, log)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - t_start

    first = samples[0]
    deltas = [b['cpu'] - a['cpu'] for a, b in zip(samples, samples[1:])]
    walls = [b['wall'] - a['wall'] for a, b in zip(samples, samples[1:])]
    # Cycle i (i >= 1) reconciles when i % every == 0 (cycle 0 did).
    recon = [d for i, d in enumerate(deltas, 1) if i % every == 0]
    plain = [d for i, d in enumerate(deltas, 1) if i % every]
    per_cycle = sum(deltas) / len(deltas)
    idle_rate = base['sleep']['idle_rate']
    per_hour = per_cycle * 3600 / DEFAULT_PERIOD + idle_rate * 3600
    hwm = max(s['hwm'] for s in samples)

    print()
    print('%-34s %9s %9s %9s %13s %13s %13s' % (
        'process', 'peak RSS', 'x idle', 'start-up', 'CPU s/cycle',
        'CPU s/cycle', 'CPU s/hour'))
    print('%-34s %9s %9s %9s %13s %13s %13s' % (
        '', 'MB', 'python', 'CPU s', 'plain (med)', 'reconcile',
        'at 60 s'))
    ref = base['sleep']['hwm']
    for key, name in (('sleep', 'idle python (time.sleep)'),
                      ('imports', 'python + project imports'),
                      ('placement', 'imports + embedded Placement')):
        b = base[key]
        print('%-34s %9.1f %9.2f %9.2f %13s %13s %13.2f' % (
            name, b['hwm'], b['hwm'] / ref, b['startup_cpu'], '-', '-',
            b['idle_rate'] * 3600))
    print('%-34s %9.1f %9.2f %9.2f %13.3f %13.3f %13.1f' % (
        'agent (%d GPUs, sysfs, embedded)' % args.gpus, hwm, hwm / ref,
        first['cpu'], statistics.median(plain) if plain else float('nan'),
        statistics.median(recon) if recon else float('nan'), per_hour))
    print()
    print('agent: %d cycles measured after start-up; mean %.3f CPU s/cycle '
          '(%.1f%% of one core at %d s; %d reconcile cycles among them); '
          'median cycle wall %.2f s at report_interval=%d s; start-up to '
          'end of cycle 0: %.1f s wall; RSS at the end %.1f MB; exit '
          'status %s' % (
              len(deltas), per_cycle, 100 * per_cycle / DEFAULT_PERIOD,
              DEFAULT_PERIOD, len(recon), statistics.median(walls),
              args.interval, first['wall'], samples[-1]['rss'], rc))
    print('peak RSS over the agent\'s cycles: %s MB (cycle 0, %d, %d)' % (
        ', '.join('%.1f' % samples[i]['hwm'] for i in (
            0, len(samples) // 2, len(samples) - 1)),
        len(samples) // 2, len(samples) - 1))
    print('CPU s/hour = mean CPU s/cycle x %d + idle python rate x 3600 '
          '(%.4f s/h)' % (3600 // DEFAULT_PERIOD, idle_rate * 3600))
    print('last report line: %s' % samples[-1]['line'])
    print('total %.0f s' % elapsed)


if __name__ == '__main__':
    sys.exit(main())
