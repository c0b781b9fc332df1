"""Scheduler side: candidates -> choice -> claim; and release.

The choice packs: a candidate whose providers already hold the requested
classes comes first (a GPU already running that type), then the fullest
(least free capacity left), so mixed demand fills GPUs instead of
fragmenting them. A claim that loses a race (409) tries the next
candidate, then asks Placement again.
"""
import dataclasses
import logging

from vgpu_placement import exceptions

LOG = logging.getLogger(__name__)

CONSUMER_TYPE = 'INSTANCE'


class NoValidHost(exceptions.VgpuPlacementError):
    pass


@dataclasses.dataclass(frozen=True)
class Claim:
    consumer: str
    allocations: dict            # provider uuid -> {class: amount}
    attempts: int = 1            # PUTs it took (1 when nobody raced us)


def _rank(candidates):
    """Allocation requests, best first (pack same type, then fullest)."""
    summaries = candidates['provider_summaries']

    def key(request):
        same, free = 0, 0
        for rp, alloc in request['allocations'].items():
            resources = summaries.get(rp, {}).get('resources', {})
            for rc, amount in alloc['resources'].items():
                have = resources.get(rc, {})
                same += 1 if have.get('used') else 0
                free += have.get('capacity', 0) - have.get('used', 0) - amount
        return (-same, free)
    return sorted(candidates['allocation_requests'], key=key)


def current_allocations(client, consumer):
    """{'allocations': {rp: {class: n}}, 'consumer_generation',
    'project_id', 'user_id'} as Placement holds them."""
    got = client.get('/allocations/%s' % consumer)
    return dict(got, allocations={rp: a['resources'] for rp, a in
                                  got['allocations'].items()})


def claim(client, request, consumer, project_id, user_id, limit=50,
          in_tree=None, rounds=3):
    """Claim the best candidate for ``request`` for ``consumer``.

    Idempotent: a consumer that already holds allocations gets them back
    (found when its claim meets a conflict, so a first claim costs no
    extra read).
    """
    attempts = 0
    for _round in range(rounds):
        found = client.get('/allocation_candidates?%s' % request.query(
            limit=limit, in_tree=in_tree))
        if not found['allocation_requests']:
            break
        for candidate in _rank(found):
            attempts += 1
            allocations = {rp: {'resources': a['resources']}
                           for rp, a in candidate['allocations'].items()}
            try:
                client.put('/allocations/%s' % consumer, {
                    'allocations': allocations,
                    'consumer_generation': None, 'project_id': project_id,
                    'user_id': user_id, 'consumer_type': CONSUMER_TYPE})
            except exceptions.PlacementConflict as e:
                if e.is_generation_race:
                    # Maybe our consumer holds allocations already (a
                    # retried claim): then those are the answer.
                    held = current_allocations(client, consumer)[
                        'allocations']
                    if held:
                        return Claim(consumer, held, attempts)
                LOG.info('claim for %s lost a race (%s); next candidate',
                         consumer, e.code)
                continue
            return Claim(consumer, {rp: a['resources'] for rp, a in
                                    allocations.items()}, attempts)
    raise NoValidHost('no host can give %s (%s)' % (
        consumer, request.query()))


def release(client, consumer, rounds=5):
    """Drop the consumer's allocations, guarded by its generation."""
    for _round in range(rounds):
        held = current_allocations(client, consumer)
        if not held['allocations']:
            return False
        try:
            client.put('/allocations/%s' % consumer, {
                'allocations': {},
                'consumer_generation': held['consumer_generation'],
                'project_id': held['project_id'],
                'user_id': held['user_id'], 'consumer_type': CONSUMER_TYPE})
            return True
        except exceptions.PlacementConflict as e:
            if not e.is_generation_race:
                raise
    raise exceptions.VgpuPlacementError(
        'gave up releasing %s after %d conflicts' % (consumer, rounds))
