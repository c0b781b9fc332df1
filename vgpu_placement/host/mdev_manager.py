"""The host side's verbs: turn a consumer's allocations into mdevs, free
them, adopt others', reconcile.

Each mdev's UUID is derived from the consumer (facts.mdev_uuid_for), so
a retry or a crash finds it again, and only mdevs whose UUID we derive or
that the ledger holds are ever touched. Work goes through the ledger in
two phases (creating -> active, removing -> gone), under the two locks
context.py describes.

The rule every destructive step keeps: an mdev whose consumer holds an
allocation on its provider is removed only by that consumer's own
release or free; a parent the host could not read is unknown, not empty.

Each verb lives in its own module (realize, free, adopt, reconcile);
this class is the one door to them.
"""
from vgpu_placement.host import adopt as adopt_mod
from vgpu_placement.host import context
from vgpu_placement.host import free as free_mod
from vgpu_placement.host import realize as realize_mod
from vgpu_placement.host import reconcile as reconcile_mod


class MdevManager(context.HostContext):
    """Realize, free, release, adopt and reconcile the mdevs of one host
    (collaborators: see context.HostContext)."""

    def realize(self, consumer, allocations=None):
        """See realize.realize."""
        return realize_mod.realize(self, consumer, allocations)

    def free(self, consumer, report=True):
        """See free.free."""
        return free_mod.free(self, consumer, report)

    def release(self, consumer):
        """See free.release."""
        return free_mod.release(self, consumer)

    def adopt(self, consumer, mdev_uuids):
        """See adopt.adopt."""
        return adopt_mod.adopt(self, consumer, mdev_uuids)

    def reconcile(self, realize_for=None):
        """See reconcile.reconcile."""
        return reconcile_mod.reconcile(self, realize_for)

    def our_providers(self):
        """{provider uuid: (DesiredProvider, {class: type})}: the children
        of the tree the host reads as now that Placement has."""
        return self.tree.reading().ours()
