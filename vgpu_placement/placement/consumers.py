"""Placement's consumers: read, write and release their allocations.

Every call this project makes on ``/allocations`` goes through here. The
Placement behaviours relied on (microversion 1.39, pinned by
tests/functional/test_placement_contract.py against the real service):

* ``GET /allocations/{consumer}`` of an unknown consumer answers 200 with
  no allocations and no generation.
* ``PUT /allocations/{consumer}`` carries the consumer generation: ``None``
  for a consumer Placement does not know, its current one otherwise; a
  mismatch answers 409 with code ``placement.concurrent_update``. A PUT
  over capacity answers 409 with another code and a text naming the
  class and the provider.
* A PUT naming a provider that was deleted answers 400 ("... that does not
  exist" or "Unable to allocate inventory"), and Placement keeps the
  consumer it created for it, empty, with generation 0: the next PUT must
  say 0, not ``None``.
* ``DELETE /allocations/{consumer}`` does not bump the providers'
  generations (a reader trusting generations alone misses such releases;
  placement.sync re-reads usages for that); a PUT that drops allocations,
  as ``release`` makes, does.
* ``GET /resource_providers/{uuid}/allocations`` lists every consumer
  holding anything on the provider.
"""
import re

from vgpu_placement import exceptions
from vgpu_placement.placement import shapes

CONSUMER_TYPE = 'INSTANCE'
# What Placement says of a consumer written without a type, and the last
# microversion whose PUT takes no type.
UNKNOWN_TYPE = 'unknown'
UNTYPED_MICROVERSION = '1.36'

# "Unable to create allocation for 'CUSTOM_X' on resource provider
# '<uuid>'. The requested amount would exceed the capacity."
# "Allocation for resource provider '<uuid>' that does not exist."
_REFUSED_PROVIDER = re.compile(r"resource provider '([0-9a-f-]{36})'")
_REFUSED_CLASS = re.compile(r"allocation for '([A-Z0-9_]+)'")


def resources_of(allocations):
    """{rp: {'resources': {class: n}, ...}} (an allocation request, a
    consumer's allocations, what Nova hands a driver) as {rp: {class:
    n}}; KeyError, TypeError or AttributeError where it has another
    shape."""
    return {rp: dict(a['resources']) for rp, a in allocations.items()}


def is_generation_race(error):
    """A 409 that a re-read and retry can get past."""
    return isinstance(error, exceptions.PlacementConflict) and \
        error.code == 'placement.concurrent_update'


def is_provider_gone(error):
    """A 400 to an allocation: a provider or inventory named in it is no
    longer there (deleted since the candidates were listed)."""
    return isinstance(error, exceptions.PlacementError) and \
        error.status == 400 and (
            'Unable to allocate inventory' in error.detail or
            'that does not exist' in error.detail)


def refused_names(error):
    """(provider uuid, resource class) a refusal names; either may be
    None when the text does not name it."""
    rp = _REFUSED_PROVIDER.search(error.detail)
    rc = _REFUSED_CLASS.search(error.detail)
    return rp and rp.group(1), rc and rc.group(1)


def allocations(client, consumer):
    """{'allocations': {rp: {class: n}}, 'consumer_generation',
    'project_id', 'user_id', 'consumer_type'} as Placement holds them."""
    got = client.get('/allocations/%s' % consumer,
                     shape=shapes.CONSUMER_ALLOCATIONS)
    return dict(got, allocations={rp: a['resources'] for rp, a in
                                  got['allocations'].items()})


def put(client, consumer, allocations, project_id, user_id, generation,
        consumer_type=CONSUMER_TYPE):
    """Replace the consumer's allocations ({rp: {class: n}}), guarded by
    its generation (None: a consumer new to Placement).

    A consumer written without a type (nova-scheduler claims at
    microversion 1.36) reads back as 'unknown', which no PUT may say:
    its allocations are then written at 1.36 too, so its type stays
    Nova's to set."""
    body = {'allocations': {rp: {'resources': a}
                            for rp, a in allocations.items()},
            'consumer_generation': generation,
            'project_id': project_id, 'user_id': user_id}
    if consumer_type == UNKNOWN_TYPE:
        client.put('/allocations/%s' % consumer, body,
                   microversion=UNTYPED_MICROVERSION)
        return
    body['consumer_type'] = consumer_type or CONSUMER_TYPE
    client.put('/allocations/%s' % consumer, body)


def on_providers(client, providers):
    """{consumer: {provider uuid: {class: amount}}} on ``providers``."""
    found = {}
    for rp_uuid in sorted(providers):
        got = client.get('/resource_providers/%s/allocations' % rp_uuid,
                         shape=shapes.PROVIDER_ALLOCATIONS)
        for consumer, alloc in got['allocations'].items():
            found.setdefault(consumer, {})[rp_uuid] = alloc['resources']
    return found


def _rewrite(client, consumer, change, rounds, doing):
    """Replace the consumer's allocations with ``change(current)`` ({rp:
    {class: n}} both; None: nothing to do), guarded by its generation
    and retried on a race; its project, user and consumer type stay.
    True when written, False when there was nothing to do; any other
    conflict is raised."""
    for _round in range(rounds):
        held = allocations(client, consumer)
        after = change(held['allocations'])
        if after is None:
            return False
        try:
            put(client, consumer, after, held['project_id'],
                held['user_id'], held['consumer_generation'],
                held.get('consumer_type'))
            return True
        except exceptions.PlacementConflict as e:
            if not is_generation_race(e):
                raise
    raise exceptions.VgpuPlacementError(
        'gave up %s %s after %d conflicts' % (doing, consumer, rounds))


def move(client, consumer, source, taken, target, given, rounds=5):
    """Move part of the consumer's allocations: ``taken`` ({class: n})
    off provider ``source``, ``given`` onto ``target``; every other
    allocation it holds stays as it is. Guarded by the consumer
    generation, retried on a race. False when Placement refuses it for
    want of room on ``target`` (nothing changed)."""
    def moved(current):
        after = {rp: dict(a) for rp, a in current.items()}
        left = after.get(source, {})
        for rc, n in taken.items():
            if left.get(rc, 0) < n:
                raise exceptions.VgpuPlacementError(
                    '%s holds no %d %s on provider %s to move'
                    % (consumer, n, rc, source))
            left[rc] -= n
        after[source] = {rc: n for rc, n in left.items() if n}
        if not after[source]:
            del after[source]
        into = after.setdefault(target, {})
        for rc, n in given.items():
            into[rc] = into.get(rc, 0) + n
        return after
    try:
        return _rewrite(client, consumer, moved, rounds, 'moving')
    except exceptions.PlacementConflict:
        return False


def freed_claims(client, notes, provider_of, stand_ins=None):
    """Which freed mdevs' claims still stand: ({device: {type: n}}, [UUIDs
    of notes whose claim is gone]).

    ``notes``: ledger.Freed; ``provider_of(device)``: its provider's uuid
    (None: not in the tree); ``stand_ins``: {holder: consumer}, consumers
    holding allocations for another (a migration for its instance). A
    note counts while its consumer, or one holding for it, holds anything
    on the provider of its device: that claim waits for no mdev.
    """
    holders = {}
    for holder, consumer in (stand_ins or {}).items():
        holders.setdefault(consumer, []).append(holder)
    held, gone = {}, []
    providers_of = {}
    for consumer in sorted({n.consumer for n in notes}):
        providers_of[consumer] = set()
        for holder in [consumer] + sorted(holders.get(consumer, [])):
            providers_of[consumer].update(
                rp for rp, a in allocations(client, holder)[
                    'allocations'].items() if any(a.values()))
    for note in notes:
        rp = provider_of(note.device)
        if rp is None or rp not in providers_of[note.consumer]:
            gone.append(note.uuid)
            continue
        by_type = held.setdefault(note.device, {})
        by_type[note.type] = by_type.get(note.type, 0) + 1
    return held, gone


def release(client, consumer, is_ours, rounds=5):
    """Drop the consumer's allocations on the providers ``is_ours(uuid)``
    accepts; what it holds elsewhere (VCPU, MEMORY_MB on Nova's compute
    node) stays, with its project, user and consumer type. Guarded by the
    consumer generation, retried on a race. Returns the uuids of the
    providers it was dropped from (none: nothing to drop)."""
    dropped = []

    def kept(current):
        dropped[:] = sorted(rp for rp in current if is_ours(rp))
        after = {rp: a for rp, a in current.items() if not is_ours(rp)}
        return None if len(after) == len(current) else after
    return dropped if _rewrite(client, consumer, kept, rounds,
                               'releasing') else []
