"""Scheduler side: candidates -> choice -> claim; and release.

The choice packs (placement.packing, the rule nova-scheduler's filter and
weigher apply too): a GPU already running the requested type first, then
the fullest. A claim that loses a race (409) tries the next
candidate, then asks Placement again.

Two things keep a claim close to the cost of its PUT:

* A long-lived ``Scheduler`` remembers each request's candidates for
  ``max_age`` seconds and claims from them, adding its own claims to the
  usage it remembers. Placement's PUT stays the authority: a provider
  someone else filled (409) or deleted (400) is skipped until the next
  query.
* K identical groups with group_policy=isolate (K vGPUs on K GPUs) are
  asked of Placement as one group: Placement would form the product of
  the K groups' matches (G^K per host) before dropping the non-isolated
  ones. The K distinct providers are picked here, in one tree, from the
  provider summaries (resources and traits: all a group of ours can ask).
"""
import collections
import dataclasses
import logging
import time

from vgpu_placement import exceptions
from vgpu_placement.placement import consumers
from vgpu_placement.placement import flavor
from vgpu_placement.placement import packing
from vgpu_placement.placement import shapes

LOG = logging.getLogger(__name__)


class NoValidHost(exceptions.VgpuPlacementError):
    pass


@dataclasses.dataclass(frozen=True)
class Claim:
    consumer: str
    allocations: dict            # provider uuid -> {class: amount}
    attempts: int = 1            # PUTs it took (1 when nobody raced us)


@dataclasses.dataclass
class _Candidates:
    """One GET /allocation_candidates answer, kept for later claims."""
    fetched: float
    requests: list               # of {provider: {class: amount}}
    providers: dict              # provider uuid -> packing.Provider

    @classmethod
    def from_answer(cls, found, fetched):
        providers = packing.providers_from_summaries(
            found['provider_summaries'])
        return cls(fetched, [consumers.resources_of(req['allocations'])
                             for req in found['allocation_requests']],
                   providers)

    def fits(self, allocations):
        return all(self.providers[rp].free(rc) >= n
                   for rp, alloc in allocations.items()
                   for rc, n in alloc.items() if rp in self.providers)

    def score(self, allocations):
        """Sort key, best first (placement.packing.score)."""
        return packing.score(allocations, self.providers)

    def took(self, allocations):
        for rp, alloc in allocations.items():
            if rp in self.providers:
                used = self.providers[rp].used
                for rc, n in alloc.items():
                    used[rc] = used.get(rc, 0) + n

    def refused(self, allocations, error):
        """Placement said no (capacity, or a provider gone): what its
        answer names is taken as full until the next GET; if it names
        nothing of ours, every provider of the allocation is."""
        named_rp, named_rc = consumers.refused_names(error)
        rps = [named_rp] if named_rp in allocations else list(allocations)
        for rp in rps:
            p = self.providers.get(rp)
            if p is None:
                continue
            for rc in allocations[rp]:
                if named_rc is None or named_rc == rc or \
                        named_rc not in allocations[rp]:
                    p.used[rc] = max(p.used.get(rc, 0),
                                     p.capacity.get(rc, 0))

    def ranked(self):
        fitting = [r for r in self.requests if self.fits(r)]
        return sorted(fitting, key=self.score)

    def spread(self, group, k):
        """Per tree, the best k distinct providers that each satisfy
        ``group``; those allocations, best first."""
        by_root = collections.defaultdict(list)
        for rp, p in self.providers.items():
            if (group.required <= p.traits and
                    not group.forbidden & p.traits and
                    all(p.free(rc) >= n for rc, n in
                        group.resources.items())):
                by_root[p.root].append(rp)
        found = []
        for rps in by_root.values():
            if len(rps) >= k:
                best = sorted(rps, key=lambda rp: self.score(
                    {rp: group.resources}))[:k]
                found.append({rp: dict(group.resources) for rp in best})
        return sorted(found, key=self.score)


def _identical_isolated_groups(request):
    """(group, K) when the request is K >= 2 identical numbered groups
    under group_policy=isolate and nothing else; else None."""
    groups = request.groups
    if request.group_policy != 'isolate' or len(groups) < 2 or any(
            not g.suffix for g in groups):
        return None
    shapes = {(frozenset(g.resources.items()), g.required, g.forbidden)
              for g in groups}
    if len(shapes) != 1:
        return None
    return groups[0], len(groups)


class Scheduler:
    """Claims for one scheduler worker (not shared between threads).

    ``max_age`` is how long (seconds) one candidates answer serves later
    claims of the same request; 0 asks Placement for every claim.
    """

    def __init__(self, client, limit=50, max_age=5.0, clock=time.monotonic):
        self.client = client
        self.limit = limit
        self.max_age = max_age
        self.clock = clock
        self._remembered = {}        # query -> _Candidates

    def _candidates(self, query, fresh, remember_as=None):
        """(candidates, True when just asked of Placement)."""
        now = self.clock()
        got = self._remembered.get(query)
        if not fresh and got is not None and now - got.fetched < \
                self.max_age:
            return got, False
        got = _Candidates.from_answer(
            self.client.get('/allocation_candidates?' + query,
                            shape=shapes.CANDIDATES), now)
        if self.max_age > 0:
            self._remembered = {q: c for q, c in self._remembered.items()
                                if now - c.fetched < self.max_age}
            self._remembered[remember_as or query] = got
        return got, True

    def _choices(self, request, in_tree, fresh):
        """(candidates, allocations to try best first, True when asked of
        Placement just now)."""
        spread = _identical_isolated_groups(request)
        if not spread:
            got, new = self._candidates(request.query(
                limit=self.limit, in_tree=in_tree), fresh)
            return got, got.ranked(), new
        group, k = spread
        one = flavor.Request((group,))
        limited = one.query(limit=self.limit, in_tree=in_tree)
        got, new = self._candidates(limited, fresh)
        choices = got.spread(group, k)
        if not choices and new and self.limit:
            # The trees within the limit have fewer than K: list them all
            # (still one group, no product to explode), and claim from
            # that list until it is as old as max_age.
            got, new = self._candidates(one.query(in_tree=in_tree), True,
                                        remember_as=limited)
            choices = got.spread(group, k)
        return got, choices, new

    def offers(self, request, in_tree=None):
        """What Placement offers for ``request`` now, best first: the
        allocations a claim would try, in that order."""
        return self._choices(request, in_tree, fresh=True)[1]

    def _put_checked(self, consumer, allocations, project_id, user_id):
        """PUT a new consumer's allocations. When no answer says how it
        went (a 5xx, a connection lost after the request was sent), the
        consumer is read back: holding exactly these allocations, the
        claim was applied and that is the answer; holding none, the
        failure stands; if even that read fails, the error says the
        claim may have been applied."""
        try:
            consumers.put(self.client, consumer, allocations, project_id,
                          user_id, generation=None)
        except exceptions.PlacementUnavailable as e:
            try:
                held = consumers.allocations(self.client, consumer)[
                    'allocations']
            except exceptions.PlacementUnavailable:
                raise exceptions.PlacementUnavailable(
                    '%s; the claim for %s may have been applied: check '
                    'GET /allocations/%s before claiming again'
                    % (e, consumer, consumer))
            if held != allocations:
                raise
            LOG.info('claim for %s: %s, yet Placement holds it', consumer,
                     e)

    def claim(self, request, consumer, project_id, user_id, in_tree=None,
              rounds=3):
        """Claim the best candidate for ``request`` for ``consumer``.

        Idempotent: a consumer that already holds allocations gets them
        back (found when its claim meets a conflict, so a first claim
        costs no extra read).
        """
        attempts = 0
        for round_ in range(rounds):
            # Remembered candidates serve the first round only: when they
            # run out or lose races, Placement is asked again.
            got, choices, new = self._choices(request, in_tree,
                                              fresh=round_ > 0)
            if not choices and new:
                break
            for allocations in choices:
                attempts += 1
                try:
                    self._put_checked(consumer, allocations, project_id,
                                      user_id)
                except exceptions.PlacementConflict as e:
                    if not consumers.is_generation_race(e):
                        got.refused(allocations, e)
                        LOG.info('claim for %s: candidate full (%s); next',
                                 consumer, e.code)
                        continue
                    # Maybe our consumer holds allocations already (a
                    # retried claim): then those are the answer.
                    held = consumers.allocations(self.client, consumer)[
                        'allocations']
                    if held:
                        return Claim(consumer, held, attempts)
                    # Or Placement kept it, empty, from a PUT it refused
                    # (a provider gone): such a consumer has generation 0.
                    try:
                        attempts += 1
                        consumers.put(self.client, consumer, allocations,
                                      project_id, user_id, generation=0)
                    except exceptions.PlacementError as again:
                        LOG.info('claim for %s lost a race (%s); next '
                                 'candidate', consumer, again.code)
                        continue
                except exceptions.PlacementError as e:
                    if not consumers.is_provider_gone(e):
                        raise
                    got.refused(allocations, e)
                    LOG.info('claim for %s: a provider of the candidate is '
                             'gone; next candidate', consumer)
                    continue
                got.took(allocations)
                return Claim(consumer, allocations, attempts)
        raise NoValidHost('no host can give %s (%s)' % (
            consumer, flavor.quote(request.query(), 200)))


def claim(client, request, consumer, project_id, user_id, limit=50,
          in_tree=None, rounds=3):
    """One claim with fresh candidates (a one-shot command)."""
    return Scheduler(client, limit, max_age=0).claim(
        request, consumer, project_id, user_id, in_tree=in_tree,
        rounds=rounds)
