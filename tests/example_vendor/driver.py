"""The ACME driver: an ACME host is a JSON file, standing for the vendor's
own interface (``$state_path/acme-host.json``: {vGPU UUID: [GPU, type]}).

A real driver reads and writes the vendor's sysfs files the same way: read
with ``vgpu_placement.sysfs.read``, check every path written with
``vgpu_placement.sysfs.paths``, write through a privileged entry point, and
raise the typed errors of ``vgpu_placement.exceptions`` errno for errno.
"""
import os

from tests.example_vendor import capacity as acme_capacity
from vgpu_placement.drivers import base
from vgpu_placement import exceptions
from vgpu_placement.model import discovered
from vgpu_placement import state_file

GPUS = ('acme0', 'acme1')
NAMES = {'acme-small': 'ACME A1-1', 'acme-large': 'ACME A1-4'}


class AcmeDriver(base.Driver):
    """ACME A1 GPUs, each a parent of its own."""

    def __init__(self, conf):
        super().__init__(conf)
        self.path = os.path.join(conf.state_path, 'acme-host.json')

    def _vgpus(self):
        return state_file.read_json(self.path, {})

    def _room(self, vgpus, gpu):
        """{type: how many more fit} on one GPU, by the vendor's rule."""
        mine = [t for g, t in vgpus.values() if g == gpu]
        slices = acme_capacity.SLICES - sum(acme_capacity.COSTS[t]
                                            for t in mine)
        left = acme_capacity.MAX_VGPUS - len(mine)
        return {t: max(0, min(left, slices // cost))
                for t, cost in acme_capacity.COSTS.items()}

    def discover(self):
        vgpus = self._vgpus()
        parents = []
        for gpu in GPUS:
            room = self._room(vgpus, gpu)
            types = tuple(discovered.MdevType(
                t, NAMES[t], 'slices=%d' % acme_capacity.COSTS[t],
                'vfio-pci', room[t]) for t in sorted(NAMES))
            mdevs = tuple(sorted(
                (discovered.Mdev(u, t, g) for u, (g, t) in vgpus.items()
                 if g == gpu), key=lambda m: m.uuid))
            parents.append(discovered.ParentDevice(gpu, types, mdevs))
        return discovered.HostSnapshot(parents=tuple(parents))

    def create_mdev(self, parent, type_id, mdev_uuid):
        mdev_uuid = base.checked_create(parent, type_id, mdev_uuid)
        target = '%s of type %s on %s' % (mdev_uuid, type_id, parent)
        with state_file.locked(self.path):
            vgpus = self._vgpus()
            if mdev_uuid in vgpus:
                raise exceptions.MdevExists('create', target)
            if parent not in GPUS or type_id not in NAMES:
                raise exceptions.InvalidMdevRequest('create', target)
            if not self._room(vgpus, parent)[type_id]:
                raise exceptions.NoCapacity('create', target)
            vgpus[mdev_uuid] = [parent, type_id]
            state_file.write_json(self.path, vgpus)

    def remove_mdev(self, mdev_uuid):
        mdev_uuid = base.checked_uuid(mdev_uuid, 'remove', 'vGPU')
        with state_file.locked(self.path):
            vgpus = self._vgpus()
            if vgpus.pop(mdev_uuid, None) is None:
                raise exceptions.MdevNotFound('remove', 'vGPU ' + mdev_uuid)
            state_file.write_json(self.path, vgpus)

    def boot_id(self):
        return 'acme-boot'

    def model_detectors(self):
        return (acme_capacity.detect,)
