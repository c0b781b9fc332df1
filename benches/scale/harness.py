"""tools/placement-server run in a directory of the scale run's own.

start() gives the URL; log_summary() counts what Placement's log says
about capacity since that start (the over-capacity bug of
tools/placement-server/README.md shows there); pids() names the gunicorn
master and the PostgreSQL postmaster for CPU accounting.
"""
import collections
import json
import os
import re
import subprocess

import common
from scale import now

HARNESS = os.path.join(common.ROOT, 'tools', 'placement-server',
                       'placement-server')


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
