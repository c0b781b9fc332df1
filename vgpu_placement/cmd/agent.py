"""vgpu-placement-agent: report this host to Placement as it changes.

Start-up checks the configuration against the host and stops with one line
if anything is wrong, then runs the service loop (``service.loop``): it
reconciles at once (after a reboot: the mdevs come back with their
UUIDs), then reports every [agent] report_interval, reconciles every
reconcile_interval and reports at once on kernel uevents, until
SIGTERM/SIGINT.

The loop runs in a worker thread, so that a signal stops the agent within
STOP_GRACE seconds whatever the worker is waiting on (a hung Placement, a
lock): work cut short there is finished by the next start's reconcile,
as after a crash.
"""
import argparse
import logging
import signal
import sys
import threading

from vgpu_placement.cmd import common
from vgpu_placement.service import loop as service_loop
from vgpu_placement.service import standalone
from vgpu_placement.service import uevents

LOG = logging.getLogger('vgpu_placement.agent')

STOP_GRACE = 3.0        # seconds a stopping agent waits for its cycle
START_WATCH_WAIT = 1.0  # seconds the start waits for the uevent socket


def _start(args):
    conf = common.load_conf(args, prog='vgpu-placement-agent', quiet=False)
    reporter = standalone.reporter_for(conf)
    # Check the configuration against the host before looping.
    reporter.desired_tree(reporter.discover())
    host = standalone.manager_for(reporter)
    stop = threading.Event()
    events = listener = None
    if conf.agent.watch_uevents:
        events = uevents.EventQueue(conf.agent.uevent_quiet_window,
                                    conf.agent.uevent_max_delay)
        listener = uevents.UeventListener(events).start()
        # A first scan taken while the socket opens would not count as
        # covered (scan_gate): wait for it, briefly, to read the host once.
        listener.watching.wait(START_WATCH_WAIT)

    def on_signal(signum, frame):
        LOG.info('signal %d: stopping', signum)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    LOG.info('agent started for host %s (every %ds)', conf.host,
             conf.agent.report_interval)
    scans = service_loop.scan_gate_for(
        conf, events, reporter.driver.host_changes_raise_uevents)
    LOG.info('%s', scans.describe())
    loop = service_loop.ReportLoop(
        reporter, conf.agent.report_interval, conf.agent.max_backoff,
        stop.wait, reconcile=host.reconcile,
        reconcile_interval=conf.agent.reconcile_interval,
        events=events, scans=scans)
    worker = threading.Thread(target=loop.run, name='report-loop',
                              daemon=True)
    worker.start()
    while worker.is_alive() and not stop.wait(1.0):
        pass
    if listener is not None:
        listener.stop()
        events.close()      # the worker's wait for uevents returns now
    worker.join(STOP_GRACE)
    if worker.is_alive():
        LOG.warning('stopping in the middle of a cycle (Placement or the '
                    'host did not answer in %.0f s); the next start '
                    'reconciles', STOP_GRACE)
    LOG.info('agent stopped')


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='vgpu-placement-agent', description=__doc__.splitlines()[0])
    common.add_config_args(parser)
    args = parser.parse_args(argv)
    return common.run(_start, args, prog='vgpu-placement-agent')


if __name__ == '__main__':
    sys.exit(main())
