"""nova.vf_migration: whether a VF vGPU may live-migrate, and which vGPU
of the destination takes each of the source's (no Nova needed)."""
from vgpu_placement.conf import type_config
from vgpu_placement.host import facts
from vgpu_placement.nova import vf_migration

VF_A, VF_B = '0000:41:00.4', '0000:41:00.5'
MDEV = '3c1b6a3e-5d2f-4b7a-9c0e-1f2a3b4c5d6e'


def policy(type_id, live_migratable):
    return type_config.TypePolicy(type_id, 'CUSTOM_X', frozenset(),
                                  live_migratable=live_migratable)


def test_a_type_not_marked_is_refused_naming_the_side_and_the_type():
    policies = {'nvidia-1150': policy('nvidia-1150', True),
                'nvidia-1152': policy('nvidia-1152', False)}
    reason = vf_migration.refusal('srv', ['nvidia-1150', 'nvidia-1152'],
                                  policies, True, 'destination')
    assert 'of type nvidia-1152, not marked live_migratable in the ' \
        'destination host' in reason
    assert 'nvidia-1150' not in reason
    # A type this host does not report at all is not migratable either.
    assert 'nvidia-9' in vf_migration.refusal('srv', ['nvidia-9'], policies,
                                              True, 'source')


def test_old_libvirt_or_qemu_is_refused_when_every_type_is_marked():
    policies = {'nvidia-1150': policy('nvidia-1150', True)}
    assert vf_migration.refusal('srv', ['nvidia-1150'], policies, True,
                                'source') is None
    reason = vf_migration.refusal('srv', ['nvidia-1150'], policies, False,
                                  'source')
    assert 'libvirt 10.0.0 and QEMU 8.2.2 or newer' in reason


def test_no_vf_no_refusal():
    assert vf_migration.refusal('srv', [], {}, False, 'source') is None


def realized(uuid, type_id, parent):
    return facts.Realized(uuid, type_id, '0000:41:00.0', parent)


def test_each_source_vgpu_pairs_with_one_of_its_type_and_kind():
    done = [realized('u-vf-b', 'nvidia-1150', VF_B),
            realized('u-mdev', 'nvidia-1150', '0000:41:00.0'),
            realized('u-vf-a', 'nvidia-1150', '0000:41:00.6')]
    gets_parent = {VF_B, '0000:41:00.6'}.__contains__
    mdevs, vfs = vf_migration.pair(
        {VF_A: 'nvidia-1150', '0000:41:00.7': 'nvidia-1150',
         MDEV: 'nvidia-1150'}, done, gets_parent)
    assert mdevs == {MDEV: 'u-mdev'}
    assert sorted(vfs) == [VF_A, '0000:41:00.7']
    assert sorted(vfs.values()) == [VF_B, '0000:41:00.6']


def test_a_source_vgpu_without_a_match_pairs_nothing():
    done = [realized('u', 'nvidia-1152', VF_B)]
    assert vf_migration.pair({VF_A: 'nvidia-1150'}, done,
                             lambda parent: True) is None
    # Same type, but an mdev here cannot take a VF's place.
    done = [realized('u', 'nvidia-1150', '0000:41:00.0')]
    assert vf_migration.pair({VF_A: 'nvidia-1150'}, done,
                             lambda parent: False) is None
