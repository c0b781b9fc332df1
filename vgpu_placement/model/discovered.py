"""The immutable host snapshot every driver's discover() returns."""
import dataclasses
import re

# Parent device names written into sysfs paths must match one of these.
PCI_ADDRESS_RE = re.compile(r'^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$')
# Virtual parents (mtty, mbochs, ...) and type ids: what the kernel builds
# from driver strings; nothing that could climb out of a directory.
DEVICE_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$')


def is_valid_name(name):
    """True if name is safe as one path component under /sys."""
    return isinstance(name, str) and bool(DEVICE_NAME_RE.fullmatch(
        name)) and name not in ('.', '..')


def nodedev_name(device):
    """libvirt's node-device name of a parent device, by which Nova names
    it: pci_0000_84_00_0 for a PCI device; <class>_<name> for a virtual
    one, which the kernel's sample drivers register as
    /sys/devices/virtual/<name>/<name> (mtty -> mtty_mtty)."""
    if is_pci_address(device):
        return 'pci_' + re.sub(r'[:.]', '_', device)
    return '%s_%s' % (device, device)


def is_pci_address(name):
    """True for a PCI address as the kernel writes it (0000:84:00.0)."""
    return isinstance(name, str) and bool(PCI_ADDRESS_RE.fullmatch(name))


_UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                      r'[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')


def canonical_uuid(value):
    """Lower-case dashed UUID string, or ValueError for anything else.

    Only the dashed form the kernel names devices by: uuid.UUID() alone
    would also take braces, signs or misplaced dashes and quietly turn
    them into another UUID.
    """
    text = str(value)
    if not _UUID_RE.fullmatch(text):
        raise ValueError('not a UUID: %r' % text)
    return text.lower()


@dataclasses.dataclass(frozen=True)
class VgpuInfo:
    """What NVIDIA says of a vGPU type beyond sysfs (NVML, or a careful
    reading of its name): None for what is not known."""
    framebuffer_mb: int = None
    max_instance: int = None       # equal-size mode, per GPU
    # Mixed-size mode: slots one instance takes and where it may start.
    placement_size: int = None
    placement_ids: tuple = ()
    # MIG-backed: the GPU-instance profile it needs and how many GPU
    # instances of that profile the GPU has (with or without a vGPU).
    gi_profile: str = None
    gi_count: int = None


@dataclasses.dataclass(frozen=True)
class MdevType:
    id: str                    # e.g. nvidia-35, mtty-2
    # human readable; the id when the driver has none
    name: str
    description: str           # '' when the driver provides none
    device_api: str            # vfio-pci
    available_instances: int   # what the kernel says can still be created
    vgpu: VgpuInfo = None      # NVIDIA vendor-specific VFIO only


@dataclasses.dataclass(frozen=True)
class Mdev:
    uuid: str
    type_id: str
    parent: str
    # NVIDIA mixed-size mode: the placement ID the driver gave the vGPU.
    placement_id: int = None


@dataclasses.dataclass(frozen=True)
class ParentDevice:
    name: str                     # 0000:84:00.0 or a virtual device name
    types: tuple                  # of MdevType, sorted by id
    mdevs: tuple                  # of Mdev, sorted by uuid
    # Physical function of an SR-IOV virtual function, if any.
    physfn: str = None
    # For a physical GPU standing for its SR-IOV virtual functions: their
    # names (each one a kernel parent holding at most one mdev).
    members: tuple = ()

    @property
    def is_pci(self):
        return is_pci_address(self.name)

    def type(self, type_id):
        for mdev_type in self.types:
            if mdev_type.id == type_id:
                return mdev_type
        return None

    def count_mdevs(self, type_id):
        return sum(1 for m in self.mdevs if m.type_id == type_id)


@dataclasses.dataclass(frozen=True)
class HostSnapshot:
    """The host as one scan saw it.

    ``unreadable`` names the parents this scan could not read whole (a
    type or the parent itself unreadable, as opposed to absent): what the
    snapshot says of them is incomplete, so nothing may be concluded from
    a type or an mdev missing there. Reports leave their providers as they
    are and reconcile leaves their mdevs and ledger records alone.
    """
    parents: tuple                # of ParentDevice, sorted by name
    # Problems met while reading (skipped entries), one line each.
    warnings: tuple = ()
    unreadable: frozenset = frozenset()   # parent names, see above

    def parent(self, name):
        for parent in self.parents:
            if parent.name == name:
                return parent
        return None

    def type_ids(self):
        return sorted({t.id for p in self.parents for t in p.types})

    def mdevs(self):
        return [m for p in self.parents for m in p.mdevs]


def group_virtual_functions(snapshot):
    """Report SR-IOV virtual functions as their physical GPU.

    Each VF is a kernel parent with 0 or 1 available per type; summed per
    physical function they give the GPU's count, which the capacity model
    then bounds (Nova needed max_instances to stop over-reporting here).
    """
    groups = {}
    others = []
    for parent in snapshot.parents:
        if parent.physfn:
            groups.setdefault(parent.physfn, []).append(parent)
        else:
            others.append(parent)
    merged = []
    for physfn, vfs in groups.items():
        types = {}
        for vf in vfs:
            for t in vf.types:
                have = types.get(t.id)
                types[t.id] = t if have is None else dataclasses.replace(
                    have, available_instances=have.available_instances +
                    t.available_instances)
        merged.append(ParentDevice(
            name=physfn, types=tuple(sorted(types.values(),
                                            key=lambda t: t.id)),
            mdevs=tuple(sorted((m for vf in vfs for m in vf.mdevs),
                               key=lambda m: m.uuid)),
            members=tuple(sorted(vf.name for vf in vfs))))
    # A virtual function read only in part makes its GPU's figures partial.
    physfn_of = {vf: physfn for physfn, vfs in groups.items() for vf in
                 (v.name for v in vfs)}
    return HostSnapshot(
        parents=tuple(sorted(others + merged, key=lambda p: p.name)),
        warnings=snapshot.warnings,
        unreadable=frozenset(physfn_of.get(name, name)
                             for name in snapshot.unreadable))
