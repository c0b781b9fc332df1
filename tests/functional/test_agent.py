"""The agent as a process: it stops on SIGTERM whatever it waits on."""
import os
import signal
import socket
import subprocess
import sys
import threading

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
