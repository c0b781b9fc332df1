"""Shared test helpers: a project ConfigOpts built like the commands build
it."""
import pytest

# The one home of make_conf is the reusable fixtures module.
from vgpu_placement.fixtures import make_conf  # noqa: F401


@pytest.fixture
def conf_factory():
    return make_conf


@pytest.fixture(autouse=True, scope='session')
def privsep_in_process():
    """The privileged sysfs writes run in the test's own process, as in
    Nova's tests: no daemon, no root. tests/kernel/test_privsep.py starts
    a real daemon."""
    from vgpu_placement import privsep
    privsep.sysfs_pctxt.set_client_mode(False)
