"""Kernel uevents: parsed, filtered to host changes, bursts coalesced."""
import errno
import logging
import socket
import threading

import pytest

from tests.conftest import make_conf
from tests.uevent_recorder import Recorder
from vgpu_placement.service import uevents

UUID = '0a6ed2b4-6d1c-4b8e-9d57-3c1f5f0e2a11'
MDEV_PATH = '/devices/virtual/mtty/mtty/' + UUID
GPU_PATH = '/devices/pci0000:00/0000:00:02.0/0000:84:00.4'


def message(action, devpath, *env, seqnum=833):
    """A message as the kernel formats it (lib/kobject_uevent.c):
    ACTION@DEVPATH, then ACTION, DEVPATH, SUBSYSTEM, ..., SEQNUM."""
    fields = ['%s@%s' % (action, devpath), 'ACTION=' + action,
              'DEVPATH=' + devpath] + list(env) + ['SEQNUM=%d' % seqnum]
    return ('\0'.join(fields) + '\0').encode()


# One out-of-band create on mtty, as the 6.12 guest of the kernel tier
# sent it (tests/kernel/test_uevents.py prints them): the mdev's add, the
# vfio group and vfio-dev adds, then the mdev's bind once probed.
MDEV_ADD = message('add', MDEV_PATH, 'SUBSYSTEM=mdev')
VFIO_GROUP_ADD = message('add', '/devices/virtual/vfio/0', 'SUBSYSTEM=vfio',
                         'MAJOR=245', 'MINOR=0', 'DEVNAME=vfio/0',
                         seqnum=834)
VFIO_DEV_ADD = message('add', MDEV_PATH + '/vfio-dev/vfio0',
                       'SUBSYSTEM=vfio-dev', seqnum=835)
MDEV_BIND = message('bind', MDEV_PATH, 'SUBSYSTEM=mdev', 'DRIVER=mtty',
                    seqnum=836)
# insmod mdpy, as the guest sent it (rmmod: unregistered, then remove).
REGISTERED = message('change', '/devices/virtual/mtty/mtty',
                     'SUBSYSTEM=mtty', 'MDEV_STATE=registered', seqnum=849)


def test_a_kernel_message_is_parsed():
    event = uevents.parse(MDEV_ADD)
    assert event.action == 'add' and event.devpath == MDEV_PATH
    assert event.subsystem == 'mdev'
    assert event.env == {'ACTION': 'add', 'DEVPATH': MDEV_PATH,
                         'SUBSYSTEM': 'mdev', 'SEQNUM': '833'}


@pytest.mark.parametrize('data, says', [
    (b'libudev\0\xfe\xed\xca\xfe' + MDEV_ADD, 'libudev'),
    (b'add /devices/x\0ACTION=add\0', 'ACTION@/DEVPATH'),
    (b'explode@/devices/x\0', 'ACTION@/DEVPATH'),
    (b'add@devices/x\0', 'ACTION@/DEVPATH'),
    (b'add@/devices/\xff\0', 'not UTF-8'),
    (b'add@/devices/x\0SUBSYSTEM\0', "'SUBSYSTEM' is not KEY=VALUE"),
    (b'add@/devices/x\0=mdev\0', 'is not KEY=VALUE'),
    (message('add', '/devices/x').replace(b'ACTION=add', b'ACTION=remove'),
     'disagrees'),
    (MDEV_ADD + b'X' * uevents.MAX_MESSAGE, 'more than a kernel uevent'),
])
def test_what_is_not_a_kernel_uevent_is_refused_saying_why(data, says):
    with pytest.raises(uevents.BadUevent) as err:
        uevents.parse(data)
    assert says in str(err.value)


@pytest.mark.parametrize('data, change', [
    (MDEV_ADD, uevents.Change('mdev', 'add', 'mtty', UUID)),
    (MDEV_BIND, uevents.Change('mdev', 'bind', 'mtty', UUID)),
    (message('remove', '/devices/pci0000:00/0000:00:02.0/' + UUID,
             'SUBSYSTEM=mdev'),
     uevents.Change('mdev', 'remove', '0000:00:02.0', UUID)),
    (REGISTERED, uevents.Change('parent', 'registered', 'mtty')),
    (message('change', '/devices/pci0000:00/0000:00:02.0', 'SUBSYSTEM=pci',
             'PCI_CLASS=30000', 'MDEV_STATE=unregistered'),
     uevents.Change('parent', 'unregistered', '0000:00:02.0')),
    # An NVIDIA VF appearing (sriov_numvfs), bound, unbound, gone.
    (message('add', GPU_PATH, 'SUBSYSTEM=pci', 'PCI_CLASS=30200',
             'PCI_SLOT_NAME=0000:84:00.4'),
     uevents.Change('pci', 'add', '0000:84:00.4')),
    (message('bind', GPU_PATH, 'SUBSYSTEM=pci', 'DRIVER=nvidia',
             'PCI_CLASS=30200'),
     uevents.Change('pci', 'bind', '0000:84:00.4')),
    (message('remove', GPU_PATH, 'SUBSYSTEM=pci'),      # class unknown
     uevents.Change('pci', 'remove', '0000:84:00.4')),
    # Not a change of the offer:
    (VFIO_DEV_ADD, None),
    (VFIO_GROUP_ADD, None),
    (message('add', '/bus/mdev/drivers/mdpy', 'SUBSYSTEM=drivers'), None),
    (message('add', '/module/mdpy', 'SUBSYSTEM=module'), None),
    (message('add', '/kernel/iommu_groups/12'), None),
    (message('add', '/devices/pci0000:00/0000:00:03.0/0000:03:10.1',
             'SUBSYSTEM=pci', 'PCI_CLASS=20000'), None),     # a NIC's VF
    (message('change', GPU_PATH, 'SUBSYSTEM=pci', 'PCI_CLASS=30200'),
     None),
    (message('add', '/devices/virtual/net/tap0', 'SUBSYSTEM=net'), None),
])
def test_only_changes_of_the_offer_are_kept(data, change):
    assert uevents.host_change(uevents.parse(data)) == change


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def drive(coalescer, clock, changes, report_seconds=0.0):
    """Play timed changes [(t, change)] into a coalescer the way the
    agent's loop takes from it: a batch as soon as it is due, none while
    a report runs. Returns the batches with the clock they were taken at.
    """
    start = clock.now
    pending = sorted(changes, key=lambda c: c[0])
    taken = []
    busy_until = start
    while pending or coalescer.pending is not None:
        due = coalescer.due_in()
        next_change = pending[0][0] + start if pending else None
        take_at = None if due is None else max(clock.now + due, busy_until)
        if next_change is not None and (take_at is None or
                                        next_change < take_at):
            clock.now = next_change
            coalescer.add(pending.pop(0)[1])
            continue
        clock.now = take_at
        batch = coalescer.take()
        assert batch is not None
        taken.append((clock.now, batch))
        busy_until = clock.now + report_seconds
    return taken


def creates(n, gap, step=0.001):
    """A loop creating n mdevs, ``gap`` seconds apart: add then bind."""
    out = []
    for i in range(n):
        mdev = 'mdev-%d' % i
        out.append((i * gap, uevents.Change('mdev', 'add', 'mtty', mdev)))
        out.append((i * gap + step,
                    uevents.Change('mdev', 'bind', 'mtty', mdev)))
    return out


def test_a_lone_create_is_due_one_quiet_window_after_its_last_uevent():
    clock = Clock()
    c = uevents.Coalescer(quiet=0.05, max_delay=1.0, clock=clock)
    assert c.take() is None and c.due_in() is None
    [(at, batch)] = drive(c, clock, creates(1, 0))
    assert at - 1000.0 == pytest.approx(0.001 + 0.05)
    assert batch.count == 2 and batch.parents == {'mtty'}
    assert 'mtty' in batch.describe()


@pytest.mark.parametrize('gap, report_seconds', [
    (0.001, 0.0),       # a Python loop
    (0.010, 0.0),       # a shell loop
    (0.010, 0.3),       # ... while each report takes 0.3 s
    (0.100, 0.0),       # a slow driver: creates 100 ms apart
    (0.400, 0.0),
    (0.030, 0.0),       # a shell loop on a loaded host
])
def test_a_burst_of_50_creates_gives_a_handful_of_reports(gap,
                                                          report_seconds):
    # With the shipped defaults ([agent] uevent_quiet_window, max_delay).
    conf = make_conf()
    clock = Clock()
    c = uevents.Coalescer(conf.agent.uevent_quiet_window,
                          conf.agent.uevent_max_delay, clock=clock)
    assert c.max_delay == 1.0
    taken = drive(c, clock, creates(50, gap), report_seconds)
    duration = 49 * gap
    # Every uevent is in some batch, and each batch waited no longer than
    # max_delay beyond its first uevent (or the report before it).
    assert sum(b.count for _, b in taken) == 100
    assert 1 <= len(taken) <= 6 + duration, [t for t, _ in taken]
    for at, batch in taken:
        assert at - batch.first_at <= max(1.0, report_seconds) + 1e-9


@pytest.mark.parametrize('first, then', [
    ('add', 'bind'),            # probed
    ('add', 'remove'),          # the probe failed (ENOSPC): gone again
    ('unbind', 'remove'),
])
def test_an_mdev_half_way_holds_its_batch_until_the_kernel_is_done(first,
                                                                   then):
    # Under TCG the probe between add and bind took longer than the quiet
    # window: a report then would read the capacity before the create.
    clock = Clock()
    c = uevents.Coalescer(quiet=0.05, max_delay=1.0, clock=clock)
    taken = drive(c, clock, [(0, uevents.Change('mdev', first, 'mtty', 'a')),
                             (0.3, uevents.Change('mdev', then, 'mtty',
                                                  'a'))])
    assert [(round(at - 1000, 3), b.count) for at, b in taken] == [
        (0.35, 2)]


def test_an_mdev_that_stays_half_way_waits_no_longer_than_max_delay():
    clock = Clock()
    c = uevents.Coalescer(quiet=0.05, max_delay=1.0, clock=clock)
    taken = drive(c, clock, [(0, uevents.Change('mdev', 'add', 'mtty', 'a')),
                             (0.01, uevents.Change('mdev', 'bind', 'mtty',
                                                   'other'))])
    assert [round(at - 1000, 3) for at, _ in taken] == [1.0]


def test_a_change_after_a_quiet_spell_is_due_after_the_quiet_window_again():
    clock = Clock()
    c = uevents.Coalescer(quiet=0.05, max_delay=1.0, clock=clock)
    drive(c, clock, creates(50, 0.1))      # the window grew in the burst
    assert c.window == 1.0
    clock.now += 5
    [(at, _)] = drive(c, clock, creates(1, 0))
    assert at - clock.now + 0.05 + 0.001 == pytest.approx(0.05 + 0.001)


def test_lost_uevents_mean_any_parent():
    clock = Clock()
    c = uevents.Coalescer(quiet=0, max_delay=1.0, clock=clock)
    c.add(uevents.Change('mdev', 'add', 'mtty'))
    c.add(uevents.LOST)
    c.add(uevents.Change('mdev', 'add', 'mdpy'))
    batch = c.take()
    assert batch.parents is None and batch.count == 3
    assert batch.describe() == '3 uevent(s) on any parent'


def test_the_queue_hands_over_a_due_batch_and_wakes_when_closed():
    q = uevents.EventQueue(quiet=0, max_delay=1.0)
    assert q.get(0) is None
    q.put(uevents.Change('mdev', 'add', 'mtty'))
    assert q.get(5).parents == {'mtty'}
    q.put(uevents.Change('mdev', 'add', 'mtty'))
    q.clear()                   # a periodic report covers it
    assert q.get(0) is None
    got = []
    waiter = threading.Thread(target=lambda: got.append(q.get(60)))
    waiter.start()
    q.close()
    waiter.join(10)
    assert not waiter.is_alive() and got == [None]


@pytest.fixture
def pair():
    """(listener's end, kernel's end): message boundaries kept, as on a
    netlink socket."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield ours, kernel
    kernel.close()
    ours.close()


def test_the_listener_keeps_host_changes_and_drops_bad_messages(pair, caplog):
    caplog.set_level(logging.DEBUG, logger='vgpu_placement.service.uevents')
    ours, kernel = pair
    recorder = Recorder()
    listener = uevents.UeventListener(recorder, open_socket=lambda: ours)
    listener.start()
    for data in (b'garbage', b'libudev\0' + MDEV_ADD, VFIO_GROUP_ADD,
                 VFIO_DEV_ADD,
                 MDEV_ADD + b'X' * uevents.MAX_MESSAGE, MDEV_ADD, MDEV_BIND,
                 REGISTERED):
        kernel.send(data)
    assert recorder.wait_for_count(3) == [
        uevents.Change('mdev', 'add', 'mtty', UUID),
        uevents.Change('mdev', 'bind', 'mtty', UUID),
        uevents.Change('parent', 'registered', 'mtty')]
    assert listener.watching.is_set()
    listener.stop()
    kernel.close()              # the end of its socket: the thread leaves
    listener.thread.join(10)
    assert not listener.thread.is_alive()
    text = caplog.text
    assert "uevent ignored: header 'garbage' is not ACTION@/DEVPATH" in text
    assert "uevent ignored: udevd's re-broadcast" in text
    assert 'uevent ignored: more than %d bytes' % uevents.MAX_MESSAGE in text
    assert recorder.changes[3:] == []


def test_the_listener_counts_every_kernel_uevent_it_hears(pair):
    """The proof that uevents arrive: the SEQNUM of every kernel message,
    those the project ignores too, counted from the kernel's figure when
    the socket opened."""
    ours, kernel = pair
    recorder = Recorder()
    listener = uevents.UeventListener(recorder, open_socket=lambda: ours,
                                      read_seqnum=lambda: 832)
    listener.start()
    for data in (b'garbage', MDEV_ADD, VFIO_GROUP_ADD, VFIO_DEV_ADD,
                 REGISTERED):
        kernel.send(data)
    recorder.wait_for_count(2)
    with recorder.cond:
        assert recorder.cond.wait_for(lambda: len(recorder.heard) >= 5, 10)
    listener.stop()
    kernel.close()
    listener.thread.join(10)
    assert recorder.heard == [832, 833, 834, 835, 849]


def test_the_queue_is_caught_up_only_once_it_heard_the_kernels_figure():
    queue = uevents.EventQueue(0.01, 1.0)
    assert queue.caught_up(0, 0) == (False, None)   # not watching
    queue.set_watching(True, 832)
    assert queue.caught_up(832, 0) == (True, 832)
    assert queue.caught_up(840, 0) == (False, 832)
    queue.note_heard(835)
    queue.note_heard(834)                   # out of order: the highest
    assert queue.caught_up(835, 0) == (True, 835)
    # One in flight: the wait ends as soon as it is heard.
    threading.Timer(0.01, queue.note_heard, (840,)).start()
    assert queue.caught_up(840, 30) == (True, 840)
    queue.set_watching(False)
    assert queue.caught_up(0, 0) == (False, None)


@pytest.mark.parametrize('data, seqnum', [
    (MDEV_ADD, 833), (b'add@/x\0SEQNUM=12', 12), (b'add@/x\0A=1', None),
    (b'add@/x\0SEQNUM=1x\0', None), (b'add@/x\0SEQNUM=' + b'9' * 30, None),
])
def test_the_seqnum_of_a_raw_message(data, seqnum):
    assert uevents.seqnum_of(data) == seqnum


def test_the_kernels_seqnum_is_read_or_unknown(tmp_path):
    path = tmp_path / 'uevent_seqnum'
    assert uevents.kernel_seqnum(str(path)) is None
    path.write_text('4242\n')
    assert uevents.kernel_seqnum(str(path)) == 4242
    path.write_text('many\n')
    assert uevents.kernel_seqnum(str(path)) is None


class FailingSocket:
    """recvmsg raises the errors given, then blocks like a quiet socket
    until closed."""

    def __init__(self, errors):
        self.errors = list(errors)
        self.closed = threading.Event()

    def recvmsg(self, size):
        if self.errors:
            raise OSError(self.errors.pop(0), 'injected')
        self.closed.wait(30)
        raise OSError(errno.EBADF, 'closed')

    def shutdown(self, how):
        self.closed.set()

    def close(self):
        self.closed.set()


def test_socket_trouble_falls_back_then_watches_again(pair, caplog):
    """Cannot open -> said once, retried; ENOBUFS -> lost changes
    reported; another error -> closed, reopened."""
    ours, kernel = pair
    opened = []
    failing = FailingSocket([errno.ENOBUFS, errno.EIO])

    def open_socket():
        opened.append(len(opened))
        if len(opened) <= 2:
            raise OSError(errno.EPROTONOSUPPORT, 'Protocol not supported')
        return failing if len(opened) == 3 else ours
    recorder = Recorder()
    listener = uevents.UeventListener(recorder, open_socket=open_socket,
                                      retry_interval=0)
    listener.start()
    kernel.send(MDEV_ADD)
    got = recorder.wait_for_count(4)
    listener.stop()
    kernel.close()
    listener.thread.join(10)
    # Watching again after the open failures: whatever changed unseen is
    # reported; the overflow too; after EIO, watching again, then the add.
    assert got == [uevents.LOST, uevents.LOST, uevents.LOST,
                   uevents.Change('mdev', 'add', 'mtty', UUID)]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert warnings[0] == (
        'cannot watch kernel uevents ([Errno 93] Protocol not supported); '
        'reporting periodically only, trying again in 0 s')
    assert warnings.count(warnings[0]) == 1      # said once, not per try
    assert ('kernel uevents: [Errno 5] injected; reporting periodically '
            'only, trying again in 0 s') in warnings
    assert warnings.count('watching kernel uevents again') == 2
    # Watching only while a socket was open: the failing one until EIO,
    # then ours until stopped.
    assert recorder.watching == [True, False, True, False]


def test_the_queue_state_moves_with_every_change_loss_and_blind_spell():
    """What scan_gate trusts: (watching, seen) changes whenever a scan
    could have missed something."""
    failing = FailingSocket([errno.ENOBUFS])
    queue = uevents.EventQueue(0.01, 1.0)
    assert queue.state() == (False, 0)
    listener = uevents.UeventListener(queue, open_socket=lambda: failing,
                                      retry_interval=0)
    listener.start()
    try:
        assert listener.watching.wait(10)
        # The overflow comes right after the socket opened: lost changes.
        with queue.cond:
            assert queue.cond.wait_for(lambda: queue.seen >= 2, 10)
        watching, seen = queue.state()
        assert watching and seen == 2       # started watching; ENOBUFS
        assert queue.get(5).parents is None     # any parent may have
        queue.put(uevents.Change('mdev', 'add', 'mtty', UUID))
        assert queue.state() == (True, 3)
    finally:
        listener.stop()
        listener.thread.join(10)
    assert queue.state() == (False, 4)       # stopped: blind again


def test_a_message_not_from_the_kernel_is_ignored():
    assert uevents._from_kernel((0, 1))
    assert not uevents._from_kernel((4242, 1))
    assert uevents._from_kernel(None)       # a test's socketpair


def test_the_kernel_socket_opens_without_privilege_needed():
    try:
        sock = uevents.open_uevent_socket()
    except OSError as e:        # a sandbox without netlink
        pytest.skip('no netlink uevent socket here: %s' % e)
    try:
        assert sock.getsockname()[1] == uevents.KERNEL_GROUP
    finally:
        sock.close()
