"""What a simulated parent's kernel driver answers, errno for errno: its
available_instances, which virtual function or placement a new vGPU
takes, and when a create is refused (see driver.py's docstring)."""
import errno as errno_mod


from vgpu_placement.drivers.simulated import profile


def available_instances(spec, mdevs, type_spec):
    """What the driver would print in available_instances for type_spec.

    mdevs: the type ids of the mdevs that exist on this parent (for
    vfio-mixed and vfio-mig: in the order they were made).
    """
    if spec.rule in ('vfio-mixed', 'vfio-mig'):
        vgpus = []
        for type_id in mdevs:
            where = vfio_where(spec, vgpus, spec.type(type_id))
            if where is not None:
                vgpus.append({'type': type_id, 'placement': where[0],
                              'gi': where[1]})
        return count_creatable(spec, vgpus, type_spec)
    if spec.rule == 'independent':
        return max(0, type_spec.max - mdevs.count(type_spec.id))
    if spec.rule in ('exclusive', 'sriov', 'vfio'):
        sizes = {spec.type(t).size for t in mdevs}
        if sizes - {type_spec.size}:
            return 0
        return max(0, type_spec.max - len(mdevs))
    free = dict(spec.pools)
    for type_id in mdevs:
        for pool, units in spec.type(type_id).cost.items():
            free[pool] -= units
    return min(free[pool] // units
               for pool, units in type_spec.cost.items() if units)


def gpu_instance_ids(spec):
    """{GI id: profile}: the GPU instances, numbered as made (from 1)."""
    ids, n = {}, 1
    for gi_profile, count in sorted(spec.gpu_instances.items()):
        for _ in range(count):
            ids[n] = gi_profile
            n += 1
    return ids


def vfio_where(spec, vgpus, type_spec):
    """Where the resource manager would put a new vGPU of type_spec on the
    GPU: (placement, GPU instance); None if it is not creatable now.

    vgpus: [{'type', 'placement', 'gi'}] of the vGPUs on the GPU.
    """
    if spec.rule == 'vfio':
        types = [v['type'] for v in vgpus]
        return (None, None) if available_instances(
            spec, types, type_spec) > 0 else None
    if spec.rule == 'vfio-mixed':
        used = set()
        for v in vgpus:
            start = v['placement']
            used.update(range(start, start + spec.type(v['type'])
                              .placement_size))
        for start in type_spec.placement_ids:
            if not used & set(range(start,
                                    start + type_spec.placement_size)):
                return (start, None)
        return None
    # vfio-mig: a GPU instance of the type's profile without a vGPU.
    taken = {v['gi'] for v in vgpus}
    for gi, gi_profile in sorted(gpu_instance_ids(spec).items()):
        if gi_profile == type_spec.gi_profile and gi not in taken:
            return (0, gi)      # placement 0: the offset inside the GI
    return None


def count_creatable(spec, vgpus, type_spec):
    """How many more of type_spec the GPU takes, made one after another."""
    vgpus, n = list(vgpus), 0
    while True:
        where = vfio_where(spec, vgpus, type_spec)
        if where is None:
            return n
        vgpus.append({'type': type_spec.id, 'placement': where[0],
                      'gi': where[1]})
        n += 1


def refuse_create(spec, mdevs, type_spec):
    """The errno create fails with, or None if the kernel would allow it."""
    if available_instances(spec, mdevs, type_spec) <= 0:
        return spec.full_errno
    if spec.max_instances is not None and len(mdevs) >= spec.max_instances:
        return errno_mod.ENOSPC
    return None


def vf_names(spec):
    """PCI addresses of an SR-IOV card's virtual functions: functions 4-7
    of the card's device, then on through the following devices."""
    domain_bus, _, devfn = spec.name.rpartition(':')
    device = int(devfn.split('.')[0], 16)
    names = []
    for i in range(spec.vfs):
        n = 4 + i
        names.append('%s:%02x.%d' % (domain_bus, device + n // 8, n % 8))
    return names


def kernel_parents(spec):
    """[(mdev parent name, physfn)] a profile entry shows the kernel."""
    if spec.rule in profile.VF_RULES:
        return [(vf, spec.name) for vf in vf_names(spec)]
    return [(spec.name, spec.physfn)]
