"""Flavor extra specs: parsed into a Placement request, or one clear error."""
import pytest

from vgpu_placement import flavor


def test_granular_groups_traits_and_policy_make_the_query():
    request = flavor.parse_extra_specs({
        'resources:VCPU': '2',
        'resources1:CUSTOM_MDEV_MTTY_2': '1',
        'resources1:CUSTOM_VGPU_UNITS_MTTY': '2',
        'trait1:CUSTOM_MDEV_TYPE_MTTY_2': 'required',
        'resources_GPU:VGPU': '1',
        'trait_GPU:HW_GPU_MAX_DISPLAY_HEADS_4': 'required',
        'trait_GPU:CUSTOM_SLOW': 'forbidden',
        'group_policy': 'isolate',
        'hw:cpu_policy': 'dedicated',          # not ours: ignored
    })
    assert request.query(limit=5) == (
        'resources=VCPU:2'
        '&resources1=CUSTOM_MDEV_MTTY_2:1,CUSTOM_VGPU_UNITS_MTTY:2'
        '&required1=CUSTOM_MDEV_TYPE_MTTY_2'
        '&resources_GPU=VGPU:1'
        '&required_GPU=HW_GPU_MAX_DISPLAY_HEADS_4,!CUSTOM_SLOW'
        '&group_policy=isolate&limit=5')


@pytest.mark.parametrize('specs,key,words', [
    ({'resources:VGPUS': '1'}, 'resources:VGPUS', 'unknown resource class'),
    ({'resources:custom_x': '1'}, 'resources:custom_x',
     'unknown resource class'),
    ({'resources:VGPU': 'one'}, 'resources:VGPU', 'not a whole number'),
    ({'resources:VGPU': '-1'}, 'resources:VGPU', 'not a whole number'),
    ({'resources:VGPU': '1', 'trait:HW_GPU_WINGS': 'required'},
     'trait:HW_GPU_WINGS', 'unknown trait'),
    ({'resources:VGPU': '1', 'trait:CUSTOM_X': 'preferred'},
     'trait:CUSTOM_X', 'required or forbidden'),
    ({'resources1:VGPU': '1', 'resources2:VGPU': '1'}, 'group_policy',
     'required with more than one'),
    ({'resources1:VGPU': '1', 'group_policy': 'spread'}, 'group_policy',
     'isolate or none'),
    ({'resources1:VGPU': '1', 'trait2:CUSTOM_X': 'required'},
     'trait2:...', 'no resources'),
    ({'hw:cpu_policy': 'dedicated'}, 'resources:...', 'no resources'),
])
def test_each_malformed_spec_names_its_key(specs, key, words):
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs(specs)
    assert err.value.key == key
    assert words in str(err.value) and '\n' not in str(err.value)


@pytest.mark.parametrize('key', [
    'vgpu:params', 'mdev:frame_rate_limiter', 'vgpu_params',
    'vendor_params:frame_rate_limiter', 'vgpu_placement:vendor_params',
    'resources1:VGPU_PARAM'])
def test_tenants_cannot_reach_vendor_parameters(key):
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs({'resources:VGPU': '1',
                                  key: 'frame_rate_limiter=0'})
    assert 'vendor parameters' in str(err.value)
