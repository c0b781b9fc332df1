"""The scale run of benches/scale_run.py, one module per job.

  config      a host's configuration, the demand mix and its flavors
  harness     tools/placement-server in a directory of the run's own, and
              what Placement's log says
  procfs      CPU seconds per process tree, read from /proc
  logs        the children's WARNING+ records, counted by template
  agents      a process running a share of the hosts' agents and compute
              services, and the final checks on those hosts
  schedulers  a process claiming through scheduler.Scheduler
  run         one run: starts the processes, drives the phases, collects
              the events they send
  report      the figures of one run and its targets, as printed
  cli         the command line and the whole scale run

The helpers below are the ones every module uses.
"""
import signal
import sys
import time

now = time.monotonic      # CLOCK_MONOTONIC: one clock for all processes


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def err_text(e):
    return '%s: %s' % (type(e).__name__, str(e).splitlines()[0][:200]
                       if str(e) else '')


def child_signals():
    """The main process stops its children: Ctrl-C is for it alone, and
    SIGTERM (its terminate()) ends a child at once, quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
