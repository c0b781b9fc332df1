"""The scheduler's choices against the real embedded Placement: K vGPUs
on K GPUs picked without Placement's product, and remembered candidates
that go stale."""
import dataclasses
import urllib.parse
import uuid

import pytest

from tests.conftest import make_conf
from tests.functional.conftest import claim
from tests.functional.conftest import placement_ini
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import consumers
from vgpu_placement.placement import flavor
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone

# Three T4-like cards (equal-size mode): 4Q fits 4 per card, 2Q 8.
THREE_CARDS = """
parents:
%s
"""
CARD = (
    '\n'
    '  - name: "0000:%02x:00.0"\n'
    '    capacity: {rule: exclusive, errno: ENOSPC}\n'
    '    types:\n'
    '      - {id: nvidia-231, name: GRID T4-2Q, size: 2048, max: 8,\n'
    '         description: "num_heads=4, frl_config=60, framebuffer=2048M,'
    ' max_resolution=7680x4320, max_instance=8"}\n'
    '      - {id: nvidia-232, name: GRID T4-4Q, size: 4096, max: 4,\n'
    '         description: "num_heads=4, frl_config=60, framebuffer=4096M,'
    ' max_resolution=7680x4320, max_instance=4"}\n'
)
TYPE = 'nvidia-232'


@pytest.fixture
def cards(sim_conf, tmp_path):
    profile = tmp_path / 'three-cards.yaml'
    profile.write_text(THREE_CARDS % ''.join(CARD % (0x84 + i)
                                             for i in range(3)))
    reporter = standalone.reporter_for(sim_conf(str(profile)))
    reporter.report()
    return reporter


def k_vgpus(reporter, k, type_id=TYPE):
    """The flavor of K vGPUs of a type on K different cards."""
    return flavor.parse_extra_specs(flavor.extra_specs_for_type(
        reporter.desired_tree(reporter.discover()), type_id,
        count=k)['extra_specs'])


def placement_own_answers(client, request, root):
    """Every allocation Placement itself offers for the whole request."""
    found = client.get('/allocation_candidates?' + request.query(
        in_tree=root))
    return [{rp: a['resources'] for rp, a in r['allocations'].items()}
            for r in found['allocation_requests']]


def new():
    return str(uuid.uuid4())


class CandidatesLog(client_mod.PlacementClient):
    """Our client, keeping the parameters of each GET
    /allocation_candidates; ``after_first`` runs once, right after the
    first."""

    def __init__(self, adapter, after_first=None):
        super().__init__(adapter)
        self.queries = []
        self.after_first = after_first

    def get(self, path, **kw):
        found = super().get(path, **kw)
        if path.startswith('/allocation_candidates?'):
            self.queries.append(urllib.parse.parse_qs(path.split('?', 1)[1]))
            if len(self.queries) == 1 and self.after_first:
                self.after_first()
        return found


@pytest.mark.parametrize('k', [2, 3])
def test_k_vgpus_land_on_k_cards_as_placement_would_place_them(cards, k):
    root = cards.cache.root_uuid
    request = k_vgpus(cards, k)
    expected = placement_own_answers(cards.client, request, root)
    before = cards.client.count.reads
    got = scheduler.Scheduler(cards.client, max_age=0).claim(
        request, new(), 'p', 'u', in_tree=root)
    assert len(got.allocations) == k
    assert got.allocations in expected
    # One query of one group, not Placement's product of K groups.
    assert cards.client.count.reads - before == 1


def test_more_vgpus_than_cards_is_no_valid_host(cards, new_adapter):
    root = cards.cache.root_uuid
    request = k_vgpus(cards, 4)
    assert placement_own_answers(cards.client, request, root) == []
    log = CandidatesLog(new_adapter())
    with pytest.raises(scheduler.NoValidHost):
        scheduler.Scheduler(log, limit=1, max_age=0).claim(
            request, new(), 'p', 'u', in_tree=root)
    # The tree within the limit has 3 cards, not 4: all trees are listed
    # once (here, the same one), then the claim gives up without a PUT.
    assert [q.get('limit') for q in log.queries] == [['1'], None]
    assert log.count.writes == 0


def test_cards_fill_up_until_placement_and_we_both_say_no(cards):
    """4Q fits 4 per card: three-card claims succeed until the cards are
    full; each is one Placement offers at the time."""
    root = cards.cache.root_uuid
    request = k_vgpus(cards, 3)
    ours = scheduler.Scheduler(cards.client, max_age=0)
    granted = 0
    while placement_own_answers(cards.client, request, root):
        ours.claim(request, new(), 'p', 'u', in_tree=root)
        granted += 1
    with pytest.raises(scheduler.NoValidHost):
        ours.claim(request, new(), 'p', 'u', in_tree=root)
    assert granted == 4


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_remembered_candidates_serve_claims_and_survive_a_rival(
        cards, placement):
    root = cards.cache.root_uuid
    request = k_vgpus(cards, 1)
    clock = Clock()
    ours = scheduler.Scheduler(cards.client, max_age=30, clock=clock)
    reads = cards.client.count.reads
    first = ours.claim(request, new(), 'p', 'u', in_tree=root)
    ours.claim(request, new(), 'p', 'u', in_tree=root)
    assert cards.client.count.reads - reads == 1     # one GET, two claims

    # A rival fills the card we packed onto: our memory says it has room,
    # Placement says 409 and we go to another card.
    [card] = first.allocations
    rc = next(rc for rc in first.allocations[card]
              if rc.startswith('CUSTOM_MDEV_'))
    rival = scheduler.Scheduler(placement, max_age=0)

    def room_on_card():
        used = placement.get('/resource_providers/%s/usages' % card)[
            'usages'][rc]
        inventory = placement.get('/resource_providers/%s/inventories/%s'
                                  % (card, rc))
        return inventory['total'] - inventory['reserved'] - used

    while room_on_card():
        rival.claim(request, new(), 'p', 'u', in_tree=root)
    raced = ours.claim(request, new(), 'p', 'u', in_tree=root)
    assert raced.attempts == 2 and card not in raced.allocations

    # The refusal is remembered: the next claim from the same answer
    # (still fresh) does not try the full card again, though the usage we
    # remember there (our two) would rank it first; one PUT, no GET.
    counted = dataclasses.replace(cards.client.count)
    after = ours.claim(request, new(), 'p', 'u', in_tree=root)
    assert after.attempts == 1 and card not in after.allocations
    assert (cards.client.count.reads - counted.reads,
            cards.client.count.writes - counted.writes) == (0, 1)

    # Older than max_age: asked again.
    clock.now = 31
    reads = cards.client.count.reads
    ours.claim(request, new(), 'p', 'u', in_tree=root)
    assert cards.client.count.reads - reads == 1
    assert room_on_card() == 0


def test_when_no_tree_within_the_limit_has_k_all_trees_are_listed(
        tmp_path, placement_db, placement, new_adapter):
    """A one-card host and a three-card host, with a type no other test
    uses; limit 1. When the claim first asks, another instance holds a
    whole card of the three: whichever tree Placement lists within the
    limit (its order is its own), it has fewer than 3 cards with room.
    That instance is deleted right after; the claim must ask again
    without the limit, and find the three cards."""
    type_id = 'nvidia-%d' % (uuid.uuid4().int % 10 ** 9)
    card = CARD.replace(TYPE, type_id)
    hosts = []
    for i, count in enumerate([1, 3]):
        profile = tmp_path / ('host%d.yaml' % i)
        profile.write_text(THREE_CARDS % ''.join(card % (0x84 + c)
                                                 for c in range(count)))
        reporter = standalone.reporter_for(make_conf(
            placement_ini(placement_db), driver='simulated',
            simulated__profile=str(profile),
            state_path=str(tmp_path / ('state%d' % i)),
            host='k-host-%s-%d' % (type_id, i)))
        reporter.report()
        hosts.append(reporter)
    three = hosts[-1]
    three_cards = {rp['uuid'] for rp in placement.get(
        '/resource_providers?in_tree=%s' % three.cache.root_uuid)[
        'resource_providers'] if rp['uuid'] != three.cache.root_uuid}
    assert len(three_cards) == 3
    # 4Q: four fill a card.
    [one] = k_vgpus(three, 1, type_id).groups
    rival = claim(placement, sorted(three_cards)[0],
                  {rc: 4 * n for rc, n in one.resources.items()})
    assert len(placement_own_answers(placement, k_vgpus(three, 1, type_id),
                                     three.cache.root_uuid)) == 2

    log = CandidatesLog(new_adapter(), after_first=lambda: placement.delete(
        '/allocations/%s' % rival))
    got = scheduler.Scheduler(log, limit=1, max_age=0).claim(
        k_vgpus(three, 3, type_id), new(), 'p', 'u')
    # The limited query, then all trees: the fallback, every run.
    assert [q.get('limit') for q in log.queries] == [['1'], None]
    assert set(got.allocations) == three_cards
    assert got.attempts == 1


def test_a_remembered_card_gone_is_skipped_for_one_with_room(cards,
                                                             placement):
    """We filled card X and placed one on Y, then gave that one up and Y
    was unplugged (its provider deleted): our memory still ranks Y first.
    Placement refuses Y (400, and keeps our consumer, empty); the claim
    must still land on Z, which has room."""
    root = cards.cache.root_uuid
    request = k_vgpus(cards, 1)
    ours = scheduler.Scheduler(cards.client, max_age=3600)
    placed = [ours.claim(request, new(), 'p', 'u', in_tree=root)
              for _ in range(5)]                  # 4Q: 4 fill a card
    [x] = placed[0].allocations
    [y] = placed[-1].allocations
    assert x != y and all(list(c.allocations) == [x] for c in placed[:4])
    consumers.release(placement, placed[-1].consumer, lambda rp: True)
    y_name = cards.cache.get(y).name
    cards.driver.unplug_parent(next(
        p.name for p in cards.discover().parents
        if provider_tree.provider_name(cards.conf.host, p.name) == y_name))
    cards.report(delete_retired=True)
    assert y not in {rp['uuid'] for rp in placement.get(
        '/resource_providers?in_tree=%s' % root)['resource_providers']}

    got = ours.claim(request, new(), 'p', 'u', in_tree=root)
    assert set(got.allocations) - {x, y}
    assert got.attempts >= 2
    held = placement.get('/allocations/%s' % got.consumer)['allocations']
    assert {rp: a['resources'] for rp, a in held.items()} == \
        got.allocations
