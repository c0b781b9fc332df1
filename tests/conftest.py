"""Shared test helpers: a project ConfigOpts built like the commands build it."""
import pytest

# The one home of make_conf is the reusable fixtures module.
from vgpu_placement.fixtures import make_conf  # noqa: F401


@pytest.fixture
def conf_factory():
    return make_conf
