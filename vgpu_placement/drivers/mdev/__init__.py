"""The kernel's mdev bus, read from sysfs (``sysfs``) or through libvirt's
node-device API (``libvirt``)."""
