"""Misconfigurations stop start-up with one line naming option and fix."""
import dataclasses
import logging

import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement.conf import type_config
from vgpu_placement import drivers
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement import exceptions
from vgpu_placement.model import discovered


@pytest.fixture
def snapshot(tmp_path):
    tree = sysfs_tree.kernel_samples(tmp_path)
    tree.add_parent('0000:84:00.0', {'nvidia-35': dict(available=4),
                                     'nvidia-36': dict(available=2)})
    tree.add_parent('0000:85:00.0', {'nvidia-35': dict(available=4),
                                     'nvidia-36': dict(available=2)})
    return sysfs.SysfsDriver(make_conf(sysfs__root=str(tmp_path))).discover()


def policies(snapshot, config_text='', **options):
    # Dynamic [mdev_*] groups come from files, as operators write them.
    conf = make_conf(config_text, **options)
    return type_config.load_policies(conf, snapshot)


def error(snapshot, config_text='', **options):
    with pytest.raises(exceptions.ConfigError) as err:
        policies(snapshot, config_text, **options)
    text = str(err.value)
    assert '\n' not in text
    return text


def test_empty_list_reports_every_type_as_its_own_custom_class(snapshot):
    got = policies(snapshot)
    assert sorted(got) == snapshot.type_ids()
    assert got['mtty-2'].resource_class == 'CUSTOM_MDEV_MTTY_2'
    assert got['nvidia-35'].resource_class == 'CUSTOM_MDEV_NVIDIA_35'


def test_nova_style_one_type_defaults_to_vgpu(snapshot):
    got = policies(snapshot, devices__enabled_mdev_types=['nvidia-35'])
    assert list(got) == ['nvidia-35']
    assert got['nvidia-35'].resource_class == 'VGPU'


def test_nova_style_types_split_by_address(snapshot):
    got = policies(snapshot, '[devices]\nenabled_mdev_types = nvidia-35, '
                   'nvidia-36\n[mdev_nvidia-35]\ndevice_addresses = '
                   '0000:84:00.0\n[mdev_nvidia-36]\ndevice_addresses = '
                   '0000:85:00.0\nmdev_class = CUSTOM_B\n')
    assert got['nvidia-35'].applies_to(snapshot.parent('0000:84:00.0'))
    assert not got['nvidia-35'].applies_to(snapshot.parent('0000:85:00.0'))
    assert got['nvidia-36'].resource_class == 'CUSTOM_B'


def test_unknown_type(snapshot):
    text = error(snapshot, devices__enabled_mdev_types=['nvidia-99'])
    assert text.startswith('[devices] enabled_mdev_types:')
    assert 'nvidia-99' in text and 'mtty-1' in text


def test_same_address_under_two_types(snapshot):
    text = error(snapshot, '[mdev_nvidia-35]\ndevice_addresses = '
                 '0000:84:00.0\n[mdev_nvidia-36]\ndevice_addresses = '
                 '0000:84:00.0\n')
    assert text.startswith('[mdev_nvidia-36] device_addresses:')
    assert '[mdev_nvidia-35]' in text


@pytest.mark.parametrize('value', ['VCPU', 'custom_x', 'CUSTOM_', 'VGPU '
                                   'X', 'CUSTOM_a'])
def test_invalid_class(snapshot, value):
    text = error(snapshot, '[mdev_mtty-1]\nmdev_class = %s\n' % value)
    assert text.startswith('[mdev_mtty-1] mdev_class:')
    assert 'CUSTOM_' in text


def test_colliding_classes_on_one_parent(snapshot):
    text = error(snapshot, '[mdev_nvidia-35]\nmdev_class = VGPU\n'
                 '[mdev_nvidia-36]\nmdev_class = VGPU\n')
    assert 'mdev_class' in text and 'VGPU' in text
    assert 'device_addresses' in text          # the fix names both ways


def test_listed_types_without_addresses_do_not_collide(snapshot):
    # As in Nova: the first is the default type, the second is dropped.
    got = policies(snapshot, devices__enabled_mdev_types=['nvidia-35',
                                                          'nvidia-36'])
    assert list(got) == ['nvidia-35']


def test_default_type_is_not_reported_on_a_pinned_types_parent(snapshot):
    # Distinct classes: no collision to stop start-up, so only the reading
    # of the default type keeps it off the pinned type's GPU.
    got = policies(snapshot, '[devices]\nenabled_mdev_types = nvidia-35, '
                   'nvidia-36\n[mdev_nvidia-36]\ndevice_addresses = '
                   '0000:85:00.0\nmdev_class = CUSTOM_B\n')
    assert got['nvidia-35'].applies_to(snapshot.parent('0000:84:00.0'))
    assert not got['nvidia-35'].applies_to(snapshot.parent('0000:85:00.0'))


def test_default_type_skips_parents_claimed_by_an_unreadable_type(snapshot):
    # nvidia-99 may be on 0000:85:00.0, which this scan could not read: its
    # parent stays its own, not the default type's.
    partial = dataclasses.replace(snapshot,
                                  unreadable=frozenset(['0000:85:00.0']))
    got = policies(partial, '[devices]\nenabled_mdev_types = nvidia-35, '
                   'nvidia-99\n[mdev_nvidia-99]\ndevice_addresses = '
                   '0000:85:00.0\n')
    assert list(got) == ['nvidia-35']
    assert got['nvidia-35'].applies_to(snapshot.parent('0000:84:00.0'))
    assert not got['nvidia-35'].applies_to(snapshot.parent('0000:85:00.0'))


def test_default_type_skips_a_gpu_with_a_claimed_virtual_function():
    gpu = discovered.ParentDevice('0000:41:00.0', (), (), members=(
        '0000:41:00.4', '0000:41:00.5'))
    claimed = type_config.TypePolicy(
        'nvidia-558', 'VGPU', frozenset(),
        excluded=frozenset(['0000:41:00.5']))
    assert not claimed.applies_to(gpu)
    free = dataclasses.replace(claimed, excluded=frozenset(['0000:42:00.0']))
    assert free.applies_to(gpu)


def test_empty_list_keeps_every_type_on_every_parent(snapshot):
    # The project's extension: no default type, so nothing is claimed away.
    got = policies(snapshot, '[mdev_nvidia-36]\ndevice_addresses = '
                   '0000:84:00.0\nmdev_class = CUSTOM_B\n')
    assert got['nvidia-35'].applies_to(snapshot.parent('0000:84:00.0'))
    assert got['nvidia-35'].applies_to(snapshot.parent('0000:85:00.0'))
    assert not got['nvidia-36'].applies_to(snapshot.parent('0000:85:00.0'))


def test_explicit_same_custom_class_on_one_parent(snapshot):
    text = error(snapshot, '[mdev_mtty-1]\nmdev_class = CUSTOM_X\n'
                 '[mdev_mtty-2]\nmdev_class = CUSTOM_X\n')
    assert 'CUSTOM_X' in text and 'mtty' in text


def test_bad_address_syntax(snapshot):
    text = error(snapshot, '[mdev_mtty-1]\ndevice_addresses = ../sys\n')
    assert text.startswith('[mdev_mtty-1] device_addresses:')


def test_type_listed_twice(snapshot):
    error(snapshot, devices__enabled_mdev_types=['mtty-1', 'mtty-1'])


def test_driver_not_installed_or_invalid():
    conf = make_conf()
    with pytest.raises(exceptions.ConfigError) as err:
        drivers.load_driver('nvidia_magic', conf)
    assert str(err.value).startswith('[DEFAULT] driver:')
    assert 'simulated' in str(err.value) and 'sysfs' in str(err.value)
    with pytest.raises(exceptions.ConfigError):
        drivers.load_driver('os.system', conf)


def params(items, allowed=('frame_rate_limiter', 'disable_vnc')):
    return type_config.parse_vendor_params('nvidia-35', items,
                                           frozenset(allowed))


def test_vendor_params_are_parsed_sorted():
    assert params(['frame_rate_limiter=0', ' disable_vnc = 1 ']) == (
        ('disable_vnc', 1), ('frame_rate_limiter', 0))
    assert params(['disable_vnc=%d' % (2 ** 32 - 1)]) == (
        ('disable_vnc', 2 ** 32 - 1),)


@pytest.mark.parametrize('value', ['-1', '+1', '1_000', '1e3', '0x10', '',
                                   '\u0661', '1 0', '9' * 50,
                                   str(2 ** 32)])
def test_vendor_param_values_are_plain_unsigned_32_bit(value):
    with pytest.raises(exceptions.ConfigError) as err:
        params(['disable_vnc=%s' % value])
    text = str(err.value)
    assert text.startswith('[mdev_nvidia-35] vendor_params:')
    assert 'disable_vnc' in text and '\n' not in text


def test_vendor_param_given_twice():
    with pytest.raises(exceptions.ConfigError) as err:
        params(['disable_vnc=0', 'frame_rate_limiter=1', 'disable_vnc=1'])
    text = str(err.value)
    assert text.startswith('[mdev_nvidia-35] vendor_params:')
    assert 'disable_vnc' in text and 'twice' in text


@pytest.mark.parametrize('value', ['CUSTOM_VGPU_UNITS_MTTY',
                                   'CUSTOM_VGPU_UNITS_MBOCHS_MEMORY',
                                   'CUSTOM_VGPU_UNITS_'])
def test_a_shared_counter_class_is_not_a_type_class(snapshot, value):
    text = error(snapshot, '[mdev_mtty-1]\nmdev_class = %s\n' % value)
    assert text.startswith('[mdev_mtty-1] mdev_class:')
    assert 'CUSTOM_VGPU_UNITS_' in text


def test_a_counter_class_name_comes_from_provider_tree():
    from vgpu_placement.placement import provider_tree
    for single in (True, False):
        assert provider_tree.counter_class('mtty', 'ports', single)\
            .startswith(type_config.COUNTER_CLASS_PREFIX)


def test_unknown_type_while_a_parent_is_unreadable_is_a_warning(
        snapshot, caplog):
    partial = dataclasses.replace(snapshot,
                                  unreadable=frozenset(['0000:85:00.0']))
    with caplog.at_level(logging.WARNING, logger='vgpu_placement'):
        got = policies(partial, '[devices]\nenabled_mdev_types = nvidia-99, '
                       'mtty-1\n[mdev_nvidia-99]\ndevice_addresses = '
                       '0000:85:00.0\n')
    assert list(got) == ['mtty-1']
    assert got['mtty-1'].resource_class == 'VGPU'
    assert 'nvidia-99' in caplog.text and '0000:85:00.0' in caplog.text
    # Every parent read whole: still an error.
    test_unknown_type(snapshot)


def test_unknown_type_keeps_its_place_as_the_default_type(snapshot):
    # As in Nova, the first listed type without device_addresses is the
    # default even if no readable parent offers it: the choice does not
    # flip with what one scan could read.
    partial = dataclasses.replace(snapshot,
                                  unreadable=frozenset(['0000:85:00.0']))
    got = policies(partial, '[devices]\nenabled_mdev_types = nvidia-99, '
                   'mtty-1\n')
    assert got == {}


def test_types_whose_default_classes_clash_are_left_out_not_the_host(
        caplog):
    """A driver naming two types alike (MTTY-1 and mtty-1, both
    CUSTOM_MDEV_MTTY_1 by default): neither is reported, said once; the
    other types of the host are."""
    from vgpu_placement.model import discovered
    types = tuple(discovered.MdevType(t, t, '', 'vfio-pci', 2)
                  for t in ('MTTY-1', 'mtty-1', 'mtty-2'))
    snapshot = discovered.HostSnapshot((
        discovered.ParentDevice('mtty', types, ()),))
    for _ in range(2):
        policies = type_config.load_policies(make_conf(), snapshot)
        assert sorted(policies) == ['mtty-2']
    warned = [r.getMessage() for r in caplog.records
              if 'by default' in r.getMessage()]
    assert warned == ['types MTTY-1, mtty-1 are all reported as '
                      'CUSTOM_MDEV_MTTY_1 by default: none of them is '
                      'reported; give each its own [mdev_<type>] mdev_class']


def test_live_migratable_is_read_per_type(snapshot):
    """nova-compute's mark for VF vGPUs (nova.vf_migration); off unless
    the type's group says it."""
    found = policies(snapshot, '[mdev_nvidia-35]\nlive_migratable = true\n')
    assert found['nvidia-35'].live_migratable
    assert not found['nvidia-36'].live_migratable
