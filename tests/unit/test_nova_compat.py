"""nova.compat.missing: what a Nova release lacks of what the compute
driver relies on (no Nova needed: stand-in classes)."""
from vgpu_placement.nova import compat


class Driver:
    def _allocate_mdevs(self, allocations):
        pass

    def _guest_add_mdevs(self, guest, chosen_mdevs):
        pass

    def _get_all_assigned_mediated_devices(self, instance=None):
        pass

    def _hard_reboot(self, context, instance, network_info=None):
        pass


class Host:
    def get_hostname(self):
        pass

    get_connection = list_guests = has_min_version = get_hostname


class MigrateData:
    fields = {'source_mdev_types': None, 'target_mdevs': None,
              'pci_dev_map_src_dst': None, 'other': None}


def test_a_release_with_everything_lacks_nothing():
    assert compat.missing(Driver, Host, MigrateData) == []


def test_a_renamed_method_a_moved_parameter_and_a_field_are_named():
    class Older(Driver):
        _guest_add_mdevs = None

        def _allocate_mdevs(self, allocs):
            pass

    class OlderData:
        fields = {'source_mdev_types': None, 'target_mdevs': None}

    class OlderHost(Host):
        has_min_version = None

    assert compat.missing(Older, OlderHost, OlderData) == [
        'Older._allocate_mdevs(allocations)',
        'Older._guest_add_mdevs(guest, chosen_mdevs)',
        'OlderHost.has_min_version',
        'OlderData.pci_dev_map_src_dst']


def test_names_that_do_not_resolve_are_named_by_their_path():
    assert compat.missing_names(('os.path.join', 'os.path.nope',
                                 'json.JSONDecoder.decode',
                                 'no_such_module.thing')) == [
        'os.path.nope', 'no_such_module.thing']
