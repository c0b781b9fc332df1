"""The driver interface."""
import abc

from vgpu_placement.drivers import hostdev
from vgpu_placement import exceptions
from vgpu_placement.model import discovered


def checked_uuid(value, action, target):
    """The canonical UUID, or the kernel's EINVAL as a typed error."""
    try:
        return discovered.canonical_uuid(value)
    except ValueError:
        raise exceptions.InvalidMdevRequest(action, target,
                                            '%r is not a UUID' % (value,))


def checked_create(parent, type_id, mdev_uuid):
    """The canonical UUID of a create's arguments, each checked (parent
    and type one safe name each) before any driver acts on them."""
    mdev_uuid = checked_uuid(mdev_uuid, 'create', 'mdev on %s' % parent)
    for what, value in (('parent', parent), ('type', type_id)):
        if not discovered.is_valid_name(value):
            raise exceptions.InvalidMdevRequest(
                'create', '%s %r' % (what, value), 'not a device name')
    return mdev_uuid


class Driver(abc.ABC):
    """Discovers mediated devices and creates or removes them.

    Errors from create/remove are the typed MdevError subclasses of
    vgpu_placement.exceptions, one per kernel errno.
    """

    #: True only when every host change that can alter what discover()
    #: returns (an mdev created or removed, a parent or VF appearing or
    #: going) raises a kernel uevent the agent listens to
    #: (uevents.host_change): the agent may then reuse its last scan while
    #: uevents are healthy. False (the safe default): scan every report.
    host_changes_raise_uevents = False

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def discover(self):
        """Return a discovered.HostSnapshot of the host as it is now."""

    @abc.abstractmethod
    def create_mdev(self, parent, type_id, mdev_uuid):
        """Create an mdev of type_id on parent with the given UUID."""

    @abc.abstractmethod
    def remove_mdev(self, mdev_uuid):
        """Remove the mdev with this UUID."""

    @abc.abstractmethod
    def boot_id(self):
        """The kernel's boot id: it changes when the host reboots."""

    def guest_gets_parent(self, parent):
        """True when a vGPU on this kernel parent is the parent itself (a
        VF on NVIDIA's vendor-specific VFIO layout): the guest gets that
        VF as a PCI device, not an mdev."""
        return False

    def hostdev_xml(self, mdev_uuid, parent):
        """libvirt's <hostdev> for a realized vGPU on kernel parent
        ``parent``: the parent VF itself where the guest gets it
        (guest_gets_parent), else the mdev. The one answer the CLI and
        the Nova driver both give the guest."""
        if self.guest_gets_parent(parent):
            return hostdev.pci_xml(parent)
        return hostdev.mdev_xml(mdev_uuid)

    def model_detectors(self):
        """Capacity-model detectors this driver knows for its parents
        (model.detect.ParentFacts -> (model, note) or None), tried before
        model.detect.GENERIC: how a vendor's GPUs share their capacity
        lives with the vendor's driver. None by default."""
        return ()

    def readopt(self, parent, type_id, mdev_uuid, shown_uuid):
        """Mend a vGPU whose UUID the driver lost: where the host holds no
        UUID (vendor-specific VFIO) and the driver's own record of it is
        gone, the vGPU on ``parent`` shows under ``shown_uuid``, one the
        driver made up for it. When that is so and the vGPU is of
        ``type_id``, record it as ``mdev_uuid`` (the ledger's) and return
        True; else change nothing and return False. The mdev drivers
        return False: the kernel keeps an mdev's UUID."""
        return False

    def vendor_param_keys(self, type_id):
        """The vendor parameter names this driver can set on the type."""
        return frozenset()

    def set_vendor_params(self, mdev_uuid, type_id, params):
        """Write {key: int} to a new mdev before anyone uses it."""
        raise NotImplementedError('this driver has no vendor parameters')
