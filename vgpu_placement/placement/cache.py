"""What this host last read of its provider tree in Placement.

Contract:

* It holds, for one Placement endpoint (passwords redacted), the root
  provider of this host (name, uuid), every provider of that tree as last
  read (generation, inventories, traits, usages; the root only its name
  and generation), the custom resource classes and traits known to exist
  there, and when each of our retired providers was retired.
* Only ``placement.sync.TreeSync`` changes it (the methods under
  "writing"); everyone else reads it through the accessors, never relying
  on it being fresh: it is exactly Placement's state right after a sync,
  and stale from the next claim on.
* A 409 on a provider makes the sync read that provider again and replace
  its entry; a root not found makes it forget everything (another
  Placement, or Placement lost the tree); loading a file written for
  another endpoint, or a malformed one, gives an empty cache, which the
  next sync rebuilds from Placement.
* Its file (``placement-cache.json``) is written whole and atomically, 0600.
"""
import dataclasses

from vgpu_placement.placement import traits as traits_mod
from vgpu_placement import redact
from vgpu_placement import state_file


@dataclasses.dataclass(frozen=True)
class CachedProvider:
    """One provider as Placement last showed it (not to be mutated: the
    sync replaces the entry)."""
    name: str
    parent: str = None           # None for the root
    generation: int = None       # None: unknown, read it again
    inventories: dict = dataclasses.field(default_factory=dict)
    traits: tuple = ()           # sorted
    usages: dict = dataclasses.field(default_factory=dict)

    @property
    def managed(self):
        """A provider this project reports (not Nova's, not another's)."""
        return traits_mod.MANAGED in self.traits

    def to_json(self):
        if self.parent is None:
            return {'name': self.name, 'parent': None,
                    'generation': self.generation}
        return {'name': self.name, 'parent': self.parent,
                'generation': self.generation,
                'inventories': self.inventories,
                'traits': list(self.traits), 'usages': self.usages}

    @classmethod
    def from_json(cls, data):
        if data.get('parent') is None:
            return cls(data['name'], None, data.get('generation'))
        return cls(data['name'], data['parent'], data.get('generation'),
                   data['inventories'], tuple(sorted(data['traits'])),
                   data['usages'])


def _is_str(*values):
    return all(isinstance(v, str) for v in values)


def _provider_ok(p):
    if not (isinstance(p, dict) and _is_str(p.get('name')) and
            isinstance(p.get('generation', ''), (int, type(None)))):
        return False
    if p.get('parent') is None:
        return True
    inventories, usages = p.get('inventories'), p.get('usages')
    return (_is_str(p['parent']) and isinstance(p.get('traits'), list) and
            _is_str(*p['traits']) and isinstance(inventories, dict) and
            all(isinstance(i, dict) for i in inventories.values()) and
            isinstance(usages, dict) and
            all(isinstance(n, int) for n in usages.values()))


def _file_ok(data):
    """The shape ProviderCache.to_json writes."""
    if not isinstance(data, dict):
        return False
    root = data.get('root', {'name': '', 'uuid': ''})
    providers = data.get('providers', {})
    retired = data.get('retired', {})
    return (isinstance(root, dict) and
            _is_str(root.get('name'), root.get('uuid')) and
            isinstance(providers, dict) and
            all(_provider_ok(p) for p in providers.values()) and
            all(isinstance(data.get(k, []), list) and _is_str(*data.get(k, []))
                for k in ('classes', 'traits')) and
            isinstance(retired, dict) and
            all(isinstance(t, (int, float)) for t in retired.values()) and
            isinstance(data.get('endpoint'), (str, type(None))))


def managed_predicate(cache, refresh):
    """A predicate on provider uuids: a child of the tree in ``cache`` that
    this project manages. A provider the cache does not know makes it call
    ``refresh()`` (which re-reads the tree into the cache) once: a parent
    reported by another process since."""
    refreshed = []

    def is_ours(rp_uuid):
        if rp_uuid not in cache and not refreshed:
            refreshed.append(True)
            refresh()
        return cache.is_managed_child(rp_uuid)
    return is_ours


class ProviderCache:
    """This host's provider tree as last read from one Placement."""

    def __init__(self, endpoint):
        self.endpoint = redact.redact(endpoint)
        self._root = None            # (name, uuid)
        self._providers = {}         # uuid -> CachedProvider
        self._classes = set()
        self._traits = set()
        self._retired = {}           # uuid -> time it was retired

    # -- reading -------------------------------------------------------------
    @property
    def root_name(self):
        return self._root[0] if self._root else None

    @property
    def root_uuid(self):
        return self._root[1] if self._root else None

    def get(self, rp_uuid):
        """The CachedProvider, or None when not in the tree as read."""
        return self._providers.get(rp_uuid)

    def __contains__(self, rp_uuid):
        return rp_uuid in self._providers

    def __len__(self):
        return len(self._providers)

    def children(self):
        """{name: (uuid, CachedProvider)} of the root's children."""
        root = self.root_uuid
        return {p.name: (u, p) for u, p in self._providers.items()
                if root is not None and p.parent == root}

    def is_managed_child(self, rp_uuid):
        """True for a child of the root that this project manages."""
        provider = self._providers.get(rp_uuid)
        return bool(provider and provider.parent and provider.managed)

    def managed(self):
        """{uuid: name} of the children this project manages."""
        return {u: p.name for _n, (u, p) in self.children().items()
                if p.managed}

    def has_class(self, rc):
        return rc in self._classes

    def has_trait(self, trait):
        return trait in self._traits

    def retired_since(self, rp_uuid):
        return self._retired.get(rp_uuid)

    @property
    def retired(self):
        """{uuid: time retired} (a copy)."""
        return dict(self._retired)

    # -- writing: placement.sync only ----------------------------------------
    def start_over(self, root_name=None, root_uuid=None):
        """Forget everything; remember the root if given."""
        self._root = (root_name, root_uuid) if root_uuid else None
        self._providers, self._classes, self._traits = {}, set(), set()
        self._retired = {}

    def forget_root(self):
        self._root = None

    def replace_providers(self, providers):
        self._providers = dict(providers)

    def put(self, rp_uuid, provider):
        self._providers[rp_uuid] = provider

    def update(self, rp_uuid, **changes):
        self._providers[rp_uuid] = dataclasses.replace(
            self._providers[rp_uuid], **changes)

    def drop(self, rp_uuid):
        self._providers.pop(rp_uuid, None)
        self._retired.pop(rp_uuid, None)

    def add_class(self, rc):
        self._classes.add(rc)

    def add_trait(self, trait):
        self._traits.add(trait)

    def retire(self, rp_uuid, since):
        self._retired[rp_uuid] = since

    def back_in_service(self, rp_uuid):
        self._retired.pop(rp_uuid, None)

    # -- the file -------------------------------------------------------------
    def to_json(self):
        data = {'endpoint': self.endpoint,
                'providers': {u: p.to_json()
                              for u, p in sorted(self._providers.items())},
                'classes': sorted(self._classes),
                'traits': sorted(self._traits),
                'retired': dict(sorted(self._retired.items()))}
        if self._root:
            data['root'] = {'name': self._root[0], 'uuid': self._root[1]}
        return data

    @classmethod
    def from_json(cls, data, endpoint):
        """The cache the data holds, if it is well formed and of this
        endpoint; else an empty cache for the endpoint."""
        cache = cls(endpoint)
        if not _file_ok(data) or data.get('endpoint') != cache.endpoint:
            return cache
        root = data.get('root')
        if root:
            cache._root = (root['name'], root['uuid'])
        cache._providers = {u: CachedProvider.from_json(p)
                            for u, p in data.get('providers', {}).items()}
        cache._classes = set(data.get('classes', ()))
        cache._traits = set(data.get('traits', ()))
        cache._retired = dict(data.get('retired', {}))
        return cache

    @classmethod
    def load(cls, path, endpoint):
        """From its file (a missing, malformed or foreign file gives an
        empty cache; an unreadable one raises HostStateError)."""
        return cls.from_json(state_file.read_checked(path, _file_ok),
                             endpoint)

    def save(self, path):
        state_file.write_json(path, self.to_json())
