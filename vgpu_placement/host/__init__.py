"""The host side: this host's mdevs, made, freed, adopted and reconciled
from the allocations Placement holds (``mdev_manager.MdevManager``)."""
