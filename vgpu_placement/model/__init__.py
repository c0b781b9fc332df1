"""Capacity models: pure functions of what a parent shows, no I/O.

A model answers one question for a parent device: given how many mdevs of
each type are consumed (created, or granted by Placement and not created
yet), how many more of each type can still be created? ``base.Model`` is
the protocol; one module per model (``independent``, ``pool``,
``exclusive``; a vendor's own live with its driver, as NVIDIA's
mixed-size model in ``drivers/nvidia/mixed.py``); ``detect`` chooses one
per parent through a chain of detectors.
"""
