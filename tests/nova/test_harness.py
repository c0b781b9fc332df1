"""The harness itself, with Nova's stock libvirt driver.

Proves that a server booted through Nova's API gets an mdev on the fake
host and a VGPU allocation in Placement, and what delete leaves behind.
"""
import os_resource_classes as orc

from tests.nova import base

GPU = '0000:81:00.0'


class HarnessTest(base.NovaVGPUTestCase):

    def test_boot_and_delete_one_vgpu_with_stock_driver(self):
        self.enable_nova_mdev_types({'nvidia-11': [GPU]})
        self.start_vgpu_compute(
            'host1', [base.independent_gpu(GPU, {'nvidia-11': 4})])
        gpu_rp = self._get_provider_uuid_by_name('host1_pci_0000_81_00_0')
        self.assertEqual(
            4, self._get_provider_inventory(gpu_rp)[orc.VGPU]['total'])

        server = self.boot_vgpu_server({'resources:VGPU': '1'})

        mdevs = self.host_mdevs('host1')
        self.assertEqual(1, len(mdevs), mdevs)
        (mdev_uuid, mdev), = mdevs.items()
        self.assertEqual((GPU, 'nvidia-11'), (mdev['parent'], mdev['type']))
        # Nova 34 defines the mdev and sets autostart (_create_mdev).
        self.assertEqual((True, True), (mdev['defined'], mdev['autostart']))
        self.assertEqual([mdev_uuid], self.guest_mdevs('host1', server['id']))
        self.assertEqual(
            3, self.available_instances('host1', GPU)['nvidia-11'])
        allocations = self.server_allocations(server['id'])
        self.assertEqual({orc.VGPU: 1}, allocations[gpu_rp])
        self.assertEqual(1, self._get_provider_usages(gpu_rp)[orc.VGPU])

        self._delete_server(server)

        self.assertEqual({}, self.server_allocations(server['id']))
        self.assertEqual(0, self._get_provider_usages(gpu_rp)[orc.VGPU])
        self.assertEqual([], self.guest_mdevs('host1', server['id']))
        # Stock Nova never removes an mdev: it stays on the host, unused,
        # for the next server (the project's driver must free it).
        self.assertEqual([mdev_uuid], list(self.host_mdevs('host1')))
        self.assertEqual(
            {}, self.computes['host1'].driver
            ._get_all_assigned_mediated_devices())
