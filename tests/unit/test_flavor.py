"""Flavor extra specs: parsed into a Placement request, or one clear error."""
import pytest

from vgpu_placement.placement import flavor


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
    ({'resources:CUSTOM_' + 'X' * 249: '1'}, 'resources:CUSTOM_' + 'X' * 249,
     'at most 255'),
    ({'resources:VGPU': '1', 'trait:CUSTOM_' + 'X' * 249: 'required'},
     'trait:CUSTOM_' + 'X' * 249, 'at most 255'),
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
     'trait2:CUSTOM_X', 'no resources'),
    ({'hw:cpu_policy': 'dedicated'}, 'resources:...', 'no resources'),
])
def test_each_malformed_spec_names_its_key(specs, key, words):
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs(specs)
    assert err.value.key == key
    assert words in str(err.value) and '\n' not in str(err.value)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize('key', [
    'vgpu:params', 'mdev:frame_rate_limiter', 'vgpu_params',
    'vendor_params:frame_rate_limiter', 'vgpu_placement:vendor_params',
    'resources1:VGPU_PARAM'])
def test_tenants_cannot_reach_vendor_parameters(key):
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs({'resources:VGPU': '1',
                                  key: 'frame_rate_limiter=0'})
    assert 'vendor parameters' in str(err.value)


@pytest.mark.parametrize('value', ['required', 'forbidden'])
def test_global_trait_without_global_resources_is_refused(value):
    # Placement refuses traits in a group without resources; dropping the
    # trait instead would quietly give the tenant hosts without (or with)
    # it.
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs({'resources1:VGPU': '1',
                                  'trait:CUSTOM_SLOW': value})
    assert err.value.key == 'trait:CUSTOM_SLOW'
    assert 'numbered group' in str(err.value)


@pytest.mark.parametrize('key', [
    'resources_a&b:VGPU', 'resourcesX:VGPU', 'resources:', 'resources1VGPU',
    'resources1:CUSTOM_\u00c9',           # non-ASCII class
    'resources\u0661:VGPU',                # Arabic-Indic digit 1
    'trait\u0661:CUSTOM_X', 'trait1:CUSTOM_X\n', 'resources1:VGPU\n',
    'resources1\n:VGPU', 'traits:CUSTOM_X',
    'resources_' + 'A' * 64 + ':VGPU',     # Placement's suffixes: 64 at most
    'hw:\u00e9',                           # Nova's API takes ASCII keys only
], ids=lambda key: ascii(key)[:40])
def test_malformed_keys_are_refused_not_ignored(key):
    specs = {'resources1:VGPU': '1', 'trait1:CUSTOM_X': 'required'}
    specs[key] = 'required' if key.startswith('trait') else '1'
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs(specs)
    assert err.value.key == key
    assert 'malformed' in str(err.value) and '\n' not in str(err.value)


def test_other_namespaces_are_still_ignored():
    request = flavor.parse_extra_specs({
        'resources1:VGPU': '1', 'hw:cpu_policy': 'dedicated',
        'hw_video:ram_max_mb': '64', 'quota:cpu_shares': '10',
        'resources1:CUSTOM_' + 'X' * 248: '1'})
    assert request.query() == (
        'resources1=CUSTOM_%s:1,VGPU:1' % ('X' * 248))


@pytest.mark.parametrize('key,value', [
    ('resources1:VGPU', '\u00b2'),          # superscript two: isdigit()
    ('resources1:VGPU', '\u0661'),          # Arabic-Indic one: int() takes it
    ('resources1:VGPU', '2147483648'),      # over Placement's 2**31 - 1
    ('resources1:VGPU', '9' * 5000),        # int() refuses > 4300 digits
    ('resources1:VGPU', '+1'),
    ('resources2147483648:VGPU', '1'),      # group number over 2**31 - 1
    ('resources' + '1' * 65 + ':VGPU', '1'),
], ids=lambda text: ascii(text)[:30])
def test_amounts_and_group_numbers_within_placements_limits(key, value):
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs({key: value})
    assert err.value.key == key
    assert len(str(err.value)) < 200


def test_largest_amount_and_group_number_are_taken():
    request = flavor.parse_extra_specs(
        {'resources2147483647:VGPU': '2147483647'})
    assert request.query() == 'resources2147483647=VGPU:2147483647'


@pytest.mark.parametrize('specs', [
    {'resources1:CUSTOM_' + 'A' * 100000: '1'},
    {'resources1:' + 'a' * 100000: '1'},
    {'resources1:VGPU': '1' * 100000},
    {'resources1:VGPU': '1', 'trait1:CUSTOM_X': 'x' * 100000},
    {'resources1:VGPU': '1', 'group_policy': 'x' * 100000},
    {'x' * 100000 + '\u00e9': '1'},
    dict({'resources1:VGPU': '1'}, **{'hw:k%d' % i: '1'
                                      for i in range(20000)}),
], ids=['class', 'lower-class', 'amount', 'trait-value', 'policy',
        'foreign-key', 'count'])
def test_error_messages_stay_short_whatever_the_input(specs):
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs(specs)
    assert len(str(err.value)) < 200, str(err.value)[:300]


def test_too_many_extra_specs_are_refused():
    specs = {'resources1:VGPU': '1'}
    specs.update(('hw:k%d' % i, '1') for i in range(flavor.MAX_EXTRA_SPECS
                                                    - 1))
    flavor.parse_extra_specs(specs)                 # the limit itself: ok
    specs['hw:one_more'] = '1'
    with pytest.raises(flavor.BadExtraSpec) as err:
        flavor.parse_extra_specs(specs)
    assert 'at most %d' % flavor.MAX_EXTRA_SPECS in str(err.value)


def test_quote_cuts_long_text():
    assert flavor.quote('abc') == "'abc'"
    long = flavor.quote('\U0010ffff' * 100)
    assert len(long) <= 60 and long.endswith('...')
