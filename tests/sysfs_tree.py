"""Build a sysfs tree on disk laid out as the kernel lays it out.

class/mdev_bus/<parent> is a relative symlink into devices/; each type dir
holds name, description (optional), device_api, available_instances,
create and devices/; an mdev is a directory under its parent with a
relative mdev_type link, linked from the type's devices/ and from
bus/mdev/devices/. Nothing here reacts to writes: it is a still picture.
"""
import os


class SysfsTree:

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(os.path.join(self.root, 'class', 'mdev_bus'),
                    exist_ok=True)
        os.makedirs(os.path.join(self.root, 'bus', 'mdev', 'devices'),
                    exist_ok=True)

    def device_dir(self, parent):
        if ':' in parent:
            return os.path.join(self.root, 'devices', 'pci0000:00', parent)
        return os.path.join(self.root, 'devices', 'virtual', parent, parent)

    def add_parent(self, parent, types, physfn=None):
        """types: {type_id: dict(available=N, name=..., description=...)}"""
        device = self.device_dir(parent)
        os.makedirs(os.path.join(device, 'mdev_supported_types'))
        link = os.path.join(self.root, 'class', 'mdev_bus', parent)
        os.symlink(os.path.relpath(device, os.path.dirname(link)), link)
        for type_id, attrs in types.items():
            self.add_type(parent, type_id, **attrs)
        if physfn:
            os.symlink('../' + physfn, os.path.join(device, 'physfn'))

    def link_parent(self, parent, target):
        """class/mdev_bus/<parent> pointing at target, wherever it is (a
        crafted tree; the kernel only links into devices/)."""
        os.symlink(str(target), os.path.join(self.root, 'class', 'mdev_bus',
                                             parent))

    def type_dir(self, parent, type_id):
        return os.path.join(self.device_dir(parent), 'mdev_supported_types',
                            type_id)

    def add_type(self, parent, type_id, available, name=None,
                 description=None, device_api='vfio-pci'):
        d = self.type_dir(parent, type_id)
        os.makedirs(os.path.join(d, 'devices'))
        self.write(d, 'available_instances', '%s\n' % available)
        self.write(d, 'device_api', device_api + '\n')
        self.write(d, 'create', '')
        if name is not None:
            self.write(d, 'name', name + '\n')
        if description is not None:
            self.write(d, 'description', description + '\n')

    def set_available(self, parent, type_id, value):
        self.write(self.type_dir(parent, type_id), 'available_instances',
                   '%s\n' % value)

    def add_mdev(self, parent, type_id, mdev_uuid):
        device = self.device_dir(parent)
        mdev_dir = os.path.join(device, mdev_uuid)
        os.makedirs(mdev_dir)
        os.symlink('../mdev_supported_types/' + type_id,
                   os.path.join(mdev_dir, 'mdev_type'))
        self.write(mdev_dir, 'remove', '')
        os.symlink('../../../' + mdev_uuid, os.path.join(
            self.type_dir(parent, type_id), 'devices', mdev_uuid))
        bus_link = os.path.join(self.root, 'bus', 'mdev', 'devices',
                                mdev_uuid)
        os.symlink(os.path.relpath(mdev_dir, os.path.dirname(bus_link)),
                   bus_link)
        return mdev_dir

    @staticmethod
    def write(directory, name, content):
        mode = 'wb' if isinstance(content, bytes) else 'w'
        with open(os.path.join(directory, name), mode) as f:
            f.write(content)


def kernel_samples(root):
    """The three kernel sample parents at rest, as a 6.12 kernel shows them."""
    tree = SysfsTree(root)
    tree.add_parent('mtty', {
        'mtty-1': dict(available=24, name='Single port serial'),
        'mtty-2': dict(available=12, name='Dual port serial')})
    tree.add_parent('mbochs', {
        'mbochs-small': dict(available=64, name='mbochs-small',
                             description='virtual display, 4 MB video memory'),
        'mbochs-medium': dict(available=16, name='mbochs-medium',
                              description='virtual display, 16 MB video '
                                          'memory'),
        'mbochs-large': dict(available=4, name='mbochs-large',
                             description='virtual display, 64 MB video '
                                         'memory')})
    tree.add_parent('mdpy', {
        t: dict(available=4, name=t,
                description='virtual display, %s framebuffer' % res)
        for t, res in (('mdpy-vga', '640x480'), ('mdpy-xga', '1024x768'),
                       ('mdpy-hd', '1920x1080'))})
    return tree
