"""A simulated host: its profile (``profile``), the kernel drivers' rules
(``rules``) and the driver (``driver``)."""
