"""Whether the agent's next report must read the host again.

Contract: ``ScanGate.why_scan()`` returns None when the last full scan of
the host still holds, else the reason the next report must read sysfs (a
short phrase for the logs). A scan still holds while all of these do:

* the driver's host changes all raise kernel uevents
  (``Driver.host_changes_raise_uevents``);
* a uevent listener watches (``events``: a uevents.EventQueue) and has
  been watching, with nothing put and nothing lost (ENOBUFS), since that
  scan began: its ``state()`` is (True, the ``seen`` of the scan's mark);
* the listener is proven to hear: it has received every uevent up to the
  kernel's sequence number read now (``kernel_seqnum()``), allowing
  ``proof_wait`` seconds for those in flight. A socket that opened but
  receives nothing (a user-namespaced container) fails this at the
  first uevent the kernel sends anywhere, and is said once;
* the scan began less than ``full_scan_interval`` seconds ago (0: never
  reuse), the safety net for anything the kernel did not say; the agent
  sets it to the report interval unless the operator says otherwise.

``begin()`` is called before a scan starts and gives its mark;
``scanned(mark)`` once the scan is done. A mark taken before the scan
makes any uevent racing it count as after it: never a change missed, at
worst a scan more. Pure but for ``events`` and the injected clock.
"""
import logging
import time

from vgpu_placement import once
from vgpu_placement.service import uevents

LOG = logging.getLogger(__name__)

PROOF_WAIT = 0.2    # seconds for uevents in flight to reach the listener


class ScanGate:
    """Decides, before each report, between a full scan and the last one."""

    def __init__(self, events, driver_qualifies, full_scan_interval,
                 clock=time.monotonic, kernel_seqnum=uevents.kernel_seqnum,
                 proof_wait=PROOF_WAIT):
        self.events = events
        self.driver_qualifies = driver_qualifies
        self.full_scan_interval = full_scan_interval
        self.clock = clock
        self.kernel_seqnum = kernel_seqnum
        self.proof_wait = proof_wait
        self.say_once = once.SayOnce(LOG)
        self.last = None            # (seen, clock) of the last scan's mark

    def begin(self):
        seen = self.events.state()[1] if self.events is not None else None
        return seen, self.clock()

    def scanned(self, mark):
        self.last = mark

    def _always_scans(self):
        """Why every report reads the host, whatever happens, or None."""
        if not self.driver_qualifies:
            return 'the driver\'s host changes raise no uevents'
        if self.events is None:
            return '[agent] watch_uevents is off'
        if self.full_scan_interval <= 0:
            return '[agent] full_scan_interval is 0'
        return None

    def why_scan(self):
        always = self._always_scans()
        if always:
            return always
        if self.last is None:
            return 'no scan yet'
        watching, seen = self.events.state()
        if not watching:
            return 'uevent listener not watching'
        if seen != self.last[0]:
            return 'uevents since the last scan'
        if self.clock() - self.last[1] >= self.full_scan_interval:
            return 'full_scan_interval passed'
        return self._not_proven_to_hear()

    def _not_proven_to_hear(self):
        sent = self.kernel_seqnum()
        if sent is None:
            return 'the kernel\'s uevent sequence number is unreadable'
        caught_up, heard = self.events.caught_up(sent, self.proof_wait)
        if caught_up:
            return None
        self.say_once(
            logging.WARNING, 'deaf', 'the uevent listener is not proven to '
            'receive the kernel\'s uevents (the kernel sent up to #%d, it '
            'received up to #%s): the host is read whenever that is so '
            '(a network namespace of a user namespace of its own gets no '
            'uevents)', sent, heard)
        return 'uevent listener not proven to hear the kernel'

    def describe(self):
        """One line for the agent's start: how often the host is read."""
        always = self._always_scans()
        if always:
            return 'host read at every report (%s)' % always
        return ('host read after uevents, while the uevent listener is '
                'not watching or not proven to hear, and at least every '
                '%ds; other reports reuse the last scan'
                % self.full_scan_interval)
