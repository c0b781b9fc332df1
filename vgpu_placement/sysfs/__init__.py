"""sysfs, read safely (``read``) and written only at checked paths
(``paths``)."""
