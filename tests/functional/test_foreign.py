"""Mdevs the project did not create (mdevctl, an operator, another agent)
are consumed capacity, never the realization of a claim (issue 10 §1)."""
import uuid

import pytest

from tests.functional.test_host import claim_here
from vgpu_placement.placement import flavor
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone


def new():
    return str(uuid.uuid4())


def request_for(h, type_id):
    desired = h.tree.reporter.desired_tree(h.tree.reporter.discover())
    return flavor.parse_extra_specs(flavor.extra_specs_for_type(
        desired, type_id)['extra_specs'])


def claim_until_refused(h, type_ids):
    """Claim the types in turn, the host reporting between claims and
    never realizing, until every type is refused; the consumers."""
    granted, refused = [], set()
    while refused != set(type_ids):
        for type_id in type_ids:
            if type_id in refused:
                continue
            consumer = new()
            try:
                claim_here(h, request_for(h, type_id), consumer)
            except scheduler.NoValidHost:
                refused.add(type_id)
                continue
            granted.append(consumer)
            h.tree.reporter.report()
    return granted


@pytest.mark.parametrize('profile,parent,foreign_types,claimed', [
    # 22 of mtty's 24 ports left by a hand-made mtty-2.
    ('kernel-samples', 'mtty', ['mtty-2'], ['mtty-1', 'mtty-2']),
    # mbochs' video memory, with one medium of another owner.
    ('kernel-samples', 'mbochs', ['mbochs-medium'],
     ['mbochs-small', 'mbochs-medium']),
    # An equal-size card holding two 2 GB vGPUs of another owner: only
    # 2 GB types fit, six more of them.
    ('nvidia-t4', '0000:84:00.0', ['nvidia-231', 'nvidia-231'],
     ['nvidia-231', 'nvidia-223']),
])
def test_claims_never_take_a_foreign_mdev_for_their_own(
        sim_conf, profile, parent, foreign_types, claimed):
    h = standalone.manager_for(standalone.reporter_for(sim_conf(profile)))
    for type_id in foreign_types:
        h.driver.create_mdev(parent, type_id, new())
    h.tree.reporter.report()
    granted = claim_until_refused(h, claimed)
    # Every claim Placement granted is realized on the host: none late.
    for consumer in granted:
        h.realize(consumer)
    # And the parent is then really full for what was claimed.
    raw = h.driver.discover().parent(parent)
    assert all(raw.type(t).available_instances == 0 for t in claimed)
