"""The provider tree this host should have in Placement (pure functions).

snapshot + type policies -> DesiredTree; then, knowing what Placement has
granted (usages), keep_in_use() makes sure no inventory in use is dropped.
"""
import dataclasses
import re
import uuid

from vgpu_placement import traits as traits_mod
from vgpu_placement import type_config

# uuid5 namespace for providers we create: the same name gives the same uuid.
PROVIDER_NAMESPACE = uuid.UUID('0d7f2b7e-8a3c-5d46-9a51-6c1f4e2b9d30')


@dataclasses.dataclass(frozen=True)
class Inventory:
    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = None
    step_size: int = 1
    allocation_ratio: float = 1.0

    def as_dict(self):
        return {'total': self.total, 'reserved': self.reserved,
                'min_unit': self.min_unit,
                'max_unit': self.max_unit or self.total,
                'step_size': self.step_size,
                'allocation_ratio': self.allocation_ratio}


@dataclasses.dataclass(frozen=True)
class DesiredProvider:
    name: str
    device: str                  # the parent device it stands for
    inventories: dict            # resource class -> Inventory
    traits: frozenset

    @property
    def uuid(self):
        return str(uuid.uuid5(PROVIDER_NAMESPACE, self.name))


@dataclasses.dataclass(frozen=True)
class DesiredTree:
    root_name: str
    children: tuple              # of DesiredProvider, sorted by name

    def child(self, name):
        return next((c for c in self.children if c.name == name), None)


def provider_name(host, device):
    """Nova's naming: <host>_pci_0000_84_00_0, or <host>_<device name>."""
    if re.match(r'^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$', device):
        return '%s_pci_%s' % (host, re.sub(r'[:.]', '_', device))
    return '%s_%s' % (host, re.sub(r'[^A-Za-z0-9_-]', '_', device))


def type_totals(parent, policies):
    """{type_id: existing mdevs + available_instances} on one parent."""
    return {p.type_id: parent.count_mdevs(p.type_id) +
            parent.type(p.type_id).available_instances
            for p in type_config.types_on_parent(policies, parent)}


def cap_host_wide(totals_by_parent, snapshot, policies):
    """Apply each type's max_instances across the host.

    Parents are served in name order; a parent never gets less than the
    mdevs of the type it already holds.
    """
    capped = {name: dict(totals) for name, totals in totals_by_parent.items()}
    for type_id, policy in policies.items():
        if policy.max_instances is None:
            continue
        left = policy.max_instances
        for name in sorted(capped):
            if type_id not in capped[name]:
                continue
            existing = snapshot.parent(name).count_mdevs(type_id)
            total = max(existing, min(capped[name][type_id], left))
            capped[name][type_id] = total
            left = max(0, left - total)
    return capped


def build_tree(host, snapshot, policies):
    """The desired tree: one child per parent reporting at least one type."""
    totals_by_parent = {p.name: type_totals(p, policies)
                        for p in snapshot.parents}
    totals_by_parent = cap_host_wide(totals_by_parent, snapshot, policies)
    children = []
    for parent in snapshot.parents:
        totals = totals_by_parent[parent.name]
        if not totals:
            continue
        inventories = {}
        for type_id, total in totals.items():
            if total > 0:       # Placement refuses total 0
                inventories[policies[type_id].resource_class] = \
                    Inventory(total=total, max_unit=total)
        reported = [parent.type(t) for t in totals]
        children.append(DesiredProvider(
            name=provider_name(host, parent.name), device=parent.name,
            inventories=inventories,
            traits=traits_mod.parent_traits(reported)))
    return DesiredTree(host, tuple(sorted(children, key=lambda c: c.name)))


def keep_in_use(inventories, usages, current):
    """Inventories to write, given what Placement has granted.

    A class in use that the host no longer offers (type gone, parent gone,
    nothing left) is kept with reserved == total, which closes it to new
    claims; Placement would refuse to delete it. ``current`` is what
    Placement holds now, so a kept class keeps its old total when that is
    larger than its usage.
    """
    result = dict(inventories)
    for rc, used in usages.items():
        if not used or rc in result:
            continue
        old_total = current.get(rc, {}).get('total', used)
        total = max(used, old_total)
        result[rc] = Inventory(total=total, reserved=total, max_unit=total)
    return result
