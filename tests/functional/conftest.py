"""Functional tests talk to a real, embedded OpenStack Placement.

One Placement database serves the whole session (Placement allows one per
process); every test reports its own host, so trees never meet.
"""
import uuid

import pytest

from tests.conftest import make_conf
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import embedded


@pytest.fixture(scope='session')
def placement_db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('placement') / 'placement.sqlite')
    embedded.start(path)
    return path


@pytest.fixture
def placement(placement_db):
    """A client for checking what Placement holds, independent of ours."""
    return client_mod.PlacementClient(embedded.adapter(placement_db))


@pytest.fixture
def host():
    return 'host-%s' % uuid.uuid4().hex[:8]


@pytest.fixture
def sim_conf(tmp_path, host, placement_db):
    def factory(profile='kernel-samples', **options):
        return make_conf(driver='simulated', simulated__profile=profile,
                         state_path=str(tmp_path), host=host,
                         embedded_placement__enabled=True,
                         embedded_placement__database=placement_db,
                         **options)
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
