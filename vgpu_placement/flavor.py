"""Flavor extra specs for vGPU types."""
from vgpu_placement import exceptions
from vgpu_placement import traits as traits_mod


def extra_specs_for_type(desired, type_id, group='1'):
    """The extra specs asking for one mdev of type_id on this host.

    The type's class, its cost in every shared counter of its parent and
    the type trait go in one numbered request group, so Placement checks
    them on one provider in one transaction.
    """
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
    query = 'resources%s=%s&required%s=%s' % (
        group, ','.join('%s:%d' % (rc, n) for rc, n in resources.items()),
        group, trait)
    return {'type': type_id, 'extra_specs': specs,
            'placement_query': query, 'providers': sorted(providers)}
