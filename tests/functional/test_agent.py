"""The agent as a process: it stops on SIGTERM whatever it waits on."""
import signal
import socket
import subprocess
import sys
import threading
import uuid

import pytest


@pytest.fixture
def hung_placement():
    """A Placement that accepts connections and never answers (SIGSTOPped
    or wedged behind a proxy). Yields (url, event set on first connect)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(16)
    connected = threading.Event()
    held = []

    def accept():
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            held.append(conn)
            connected.set()
    threading.Thread(target=accept, daemon=True).start()
    yield 'http://127.0.0.1:%d' % listener.getsockname()[1], connected
    listener.close()
    for conn in held:
        conn.close()


def test_sigterm_stops_the_agent_while_placement_hangs(tmp_path,
                                                       hung_placement):
    url, connected = hung_placement
    conf = tmp_path / 'agent.conf'
    conf.write_text(
        '[DEFAULT]\nhost = hung\ndriver = simulated\nstate_path = %s\n'
        '[simulated]\nprofile = kernel-samples\n'
        '[placement]\nauth_type = admin_token\nendpoint = %s\n'
        'token = admin\n' % (tmp_path / 'state', url))
    agent = subprocess.Popen(
        [sys.executable, '-m', 'vgpu_placement.cmd.agent', '--config-file',
         str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert connected.wait(60), 'the agent never reached Placement'
        agent.send_signal(signal.SIGTERM)
        # STOP_GRACE (3 s) plus the main thread's one-second wakeups.
        _out, err = agent.communicate(timeout=15)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert 'signal %d: stopping' % signal.SIGTERM in err
    assert 'agent stopped' in err


def test_a_uevent_gets_an_out_of_band_create_into_placement_at_once(
        sim_conf, placement, host):
    """The agent's loop with a period of an hour: an mdev created by
    another tool, then its kernel uevent, and Placement shows the new
    totals without waiting for the period."""
    from tests.functional.conftest import tree_in_placement
    from vgpu_placement import drivers
    from vgpu_placement.service import loop as service_loop
    from vgpu_placement.service import standalone
    from vgpu_placement.service import uevents

    conf = sim_conf()
    reporter = standalone.reporter_for(conf)
    reports = threading.Semaphore(0)
    play = reporter.report

    def report_and_tell():
        try:
            return play()
        finally:
            reports.release()
    reporter.report = report_and_tell
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    events = uevents.EventQueue(conf.agent.uevent_quiet_window,
                                conf.agent.uevent_max_delay)
    listener = uevents.UeventListener(events, open_socket=lambda: ours)
    listener.start()
    stop = threading.Event()
    loop = service_loop.ReportLoop(
        reporter, 3600, 3600, stop.wait, events=events)
    worker = threading.Thread(target=loop.run, daemon=True)
    worker.start()
    mtty = '%s_mtty_mtty' % host
    try:
        assert reports.acquire(timeout=60)      # the start's report
        before = tree_in_placement(placement, host)[mtty]['inventories']
        assert before['CUSTOM_MDEV_MTTY_1']['total'] == 24
        # mdevctl, say: another process on the same host.
        other = drivers.load_driver('simulated', conf)
        mdev = str(uuid.uuid4())
        other.create_mdev('mtty', 'mtty-2', mdev)
        path = '/devices/virtual/mtty/mtty/' + mdev
        for action in ('add', 'bind'):
            kernel.send(('%s@%s\0ACTION=%s\0DEVPATH=%s\0SUBSYSTEM=mdev\0'
                         'SEQNUM=1\0' % (action, path, action, path)).encode())
        assert reports.acquire(timeout=60), 'no report after the uevent'
        after = tree_in_placement(placement, host)[mtty]['inventories']
    finally:
        stop.set()
        listener.stop()
        events.close()
        worker.join(60)
        kernel.close()
        ours.close()
    # Two ports fewer for mtty-1; mtty-2 keeps its total (1 + 11).
    assert after['CUSTOM_MDEV_MTTY_1']['total'] == 22
    assert after['CUSTOM_MDEV_MTTY_2']['total'] == 12
    assert not worker.is_alive()


def test_the_agent_watches_uevents_and_still_stops_on_sigterm(tmp_path):
    """The listener blocked on the kernel's socket never holds up a stop
    (an agent on the embedded Placement, the simulated host)."""
    conf = tmp_path / 'agent.conf'
    conf.write_text(
        '[DEFAULT]\nhost = watcher\ndriver = simulated\nstate_path = %s\n'
        '[simulated]\nprofile = kernel-samples\n'
        '[embedded_placement]\nenabled = true\n' % (tmp_path / 'state'))
    agent = subprocess.Popen(
        [sys.executable, '-m', 'vgpu_placement.cmd.agent', '--config-file',
         str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    lines = []
    try:
        for line in agent.stderr:
            lines.append(line)
            if 'report done' in line:
                break
        agent.send_signal(signal.SIGTERM)
        _out, err = agent.communicate(timeout=15)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate(timeout=60)
    err = ''.join(lines) + err
    assert agent.returncode == 0, err
    # Watching, or (a sandbox without netlink) saying it reports
    # periodically only: either way the agent runs and stops.
    assert ('watching kernel uevents' in err or
            'reporting periodically only' in err), err
    assert 'agent stopped' in err


def test_a_claim_while_host_scans_are_skipped_changes_the_offers(
        tmp_path, host, placement, placement_db):
    """The sysfs driver with a healthy uevent listener: periodic reports
    reuse the last scan of the host, yet a claim made in Placement
    meanwhile changes the offers at the very next cycle."""
    from tests.functional.conftest import claim
    from tests.functional.conftest import placement_ini
    from tests.functional.conftest import tree_in_placement
    from tests import sysfs_tree
    from vgpu_placement.fixtures import make_conf
    from vgpu_placement.service import loop as service_loop
    from vgpu_placement.service import scan_gate
    from vgpu_placement.service import standalone
    from vgpu_placement.service import uevents

    sysfs_tree.kernel_samples(str(tmp_path / 'sys'))
    conf = make_conf(placement_ini(placement_db), host=host, driver='sysfs',
                     state_path=str(tmp_path / 'state'),
                     sysfs__root=str(tmp_path / 'sys'))
    reporter = standalone.reporter_for(conf)
    assert reporter.driver.host_changes_raise_uevents
    reads = []
    discover = reporter.driver.discover
    reporter.driver.discover = lambda: reads.append(1) or discover()
    events = uevents.EventQueue(conf.agent.uevent_quiet_window,
                                conf.agent.uevent_max_delay)
    events.set_watching(True, 0)    # as the listener does on its socket
    now = [0.0]
    clock = lambda: now[0]
    # An operator's longer full_scan_interval, and a listener proven to
    # hear every uevent the kernel sent.
    gate = scan_gate.ScanGate(events, True, 600, clock,
                              kernel_seqnum=lambda: 0)
    loop = service_loop.ReportLoop(reporter, 60, 300, lambda s: True,
                                   clock=clock, events=events, scans=gate)

    def cycle():
        now[0] += 60
        loop._periodic()
    cycle()                          # reads the host, creates the tree
    assert len(reads) == 1
    name = '%s_mtty_mtty' % host
    mtty = tree_in_placement(placement, host)[name]
    assert (mtty['inventories']['CUSTOM_MDEV_MTTY_1']['reserved']) == 0
    cycle()
    assert len(reads) == 1           # quiet: the scan is reused
    claim(placement, mtty['uuid'], {'CUSTOM_MDEV_MTTY_2': 1})
    cycle()
    assert len(reads) == 1           # still no host read ...
    inv = tree_in_placement(placement, host)[name]['inventories']
    # ... yet the granted mtty-2 will take 2 of the 24 ports: mtty-1 may
    # only get 22 of them now, as after a full scan.
    assert (inv['CUSTOM_MDEV_MTTY_1']['total'],
            inv['CUSTOM_MDEV_MTTY_1']['reserved']) == (24, 2)
    full = standalone.reporter_for(conf).report(dry_run=True)
    assert full.changes == []        # a fresh scan would offer the same
    # A uevent: the next cycle reads the host again.
    events.put(uevents.Change('mdev', 'add', 'mtty', None))
    cycle()
    assert len(reads) == 2


def sysfs_conf(tmp_path, host, placement_db):
    """A host on the copied sysfs tree under tmp_path/sys."""
    from tests.functional.conftest import placement_ini
    from vgpu_placement.fixtures import make_conf
    return make_conf(placement_ini(placement_db), host=host, driver='sysfs',
                     state_path=str(tmp_path / 'state'),
                     sysfs__root=str(tmp_path / 'sys'))


def test_a_reused_scan_follows_the_ledger_without_reading_the_host(
        tmp_path, host, placement, placement_db):
    """An mdev becoming ours (a realize in another process records it)
    changes which claims are pending: a report reusing the last scan
    builds the tree again from it, as a fresh scan would."""
    from tests.functional.conftest import claim
    from tests.functional.conftest import tree_in_placement
    from tests import sysfs_tree
    from vgpu_placement.host import ledger as ledger_mod
    from vgpu_placement.service import standalone

    tree = sysfs_tree.kernel_samples(str(tmp_path / 'sys'))
    mdev = str(uuid.uuid4())
    tree.add_mdev('mtty', 'mtty-2', mdev)
    tree.set_available('mtty', 'mtty-1', 22)
    tree.set_available('mtty', 'mtty-2', 11)
    conf = sysfs_conf(tmp_path, host, placement_db)
    reporter = standalone.reporter_for(conf)
    reporter.report()
    name = '%s_mtty_mtty' % host
    rp = tree_in_placement(placement, host)[name]['uuid']
    claim(placement, rp, {'CUSTOM_MDEV_MTTY_2': 1})
    assert reporter.report(rescan=False).scanned is False
    # The mdev is someone else's: the claim still waits for one of its own.
    inv = tree_in_placement(placement, host)[name]['inventories']
    assert inv['CUSTOM_MDEV_MTTY_1']['reserved'] == 2
    ledger = ledger_mod.Ledger(ledger_mod.path_in(conf.state_path))
    ledger.put(ledger_mod.Record(mdev, 'c', mdev, 'mtty', 'mtty-2',
                                 ledger_mod.ACTIVE, 'boot'))
    assert reporter.report(rescan=False).scanned is False
    inv = tree_in_placement(placement, host)[name]['inventories']
    # Ours now, it realizes the claim: nothing held back any more.
    assert inv['CUSTOM_MDEV_MTTY_1']['reserved'] == 0
    fresh = standalone.reporter_for(conf).report(dry_run=True)
    assert fresh.changes == []


def test_a_reused_scan_never_writes_back_over_a_fresher_report(
        tmp_path, host, placement, placement_db):
    """The host changes without a uevent the agent saw (another owner's
    mdpy mdevs); an operator's report writes the truth; the agent's next
    cycle, reusing its scan, reads the host again instead of writing its
    stale offer back."""
    from tests.functional.conftest import tree_in_placement
    from tests import sysfs_tree
    from vgpu_placement.service import standalone

    tree = sysfs_tree.kernel_samples(str(tmp_path / 'sys'))
    conf = sysfs_conf(tmp_path, host, placement_db)
    agent = standalone.reporter_for(conf)
    agent.report()
    name = '%s_mdpy_mdpy' % host
    offered = tree_in_placement(placement, host)[name]['inventories']
    for _ in range(3):
        tree.add_mdev('mdpy', 'mdpy-vga', str(uuid.uuid4()))
    for type_id in ('mdpy-vga', 'mdpy-xga', 'mdpy-hd'):
        tree.set_available('mdpy', type_id, 1)
    standalone.reporter_for(conf).report()          # the operator's
    truth = tree_in_placement(placement, host)[name]['inventories']
    assert truth != offered
    result = agent.report(rescan=False)
    assert result.scanned and result.changes == []
    assert tree_in_placement(placement, host)[name]['inventories'] == truth
