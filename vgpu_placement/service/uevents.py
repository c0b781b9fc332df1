"""Kernel uevents that change what this host offers, coalesced into wakeups.

Contract:

* ``parse(data)`` turns one kernel netlink message
  (``ACTION@DEVPATH\\0KEY=VALUE\\0...``) into a :class:`Uevent`, or raises
  :class:`BadUevent`; ``host_change(event)`` says whether it can change
  the host's mdev offer, as a :class:`Change` naming the parent, or None.
  Both are pure.
* :class:`Coalescer` (pure, injected clock) groups changes into batches: a
  batch is due once no change came for the quiet window, and at the latest
  ``max_delay`` after its first change. An mdev half-way (``add`` seen,
  not yet ``bind``; ``unbind`` seen, not yet ``remove``) holds its batch
  (up to ``max_delay``): between the two the kernel is still probing or
  releasing it, and a report would read capacity not yet taken or given
  back. Within a burst (a change less than
  ``max_delay`` after the previous batch was taken) the quiet window
  doubles each time, up to ``max_delay``: a slow loop (one create every
  100 ms) gives a few batches, not one per create, while a lone change is
  due one quiet window after it happened.
* :class:`EventQueue` is the thread-safe coalescer the agent's loop waits
  on (``get(timeout)``); :class:`UeventListener` feeds it from a socket in
  a daemon thread. A bad or oversized message is dropped with a debug
  line; a socket that cannot be opened or fails is logged once and tried
  again every ``retry_interval`` seconds, the periodic report covering
  the gap. Lost messages (ENOBUFS: the receive buffer overflowed) become a
  change of unknown parent, so nothing is missed.
* Whether a host scan can still be trusted (``scan_gate``) is read from
  the queue's ``state()``: (watching, seen). ``seen`` counts every change
  put and every start or end of watching, so a scan that began when
  ``seen`` was N is still whole while ``seen`` is N and the listener
  watches: no uevent, no loss, no blind spell since.
* A socket that opens is no proof that uevents arrive: in a network
  namespace owned by another user namespace (a user-namespaced
  container) it opens and stays silent. The proof is the kernel's own
  count: every uevent carries ``SEQNUM``, one more than the last, and
  ``/sys/kernel/uevent_seqnum`` (world-readable) holds the last one sent.
  The listener notes the highest ``SEQNUM`` it received (``heard``,
  counting from that file when its socket opened); ``caught_up(seqnum)``
  tells whether it has heard up to the kernel's figure. Uevents of a
  network device in another namespace count at the kernel and never
  arrive: those hosts are read more often, never less.

What a 6.12 kernel sends (``doc/source/reference/kernel-mdev.rst``, and the
kernel tier's ``tests/kernel/test_uevents.py``): an mdev create is ``add``
then ``bind`` with ``SUBSYSTEM=mdev`` and ``DEVPATH=<parent device>/<uuid>``
(available_instances moves at probe, between the two); a remove is
``unbind`` then ``remove``. A parent registering or unregistering with mdev
sends ``change`` with ``MDEV_STATE=registered|unregistered`` on the parent
device, whatever its bus (``mdev_bus`` is a compat class: its links send
nothing). SR-IOV VFs and the NVIDIA vendor-specific VFIO (no mdev_bus) show
as PCI ``add``/``remove``/``bind``/``unbind``; only display controllers (PCI
class 0x03) are kept, so a NIC creating 64 VFs wakes nothing. The vfio,
vfio-dev and iommu events that come with each mdev add nothing and are
dropped.

Why the stdlib socket and not pyudev: the agent needs one multicast
group of one netlink family and ~20 lines to read it; pyudev would add a
dependency on libudev (through ctypes), whose events are udevd's
re-broadcast (group 2) after rules ran: later, and absent where udevd
does not run (containers, minimal hosts, the kernel tier's guest). The
kernel's own group (1) needs no privilege to read. A container in a
network namespace of its own gets no uevents at all: the periodic report
still applies there.
"""
import dataclasses
import errno
import logging
import os
import socket
import threading
import time

LOG = logging.getLogger(__name__)

NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1            # udevd re-broadcasts on group 2: not ours
# The kernel's UEVENT_BUFFER_SIZE is 2048; anything bigger is not a kernel
# uevent. Read with room to spare, so a truncated read is noticed.
MAX_MESSAGE = 8192
RECEIVE_BUFFER = 4 * 1024 * 1024    # bursts of hundreds of VFs fit
RETRY_INTERVAL = 60.0       # seconds between two tries of a failed socket
SEQNUM_PATH = '/sys/kernel/uevent_seqnum'

ACTIONS = frozenset(('add', 'remove', 'change', 'move', 'online', 'offline',
                     'bind', 'unbind'))
PCI_ACTIONS = frozenset(('add', 'remove', 'bind', 'unbind'))
PCI_DISPLAY_CLASS = 0x03    # base class of VGA, 3D and other display


class BadUevent(ValueError):
    """A message that is not a kernel uevent."""


@dataclasses.dataclass(frozen=True)
class Uevent:
    action: str
    devpath: str
    env: dict

    @property
    def subsystem(self):
        return self.env.get('SUBSYSTEM')


@dataclasses.dataclass(frozen=True)
class Change:
    """One host change: ``kind`` is mdev, parent, pci or lost (messages
    were dropped: any parent may have changed, ``parent`` is None).
    ``device``: the mdev's UUID (mdev changes only)."""
    kind: str
    action: str
    parent: str = None
    device: str = None


# An mdev is half-way from the first action of each pair to the second:
# add, then bind once probed (or remove if the probe failed); unbind, then
# remove.
STARTS = frozenset(('add', 'unbind'))
ENDS = frozenset(('bind', 'remove'))


LOST = Change('lost', 'overflow')


def parse(data):
    """One kernel uevent message -> Uevent; BadUevent says what is wrong."""
    if len(data) > MAX_MESSAGE:
        raise BadUevent('%d bytes, more than a kernel uevent' % len(data))
    if data.startswith(b'libudev\0'):
        raise BadUevent("udevd's re-broadcast (libudev header)")
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise BadUevent('not UTF-8: %s' % e)
    fields = text.rstrip('\0').split('\0')
    action, at, devpath = fields[0].partition('@')
    if not at or action not in ACTIONS or not devpath.startswith('/'):
        raise BadUevent('header %r is not ACTION@/DEVPATH' % fields[0][:80])
    env = {}
    for field in fields[1:]:
        key, eq, value = field.partition('=')
        if not eq or not key:
            raise BadUevent('field %r is not KEY=VALUE' % field[:80])
        env[key] = value
    # The kernel repeats both in the environment: they must agree.
    if env.get('ACTION', action) != action or env.get(
            'DEVPATH', devpath) != devpath:
        raise BadUevent('header %r disagrees with ACTION=%s DEVPATH=%s' % (
            fields[0][:80], env.get('ACTION'), env.get('DEVPATH')))
    return Uevent(action, devpath, env)


def kernel_seqnum(path=SEQNUM_PATH):
    """The SEQNUM of the last uevent the kernel sent, or None if it
    cannot be read (no sysfs, not a number)."""
    try:
        with open(path, 'rb') as f:
            return int(f.read(32))
    except (OSError, ValueError):
        return None


def seqnum_of(data):
    """The SEQNUM field of a raw uevent message, or None. Read from any
    kernel message, even one this project ignores: each proves the
    listener hears the kernel."""
    at = data.rfind(b'\0SEQNUM=')
    if at < 0:
        return None
    digits = data[at + 8:].split(b'\0', 1)[0]
    return int(digits) if digits.isdigit() and len(digits) < 20 else None


def _is_display(pci_class):
    """PCI_CLASS is hex without a leading zero (30000 for VGA). Unknown or
    missing: kept, an extra report is cheaper than a missed one."""
    try:
        return int(pci_class, 16) >> 16 == PCI_DISPLAY_CLASS
    except (TypeError, ValueError):
        return True


def host_change(event):
    """The Change a uevent means for this host's offer, or None."""
    name = os.path.basename(event.devpath)
    if event.subsystem == 'mdev':
        # DEVPATH is <parent device>/<uuid>.
        return Change('mdev', event.action,
                      os.path.basename(os.path.dirname(event.devpath)), name)
    state = event.env.get('MDEV_STATE')
    if state in ('registered', 'unregistered'):
        return Change('parent', state, name)
    if (event.subsystem == 'pci' and event.action in PCI_ACTIONS and
            _is_display(event.env.get('PCI_CLASS'))):
        return Change('pci', event.action, name)
    return None


@dataclasses.dataclass
class Batch:
    """Changes coalesced into one wakeup. ``parents`` is None when any
    parent may have changed (messages were lost)."""
    first_at: float             # clock of its first change
    last_at: float
    count: int = 0
    parents: set = dataclasses.field(default_factory=set)
    half_way: set = dataclasses.field(default_factory=set)  # mdev UUIDs

    def add(self, change, now):
        self.count += 1
        self.last_at = now
        if change.kind == 'mdev' and change.device:
            if change.action in STARTS:
                self.half_way.add(change.device)
            elif change.action in ENDS:
                self.half_way.discard(change.device)
        if self.parents is not None:
            if change.parent is None:
                self.parents = None
            else:
                self.parents.add(change.parent)

    def describe(self):
        where = ('any parent' if self.parents is None else
                 ', '.join(sorted(self.parents)))
        return '%d uevent(s) on %s' % (self.count, where)


class Coalescer:
    """Changes in, batches out; not thread-safe (see EventQueue)."""

    def __init__(self, quiet, max_delay, clock=time.monotonic):
        self.quiet = quiet
        self.max_delay = max_delay
        self.clock = clock
        self.window = quiet
        self.pending = None
        self.taken_at = None        # when the last batch was taken

    def add(self, change):
        now = self.clock()
        if self.pending is None:
            in_burst = (self.taken_at is not None and
                        now - self.taken_at < self.max_delay)
            self.window = (min(self.window * 2, self.max_delay) if in_burst
                           else self.quiet)
            self.pending = Batch(now, now)
        self.pending.add(change, now)

    def due_in(self):
        """Seconds until the pending batch is due (0 if now), None if
        nothing is pending."""
        if self.pending is None:
            return None
        due = self.pending.first_at + self.max_delay
        if not self.pending.half_way:
            due = min(due, self.pending.last_at + self.window)
        return max(0.0, due - self.clock())

    def take(self):
        """The pending batch if it is due, else None."""
        if self.due_in() != 0.0:
            return None
        batch, self.pending = self.pending, None
        self.taken_at = self.clock()
        return batch


class EventQueue:
    """A Coalescer shared by a listener thread and the agent's loop."""

    def __init__(self, quiet, max_delay, clock=time.monotonic):
        self.coalescer = Coalescer(quiet, max_delay, clock)
        self.clock = clock
        self.cond = threading.Condition()
        self.closed = False
        self.watching = False   # a listener reads the kernel's socket
        self.seen = 0           # changes put + watching started or ended
        self.heard = None       # highest SEQNUM received while watching

    def put(self, change):
        with self.cond:
            self.seen += 1
            self.coalescer.add(change)
            self.cond.notify_all()

    def set_watching(self, watching, heard=None):
        """Said by the listener when its socket opens (``heard``: the
        kernel's SEQNUM then, None if unknown) or fails: any scan begun
        before is no longer known to be whole."""
        with self.cond:
            self.watching = watching
            self.heard = heard if watching else None
            self.seen += 1
            self.cond.notify_all()

    def note_heard(self, seqnum):
        """The listener received the kernel's uevent number ``seqnum``."""
        with self.cond:
            if self.heard is not None and seqnum > self.heard:
                self.heard = seqnum
                self.cond.notify_all()

    def caught_up(self, seqnum, timeout):
        """Whether the listener has heard every uevent up to the kernel's
        ``seqnum``, waiting up to ``timeout`` seconds for those in flight;
        returns (True or False, the highest heard)."""
        with self.cond:
            done = self.cond.wait_for(
                lambda: self.heard is not None and self.heard >= seqnum,
                timeout)
            return done, self.heard

    def state(self):
        """(watching, seen): see the module's docstring."""
        with self.cond:
            return self.watching, self.seen

    def get(self, timeout):
        """Wait up to ``timeout`` seconds for a due batch; None when the
        time is up or the queue is closed."""
        end = self.clock() + timeout
        with self.cond:
            while not self.closed:
                batch = self.coalescer.take()
                if batch is not None:
                    return batch
                left = end - self.clock()
                if left <= 0:
                    return None
                due = self.coalescer.due_in()
                self.cond.wait(left if due is None else min(left, due))
            return None

    def clear(self):
        """Drop the pending changes (a report is about to read them)."""
        with self.cond:
            self.coalescer.pending = None

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def open_uevent_socket():
    """A netlink socket on the kernel's uevent group (no privilege needed;
    a bigger receive buffer if the process may force one)."""
    sock = socket.socket(socket.AF_NETLINK,
                         socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         NETLINK_KOBJECT_UEVENT)
    try:
        for option in (getattr(socket, 'SO_RCVBUFFORCE', 33),
                       socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
                break
            except OSError:
                continue        # no CAP_NET_ADMIN: rmem_max it is
        sock.bind((0, KERNEL_GROUP))
    except BaseException:
        sock.close()
        raise
    return sock


def _from_kernel(address):
    """Netlink: the kernel sends from port 0. Another process (root only
    may send to the group) is not the kernel. Non-netlink test sockets
    have no such address."""
    return not (isinstance(address, tuple) and address and address[0] != 0)


class UeventListener:
    """Reads uevents in a daemon thread and puts host changes on a queue."""

    def __init__(self, queue, open_socket=open_uevent_socket,
                 retry_interval=RETRY_INTERVAL, read_seqnum=kernel_seqnum):
        self.queue = queue
        self.open_socket = open_socket
        self.read_seqnum = read_seqnum
        self.retry_interval = retry_interval
        self.stopping = threading.Event()
        self.watching = threading.Event()   # set while a socket is open
        self.thread = None
        self.sock = None

    def start(self):
        self.thread = threading.Thread(target=self.run, name='uevents',
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Ask the thread to stop. A thread blocked in recv leaves at its
        next message or socket close; it is a daemon, so it never holds
        up the agent's exit."""
        self.stopping.set()
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def run(self):
        failed = False
        while not self.stopping.is_set():
            try:
                self.sock = self.open_socket()
            except OSError as e:
                self._fell_back('cannot watch kernel uevents (%s)' % e,
                                failed)
                failed = True
                continue
            if failed:
                LOG.warning('watching kernel uevents again')
                failed = False
                # Whatever happened while blind is reported now.
                self.queue.put(LOST)
            else:
                LOG.info('watching kernel uevents for mdev and parent '
                         'changes')
            # Read once the socket is bound: every uevent after this
            # figure reaches the socket, if any does. The queue first: a
            # scan that waited for ``watching`` counts as covered.
            self.queue.set_watching(True, self.read_seqnum())
            self.watching.set()
            error = None
            try:
                self._read(self.sock)
            except OSError as e:
                error = e
            finally:
                # Said before any wait, and also when the thread dies of
                # a bug: nothing is watched from here on.
                self.queue.set_watching(False)
                self.watching.clear()
                self.sock.close()
                self.sock = None
            if error is not None and not self.stopping.is_set():
                self._fell_back('kernel uevents: %s' % error, False)
                failed = True

    def _fell_back(self, why, said):
        (LOG.debug if said else LOG.warning)(
            '%s; reporting periodically only, trying again in %.0f s',
            why, self.retry_interval)
        self.stopping.wait(self.retry_interval)

    def _read(self, sock):
        while not self.stopping.is_set():
            try:
                data, _anc, flags, address = sock.recvmsg(MAX_MESSAGE + 1)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    # The receive buffer overflowed: messages were lost.
                    LOG.debug('kernel uevents lost (receive buffer full)')
                    self.queue.put(LOST)
                    continue
                if e.errno == errno.EINTR:
                    continue
                raise
            if not data:
                if self.stopping.is_set():
                    return
                raise OSError(errno.ECONNRESET, 'the uevent socket closed')
            if flags & socket.MSG_TRUNC:
                LOG.debug('uevent ignored: more than %d bytes', MAX_MESSAGE)
                continue
            if not _from_kernel(address):
                LOG.debug('uevent ignored: sent by port %s, not the kernel',
                          address[0])
                continue
            seqnum = seqnum_of(data)
            if seqnum is not None:
                self.queue.note_heard(seqnum)
            try:
                event = parse(data)
            except BadUevent as e:
                LOG.debug('uevent ignored: %s', e)
                continue
            change = host_change(event)
            if change is not None:
                LOG.debug('uevent %s %s: %s', event.action, event.devpath,
                          change.kind)
                self.queue.put(change)
