"""The agent and a stock nova-compute (Nova's own report client) on one
Placement and one root provider (issue 10 §2, §3), on every Nova release
the project supports.

Each Nova runs in its own virtualenv: ``.cache/nova-venv`` for 34
(``python3 benches/report_traffic.py --install-nova`` makes it),
``.cache/nova-venv-<N>`` for 31 to 33 (``tools/nova-tier/run-tests
--release N`` makes it; CI runs those first); a release without its
virtualenv is skipped, saying so.
"""
import json
import os
import select
import subprocess
import uuid

import pytest

from tests.conftest import make_conf
from tests.functional.conftest import EXTERNAL
from tests.functional.conftest import tree_in_placement
from tests.functional.nova import compute_side
from vgpu_placement import exceptions
from vgpu_placement.placement import embedded
from vgpu_placement.placement import traits as traits_mod
from vgpu_placement.service import standalone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
COMPUTE_SIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'nova', 'compute_side.py')
# Nova major -> its virtualenv (tools/nova-tier/run-tests' names).
RELEASES = {34: 'nova-venv', 33: 'nova-venv-33', 32: 'nova-venv-32',
            31: 'nova-venv-31'}


def nova_python(major):
    return os.path.join(ROOT, '.cache', RELEASES[major], 'bin', 'python')


def _nova_importable(major):
    python = nova_python(major)
    if not os.path.exists(python):
        return False
    return subprocess.run(
        [python, '-c', 'import nova.scheduler.client.report'],
        capture_output=True, timeout=120).returncode == 0


@pytest.fixture(params=sorted(RELEASES, reverse=True),
                ids=lambda major: 'nova%d' % major)
def nova_release(request):
    """Each supported Nova release whose virtualenv is here."""
    major = request.param
    if not _nova_importable(major):
        pytest.skip('Nova %d is not installed in .cache/%s (%s)' % (
            major, RELEASES[major],
            'python3 benches/report_traffic.py --install-nova installs it'
            if major == 34 else
            'tools/nova-tier/run-tests --release %d installs it' % major))
    return major


class NovaCompute:
    """A nova-compute's report client in a process of its own."""

    def __init__(self, url, host, major=34):
        self.root_uuid = str(uuid.uuid4())      # its compute node's
        self.proc = subprocess.Popen(
            [nova_python(major), COMPUTE_SIDE, url, host, self.root_uuid],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)

    def do(self, op):
        self.proc.stdin.write(op + '\n')
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        assert ready, 'nova-compute did not answer %r in 120 s' % op
        return json.loads(self.proc.stdout.readline())

    def periodic(self):
        """One update_available_resource: it must not fail."""
        got = self.do('periodic')
        assert got['ok'], got['error']
        return got

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture
def shared(placement_db, host, tmp_path, nova_release):
    """(nova-compute, our Reporter) on one Placement over loopback HTTP."""
    if EXTERNAL:
        url = EXTERNAL
        server = None
    else:
        server = embedded.LoopbackServer(placement_db).__enter__()
        url = server.url
    nova = NovaCompute(url, host, nova_release)
    # Nova's [placement] lines, as an operator would copy them; no
    # create_root_provider: the root is nova-compute's.
    ours = standalone.reporter_for(make_conf(
        '[placement]\nauth_type = admin_token\nendpoint = %s\n'
        'token = admin\n' % url, driver='simulated',
        simulated__profile='kernel-samples', state_path=str(tmp_path),
        host=host))
    yield nova, ours
    nova.close()
    if server is not None:
        server.__exit__(None, None, None)


def steady(nova, ours):
    """A round where nothing changed costs each side no write."""
    assert nova.periodic()['writes'] == 0
    assert ours.report().requests.writes == 0


def unplug_then_refresh(nova, ours, placement, host):
    """A GPU leaves while nova-compute has the tree cached; then its
    association refresh, and a restart."""
    before = tree_in_placement(placement, host)
    ours.driver.unplug_parent('mdpy')
    ours.report()
    assert nova.periodic()['writes'] == 0      # cached child still there
    assert nova.do('refresh')['ok']
    assert nova.periodic()['writes'] == 0
    assert nova.do('restart')['ok']
    nova.periodic()
    steady(nova, ours)
    after = tree_in_placement(placement, host)
    # Nobody deleted or renamed a provider; ours all still ours.
    assert {n: p['uuid'] for n, p in after.items()} == {
        n: p['uuid'] for n, p in before.items()}
    assert all(traits_mod.MANAGED in p['traits'] for p in after.values())
    assert traits_mod.RETIRED in after['%s_mdpy_mdpy' % host]['traits']


def root_is_novas(nova, placement, host):
    [root] = placement.get('/resource_providers?name=%s' % host)[
        'resource_providers']
    assert root['uuid'] == nova.root_uuid
    inventories = placement.get('/resource_providers/%s/inventories'
                                % root['uuid'])['inventories']
    assert sorted(inventories) == ['MEMORY_MB', 'VCPU']     # untouched
    # Nova's traits on its root (OWNER_NOVA among them) stay Nova's.
    traits = placement.get('/resource_providers/%s/traits'
                           % root['uuid'])['traits']
    assert sorted(traits) == sorted(compute_side.ROOT_TRAITS)


def test_nova_first_then_the_agent(shared, placement, host):
    nova, ours = shared
    nova.periodic()                     # creates the compute node's root
    ours.report()                       # our children under it
    nova.periodic()
    assert nova.do('refresh')['ok']     # nova now caches our children
    nova.periodic()
    steady(nova, ours)
    root_is_novas(nova, placement, host)
    unplug_then_refresh(nova, ours, placement, host)
    root_is_novas(nova, placement, host)


def test_the_agent_first_then_nova(shared, placement, host):
    nova, ours = shared
    with pytest.raises(exceptions.RootProviderMissing):
        ours.report()                   # waits for nova-compute's root
    assert placement.get('/resource_providers?name=%s' % host)[
        'resource_providers'] == []
    nova.periodic()                     # registers, no name conflict
    ours.report()
    assert nova.do('refresh')['ok']
    nova.periodic()
    steady(nova, ours)
    root_is_novas(nova, placement, host)
    unplug_then_refresh(nova, ours, placement, host)
    root_is_novas(nova, placement, host)
