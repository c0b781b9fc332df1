"""vgpu_placement.nova.takeover: moving stock Nova's vGPU allocations."""
import copy
import types

from vgpu_placement.nova import takeover

RP1, RP2, ROOT = 'rp-gpu1', 'rp-gpu2', 'rp-root'


def child(device, classes, counters=()):
    return types.SimpleNamespace(
        device=device, name='host1_' + device,
        plan=types.SimpleNamespace(classes=classes, counters=tuple(
            types.SimpleNamespace(resource_class=c) for c in counters)))


CHILDREN = {
    RP1: child('pci_0000_81_00_0', {'nvidia-35': 'CUSTOM_NVIDIA_35',
                                    'nvidia-36': 'CUSTOM_NVIDIA_36'},
               ['CUSTOM_VGPU_UNITS_NVIDIA_FRAMEBUFFER']),
    RP2: child('pci_0000_82_00_0', {'nvidia-35': 'CUSTOM_NVIDIA_35'}),
}


def consumer(**by_rp):
    return {'allocations': {rp: {'resources': dict(r), 'generation': 3}
                            for rp, r in by_rp.items()},
            'project_id': 'p', 'user_id': 'u', 'consumer_generation': 1}


def test_each_vgpu_moves_to_the_class_of_its_guests_mdev():
    allocations = {
        'vm1': consumer(**{ROOT: {'VCPU': 2}, RP1: {'VGPU': 2}}),
        'vm2': consumer(**{RP2: {'VGPU': 1}}),
    }
    assigned = {'m1': 'vm1', 'm2': 'vm1', 'm3': 'vm2', 'elsewhere': 'vm2'}
    mdevs = {'m1': ('pci_0000_81_00_0', 'nvidia-35'),
             'm2': ('pci_0000_81_00_0', 'nvidia-36'),
             'm3': ('pci_0000_82_00_0', 'nvidia-35')}
    moved, left = takeover.reshape(allocations, CHILDREN, assigned, mdevs)
    assert left == []
    assert sorted(moved) == [
        ('vm1', RP1, 'VGPU', 'CUSTOM_NVIDIA_35'),
        ('vm1', RP1, 'VGPU', 'CUSTOM_NVIDIA_36'),
        ('vm2', RP2, 'VGPU', 'CUSTOM_NVIDIA_35')]
    assert allocations['vm1']['allocations'] == {
        ROOT: {'resources': {'VCPU': 2}, 'generation': 3},
        RP1: {'resources': {'CUSTOM_NVIDIA_35': 1, 'CUSTOM_NVIDIA_36': 1},
              'generation': 3}}
    assert allocations['vm2']['allocations'][RP2]['resources'] == {
        'CUSTOM_NVIDIA_35': 1}
    # What Nova's reshape needs besides stays as it was.
    assert allocations['vm1']['consumer_generation'] == 1


def test_what_no_mdev_accounts_for_stays_where_it_was():
    allocations = {
        # Two vGPUs, one mdev in its guest; an mdev on the other GPU
        # does not account for this one.
        'vm1': consumer(**{RP1: {'VGPU': 2}}),
        # Its guest's mdev is of a type the project does not report here.
        'vm2': consumer(**{RP2: {'VGPU': 1}}),
        # No guest at all (gone from libvirt).
        'vm3': consumer(**{RP1: {'CUSTOM_OLD': 1}}),
    }
    assigned = {'m1': 'vm1', 'm9': 'vm1', 'm2': 'vm2'}
    mdevs = {'m1': ('pci_0000_81_00_0', 'nvidia-35'),
             'm9': ('pci_0000_82_00_0', 'nvidia-35'),
             'm2': ('pci_0000_82_00_0', 'nvidia-36')}
    before = copy.deepcopy(allocations)
    moved, left = takeover.reshape(allocations, CHILDREN, assigned, mdevs)
    assert moved == [('vm1', RP1, 'VGPU', 'CUSTOM_NVIDIA_35')]
    assert sorted(left) == [('vm1', RP1, 'VGPU', 1),
                            ('vm2', RP2, 'VGPU', 1),
                            ('vm3', RP1, 'CUSTOM_OLD', 1)]
    assert allocations['vm1']['allocations'][RP1]['resources'] == {
        'VGPU': 1, 'CUSTOM_NVIDIA_35': 1}
    assert allocations['vm2'] == before['vm2']
    assert allocations['vm3'] == before['vm3']


def test_a_migration_holding_for_its_instance_moves_with_its_mdev():
    allocations = {'migration-1': consumer(**{RP1: {'VGPU': 1}})}
    moved, left = takeover.reshape(
        allocations, CHILDREN, {'m1': 'vm1'},
        {'m1': ('pci_0000_81_00_0', 'nvidia-36')},
        stand_ins={'migration-1': 'vm1'})
    assert (moved, left) == ([('migration-1', RP1, 'VGPU',
                               'CUSTOM_NVIDIA_36')], [])


def test_the_projects_own_classes_are_not_moved():
    allocations = {'vm1': consumer(**{RP1: {
        'CUSTOM_NVIDIA_35': 1, 'CUSTOM_VGPU_UNITS_NVIDIA_FRAMEBUFFER': 2}})}
    before = copy.deepcopy(allocations)
    assert takeover.reshape(allocations, CHILDREN, {'m1': 'vm1'}, {
        'm1': ('pci_0000_81_00_0', 'nvidia-36')}) == ([], [])
    assert allocations == before


def test_foreign_in_use_and_nova_child_names():
    assert takeover.foreign_in_use(CHILDREN[RP1], {
        'VGPU': 2, 'CUSTOM_NVIDIA_35': 1, 'CUSTOM_OLD': 0}) == {'VGPU': 2}
    assert takeover.is_nova_vgpu_child('host1_pci_0000_81_00_0', 'host1')
    assert not takeover.is_nova_vgpu_child('host1_0000:81:00.0', 'host1')
    assert not takeover.is_nova_vgpu_child('host10_pci_0000_81_00_0',
                                           'host1')
    assert not takeover.is_nova_vgpu_child('h.x_pci_0000_81_00_0', 'hyx')
