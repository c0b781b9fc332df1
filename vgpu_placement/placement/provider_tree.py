"""The provider tree this host should have in Placement (pure functions).

snapshot + type policies + capacity models -> DesiredTree. Each child
carries a ParentPlan that turns what Placement has granted (usages) into
inventories, so that no type offers more than the parent can still create
once every granted claim is realized. Where claims pay their shared
counters, Placement's own accounting carries them and the inventories
follow the host only (ParentPlan.steady_inventories); elsewhere reserved
follows the claims granted and not yet realized
(ParentPlan.tracking_inventories). keep_in_use() never drops a class in
use.
"""
import dataclasses
import math
import re
import uuid

import os_resource_classes as orc

from vgpu_placement.conf import type_config
from vgpu_placement.model import base as model_base
from vgpu_placement.model import detect
from vgpu_placement.model import discovered
from vgpu_placement.placement import traits as traits_mod

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

    def free(self, used):
        """What Placement may still grant, given ``used``."""
        return max(0, self.total - self.reserved - used)

    def as_dict(self):
        return {'total': self.total, 'reserved': self.reserved,
                'min_unit': self.min_unit,
                'max_unit': self.max_unit or self.total,
                'step_size': self.step_size,
                'allocation_ratio': self.allocation_ratio}


@dataclasses.dataclass(frozen=True)
class Counter:
    """A shared counter class sized as one pool of a parent."""
    resource_class: str
    pool: str
    size: int
    costs: dict                  # type id -> units of this pool


@dataclasses.dataclass(frozen=True)
class ParentPlan:
    """Everything needed to turn Placement's usages into inventories."""
    classes: dict                # type id -> resource class
    existing: dict               # type id -> mdevs on the parent (anyone's)
    # type id -> those of them that realize claims (ours, in the ledger):
    # only these are taken off what Placement has granted.
    realized: dict
    available: dict              # type id -> kernel available_instances
    caps: dict                   # type id -> host-wide max_instances share
    model: object
    counters: tuple = ()         # of Counter
    grouped: bool = False        # a physical GPU standing for its VFs
    # [capacity] claims_pay_counters: steady inventories where claims pay.
    claims_pay: bool = True
    # type id -> claims still granted whose mdev was freed for good (a
    # server being deleted): they wait for nothing.
    freed: dict = dataclasses.field(default_factory=dict)

    def pending(self, usages):
        """Granted by Placement, not created yet, per type. An mdev that
        is not ours realizes no claim: it is consumed capacity besides.
        (tracking_inventories counts every such claim, as the project
        always has; steady_inventories leaves out the ``freed``.)"""
        return {t: max(0, usages.get(rc, 0) - self.realized.get(t, 0))
                for t, rc in self.classes.items()}

    def offers(self, usages):
        return model_base.offers(self.model, self.existing,
                                 self.pending(usages), self.available)

    def request(self, type_id):
        """{class: amount} one vGPU of type_id asks of this parent: its
        type class and its cost in every shared counter (one request
        group, as flavor-spec prints it)."""
        wanted = {self.classes[type_id]: 1}
        for counter in self.counters:
            if counter.costs.get(type_id):
                wanted[counter.resource_class] = counter.costs[type_id]
        return wanted

    def carried(self, usages):
        """True when Placement's own accounting carries every claim on
        this parent (counters_carry) and every claim granted here paid
        its counters (asked for them in its request group, as
        flavor-spec prints). Then the inventories follow the host, not
        the claims (steady_inventories)."""
        return self.counters_carry() and not self.unpaid(usages)

    def counters_carry(self):
        """True when the model's coupling is all in the shared counters
        (a pool model, or the equal-size one) and the operator says
        claims pay them ([capacity] claims_pay_counters)."""
        return bool(self.claims_pay and self.counters and
                    self.model.counters_carry_all)

    def unpaid(self, usages):
        """{counter class: units} the claims granted here owe it: a
        claim that asked for its type alone paid nothing."""
        owed = {}
        for counter in self.counters:
            due = sum(usages.get(rc, 0) * counter.costs.get(t, 0)
                      for t, rc in self.classes.items())
            if due > usages.get(counter.resource_class, 0):
                owed[counter.resource_class] = \
                    due - usages.get(counter.resource_class, 0)
        return owed

    def inventories(self, usages):
        """{class: Inventory}: steady_inventories when Placement carries
        the claims, else tracking_inventories."""
        if self.carried(usages):
            return self.steady_inventories(usages)
        return self.tracking_inventories(usages)

    def unaccounted(self, usages):
        """{type: mdevs on the parent that no allocation here accounts
        for}: other owners' mdevs, and ours whose claim is gone (a
        release that has removed the mdev's allocation first)."""
        unaccounted = {}
        for type_id, n in self.existing.items():
            ours = self.realized.get(type_id, 0)
            claims = usages.get(self.classes.get(type_id), 0)
            unaccounted[type_id] = n - ours + max(0, ours - claims)
        return unaccounted

    def steady_inventories(self, usages):
        """Inventories that change when the host changes, not per claim.

        Each type's total is what it could have with only the mdevs no
        allocation accounts for (unaccounted) on the parent; those are
        its reserved, with what the kernel shows less than the model
        predicts. The counters are sized as their pools, reserved by
        what the unaccounted mdevs take. A claim that pays its counters
        is then checked by Placement alone, atomically: granting,
        realizing or releasing it changes no inventory. Equal-size GPUs:
        a size is closed (reserved == total) while another size exists
        or is granted here (claims whose mdev was freed for good do not
        count: ``freed``), so a write comes only with a GPU's first and
        last vGPU of a size.
        """
        outside = self.unaccounted(usages)
        types = sorted(self.available)
        predicted = self.model.free_after(self.existing, types) or {}
        sizes = self.model.one_size_at_a_time()
        in_use = set() if sizes is None else {
            sizes.get(t) for t, n in self.existing.items() if n} | {
            sizes.get(t) for t, n in self.pending(usages).items()
            if n > self.freed.get(t, 0)}
        result = {}
        for type_id, rc in self.classes.items():
            cap = self.caps.get(type_id, math.inf)
            alone = (self.model.free_after(outside, [type_id]) or {}).get(
                type_id, 0)
            total = min(cap, outside[type_id] + alone)
            if total == 0 and cap > 0:
                total = min(cap, model_base.empty_capacity(
                    self.model, type_id))
            if total == 0:
                continue
            shortfall = max(0, predicted.get(type_id, 0) -
                            self.available[type_id])
            closed = alone == 0 or bool(
                in_use - {sizes and sizes.get(type_id)})
            reserved = total if closed else min(
                total, outside[type_id] + shortfall)
            result[rc] = Inventory(total=total, reserved=reserved,
                                   max_unit=total)
        for counter in self.counters:
            held = sum(outside.get(t, 0) * units
                       for t, units in counter.costs.items())
            result[counter.resource_class] = Inventory(
                total=counter.size, reserved=min(counter.size, held),
                max_unit=counter.size)
        return result

    def tracking_inventories(self, usages):
        """{class: Inventory}: what exists plus what is left, with the
        reduction others' claims cause expressed as ``reserved``: each
        granted claim moves other types' reserved, so it costs a write.
        For claims that did not pay counters, and models whose coupling
        counters cannot carry (mixed-size, costs unknown)."""
        offers = self.offers(usages)
        result = {}
        for type_id, rc in self.classes.items():
            used = usages.get(rc, 0)
            cap = self.caps.get(type_id, math.inf)
            total = max(self.existing[type_id], min(
                cap, self.existing[type_id] + self.available[type_id]))
            free = min(offers[type_id].free, max(0, total - used))
            if total == 0 and cap > 0:
                # Nothing fits now: keep the class, closed, at the size it
                # has on an empty parent, so it reopens without churn.
                total = min(cap, model_base.empty_capacity(
                    self.model, type_id))
            if total == 0:
                continue
            result[rc] = Inventory(total=total, reserved=min(
                total, max(0, total - used - free)), max_unit=total)
        pending = self.pending(usages)
        for counter in self.counters:
            consumed = sum((self.existing.get(t, 0) + pending.get(t, 0)) *
                           units for t, units in counter.costs.items())
            unpaid = max(0, consumed - usages.get(counter.resource_class, 0))
            result[counter.resource_class] = Inventory(
                total=counter.size, reserved=min(counter.size, unpaid),
                max_unit=counter.size)
        self._window_limits(result, usages, pending)
        return result

    def _window_limits(self, result, usages, pending):
        """Lower each counter's free to what the model says any mix of
        claims Placement can grant before the next report leaves room
        for (Model.window_limits: NVIDIA's mixed-size mode)."""
        if not self.counters:
            return

        def free(rc):
            return result[rc].free(usages.get(rc, 0))
        offered = {t: free(rc) for t, rc in self.classes.items()
                   if rc in result}
        limits = self.model.window_limits(
            pending, offered,
            {c.pool: free(c.resource_class) for c in self.counters},
            {c.pool: c.costs for c in self.counters}) or {}
        for counter in self.counters:
            if limits.get(counter.pool) is None:
                continue
            inv = result[counter.resource_class]
            result[counter.resource_class] = dataclasses.replace(
                inv, reserved=min(counter.size, max(
                    inv.reserved, counter.size - limits[counter.pool] -
                    usages.get(counter.resource_class, 0))))


@dataclasses.dataclass(frozen=True)
class DesiredProvider:
    name: str
    device: str                  # the parent device it stands for
    plan: ParentPlan
    traits: frozenset

    @property
    def uuid(self):
        return str(uuid.uuid5(PROVIDER_NAMESPACE, self.name))

    def inventories(self, usages, current=None):
        """Inventories to write given usages; in-use classes never go."""
        return keep_in_use(self.plan.inventories(usages), usages,
                           current or {})


@dataclasses.dataclass(frozen=True)
class DesiredTree:
    root_name: str
    children: tuple              # of DesiredProvider, sorted by name
    # Providers of parents the scan could not read whole: what Placement
    # holds for them stays as it is (neither updated nor retired).
    unknown: frozenset = frozenset()

    def child(self, name):
        return next((c for c in self.children if c.name == name), None)


def capacity(inventory):
    """What Placement may grant of one inventory record in all: (total -
    reserved) x allocation_ratio."""
    return int((inventory['total'] - inventory['reserved']) *
               inventory.get('allocation_ratio', 1.0))


def grantable(inventories, usages, wanted):
    """How many times Placement can still grant ``wanted`` ({class:
    amount}) on one provider holding ``inventories`` ({class: {'total',
    'reserved', 'allocation_ratio', ...}}, as Placement returns them)
    with ``usages``: each class's capacity less its usage, over the
    amount asked, at the least."""
    counts = []
    for rc, amount in wanted.items():
        inv = inventories.get(rc)
        if inv is None:
            return 0
        counts.append(max(0, capacity(inv) - usages.get(rc, 0)) // amount)
    return min(counts)


def provider_name(host, device):
    """Nova's naming, <host>_<libvirt node-device name>:
    <host>_pci_0000_84_00_0, <host>_mtty_mtty."""
    return '%s_%s' % (host, re.sub(r'[^A-Za-z0-9_-]', '_',
                                   discovered.nodedev_name(device)))


def host_caps(snapshot, policies):
    """{parent: {type: cap}} from each type's host-wide max_instances.

    Parents are served in name order; a parent never gets less than the
    mdevs of the type it already holds.
    """
    caps = {p.name: {} for p in snapshot.parents}
    for type_id, policy in sorted(policies.items()):
        if policy.max_instances is None:
            continue
        left = policy.max_instances
        for parent in snapshot.parents:
            mdev_type = parent.type(type_id)
            if mdev_type is None or not policy.applies_to(parent):
                continue
            existing = parent.count_mdevs(type_id)
            share = max(existing, min(
                existing + mdev_type.available_instances, left))
            caps[parent.name][type_id] = share
            left = max(0, left - share)
    return caps


COUNTER_PREFIX = 'CUSTOM_VGPU_UNITS_'


def counter_class(kind, pool, single):
    name = 'VGPU_UNITS_%s' % kind if single else 'VGPU_UNITS_%s_%s' % (
        kind, pool)
    return orc.normalize_name(name)


def parent_kind(parent):
    """The driver part of the type ids (mtty-1 -> mtty, i915-GVTg_V5_4 ->
    i915), naming the parent's counters."""
    prefixes = {t.id.split('-')[0] for t in parent.types}
    return prefixes.pop() if len(prefixes) == 1 else parent.name


def counters_for(parent, model):
    """Shared counters: one per pool of a pool model (and its count cap);
    for the equal-size model, the framebuffer and the SR-IOV slots.

    Costs cover every type of the parent, reported or not: an mdev of a
    type we do not report still takes its units. The equal-size counters
    make any number of same-size vGPUs exact (n x size <= framebuffer,
    n <= virtual functions); they cannot forbid two sizes on one GPU,
    which only the next report closes. Mixed-size mode: the framebuffer
    and VF counters' free are lowered so that any mix fits (ParentPlan).
    """
    found = model.counter_pools()
    if found is None:
        return ()
    pools, costs = found
    if getattr(model, 'max_instances', None) is not None:
        pools['instances'] = model.max_instances
        costs['instances'] = {t.id: 1 for t in parent.types}
    single = len(pools) == 1
    kind = parent_kind(parent)
    return tuple(Counter(counter_class(kind, p, single), p, size,
                         {t: u for t, u in costs[p].items() if u})
                 # A pool of nothing (MIG: no GPU instance of a profile)
                 # is no class: Placement takes no total of 0.
                 for p, size in sorted(pools.items()) if size)


def build_tree(host, snapshot, policies, choose_model=None, counters=True,
               owned=frozenset(), claims_pay=True, freed=None,
               detectors=()):
    """The desired tree: one child per parent reporting at least one type.

    choose_model(parent) -> capacity model (default: detect from the
    parent, with the driver's ``detectors`` first). counters: add shared
    counter classes for pool models.
    owned: UUIDs of the mdevs that realize claims (the ledger's); every
    other mdev is capacity consumed by someone else. claims_pay: where
    claims pay their counters, the inventories follow the host, not the
    claims (ParentPlan.carried). freed: {device: {type: claims whose mdev
    was freed for good}}: on an equal-size GPU they keep no size open.
    """
    choose_model = choose_model or (
        lambda parent: detect.choose_model(parent, vendor=detectors)[0])
    caps = host_caps(snapshot, policies)
    children = []
    for parent in snapshot.parents:
        reported = type_config.types_on_parent(policies, parent)
        if not reported:
            continue
        ids = [p.type_id for p in reported]
        model = choose_model(parent)
        # The model sees every type: unreported ones take capacity too.
        plan = ParentPlan(
            classes={p.type_id: p.resource_class for p in reported},
            existing={t.id: parent.count_mdevs(t.id) for t in parent.types},
            realized={t.id: sum(1 for m in parent.mdevs if m.type_id == t.id
                                and m.uuid in owned) for t in parent.types},
            available={t.id: t.available_instances for t in parent.types},
            caps=caps[parent.name], model=model,
            counters=counters_for(parent, model) if counters else (),
            grouped=bool(parent.members), claims_pay=claims_pay,
            freed=dict((freed or {}).get(parent.name, {})))
        traits = traits_mod.parent_traits([parent.type(t) for t in ids])
        if plan.counters and model.window_capped:
            traits |= {traits_mod.WINDOW_CAPPED}
        children.append(DesiredProvider(
            name=provider_name(host, parent.name), device=parent.name,
            plan=plan, traits=traits))
    return DesiredTree(host, tuple(sorted(children, key=lambda c: c.name)),
                       frozenset(provider_name(host, name)
                                 for name in snapshot.unreadable))


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


KEEP_CLOSED = 'keep closed'
DELETE = 'delete'


def retire_action(usages, retired_for, delete_after):
    """What becomes of a provider of ours whose device is gone (the one
    rule for the standalone sync and the Nova tree).

    KEEP_CLOSED (its classes in use kept closed, keep_in_use; the RETIRED
    trait) while anything is allocated on it, or until it has been
    retired ``retired_for`` >= ``delete_after`` seconds; then DELETE.
    ``delete_after`` None: never deleted; 0: deleted as soon as unused.
    """
    if any(usages.values()) or delete_after is None or \
            retired_for < delete_after:
        return KEEP_CLOSED
    return DELETE
