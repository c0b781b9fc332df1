"""Make Placement hold the desired provider tree, with the fewest requests.

A cache of what Placement holds (``placement.cache.ProviderCache``: generation,
inventories, traits, usages per provider) is kept between runs; this module
is the only one that writes it. One GET of the tree tells which providers
changed since (every write and every claim bumps a provider's generation);
only those are read again. Writes happen only where the desired state
differs. A 409 makes us re-read that provider and try again.
"""
import dataclasses
import logging
import random
import time
import urllib.parse
import uuid

import os_resource_classes as orc
import os_traits

from vgpu_placement import exceptions
from vgpu_placement.placement import cache as cache_mod
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import shapes
from vgpu_placement.placement import traits as traits_mod

LOG = logging.getLogger(__name__)

# Claims bump a provider's generation: on a busy GPU an inventory write can
# lose several races in a row. Each retry re-reads the provider, after a
# short random wait so that writers racing each other spread out.
CONFLICT_RETRIES = 8
CONFLICT_WAIT = 0.05      # seconds, times the attempt, jittered


@dataclasses.dataclass(frozen=True)
class Change:
    action: str          # create, inventories, traits, delete
    provider: str
    detail: str = ''

    def as_dict(self):
        return dataclasses.asdict(self)


def _q(value):
    return urllib.parse.quote(value, safe='')


class TreeSync:
    """Sync one host's tree into ``cache`` (a ProviderCache the caller
    persists).

    create_root: create the root provider when Placement has none (else
    RootProviderMissing: nova-compute owns it). delete_retired_after:
    seconds a retired provider without allocations stays before it is
    deleted (None: never); ``clock`` gives the time for it.
    """

    def __init__(self, client, cache, create_root=True,
                 delete_retired_after=None, clock=time.time):
        self.client = client
        self.cache = cache
        self.create_root = create_root
        self.delete_retired_after = delete_retired_after
        self.clock = clock
        self.just_read = set()      # providers refresh() read in full

    # -- reading -----------------------------------------------------------
    def _read_provider(self, rp):
        base = '/resource_providers/%s' % rp['uuid']
        inv = self.client.get(base + '/inventories',
                              shape=shapes.INVENTORIES)
        traits = self.client.get(base + '/traits', shape=shapes.TRAITS)
        usages = self.client.get(base + '/usages', shape=shapes.USAGES)
        return cache_mod.CachedProvider(
            rp['name'], rp.get('parent_provider_uuid'),
            traits['resource_provider_generation'], inv['inventories'],
            tuple(sorted(traits['traits'])), usages['usages'])

    def _find_root(self, name, create):
        if self.cache.root_uuid and self.cache.root_name == name:
            return self.cache.root_uuid
        # A root not known (first run, or Placement lost it): nothing
        # cached about its Placement can be trusted, names included.
        self.cache.start_over()
        found = self.client.get('/resource_providers?name=%s' % _q(name),
                                shape=shapes.PROVIDERS)
        if found['resource_providers']:
            root_uuid = found['resource_providers'][0]['uuid']
        elif create:
            root_uuid = str(uuid.uuid5(provider_tree.PROVIDER_NAMESPACE,
                                       name))
            self.client.post('/resource_providers',
                             {'name': name, 'uuid': root_uuid})
        else:
            return None
        self.cache.start_over(name, root_uuid)
        return root_uuid

    def refresh(self, root_name, create_root=True):
        """Bring the cache up to date; return the root uuid (or None)."""
        for _attempt in range(2):
            root_uuid = self._find_root(root_name, create_root)
            if root_uuid is None:
                return None
            listing = self.client.get(
                '/resource_providers?in_tree=%s' % root_uuid,
                shape=shapes.PROVIDERS)
            if listing['resource_providers']:
                break
            # The root was deleted behind our back: look it up again.
            self.cache.forget_root()
        else:
            raise exceptions.VgpuPlacementError(
                'root provider %s keeps vanishing from Placement' % root_name)
        fresh = {}
        self.just_read = set()
        for rp in listing['resource_providers']:
            cached = self.cache.get(rp['uuid'])
            if rp['uuid'] == root_uuid:
                cached = cache_mod.CachedProvider(rp['name'], None,
                                                  rp['generation'])
            elif cached is None or cached.generation != rp['generation']:
                cached = self._read_provider(rp)
                self.just_read.add(rp['uuid'])
            fresh[rp['uuid']] = cached
        self.cache.replace_providers(fresh)
        return root_uuid

    def current_usages(self, rp_uuid, plan=None):
        """The usages of a provider as Placement holds them now, for the
        desired child's ``plan``: read again when the provider has claims
        not yet realized and refresh() did not just read it. With no plan
        (a provider no longer desired, kept while in use): read again
        while it shows anything in use.

        DELETE /allocations/{consumer} does not bump the provider's
        generation, so a claim given up that way would stay counted as
        pending (capacity held for nothing) if we trusted the generation
        alone. Missing a release is only ever conservative; this read
        bounds how long it lasts.
        """
        cached = self.cache.get(rp_uuid)
        waiting = cached.usages if plan is None else plan.pending(
            cached.usages)
        if rp_uuid not in self.just_read and any(waiting.values()):
            self.cache.update(rp_uuid, usages=self.client.get(
                '/resource_providers/%s/usages' % rp_uuid,
                shape=shapes.USAGES)['usages'])
        return self.cache.get(rp_uuid).usages

    # -- writing -------------------------------------------------------------
    def _ensure_names(self, inventories, traits):
        for rc in sorted(inventories):
            if orc.is_custom(rc) and not self.cache.has_class(rc):
                self.client.put('/resource_classes/%s' % rc, None)
                self.cache.add_class(rc)
        for trait in sorted(traits):
            if os_traits.is_custom(trait) and not self.cache.has_trait(trait):
                self.client.put('/traits/%s' % trait, None)
                self.cache.add_trait(trait)

    def _update(self, rp_uuid, inventories_for, want_traits, changes,
                dry_run):
        """Write inventories and traits of one existing provider.

        inventories_for(usages, current) gives the inventories to hold; it
        is asked again after a conflict, since a claim changes usages.
        """
        for attempt in range(CONFLICT_RETRIES):
            cached = self.cache.get(rp_uuid)
            inventories = {
                rc: inv.as_dict() for rc, inv in inventories_for(
                    cached.usages, cached.inventories).items()}
            traits = tuple(sorted(want_traits))
            todo = []
            if inventories != cached.inventories:
                todo.append(Change('inventories', cached.name, _inv_diff(
                    cached.inventories, inventories)))
            if traits != cached.traits:
                todo.append(Change('traits', cached.name, _set_diff(
                    cached.traits, traits)))
            if dry_run or not todo:
                changes.extend(todo)
                return
            try:
                self._ensure_names(inventories, traits)
                base = '/resource_providers/%s' % rp_uuid
                if todo[0].action == 'inventories':
                    got = self.client.put(base + '/inventories', {
                        'resource_provider_generation': cached.generation,
                        'inventories': inventories},
                        shape=shapes.INVENTORIES)
                    self.cache.update(
                        rp_uuid,
                        generation=got['resource_provider_generation'],
                        inventories=got['inventories'])
                if traits != self.cache.get(rp_uuid).traits:
                    got = self.client.put(base + '/traits', {
                        'resource_provider_generation':
                            self.cache.get(rp_uuid).generation,
                        'traits': list(traits)}, shape=shapes.TRAITS)
                    self.cache.update(
                        rp_uuid,
                        generation=got['resource_provider_generation'],
                        traits=tuple(sorted(got['traits'])))
                changes.extend(todo)
                return
            except exceptions.PlacementConflict as e:
                # A claim or another writer got there first: read it again.
                LOG.info('conflict updating %s (%s), retrying',
                         cached.name, e.code)
                time.sleep(random.uniform(0, CONFLICT_WAIT * (attempt + 1)))
                self.cache.put(rp_uuid, self._read_provider(
                    {'uuid': rp_uuid, 'name': cached.name,
                     'parent_provider_uuid': cached.parent}))
        raise exceptions.VgpuPlacementError(
            'gave up updating provider %s after %d conflicts'
            % (cached.name, CONFLICT_RETRIES))

    def _create(self, root_uuid, want, changes, dry_run):
        changes.append(Change('create', want.name, '%d inventories' % len(
            want.plan.classes)))
        if dry_run:
            return
        self.client.post('/resource_providers', {
            'name': want.name, 'uuid': want.uuid,
            'parent_provider_uuid': root_uuid})
        self.cache.put(want.uuid, cache_mod.CachedProvider(
            want.name, root_uuid, 0))
        self._update(want.uuid, want.inventories, want.traits, [], dry_run)

    def _retire(self, rp_uuid, cached, changes, dry_run):
        """A provider we manage whose device is gone.

        It stays in Placement: nova-compute caches the tree between its
        association refreshes (or for good) and fails every periodic task
        on a provider deleted under it (GET .../allocations -> 404). Its
        inventories go but those in use (kept closed: reserved == total),
        and it carries RETIRED; it is deleted once unused and retired for
        delete_retired_after seconds.
        """
        now = self.clock()
        since = self.cache.retired_since(rp_uuid)
        if since is None and not dry_run:
            self.cache.retire(rp_uuid, now)
        retired_for = 0 if since is None else now - since
        if provider_tree.retire_action(
                cached.usages, retired_for,
                self.delete_retired_after) == provider_tree.KEEP_CLOSED:
            self._update(rp_uuid, lambda usages, current:
                         provider_tree.keep_in_use({}, usages, current),
                         set(cached.traits) | {traits_mod.RETIRED},
                         changes, dry_run)
            return
        changes.append(Change('delete', cached.name))
        if dry_run:
            return
        try:
            self.client.delete('/resource_providers/%s' % rp_uuid)
            self.cache.drop(rp_uuid)
        except exceptions.PlacementConflict:
            # Claimed since we read it: next report keeps it in use.
            LOG.info('provider %s got allocations, kept', cached.name)
            self.cache.update(rp_uuid, generation=None)

    def run_children(self, desired, names):
        """Sync only the children ``names`` of ``desired``, after a change
        of this process's on their parents alone (a realize, a free):
        each one's usages and generation read again (one GET: claims
        change only those), inventories and traits as the cache has them,
        written where they differ (a conflict reads the provider whole).
        The rest of the tree is the next full run's. Returns the changes,
        or None when the cache does not hold each of them (run() then).
        """
        existing = self.cache.children()
        if not self.cache.root_uuid or not names or any(
                name not in existing or desired.child(name) is None or
                name in desired.unknown for name in names):
            return None
        changes = []
        for name in sorted(names):
            rp_uuid = existing[name][0]
            got = self.client.get('/resource_providers/%s/usages' % rp_uuid,
                                  shape=shapes.PROVIDER_USAGES)
            self.cache.update(rp_uuid, usages=got['usages'],
                              generation=got['resource_provider_generation'])
            want = desired.child(name)
            self._update(rp_uuid, want.inventories, want.traits, changes,
                         False)
        return changes

    def run(self, desired, dry_run=False):
        """Sync and return the list of Change made (or, dry, to make)."""
        root_uuid = self.refresh(desired.root_name,
                                 create_root=self.create_root and not dry_run)
        changes = []
        if root_uuid is None:
            if not (dry_run and self.create_root):
                raise exceptions.RootProviderMissing(desired.root_name)
            changes.append(Change('create', desired.root_name, 'root'))
            changes.extend(Change('create', c.name, '%d inventories' % len(
                c.plan.classes)) for c in desired.children)
            return changes
        existing = self.cache.children()
        for name in sorted(desired.unknown):
            LOG.warning('provider %s left as it is: its device could not be '
                        'read whole', name)
        for want in desired.children:
            if want.name in desired.unknown:
                continue
            if want.name in existing:
                rp_uuid, cached = existing[want.name]
                if not dry_run:
                    # Its device is back (or was never gone): in service.
                    self.cache.back_in_service(rp_uuid)
                self.current_usages(rp_uuid, want.plan)
                self._update(rp_uuid, want.inventories, want.traits,
                             changes, dry_run)
            else:
                self._create(root_uuid, want, changes, dry_run)
        for name, (rp_uuid, cached) in sorted(existing.items()):
            if desired.child(name) is None and \
                    name not in desired.unknown and cached.managed:
                self._retire(rp_uuid, cached, changes, dry_run)
        return changes


def _inv_diff(old, new):
    parts = []
    for rc in sorted(set(old) | set(new)):
        before, after = old.get(rc), new.get(rc)
        if before == after:
            continue
        show = lambda inv: ('-' if inv is None else '%d (reserved %d)' % (
            inv['total'], inv['reserved']) if inv['reserved'] else
            str(inv['total']))
        parts.append('%s %s -> %s' % (rc, show(before), show(after)))
    return '; '.join(parts)


def _set_diff(old, new):
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    return ' '.join(['+' + t for t in added] + ['-' + t for t in removed])
