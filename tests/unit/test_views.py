from vgpu_placement.cmd import views


def test_a_retired_class_in_use_shows_nothing_free():
    """Closed (reserved == total) while two are still used: FREE is 0,
    not -2."""
    data = views.provider_data([('h_pci_0000_84_00_0', {
        'uuid': 'u', 'generation': 3, 'traits': [],
        'inventories': {'CUSTOM_MDEV_A': {'total': 2, 'reserved': 2}},
        'usages': {'CUSTOM_MDEV_A': 2}})])
    [header, _rule, row] = views.provider_table(data).splitlines()
    assert header.split()[-1] == 'FREE'
    assert row.split()[-4:] == ['2', '2', '2', '0']


def test_a_window_capped_counter_says_its_free_is_the_window_s():
    data = views.provider_data([('h_pci_0000_41_00_0', {
        'uuid': 'u', 'generation': 3,
        'traits': ['CUSTOM_VGPU_PLACEMENT_WINDOW_CAPPED'],
        'inventories': {
            'CUSTOM_MDEV_NVIDIA_1145': {'total': 32, 'reserved': 0},
            'CUSTOM_VGPU_UNITS_NVIDIA_SLOTS': {'total': 32,
                                               'reserved': 30}},
        'usages': {}})])
    [_header, _rule, type_row, counter_row] = views.provider_table(
        data).splitlines()
    assert type_row.split()[-1] == '32'
    assert counter_row.split()[-3:] == ['2', '(this', 'window)']
