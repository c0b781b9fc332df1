"""placement.packing: the one packing rule of the claim path and of
nova-scheduler's filter and weigher."""
from vgpu_placement.placement import packing

ROOT = 'root'


def summaries(**gpus):
    """provider_summaries with a root and GPUs {name: {class: (cap, used)}}."""
    found = {ROOT: {'resources': {'VCPU': {'capacity': 64, 'used': 60}},
                    'traits': [], 'root_provider_uuid': ROOT}}
    for name, classes in gpus.items():
        found[name] = {'resources': {rc: {'capacity': c, 'used': u}
                                     for rc, (c, u) in classes.items()},
                       'traits': ['CUSTOM_VGPU_PLACEMENT_MANAGED'],
                       'root_provider_uuid': ROOT}
    return packing.providers_from_summaries(found)


def test_the_gpu_running_the_type_first_then_the_fullest():
    providers = summaries(
        empty={'CUSTOM_A': (8, 0)}, running={'CUSTOM_A': (8, 6)},
        half={'CUSTOM_A': (8, 4)})
    ranked = sorted(['empty', 'running', 'half'], key=lambda rp: (
        packing.score({rp: {'CUSTOM_A': 1}, ROOT: {'VCPU': 1}}, providers)))
    assert ranked == ['running', 'half', 'empty']


def test_counters_and_the_roots_classes_are_not_fullness():
    # 'capped' looks full by its counter only; the root's VCPU is the
    # same for both: neither changes the order the type class gives.
    providers = summaries(
        capped={'CUSTOM_A': (8, 0), 'CUSTOM_VGPU_UNITS_X': (2, 2)},
        other={'CUSTOM_A': (4, 0), 'CUSTOM_VGPU_UNITS_X': (32, 0)})
    score = {rp: packing.score({rp: {'CUSTOM_A': 1,
                                     'CUSTOM_VGPU_UNITS_X': 1},
                                ROOT: {'VCPU': 1}}, providers)
             for rp in ('capped', 'other')}
    assert score['other'] < score['capped']
    assert score['other'] == (0, 3)


def test_malformed_summaries_are_left_out():
    found = packing.providers_from_summaries({
        'ok': {'resources': {'CUSTOM_A': {'capacity': 1, 'used': 0}},
               'root_provider_uuid': 'r'},
        'no-resources': {'traits': []},
        'bad-number': {'resources': {'CUSTOM_A': {'capacity': 'x',
                                                  'used': 0}}},
        'not-a-dict': 42})
    assert list(found) == ['ok']


def test_only_vgpu_requests_are_weighed():
    providers = summaries(gpu={'CUSTOM_A': (8, 0)})
    assert packing.weighs({'gpu': {'CUSTOM_A': 1}}, providers)
    assert not packing.weighs({ROOT: {'VCPU': 1}}, providers)
    # A provider the summaries lack: its custom classes are weighed.
    assert packing.weighs({'unknown': {'CUSTOM_A': 1}}, {})
    assert not packing.weighs({'unknown': {'CUSTOM_VGPU_UNITS_X': 1}}, {})
