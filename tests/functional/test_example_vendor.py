"""A vendor added the way doc/source/contributor/adding-a-driver.rst says:
its own package (tests/example_vendor) and one entry point, nothing else.
The project then discovers, reports, claims, realizes and releases its
vGPUs, with the capacity rule the vendor's driver contributes."""
import logging
import uuid

import pytest
import stevedore

from tests.conftest import make_conf
from tests.functional.conftest import placement_ini
from tests.functional.conftest import tree_in_placement
from vgpu_placement import drivers
from vgpu_placement.placement import flavor
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone


@pytest.fixture
def acme_installed(tmp_path, monkeypatch):
    """The entry point a vendor's setup.cfg would declare, as pip
    installs it: a dist-info folder on the path."""
    site = tmp_path / 'site'
    info = site / 'acme_vgpu-1.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: acme-vgpu\nVersion: 1.0\n')
    (info / 'entry_points.txt').write_text(
        '[vgpu_placement.drivers]\n'
        'acme = tests.example_vendor.driver:AcmeDriver\n')
    monkeypatch.syspath_prepend(str(site))
    # stevedore keeps each namespace's entry points for the life of the
    # process: one installed before the process starts is seen; this one
    # comes after other tests loaded drivers here.
    monkeypatch.setattr(stevedore.ExtensionManager, 'ENTRY_POINT_CACHE', {})
    assert 'acme' in drivers.available_drivers()


def offers(placement, host, gpu, type_id, desired):
    """How many more of ``type_id`` Placement can grant on ``gpu`` now
    (its flavor's classes, counters included)."""
    spec = flavor.extra_specs_for_type(desired, type_id)
    [group] = flavor.parse_extra_specs(spec['extra_specs']).groups
    rp = tree_in_placement(placement, host)[
        provider_tree.provider_name(host, gpu)]
    return provider_tree.grantable(rp['inventories'], rp['usages'],
                                   group.resources)


def test_a_vendor_package_and_an_entry_point_are_all_it_takes(
        acme_installed, tmp_path, host, placement_db, placement, caplog):
    # The logger's own level: a command run earlier in this process may
    # have set vgpu_placement's to WARN.
    caplog.set_level(logging.INFO, logger='vgpu_placement')
    conf = make_conf(placement_ini(placement_db), driver='acme', host=host,
                     state_path=str(tmp_path / 'state'))
    reporter = standalone.reporter_for(conf)
    manager = standalone.manager_for(reporter)
    desired = reporter.report().desired
    # The vendor's rule, not what the counts suggest: 4 smalls or 2
    # larges on an empty GPU.
    assert 'capacity of acme0: pool model (ACME A1 slices)' in caplog.text
    assert offers(placement, host, 'acme0', 'acme-small', desired) == 4
    assert offers(placement, host, 'acme0', 'acme-large', desired) == 2
    spec = flavor.extra_specs_for_type(desired, 'acme-large')
    large = str(uuid.uuid4())
    scheduler.claim(manager.client, flavor.parse_extra_specs(
        spec['extra_specs']), large, 'p', 'u',
        in_tree=reporter.cache.root_uuid)
    [done] = manager.realize(large)
    assert (done.type_id, done.parent) in (('acme-large', 'acme0'),
                                           ('acme-large', 'acme1'))
    gpu = done.parent
    assert reporter.driver.discover().parent(gpu).mdevs[0].uuid == \
        done.uuid
    # One large holds 4 of the 8 slices and 1 of the 4 vGPUs: 3 smalls
    # left (the counts alone would have said 2), 1 large.
    assert offers(placement, host, gpu, 'acme-small', desired) == 3
    assert offers(placement, host, gpu, 'acme-large', desired) == 1
    assert manager.release(large) == ([done.uuid], True)
    assert reporter.driver.discover().mdevs() == []
    assert offers(placement, host, gpu, 'acme-small', desired) == 4
