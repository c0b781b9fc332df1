"""placement.shapes: where an answer's shape differs, said in a phrase."""
import pytest

from vgpu_placement.placement import shapes

RP = '4e8e5957-649f-477b-9e5b-f1f75b21c03c'


@pytest.mark.parametrize('answer, wrong', [
    ({'usages': {'VGPU': 1}}, None),
    ({'usages': {}}, None),
    ({}, 'no "usages"'),
    ({'usages': []}, 'a list, not an object at usages'),
    ({'usages': {'VGPU': '1'}}, 'a string, not an integer at usages.VGPU'),
    ({'usages': {'VGPU': True}}, 'a boolean, not an integer at usages.VGPU'),
    ({'usages': {'VGPU': None}}, 'null, not an integer at usages.VGPU'),
])
def test_a_mapping_of_counts(answer, wrong):
    assert shapes.check(answer, shapes.USAGES) == wrong


def test_optional_keys_may_be_missing_or_null_but_not_wrong():
    held = {'allocations': {RP: {'resources': {'VGPU': 1}}},
            'consumer_generation': 3, 'project_id': 'p', 'user_id': 'u'}
    assert shapes.check(held, shapes.CONSUMER_ALLOCATIONS) is None
    # A consumer Placement does not know: no generation, no project.
    assert shapes.check({'allocations': {}},
                        shapes.CONSUMER_ALLOCATIONS) is None
    assert shapes.check(dict(held, consumer_generation=None),
                        shapes.CONSUMER_ALLOCATIONS) is None
    assert shapes.check(dict(held, consumer_generation='3'),
                        shapes.CONSUMER_ALLOCATIONS) == (
        'a string, not an integer at consumer_generation')
    assert shapes.check(dict(held, allocations={RP: []}),
                        shapes.CONSUMER_ALLOCATIONS) == (
        'a list, not an object at allocations.%s' % RP)


def test_lists_are_checked_item_by_item_and_extra_keys_are_fine():
    good = {'uuid': RP, 'name': 'h', 'generation': 1,
            'parent_provider_uuid': None, 'links': []}
    assert shapes.check({'resource_providers': [good]},
                        shapes.PROVIDERS) is None
    assert shapes.check({'resource_providers': [good, ['x']]},
                        shapes.PROVIDERS) == (
        'a list, not an object at resource_providers[1]')
    assert shapes.check({'resource_providers': [dict(good, name=None)]},
                        shapes.PROVIDERS) == (
        'null, not a string at resource_providers[0].name')
    # A ratio is a number: an integer is one too.
    assert shapes.check(1, float) is None and shapes.check(1.5, float) is None
    assert shapes.check(True, float) is not None
