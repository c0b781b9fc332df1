"""The Placement behaviours placement/consumers.py relies on, pinned
against the real service (embedded, or VGPU_PLACEMENT_TEST_PLACEMENT).

If a Placement release changes one of them, this file fails first and
names the behaviour, rather than a claim or a release failing somewhere
downstream.
"""
import uuid

import pytest

from vgpu_placement import exceptions
from vgpu_placement.placement import consumers

RC = 'CUSTOM_CONTRACT_VGPU'
PROJECT, USER = str(uuid.uuid4()), str(uuid.uuid4())


def new():
    return str(uuid.uuid4())


@pytest.fixture
def provider(placement):
    """A provider with 2 units of RC and 8 VCPU; deleted afterwards."""
    rp = new()
    placement.post('/resource_providers', {'name': 'contract-' + rp,
                                           'uuid': rp})
    placement.put('/resource_classes/%s' % RC, None)
    placement.put('/resource_providers/%s/inventories' % rp, {
        'resource_provider_generation': 0,
        'inventories': {RC: {'total': 2}, 'VCPU': {'total': 8}}})
    yield rp
    for consumer in placement.get('/resource_providers/%s/allocations'
                                  % rp)['allocations']:
        placement.delete('/allocations/%s' % consumer)
    placement.delete('/resource_providers/%s' % rp)


def generation_of(placement, rp):
    return placement.get('/resource_providers/%s' % rp)['generation']


def test_an_unknown_consumer_has_no_allocations_and_no_generation(
        placement):
    got = consumers.allocations(placement, new())
    assert got['allocations'] == {}
    assert got.get('consumer_generation') is None


def test_a_stale_generation_is_a_race_and_the_current_one_wins(
        placement, provider):
    consumer = new()
    consumers.put(placement, consumer, {provider: {RC: 1}}, PROJECT, USER,
                  generation=None)
    held = consumers.allocations(placement, consumer)
    assert held['allocations'] == {provider: {RC: 1}}
    assert held['consumer_type'] == consumers.CONSUMER_TYPE
    with pytest.raises(exceptions.PlacementConflict) as raised:
        # None says "new consumer": it is not new any more.
        consumers.put(placement, consumer, {provider: {RC: 2}}, PROJECT,
                      USER, generation=None)
    assert consumers.is_generation_race(raised.value)
    consumers.put(placement, consumer, {provider: {RC: 2}}, PROJECT, USER,
                  generation=held['consumer_generation'])
    assert consumers.allocations(placement, consumer)['allocations'] == {
        provider: {RC: 2}}


def test_over_capacity_is_not_a_race_and_names_provider_and_class(
        placement, provider):
    with pytest.raises(exceptions.PlacementConflict) as raised:
        consumers.put(placement, new(), {provider: {RC: 3}}, PROJECT, USER,
                      generation=None)
    assert not consumers.is_generation_race(raised.value)
    assert consumers.refused_names(raised.value) == (provider, RC)


def test_a_refused_put_to_a_deleted_provider_leaves_a_generation_0_consumer(
        placement, provider):
    gone = new()
    placement.post('/resource_providers', {'name': 'contract-' + gone,
                                           'uuid': gone})
    placement.delete('/resource_providers/%s' % gone)
    consumer = new()
    with pytest.raises(exceptions.PlacementError) as raised:
        consumers.put(placement, consumer, {gone: {RC: 1}}, PROJECT, USER,
                      generation=None)
    assert consumers.is_provider_gone(raised.value)
    # Placement kept the consumer it made for the refused PUT, empty: a
    # new claim must say generation 0, and None is refused as a race.
    assert consumers.allocations(placement, consumer)['allocations'] == {}
    with pytest.raises(exceptions.PlacementConflict) as again:
        consumers.put(placement, consumer, {provider: {RC: 1}}, PROJECT,
                      USER, generation=None)
    assert consumers.is_generation_race(again.value)
    consumers.put(placement, consumer, {provider: {RC: 1}}, PROJECT, USER,
                  generation=0)
    assert consumers.allocations(placement, consumer)['allocations'] == {
        provider: {RC: 1}}


def test_delete_does_not_bump_the_provider_generation_a_put_does(
        placement, provider):
    """Why placement.sync re-reads usages of providers with claims not yet
    realized: a DELETE of a consumer's allocations is invisible in the
    generations (a PUT that drops them is not)."""
    deleted, dropped = new(), new()
    for consumer in (deleted, dropped):
        consumers.put(placement, consumer, {provider: {RC: 1}}, PROJECT,
                      USER, generation=None)
    before = generation_of(placement, provider)
    placement.delete('/allocations/%s' % deleted)
    assert generation_of(placement, provider) == before
    assert placement.get('/resource_providers/%s/usages' % provider)[
        'usages'][RC] == 1
    held = consumers.allocations(placement, dropped)
    consumers.put(placement, dropped, {}, PROJECT, USER,
                  generation=held['consumer_generation'])
    assert generation_of(placement, provider) > before


def test_allocations_on_providers_list_every_consumer(placement, provider):
    a, b = new(), new()
    consumers.put(placement, a, {provider: {RC: 1}}, PROJECT, USER, None)
    consumers.put(placement, b, {provider: {RC: 1, 'VCPU': 2}}, PROJECT,
                  USER, None)
    assert consumers.on_providers(placement, [provider]) == {
        a: {provider: {RC: 1}}, b: {provider: {RC: 1, 'VCPU': 2}}}


def test_release_drops_only_what_is_ours_and_keeps_the_rest(placement,
                                                            provider):
    other = new()
    placement.post('/resource_providers', {'name': 'contract-' + other,
                                           'uuid': other})
    placement.put('/resource_providers/%s/inventories' % other, {
        'resource_provider_generation': 0,
        'inventories': {'MEMORY_MB': {'total': 4096}}})
    consumer = new()
    try:
        consumers.put(placement, consumer, {provider: {RC: 1},
                                            other: {'MEMORY_MB': 512}},
                      PROJECT, USER, None)
        assert consumers.release(placement, consumer,
                                 lambda rp: rp == provider)
        held = consumers.allocations(placement, consumer)
        assert held['allocations'] == {other: {'MEMORY_MB': 512}}
        assert (held['project_id'], held['user_id'],
                held['consumer_type']) == (PROJECT, USER,
                                           consumers.CONSUMER_TYPE)
        # Nothing of ours left: a second release changes nothing.
        assert not consumers.release(placement, consumer,
                                     lambda rp: rp == provider)
    finally:
        placement.delete('/allocations/%s' % consumer)
        placement.delete('/resource_providers/%s' % other)


def test_a_consumer_written_without_a_type_reads_unknown_and_keeps_it(
        placement, provider):
    """nova-scheduler claims at 1.36, without a consumer type: Placement
    then says 'unknown', which no PUT at 1.38 or later accepts. Moving
    or releasing part of it keeps it untyped and its other allocations."""
    consumer = new()
    placement.put('/allocations/%s' % consumer, {
        'allocations': {provider: {'resources': {RC: 1, 'VCPU': 2}}},
        'consumer_generation': None, 'project_id': PROJECT,
        'user_id': USER}, microversion='1.36')
    held = consumers.allocations(placement, consumer)
    assert held['consumer_type'] == consumers.UNKNOWN_TYPE
    other = new()
    placement.post('/resource_providers', {'name': 'contract-' + other,
                                           'uuid': other})
    placement.put('/resource_providers/%s/inventories' % other, {
        'resource_provider_generation': 0, 'inventories': {RC: {'total': 1}}})
    try:
        assert consumers.move(placement, consumer, provider, {RC: 1},
                              other, {RC: 1})
        held = consumers.allocations(placement, consumer)
        assert held['allocations'] == {provider: {'VCPU': 2},
                                       other: {RC: 1}}
        assert held['consumer_type'] == consumers.UNKNOWN_TYPE
        assert consumers.release(placement, consumer, {other}.__contains__)
        held = consumers.allocations(placement, consumer)
        assert held['allocations'] == {provider: {'VCPU': 2}}
        assert held['consumer_type'] == consumers.UNKNOWN_TYPE
        # No room left there: refused, nothing changed.
        third, fourth = new(), new()
        consumers.put(placement, third, {provider: {RC: 1}}, PROJECT, USER,
                      generation=None)
        consumers.put(placement, fourth, {other: {RC: 1}}, PROJECT, USER,
                      generation=None)
        assert consumers.move(placement, third, provider, {RC: 1}, other,
                              {RC: 1}) is False
        assert consumers.allocations(placement, third)['allocations'] == {
            provider: {RC: 1}}
    finally:
        for consumer_ in placement.get('/resource_providers/%s/allocations'
                                       % other)['allocations']:
            placement.delete('/allocations/%s' % consumer_)
        placement.delete('/resource_providers/%s' % other)


def test_a_microversion_the_service_lacks_is_one_line_naming_both(
        placement):
    # What a service older than the project's MICROVERSION answers: the
    # same 406 a newer microversion than this service's gets here.
    offered = placement.get('/')['versions'][0]['max_version']
    major, minor = offered.split('.')
    beyond = '%s.%d' % (major, int(minor) + 1)
    with pytest.raises(exceptions.PlacementTooOld) as caught:
        placement.get('/resource_providers', microversion=beyond)
    message = str(caught.value)
    assert '\n' not in message
    assert ('does not speak microversion %s (it offers up to %s)'
            % (beyond, offered)) in message
    assert 'openstack-placement 7.0.0' in message
