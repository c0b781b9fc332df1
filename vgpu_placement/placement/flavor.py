"""Flavor extra specs: what a flavor asks for, and what to write in one."""
import dataclasses
import re
import urllib.parse

import os_resource_classes as orc
import os_traits

from vgpu_placement import exceptions
from vgpu_placement.model import parse
from vgpu_placement.placement import traits as traits_mod


def extra_specs_for_type(desired, type_id, group='1', count=1):
    """The extra specs asking for one mdev of type_id on this host.

    The type's class, its cost in every shared counter of its parent and
    the type trait go in one numbered request group, so Placement checks
    them on one provider in one transaction. count > 1: that many such
    groups, numbered from ``group`` on, on different parents
    (group_policy=isolate).
    """
    if count < 1:
        raise exceptions.VgpuPlacementError(
            'asking for %d vGPUs: the count must be at least 1' % count)
    rcs, costs, providers = set(), {}, []
    for child in desired.children:
        rc = child.plan.classes.get(type_id)
        if rc is None:
            continue
        providers.append(child.name)
        rcs.add(rc)
        for counter in child.plan.counters:
            units = counter.costs.get(type_id)
            if units:
                costs.setdefault(counter.resource_class, {})[child.name] = \
                    units
    if not providers:
        raise exceptions.VgpuPlacementError(
            'type %s is not reported on host %s' % (type_id,
                                                    desired.root_name))
    if len(rcs) > 1:
        raise exceptions.VgpuPlacementError(
            'type %s is reported as %s on different parents; one flavor '
            'cannot ask for both' % (type_id, ', '.join(sorted(rcs))))
    resources = {rcs.pop(): 1}
    for rc, by_provider in sorted(costs.items()):
        if len(set(by_provider.values())) > 1:
            raise exceptions.VgpuPlacementError(
                'type %s costs %s in %s on different parents; give those '
                'parents their own [capacity] models or classes'
                % (type_id, sorted(set(by_provider.values())), rc))
        if len(by_provider) != len(providers):
            raise exceptions.VgpuPlacementError(
                'type %s has counter %s on some parents only; set '
                '[capacity] shared_counters consistently' % (type_id, rc))
        resources[rc] = next(iter(by_provider.values()))
    trait = traits_mod.type_trait(type_id)
    specs = {'resources%s:%s' % (group, rc): str(n)
             for rc, n in resources.items()}
    specs['trait%s:%s' % (group, trait)] = 'required'
    if count > 1:
        specs = on_different_parents(specs, count)
    return {'type': type_id, 'extra_specs': specs,
            'placement_query': parse_extra_specs(specs).query(),
            'providers': sorted(providers)}


def on_different_parents(specs, count):
    """One numbered group's extra specs (group N) repeated in groups N ..
    N+count-1 under group_policy=isolate: count of it, each on its own
    provider."""
    matches = [_GROUP_RE.fullmatch(key) for key in specs]
    suffixes = {m.group(2) if m else None for m in matches}
    suffix = suffixes.pop() if len(suffixes) == 1 else None
    if not (suffix and suffix.isdigit()):
        raise exceptions.VgpuPlacementError(
            'asking for %d vGPUs on different parents needs the specs of '
            'one numbered group, not %s' % (
                count, quote(', '.join(sorted(specs)))))
    out = {}
    for m, value in zip(matches, specs.values()):
        kind, _suffix, name = m.groups()
        out.update(('%s%d:%s' % (kind, int(suffix) + i, name), value)
                   for i in range(count))
    out['group_policy'] = 'isolate'
    return out


# -- extra specs -> a Placement request ------------------------------------

# Placement's integers (amounts, and here group numbers) are 32-bit signed.
MAX_INT = 2 ** 31 - 1
# Far more than any flavor needs; bounds the work and the query built.
MAX_EXTRA_SPECS = 1000
# ASCII only, by explicit classes and re.ASCII: \d and \w would also take
# other scripts' digits and letters. Placement allows 64-character group
# suffixes and 255-character class and trait names. Always fullmatch: '$'
# accepts a trailing newline.
_GROUP_RE = re.compile(r'(resources|trait)([0-9]{1,10}|_[A-Za-z0-9_-]{1,63})?'
                       r':([A-Za-z0-9_]+)', re.ASCII)
_AMOUNT_RE = re.compile(r'[0-9]{1,10}', re.ASCII)
# Keys a tenant might use to reach vendor parameters or sysfs: refused.
_VENDOR_RE = re.compile(r'(vgpu|mdev|vendor)[_:-]?param|vgpu_placement:|'
                        r'^mdev:', re.IGNORECASE)


def quote(text, limit=60):
    """repr(text), cut to at most ``limit`` characters ending in '...':
    errors quote what they were given, which can be any size."""
    text = repr(str(text))
    return text if len(text) <= limit else text[:limit - 3] + '...'


class BadExtraSpec(exceptions.VgpuPlacementError):
    def __init__(self, key, problem):
        self.key = key
        where = ('flavor extra specs' if key is None else
                 'flavor extra spec %s' % quote(key))
        super().__init__('%s: %s' % (where, problem))


@dataclasses.dataclass(frozen=True)
class RequestGroup:
    suffix: str                  # '' for the unsuffixed group
    resources: dict              # class -> amount
    required: frozenset = frozenset()
    forbidden: frozenset = frozenset()


@dataclasses.dataclass(frozen=True)
class Request:
    groups: tuple                # of RequestGroup, unsuffixed first
    group_policy: str = None

    def query(self, limit=None, in_tree=None):
        """The GET /allocation_candidates query string (microversion 1.39)."""
        params = []
        for g in self.groups:
            if g.resources:
                params.append(('resources' + g.suffix, ','.join(
                    '%s:%d' % kv for kv in sorted(g.resources.items()))))
            traits = sorted(g.required) + ['!' + t for t in
                                           sorted(g.forbidden)]
            if traits:
                params.append(('required' + g.suffix, ','.join(traits)))
            if in_tree:
                params.append(('in_tree' + g.suffix, in_tree))
        if self.group_policy:
            params.append(('group_policy', self.group_policy))
        if limit:
            params.append(('limit', str(limit)))
        return urllib.parse.urlencode(params, safe=',:!')

    def classes(self):
        return {rc for g in self.groups for rc in g.resources}


def _check_class(key, rc):
    if rc in orc.STANDARDS or parse.is_custom_name(rc):
        return rc
    # The key, quoted first, names the class.
    raise BadExtraSpec(key, 'unknown resource class (a standard class or '
                       'CUSTOM_[A-Z0-9_]+, at most 255 characters)')


def _check_trait(key, trait):
    if parse.is_custom_name(trait) or \
            not os_traits.check_traits([trait])[1]:
        return trait
    raise BadExtraSpec(key, 'unknown trait (a standard trait or '
                       'CUSTOM_[A-Z0-9_]+, at most 255 characters)')


def _check_amount(key, value):
    # Not str.isdigit(): it takes '²' (which int() refuses) and other
    # scripts' digits (which int() takes).
    if _AMOUNT_RE.fullmatch(value) and int(value) <= MAX_INT:
        return int(value)
    raise BadExtraSpec(key, 'amount %s is not a whole number from 0 to %d'
                       % (quote(value), MAX_INT))


def parse_extra_specs(extra_specs):
    """Nova-style extra specs -> Request; BadExtraSpec names the key.

    Understood: resources[N|_S]:CLASS=amount, trait[N|_S]:NAME=required|
    forbidden, group_policy=isolate|none. Other keys (hw:..., etc.) are
    not ours and are ignored; keys reaching for vendor parameters are
    refused: operators set those per type in config, tenants never do.
    A key that starts like ours but is malformed is refused, not ignored:
    ignoring it would schedule without what the flavor asks for.
    """
    if len(extra_specs) > MAX_EXTRA_SPECS:
        raise BadExtraSpec(None, '%d of them; at most %d are accepted' % (
            len(extra_specs), MAX_EXTRA_SPECS))
    resources, required, forbidden = {}, {}, {}
    trait_keys = {}                 # suffix -> one of its trait keys
    policy = None
    for key, value in sorted(extra_specs.items()):
        value = str(value).strip()
        if not key.isascii():
            # Nova's API stores ASCII keys only: this is a lookalike.
            raise BadExtraSpec(key, 'malformed key: not ASCII')
        if _VENDOR_RE.search(key):
            raise BadExtraSpec(key, 'vendor parameters cannot be set from '
                               'a flavor; an operator sets them per type in '
                               'the host configuration')
        if key == 'group_policy':
            if value not in ('isolate', 'none'):
                raise BadExtraSpec(key, 'must be isolate or none')
            policy = value
            continue
        match = _GROUP_RE.fullmatch(key)
        if not match:
            if key.startswith(('resources', 'trait')):
                raise BadExtraSpec(key, 'malformed key: write resources'
                                   '[N|_S]:CLASS or trait[N|_S]:NAME')
            continue
        kind, suffix, name = match.group(1), match.group(2) or '', \
            match.group(3)
        if suffix.isdigit() and int(suffix) > MAX_INT:
            raise BadExtraSpec(key, 'malformed key: group number over %d'
                               % MAX_INT)
        if kind == 'resources':
            rc = _check_class(key, name)
            amount = _check_amount(key, value)
            if amount:
                resources.setdefault(suffix, {})[rc] = amount
        else:
            trait = _check_trait(key, name)
            if value == 'required':
                required.setdefault(suffix, set()).add(trait)
            elif value == 'forbidden':
                forbidden.setdefault(suffix, set()).add(trait)
            else:
                raise BadExtraSpec(key, 'must be required or forbidden, '
                                   'not %s' % quote(value))
            trait_keys.setdefault(suffix, key)
    if not resources:
        raise BadExtraSpec('resources:...', 'the flavor asks for no '
                           'resources')
    # Placement refuses traits in a group without resources: dropping them
    # would quietly give hosts without (or with) the trait.
    for suffix, key in sorted(trait_keys.items()):
        if suffix not in resources:
            raise BadExtraSpec(key, (
                'group %s asks for traits but no resources' % suffix
                if suffix else 'Placement refuses traits without resources '
                'in their group: put it in a numbered group (trait1:...) or '
                'give unsuffixed resources'))
    if len([s for s in resources if s]) > 1 and policy is None:
        raise BadExtraSpec('group_policy', 'required with more than one '
                           'numbered request group (isolate or none)')
    groups = tuple(RequestGroup(
        s, resources[s], frozenset(required.get(s, ())),
        frozenset(forbidden.get(s, ()))) for s in sorted(resources))
    return Request(groups, policy)
