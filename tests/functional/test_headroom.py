"""vgpu-placement capacity's figures against booting until NoValidHost.

For every shipped profile, and three types it reports (the first, the
middle and the last by id, to keep the default run quick), on a host of
its own: the headroom the command computes from Placement
(placement.headroom over placement.cloud) is compared with what a cloud
gets by claiming the type's flavor (flavor-spec's extra specs) again and
again, each claim realized on the host and followed by the host's
report, until Placement finds no candidate (or does not know the type's class:
a type the host reports no inventory of).
"""
import os
import uuid

import pytest

from tests.functional.conftest import placement_ini
from vgpu_placement import exceptions
from vgpu_placement import fixtures as vp_fixtures
from vgpu_placement.placement import cloud
from vgpu_placement.placement import flavor
from vgpu_placement.placement import headroom
from vgpu_placement.placement import scheduler

PROFILES = sorted(
    name[:-len('.yaml')] for name in os.listdir(os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), 'etc', 'vgpu-placement',
        'profiles')) if name.endswith('.yaml'))
# Mixed-size GPUs: the counters cap what one report window may grant
# (booting, a report after each, gets past it; the figure leaves it out).
WINDOW_CAPPED = {'nvidia-l40s-vfio-mixed'}


def boot_until_full(h, request, root, bound):
    booted = 0
    while booted <= bound:
        consumer = str(uuid.uuid4())
        try:
            scheduler.claim(h.host.client, request, consumer, 'p', 'u',
                            in_tree=root)
        except scheduler.NoValidHost:
            return booted
        except exceptions.PlacementError as e:
            if 'No such resource class' not in e.detail:
                raise
            return booted
        h.host.realize(consumer)
        h.reporter.report()
        booted += 1
    raise AssertionError('still booting after %d servers' % bound)


@pytest.mark.parametrize('profile', PROFILES)
def test_headroom_is_what_booting_until_no_valid_host_gets(
        profile, placement_db, tmp_path):
    ini = placement_ini(placement_db)
    probe = vp_fixtures.SimulatedHost(ini, profile,
                                      state_path=str(tmp_path / 'probe'))
    probe.setUp()
    desired = probe.reporter.desired_tree(probe.reporter.discover())
    types = sorted({t for c in desired.children for t in c.plan.classes})
    assert types
    types = sorted({types[0], types[len(types) // 2], types[-1]})
    said, got, now = {}, {}, {}
    for type_id in types:
        h = vp_fixtures.SimulatedHost(ini, profile,
                                      state_path=str(tmp_path / type_id))
        h.setUp()
        h.reporter.report()
        root = h.reporter.cache.root_uuid
        specs = flavor.extra_specs_for_type(desired, type_id)['extra_specs']
        request = flavor.parse_extra_specs(specs)
        gpus = cloud.read_gpus(h.host.client, in_tree=root)
        answer = headroom.headroom(request, gpus)
        said[type_id] = answer.per_host[h.name]
        now[type_id] = sum(answer.this_window.values())
        got[type_id] = boot_until_full(h, request, root,
                                       bound=4 * said[type_id] + 64)
        h.cleanUp()
    probe.cleanUp()
    assert said == got
    # A window's cap is said where, and only where, the counters bound it.
    assert any(now.values()) == (profile in WINDOW_CAPPED), now
