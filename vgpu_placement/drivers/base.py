"""The driver interface."""
import abc


class Driver(abc.ABC):
    """Discovers mediated devices and creates or removes them.

    Errors from create/remove are the typed MdevError subclasses of
    vgpu_placement.exceptions, one per kernel errno.
    """

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def discover(self):
        """Return a model.HostSnapshot of the host as it is now."""

    @abc.abstractmethod
    def create_mdev(self, parent, type_id, mdev_uuid):
        """Create an mdev of type_id on parent with the given UUID."""

    @abc.abstractmethod
    def remove_mdev(self, mdev_uuid):
        """Remove the mdev with this UUID."""
