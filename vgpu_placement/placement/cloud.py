"""What Placement holds for every GPU the project manages, on every host.

Read-only; answers are checked against their shapes (placement.shapes).
A provider that vanishes between the list and its own reads (a host
retiring it meanwhile) is left out, not an error. Retired providers are
left out: they are closed to new claims.
"""
from vgpu_placement import exceptions
from vgpu_placement.placement import headroom
from vgpu_placement.placement import traits as traits_mod

_LIST = {'resource_providers': [{'uuid': str, 'name': str,
                                 'root_provider_uuid': str}]}
_INVENTORIES = {'inventories': {str: {'total': int, 'reserved': int}}}
_USAGES = {'usages': {str: int}}
_TRAITS = {'traits': [str]}


def _get(client, path, shape):
    """The answer, or None when the provider is gone (404)."""
    try:
        return client.get(path, shape=shape)
    except exceptions.PlacementError as e:
        if e.status == 404:
            return None
        raise


def read_gpus(client, in_tree=None):
    """[headroom.Gpu] of every provider bearing the project's MANAGED
    trait and not RETIRED (in the tree of the provider ``in_tree`` only,
    when given), sorted by host and name."""
    try:
        client.get('/traits/%s' % traits_mod.MANAGED)
    except exceptions.PlacementError as e:
        if e.status == 404:
            return []           # no host has reported yet
        raise
    # RETIRED is filtered here: a query naming a trait Placement does not
    # know yet is refused.
    query = 'required=%s' % traits_mod.MANAGED
    if in_tree:
        query += '&in_tree=%s' % in_tree
    managed = client.get('/resource_providers?' + query, shape=_LIST)[
        'resource_providers']
    roots = {}
    for rp in managed:
        root = rp['root_provider_uuid']
        if root not in roots:
            found = _get(client, '/resource_providers?uuid=%s' % root,
                         _LIST)
            listed = found and found['resource_providers']
            roots[root] = listed[0]['name'] if listed else root
    gpus = []
    for rp in managed:
        base = '/resource_providers/%s' % rp['uuid']
        inventories = _get(client, base + '/inventories', _INVENTORIES)
        usages = _get(client, base + '/usages', _USAGES)
        traits = _get(client, base + '/traits', _TRAITS)
        if None in (inventories, usages, traits) or \
                traits_mod.RETIRED in traits['traits']:
            continue
        gpus.append(headroom.Gpu(
            uuid=rp['uuid'], name=rp['name'],
            host=roots[rp['root_provider_uuid']],
            root=rp['root_provider_uuid'],
            inventories=inventories['inventories'],
            usages=usages['usages'], traits=frozenset(traits['traits'])))
    return sorted(gpus, key=lambda g: (g.host, g.name))
