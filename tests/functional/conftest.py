"""Functional tests talk to a real OpenStack Placement.

By default it is embedded: one Placement database serves the whole session
(Placement allows one per process). With VGPU_PLACEMENT_TEST_PLACEMENT set
to the URL of a running noauth2 Placement (tools/placement-server prints
one), the same tests run against it instead; the few that stop and restart
Placement then run embedded only. Every test reports its own host, so
trees never meet.
"""
import os
import uuid

import pytest

from tests.conftest import make_conf
from vgpu_placement import fixtures as vp_fixtures
from vgpu_placement.placement import client as client_mod
from vgpu_placement.service import standalone

EXTERNAL = os.environ.get('VGPU_PLACEMENT_TEST_PLACEMENT')
embedded_only = pytest.mark.skipif(
    bool(EXTERNAL), reason='stops and restarts Placement: embedded only')


def placement_ini(database=None):
    """The config section reaching the Placement under test."""
    if EXTERNAL:
        # A standalone host on a shared Placement: it makes its root.
        return ('[DEFAULT]\ncreate_root_provider = true\n'
                '[placement]\nauth_type = admin_token\nendpoint = %s\n'
                'token = admin\n' % EXTERNAL)
    text = '[embedded_placement]\nenabled = true\n'
    return text + ('database = %s\n' % database if database else '')


def served_conf(tmp_path, host, endpoint, profile='kernel-samples'):
    """The config file of CLI processes for a simulated ``profile`` host
    whose Placement is at ``endpoint`` (several processes cannot share
    the embedded, in-process one); state under tmp_path/state."""
    conf = tmp_path / 'host.conf'
    conf.write_text(
        '[DEFAULT]\nhost = %s\ndriver = simulated\nstate_path = %s\n'
        'create_root_provider = true\n'
        '[simulated]\nprofile = %s\n[placement]\n'
        'auth_type = admin_token\nendpoint = %s\ntoken = admin\n'
        % (host, tmp_path / 'state', profile, endpoint))
    return conf


@pytest.fixture(scope='session')
def placement_db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('placement') / 'placement.sqlite')
    if not EXTERNAL:
        vp_fixtures.EmbeddedPlacement(path).setUp()
    return path


@pytest.fixture
def new_adapter(placement_db):
    """Make keystoneauth1 adapters to the Placement under test."""
    return lambda: standalone.placement_client(
        make_conf(placement_ini(placement_db))).adapter


@pytest.fixture
def placement(new_adapter):
    """A client for checking what Placement holds, independent of ours."""
    return client_mod.PlacementClient(new_adapter())


@pytest.fixture
def host():
    return 'host-%s' % uuid.uuid4().hex[:8]


@pytest.fixture
def sim_conf(request, tmp_path, host, placement_db):
    """conf of a SimulatedHost named ``host`` whose state is tmp_path."""
    def factory(profile='kernel-samples', config_text='', **options):
        simulated = vp_fixtures.SimulatedHost(
            placement_ini(placement_db), profile, name=host,
            state_path=str(tmp_path), config_text=config_text, **options)
        simulated.setUp()
        request.addfinalizer(simulated.cleanUp)
        return simulated.conf
    return factory


def tree_in_placement(placement, host):
    """{child name: {'uuid', 'inventories', 'traits', 'usages'}} read
    straight from Placement."""
    roots = placement.get('/resource_providers?name=%s' % host)
    if not roots['resource_providers']:
        return None
    root = roots['resource_providers'][0]['uuid']
    out = {}
    for rp in placement.get('/resource_providers?in_tree=%s' % root)[
            'resource_providers']:
        if rp['uuid'] == root:
            continue
        base = '/resource_providers/%s' % rp['uuid']
        out[rp['name']] = {
            'uuid': rp['uuid'],
            'inventories': placement.get(base + '/inventories')[
                'inventories'],
            'traits': set(placement.get(base + '/traits')['traits']),
            'usages': placement.get(base + '/usages')['usages']}
    return out


def claim(placement, rp_uuid, resources, consumer=None):
    consumer = consumer or str(uuid.uuid4())
    placement.put('/allocations/%s' % consumer, {
        'allocations': {rp_uuid: {'resources': resources}},
        'consumer_generation': None, 'project_id': 'p', 'user_id': 'u',
        'consumer_type': 'INSTANCE'})
    return consumer
