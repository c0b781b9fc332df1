"""A sysfs tree of NVIDIA's vendor-specific VFIO layout, on disk.

bus/pci/devices/<addr> links into devices/pci0000:00/<addr>; each virtual
function (VF) has a physfn link and nvidia/ with creatable_vgpu_types
(header plus "%-5d : %s" lines, as the driver prints them),
current_vgpu_type and placement_id. The files are real; what the kernel
module does when current_vgpu_type is written is faked by FakeModule,
with the rules of the simulated driver (vfio_where) and the errnos of the
R525 source: kstrtol failure EINVAL, a type on a busy VF or 0 on a free
one EPERM, a type the GPU cannot take EIO.
"""
import errno
import os

from vgpu_placement.drivers.simulated import rules as sim_rules

HEADER = 'ID    : vGPU Name\n'


def creatable_text(types):
    """types: [(ID, name)] -> the file's exact text."""
    return HEADER + ''.join('%-5d : %s\n' % (i, n) for i, n in types)


class VfioTree:

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(os.path.join(self.root, 'bus', 'pci', 'devices'),
                    exist_ok=True)

    def device_dir(self, address):
        return os.path.join(self.root, 'devices', 'pci0000:00', address)

    def add_device(self, address, ids=('0x10de', '0x26b9')):
        """A PCI device; ``ids``: its vendor and device files (the fake's
        own: NVIDIA and an L40S-like product)."""
        d = self.device_dir(address)
        os.makedirs(d, exist_ok=True)
        for name, value in zip(('vendor', 'device'), ids):
            with open(os.path.join(d, name), 'w') as f:
                f.write(value + '\n')
        link = os.path.join(self.root, 'bus', 'pci', 'devices', address)
        if not os.path.islink(link):
            os.symlink(os.path.relpath(d, os.path.dirname(link)), link)
        return d

    def add_gpu(self, pf, vfs, creatable):
        """A PF with VFs, each listing creatable (text) and free."""
        self.add_device(pf)
        for vf in vfs:
            d = self.add_device(vf)
            os.symlink('../' + pf, os.path.join(d, 'physfn'))
            os.makedirs(os.path.join(d, 'nvidia'))
            self.write(vf, 'creatable_vgpu_types', creatable)
            self.write(vf, 'current_vgpu_type', '0\n')

    def write(self, vf, name, text):
        with open(os.path.join(self.device_dir(vf), 'nvidia', name),
                  'w') as f:
            f.write(text)

    def read(self, vf, name):
        with open(os.path.join(self.device_dir(vf), 'nvidia', name)) as f:
            return f.read()


class FakeModule:
    """The kernel module's side of current_vgpu_type writes, for one GPU
    described by a simulated-driver profile entry (a vfio* rule)."""

    def __init__(self, tree, spec, vfs):
        self.tree, self.spec, self.vfs = tree, spec, list(vfs)
        self.vgpus = {}          # vf -> {'type', 'placement', 'gi'}
        self.refresh()

    def refresh(self):
        """Every VF lists what the GPU can take now (the RM's list)."""
        vgpus = list(self.vgpus.values())
        text = creatable_text(
            (int(t.id.split('-')[1]), t.name) for t in self.spec.types
            if sim_rules.vfio_where(self.spec, vgpus, t) is not None)
        for vf in self.vfs:
            self.tree.write(vf, 'creatable_vgpu_types', text)

    def owns(self, path):
        real = os.path.realpath(path)
        return any(real == os.path.realpath(os.path.join(
            self.tree.device_dir(vf), 'nvidia', 'current_vgpu_type'))
            for vf in self.vfs)

    def store(self, path, data):
        """current_vgpu_type_store(): returns len(data) or raises."""
        vf = os.path.basename(os.path.dirname(os.path.dirname(
            os.path.realpath(path))))
        try:
            value = int(data.decode().strip(), 10)
        except ValueError:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if value == 0:
            if vf not in self.vgpus:
                raise OSError(errno.EPERM, os.strerror(errno.EPERM))
            del self.vgpus[vf]
            self.tree.write(vf, 'current_vgpu_type', '0\n')
        else:
            if vf in self.vgpus:
                raise OSError(errno.EPERM, os.strerror(errno.EPERM))
            type_spec = self.spec.type('nvidia-%d' % value)
            where = type_spec and sim_rules.vfio_where(
                self.spec, list(self.vgpus.values()), type_spec)
            if not where:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            self.vgpus[vf] = {'type': type_spec.id, 'placement': where[0],
                              'gi': where[1]}
            self.tree.write(vf, 'current_vgpu_type', '%d\n' % value)
            if where[0] is not None:
                self.tree.write(vf, 'placement_id', '%d\n' % where[0])
        self.refresh()
        return len(data)

    def install(self, monkeypatch):
        """Route os.write on this GPU's current_vgpu_type to store()."""
        real_write = os.write

        def write(fd, data):
            try:
                path = os.readlink('/proc/self/fd/%d' % fd)
            except OSError:
                path = ''
            if path and self.owns(path):
                return self.store(path, data)
            return real_write(fd, data)
        monkeypatch.setattr(os, 'write', write)
