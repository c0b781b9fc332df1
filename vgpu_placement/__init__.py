"""Report every mediated-device type on a host to OpenStack Placement."""
