"""The runtime floors hold in the oldest Nova series supported.

The project is installed into nova-compute's own environment. A floor
above what that series' upper-constraints pin (tools/constraints/) makes
a plain ``pip install`` there upgrade a library Nova pinned; the Nova
tier's ``pip check`` finds it too, but only where that tier runs.
"""
import os

from packaging import requirements
from packaging import utils
from packaging import version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
OLDEST_SERIES = '2025.1'


def _lines(path):
    with open(path) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                yield line


def pinned(series):
    """{normalized name: version} of a series' upper-constraints."""
    pins = {}
    for line in _lines(os.path.join(ROOT, 'tools', 'constraints',
                                    '%s.txt' % series)):
        if '===' in line and ';' not in line:
            name, value = line.split('===', 1)
            pins[utils.canonicalize_name(name)] = value.strip()
    return pins


def test_every_runtime_requirement_admits_the_oldest_series_pin():
    pins = pinned(OLDEST_SERIES)
    refused = []
    for line in _lines(os.path.join(ROOT, 'requirements.txt')):
        req = requirements.Requirement(line)
        pin = pins.get(utils.canonicalize_name(req.name))
        assert pin is not None, '%s is not in %s upper-constraints' % (
            req.name, OLDEST_SERIES)
        if not req.specifier.contains(version.Version(pin)):
            refused.append('%s (%s pins %s)' % (line, OLDEST_SERIES, pin))
    assert refused == []
