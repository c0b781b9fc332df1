"""Which openstack-placement runs: the checkout's own, or a series' release.

``placement-server start --release N`` runs Placement N (13 to 16, the
services of 2025.1 to 2026.2). 16 is the one the project installs
(setup.cfg's extra ``embedded``), run by the harness's own interpreter.
An older one gets a virtualenv of its own, ``.cache/placement-venv-<N>``,
holding only that release, gunicorn and psycopg2-binary, all at the
versions of its series' upper-constraints (``tools/constraints/``, the
stable branch of openstack/requirements, never loosened); the harness then
re-runs itself with that virtualenv's interpreter. Each release keeps its
own ``--dir`` (``.cache/placement-server-<N>``): a database migrated by
one release is not one an older release can serve.
"""
import hashlib
import importlib.metadata
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
CONSTRAINTS = os.path.join(CHECKOUT, 'tools', 'constraints')
# Placement major -> (series, the release installed; None: the checkout's
# own, from setup.cfg). The newest point releases on PyPI on 2026-12-07.
RELEASES = {
    13: ('2025.1', 'openstack-placement==13.0.1'),
    14: ('2025.2', 'openstack-placement==14.0.0'),
    15: ('2026.1', 'openstack-placement==15.0.0'),
    16: ('2026.2', None),
}
# From the series' constraints too; see harness.PIP_REQUIREMENTS.
SERVER_PACKAGES = ['gunicorn', 'psycopg2-binary']


class ReleaseError(Exception):
    """One line: why that release cannot run here."""


def release_dir(major):
    return os.path.join(CHECKOUT, '.cache', 'placement-server-%d' % major)


def installed_major():
    """The major version of the openstack-placement this interpreter has,
    or None."""
    try:
        return int(importlib.metadata.version(
            'openstack-placement').split('.')[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def venv_python(major):
    """The interpreter to run Placement ``major`` with, its virtualenv
    built (or rebuilt, when its inputs changed) first; this interpreter
    when it already has that release."""
    if major not in RELEASES:
        raise ReleaseError('Placement %s is not one the harness runs: %s'
                           % (major, ', '.join(map(str, sorted(RELEASES)))))
    series, pin = RELEASES[major]
    if installed_major() == major:
        return sys.executable
    if pin is None:
        raise ReleaseError(
            'Placement %d is the checkout\'s own, but %s has %s: run `%s -m '
            "pip install -e '%s[embedded]'` first" % (
                major, sys.executable,
                'openstack-placement %s' % installed_major()
                if installed_major() else 'none', sys.executable, CHECKOUT))
    venv = os.path.join(CHECKOUT, '.cache', 'placement-venv-%d' % major)
    python = os.path.join(venv, 'bin', 'python')
    constraints = os.path.join(CONSTRAINTS, '%s.txt' % series)
    with open(constraints, 'rb') as f:
        want = hashlib.sha256(f.read() + pin.encode()).hexdigest()
    stamp = os.path.join(venv, '.placement-server-stamp')
    try:
        with open(stamp) as f:
            if f.read().strip() == want:
                return python
    except FileNotFoundError:
        pass
    log_path = venv + '-install.log'
    print('placement-server: installing %s (%s upper-constraints) into %s'
          % (pin, series, venv), file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(log_path, 'w') as log:
        for cmd in ([sys.executable, '-m', 'venv', venv],
                    [python, '-m', 'pip', 'install',
                     '--disable-pip-version-check', '-c', constraints, pin]
                    + SERVER_PACKAGES):
            log.write('$ %s\n' % ' '.join(cmd))
            log.flush()
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode != 0:
                raise ReleaseError('cannot install %s into %s (%s failed); '
                                   'log: %s' % (pin, venv, cmd[2], log_path))
    with open(stamp, 'w') as f:
        f.write(want + '\n')
    return python
