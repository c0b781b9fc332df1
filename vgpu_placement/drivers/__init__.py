"""Drivers: discover mediated devices and create or remove them.

Drivers are loaded through the stevedore namespace ``vgpu_placement.drivers``.
"""
import importlib.metadata
import re

import stevedore

from vgpu_placement import exceptions

NAMESPACE = 'vgpu_placement.drivers'
_DRIVER_NAME_RE = re.compile(r'^[a-z][a-z0-9_]{0,63}$')


def available_drivers():
    # The names alone: stevedore's ExtensionManager would import every
    # driver, and what each needs, to list them.
    return sorted({ep.name for ep in importlib.metadata.entry_points(
        group=NAMESPACE)})


def load_driver(name, conf):
    """Instantiate the driver registered under ``name``.

    The name is checked before stevedore imports anything, so a config value
    can never make us import an arbitrary module.
    """
    if not _DRIVER_NAME_RE.fullmatch(name or ''):
        raise exceptions.ConfigError(
            '[DEFAULT] driver', 'invalid driver name %r' % name,
            'use one of: %s' % ', '.join(available_drivers()))
    names = available_drivers()
    if name not in names:
        raise exceptions.ConfigError(
            '[DEFAULT] driver', 'driver %r is not installed' % name,
            'use one of: %s' % ', '.join(names))
    manager = stevedore.DriverManager(
        NAMESPACE, name, invoke_on_load=True, invoke_args=(conf,))
    return manager.driver
