"""The commands and the agent on a compute host's install (no extra) work
against a Placement service over HTTP.

The child processes run with the Placement server's modules made
unimportable (see tests/unit/test_lean_install.py): any attempt to import
one fails the command. Placement is the embedded one served over HTTP from
this process (another process, as a service would be), or the one in
VGPU_PLACEMENT_TEST_PLACEMENT.
"""
import contextlib
import json
import signal
import subprocess
import sys
import uuid

import pytest

from tests.functional.conftest import EXTERNAL
from tests.functional.conftest import tree_in_placement
from tests.unit.test_lean_install import CHILD
from tests.unit.test_lean_install import ROOT
from tests.unit.test_lean_install import SERVER_MODULES
from vgpu_placement.placement import embedded


@pytest.fixture
def placement_url(placement_db):
    if EXTERNAL:
        yield EXTERNAL
        return
    with embedded.LoopbackServer(placement_db) as server:
        yield server.url


@pytest.fixture
def remote_conf(tmp_path, placement_url):
    host = 'lean-%s' % uuid.uuid4().hex[:8]
    conf = tmp_path / 'vgpu.conf'
    conf.write_text(
        '[DEFAULT]\nhost = %s\ndriver = simulated\nstate_path = %s\n'
        'create_root_provider = true\n[simulated]\nprofile = demo-host\n'
        '[placement]\nauth_type = admin_token\nendpoint = %s\n'
        'token = admin\n' % (host, tmp_path / 'state', placement_url))
    return host, conf


def child(module, argv):
    code = 'import sys\nfrom %s import main\nsys.exit(main(%r))' % (
        module, argv)
    return [sys.executable, '-c', CHILD, ','.join(SERVER_MODULES),
            ','.join(SERVER_MODULES), code]


def server_modules(stderr):
    line = [ln for ln in stderr.splitlines()
            if ln.startswith('SERVER-MODULES:')][-1]
    return [m for m in line.split(':', 1)[1].split(',') if m]


def test_cli_reports_without_the_server_installed(remote_conf, placement):
    host, conf = remote_conf
    proc = subprocess.run(
        child('vgpu_placement.cmd.cli',
              ['--config-file', str(conf), 'report', '--format', 'json']),
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert server_modules(proc.stderr) == []
    assert json.loads(proc.stdout)
    tree = tree_in_placement(placement, host)
    # The demo host's T4-like card is in Placement with its types.
    t4 = tree['%s_pci_0000_84_00_0' % host]
    assert 'CUSTOM_MDEV_NVIDIA_231' in t4['inventories']


def test_agent_reports_without_the_server_installed(remote_conf, placement):
    host, conf = remote_conf
    agent = subprocess.Popen(
        child('vgpu_placement.cmd.agent', ['--config-file', str(conf)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=ROOT)
    lines = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: agent.poll() is None and agent.kill())
        for line in agent.stderr:
            lines.append(line)
            if 'report done' in line:
                break
        agent.send_signal(signal.SIGTERM)
        _, rest = agent.communicate(timeout=60)
    err = ''.join(lines) + (rest or '')
    assert agent.returncode == 0, err[-3000:]
    assert any('report done' in ln for ln in lines), err[-3000:]
    assert server_modules(err) == []
    assert '%s_pci_0000_84_00_0' % host in tree_in_placement(placement, host)
