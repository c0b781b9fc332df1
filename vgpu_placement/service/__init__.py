"""The agent's service: its loop (``loop``), the kernel's uevents
(``uevents``) and when a host read may be reused (``scan_gate``)."""
