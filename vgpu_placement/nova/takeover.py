"""Taking a host over from stock Nova's vGPU support: pure functions.

Stock Nova (``[devices] enabled_mdev_types``) reports one child per
physical GPU, named ``<node>_pci_<domain>_<bus>_<slot>_<function>`` as the
project names its own, with one class (VGPU, or ``[mdev_<type>]
mdev_class``) and the OWNER_NOVA trait; a server's mdevs carry random
UUIDs that only its guest XML records. When nova-compute first starts with
the project's driver:

* a child the project now reports that holds allocations of a class it
  does not report (``foreign_in_use``) asks Nova for a reshape
  (ReshapeNeeded at start, Nova's path for moving allocations);
* ``reshape`` then moves, in the allocations Nova hands over, each
  consumer's amount of such a class to the project's class of the type of
  an mdev its guest uses on that GPU, one per mdev. What no mdev accounts
  for stays where it was (put_tree keeps that class, closed, while it is
  used): nothing is lost, it only cannot be moved;
* the mdevs are adopted into the ledger (MdevManager.adopt) once
  Placement holds the project's classes, never before: a ledger record
  whose allocation did not move would make the mdev look orphaned.
"""
import re


def is_nova_vgpu_child(name, nodename):
    """True for the name stock Nova gives a physical GPU's provider (not
    its PCI-in-Placement providers, named after the PCI address)."""
    return re.fullmatch(re.escape(nodename) + r'_pci_[0-9a-f]{4}_[0-9a-f]{2}'
                        r'_[0-9a-f]{2}_[0-7]', name) is not None


def classes_of(child):
    """Every class the project reports on a desired child."""
    return set(child.plan.classes.values()) | {
        c.resource_class for c in child.plan.counters}


def foreign_in_use(child, usages):
    """{class: used} of the classes Placement holds on ``child``'s
    provider (``usages``) that the project does not report there."""
    ours = classes_of(child)
    return {rc: n for rc, n in usages.items() if n and rc not in ours}


def reshape(allocations, children, assigned, mdevs, stand_ins=None):
    """Move foreign-class allocations to the project's classes, in place.

    allocations: Nova's reshape allocations ({consumer: {'allocations':
    {rp uuid: {'resources': {class: n}, ...}}, ...}}), changed in place.
    children: {rp uuid: provider_tree.DesiredProvider} of the providers
    the project takes over. assigned: {mdev uuid: instance uuid} from the
    guests' XML. mdevs: {mdev uuid: (device, type id)} on the host now.
    stand_ins: {consumer: instance uuid} for consumers holding for an
    instance (a migration).

    Returns (moved, left): [(consumer, rp, from class, to class)] one
    entry per vGPU moved, and [(consumer, rp, class, n)] left where it
    was because no mdev of the consumer's guest accounts for it.
    """
    stand_ins = stand_ins or {}
    guest_mdevs = {}
    for mdev_uuid, instance in sorted(assigned.items()):
        if mdev_uuid in mdevs:
            guest_mdevs.setdefault(instance, []).append(mdev_uuid)
    moved, left = [], []
    for consumer, record in sorted(allocations.items()):
        spare = list(guest_mdevs.get(stand_ins.get(consumer, consumer), ()))
        for rp_uuid, alloc in sorted(record.get('allocations', {}).items()):
            child = children.get(rp_uuid)
            if child is None:
                continue
            resources = alloc.get('resources', {})
            for rc in sorted(foreign_in_use(child, resources)):
                for mdev_uuid in list(spare):
                    if resources[rc] == 0:
                        break
                    device, type_id = mdevs[mdev_uuid]
                    to_rc = child.plan.classes.get(type_id)
                    if device != child.device or to_rc is None:
                        continue
                    spare.remove(mdev_uuid)
                    resources[rc] -= 1
                    resources[to_rc] = resources.get(to_rc, 0) + 1
                    moved.append((consumer, rp_uuid, rc, to_rc))
                if resources[rc]:
                    left.append((consumer, rp_uuid, rc, resources[rc]))
                else:
                    del resources[rc]
    return moved, left
