"""placement.headroom: one flavor at a time, from Placement's figures."""
import pytest

from vgpu_placement import exceptions
from vgpu_placement.placement import flavor
from vgpu_placement.placement import headroom

RC, UNITS = 'CUSTOM_MDEV_A_2', 'CUSTOM_VGPU_UNITS_A'


def gpu(name, host, a_total=4, a_reserved=0, a_used=0, units=8,
        units_used=0, traits=()):
    return headroom.Gpu(
        uuid='uuid-' + name, name=name, host=host, root='root-' + host,
        inventories={RC: {'total': a_total, 'reserved': a_reserved,
                          'allocation_ratio': 1.0},
                     UNITS: {'total': units, 'reserved': 0,
                             'allocation_ratio': 1.0}},
        usages={RC: a_used, UNITS: units_used}, traits=frozenset(traits))


def request(count=1, policy='isolate', trait=None):
    specs = {}
    for i in range(1, count + 1):
        specs['resources%d:%s' % (i, RC)] = '1'
        specs['resources%d:%s' % (i, UNITS)] = '2'
        if trait:
            specs['trait%d:%s' % (i, trait)] = 'required'
    if count > 1 and policy:
        specs['group_policy'] = policy
    specs['resources:VCPU'] = '4'       # the host's: not counted
    return flavor.parse_extra_specs(specs)


def test_each_gpu_gives_what_its_scarcest_class_allows():
    gpus = [gpu('h1_a', 'h1'),                          # 4 by units
            gpu('h1_b', 'h1', a_used=1, units_used=6),  # 1 by units
            gpu('h2_a', 'h2', a_reserved=4)]            # closed
    got = headroom.headroom(request(), gpus)
    assert got.per_gpu == {'h1_a': 4, 'h1_b': 1}
    assert got.per_host == {'h1': 5, 'h2': 0}
    assert got.cloud == 5
    # The GPU already running the type comes first (the packing rule).
    assert got.next_gpu == 'h1_b'


def test_required_traits_pick_the_gpus():
    gpus = [gpu('h1_a', 'h1', traits=['CUSTOM_FAST']), gpu('h1_b', 'h1')]
    got = headroom.headroom(request(trait='CUSTOM_FAST'), gpus)
    assert got.per_gpu == {'h1_a': 4}


@pytest.mark.parametrize('counts,k,servers', [
    ([4, 4], 2, 4), ([4, 1], 2, 1), ([3, 3, 3], 2, 4), ([5], 2, 0),
    ([2, 2, 2, 2], 4, 2), ([], 2, 0)])
def test_k_vgpus_on_k_gpus(counts, k, servers):
    assert headroom.isolated(counts, k) == servers


def test_k_groups_on_one_host_use_different_gpus():
    gpus = [gpu('h1_a', 'h1'), gpu('h1_b', 'h1', units_used=6),
            gpu('h2_a', 'h2')]
    got = headroom.headroom(request(count=2), gpus)
    assert got.per_host == {'h1': 1, 'h2': 0}
    assert got.next_gpu is None


@pytest.mark.parametrize('specs,words', [
    ({'resources:VCPU': '2'}, 'asks for no vGPU'),
    ({'resources1:%s' % RC: '1', 'resources2:%s' % RC: '2',
      'group_policy': 'isolate'}, 'groups differ'),
    ({'resources1:%s' % RC: '1', 'resources2:%s' % RC: '1',
      'group_policy': 'none'}, 'without group_policy=isolate')])
def test_flavors_it_cannot_count_are_one_line(specs, words):
    with pytest.raises(exceptions.VgpuPlacementError) as caught:
        headroom.headroom(flavor.parse_extra_specs(specs), [gpu('a', 'h')])
    assert words in str(caught.value)


def test_a_window_capped_gpu_counts_its_type_class_and_says_the_window():
    capped = gpu('h1_a', 'h1', units=8, traits=[
        'CUSTOM_VGPU_PLACEMENT_WINDOW_CAPPED'])
    # The counter lets 1 more through this window; the class says 4.
    capped.inventories[UNITS]['reserved'] = 6
    got = headroom.headroom(request(), [capped])
    assert got.per_gpu == {'h1_a': 4}
    assert got.this_window == {'h1_a': 1}
    counters_only = flavor.parse_extra_specs({
        'resources1:%s' % UNITS: '2'})
    assert headroom.headroom(counters_only, [capped]).per_gpu == {
        'h1_a': 1}


def test_a_zero_amount_is_no_request():
    with pytest.raises(exceptions.VgpuPlacementError):
        headroom.headroom(flavor.parse_extra_specs(
            {'resources1:%s' % RC: '0'}), [gpu('a', 'h')])
