"""A simulated host that behaves like the kernel, errno for errno.

The host is described by a profile file (YAML, see etc/vgpu-placement/
profiles/) and its mdevs live in a state file, so that separate commands see
one host. The arithmetic here mirrors the kernel drivers' own code (mtty's
port pool, mbochs' memory pool, the mdev core's instance counter, GVT-g's
pools and id limit, NVIDIA's equal-size rule, NVIDIA SR-IOV virtual
functions holding one vGPU each; NVIDIA's vendor-specific VFIO layout,
in equal-size, mixed-size and MIG-backed modes); it is deliberately
separate from the capacity models (vgpu_placement.model), which predict
what this host will say. profile.py loads the host's description,
rules.py holds the kernel drivers' arithmetic, this module the state.

Vendor-specific VFIO (rules vfio, vfio-mixed, vfio-mig), as the R525
driver source does it (doc/source/reference/nvidia-vgpu.rst, "Creating
and removing"): a vGPU is made by writing its type ID to a free virtual
function's nvidia/current_vgpu_type and removed by writing 0; a type on a
virtual function that holds one, or 0 on one that holds none, fails with EPERM;
a type the GPU cannot take now is refused by the resource manager: EIO.
Mixed-size mode gives each new vGPU the first free placement of its type;
MIG-backed types go on the first GPU instance of their profile without a
vGPU, and time-sliced types are not creatable while MIG is on.
"""
import errno as errno_mod
import uuid


from vgpu_placement.drivers import base
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement.drivers.simulated import profile
from vgpu_placement.drivers.simulated import rules
from vgpu_placement import exceptions
from vgpu_placement.model import discovered
from vgpu_placement import state_file


class SimulatedDriver(nvidia_models.NvidiaGpus, base.Driver):
    """A host described by ``[simulated] profile``, state in ``state_file``."""

    # Its host is a state file other processes (the CLI, tests) change
    # without any kernel uevent: scan every report.
    host_changes_raise_uevents = False

    def __init__(self, conf):
        super().__init__(conf)
        if not conf.simulated.profile:
            raise exceptions.ConfigError(
                '[simulated] profile', 'not set',
                'name a profile file or one of: %s'
                % ', '.join(profile.shipped()))
        self.profile_path = profile.find(conf.simulated.profile)
        self.state_path = conf.simulated.state_file
        self.specs, self._initial_mdevs = profile.load_profile(
            self.profile_path)

    # -- state -----------------------------------------------------------
    def _load_state(self):
        try:
            state = state_file.read_json(self.state_path)
        except ValueError as e:
            raise exceptions.HostStateError(
                'simulated host state %s is corrupt: %s; delete it to start '
                'from the profile again' % (self.state_path, e))
        if state is None:
            state = {'mdevs': [dict(m) for m in self._initial_mdevs],
                     'unplugged': [],
                     'boot_id': str(uuid.uuid4())}
        state.setdefault('unreadable', [])
        return state

    def _present_specs(self, state):
        return [s for s in self.specs if s.name not in state['unplugged']]

    def _mdev_types(self, state, spec):
        """Types of the mdevs on a profile entry (all its VFs)."""
        names = {name for name, _ in rules.kernel_parents(spec)}
        return [m['type'] for m in state['mdevs'] if m['parent'] in names]

    def _spec_of(self, state, parent):
        for spec in self._present_specs(state):
            if any(name == parent for name, _ in rules.kernel_parents(spec)):
                return spec
        return None

    # -- driver interface ----------------------------------------------
    def discover(self):
        with state_file.locked(self.state_path):
            state = self._load_state()
        parents, unreadable = [], set()
        failing = {(p, t) for p, t in state['unreadable']}
        for spec in self._present_specs(state):
            existing = self._mdev_types(state, spec)
            for name, physfn in rules.kernel_parents(spec):
                if (name, None) in failing:
                    unreadable.add(name)     # not listed at all
                    continue
                mdevs = tuple(sorted(
                    (discovered.Mdev(m['uuid'], m['type'], name,
                                     m.get('placement'))
                     for m in state['mdevs'] if m['parent'] == name),
                    key=lambda m: m.uuid))
                if spec.rule in profile.VENDOR_VFIO_RULES:
                    types = tuple(
                        self._vfio_type(spec, state, t, busy=bool(mdevs))
                        for t in spec.types if (name, t.id) not in failing)
                    if len(types) < len(spec.types):
                        unreadable.add(name)
                    parents.append(discovered.ParentDevice(name, types, mdevs,
                                                           physfn=physfn))
                    continue
                # A virtual function holds one vGPU at most.
                full = spec.rule == 'sriov' and bool(mdevs)
                types = tuple(
                    discovered.MdevType(
                        t.id, t.name, t.description, 'vfio-pci',
                        0 if full else self._shown(spec, existing, t))
                    for t in spec.types if (name, t.id) not in failing)
                if len(types) < len(spec.types):
                    unreadable.add(name)
                parents.append(discovered.ParentDevice(name, types, mdevs,
                                                       physfn=physfn))
        return discovered.HostSnapshot(parents=tuple(sorted(
            parents, key=lambda p: p.name)), unreadable=frozenset(unreadable))

    def _vgpus(self, state, spec):
        names = {name for name, _ in rules.kernel_parents(spec)}
        return [m for m in state['mdevs'] if m['parent'] in names]

    def _vfio_type(self, spec, state, type_spec, busy):
        """A type as the nvidia_vfio driver reports it with NVML: 1 on a
        free virtual function whose GPU can take it now, else 0."""
        shown = 0 if busy or rules.vfio_where(
            spec, self._vgpus(state, spec), type_spec) is None else 1
        info = discovered.VgpuInfo(
            framebuffer_mb=type_spec.size or None,
            max_instance=type_spec.max if spec.rule == 'vfio' else None,
            placement_size=type_spec.placement_size or None,
            placement_ids=type_spec.placement_ids,
            gi_profile=type_spec.gi_profile,
            gi_count=spec.gpu_instances.get(type_spec.gi_profile, 0)
            if type_spec.gi_profile else None)
        return discovered.MdevType(type_spec.id, type_spec.name,
                                   type_spec.description, 'vfio-pci', shown,
                                   info)

    def _create_vfio(self, state, spec, parent, type_id, mdev_uuid, target):
        """nvidia/current_vgpu_type on the virtual function, errno for
        errno as the vendor driver gives them."""
        if any(m['uuid'] == mdev_uuid for m in state['mdevs']):
            raise exceptions.MdevExists('create', target)
        if any(m['parent'] == parent for m in state['mdevs']):
            raise exceptions.VfOccupied('create', target)
        type_spec = spec.type(type_id)
        where = None if type_spec is None else rules.vfio_where(
            spec, self._vgpus(state, spec), type_spec)
        if where is None:
            raise exceptions.VgpuRefused('create', target)
        placement, gi = where
        state['mdevs'].append({'uuid': mdev_uuid, 'parent': parent,
                               'type': type_id, 'placement': placement,
                               'gi': gi})
        state_file.write_json(self.state_path, state)

    @staticmethod
    def _shown(spec, existing, type_spec):
        count = rules.available_instances(spec, existing, type_spec)
        return min(count, 1) if spec.rule == 'sriov' else count

    def guest_gets_parent(self, parent):
        spec = next((s for s in self.specs if any(
            name == parent for name, _ in rules.kernel_parents(s))), None)
        return spec is not None and spec.rule in profile.VENDOR_VFIO_RULES

    def create_mdev(self, parent, type_id, mdev_uuid):
        target = '%s of type %s on %s' % (mdev_uuid, type_id, parent)
        mdev_uuid = base.checked_uuid(mdev_uuid, 'create', target)
        with state_file.locked(self.state_path):
            state = self._load_state()
            spec = self._spec_of(state, parent)
            if spec is not None and spec.rule in profile.VENDOR_VFIO_RULES:
                return self._create_vfio(state, spec, parent, type_id,
                                         mdev_uuid, target)
            type_spec = spec.type(type_id) if spec else None
            if type_spec is None:
                # Writing to a create file that does not exist.
                raise exceptions.MdevNotFound(
                    'create', target, 'no such parent or type')
            if any(m['uuid'] == mdev_uuid for m in state['mdevs']):
                raise exceptions.MdevExists('create', target)
            refused = rules.refuse_create(
                spec, self._mdev_types(state, spec), type_spec)
            if spec.rule == 'sriov' and any(
                    m['parent'] == parent for m in state['mdevs']):
                refused = errno_mod.ENOSPC
            if refused == errno_mod.EUSERS:
                raise exceptions.TooManyInstances('create', target)
            if refused is not None:
                raise exceptions.NoCapacity('create', target)
            state['mdevs'].append(
                {'uuid': mdev_uuid, 'parent': parent, 'type': type_id})
            state_file.write_json(self.state_path, state)

    def remove_mdev(self, mdev_uuid):
        mdev_uuid = base.checked_uuid(mdev_uuid, 'remove', 'mdev')
        with state_file.locked(self.state_path):
            state = self._load_state()
            kept = [m for m in state['mdevs'] if m['uuid'] != mdev_uuid]
            if len(kept) == len(state['mdevs']):
                raise exceptions.MdevNotFound('remove', 'mdev ' + mdev_uuid)
            state['mdevs'] = kept
            state_file.write_json(self.state_path, state)

    def boot_id(self):
        with state_file.locked(self.state_path):
            return self._load_state()['boot_id']

    def set_vendor_params(self, mdev_uuid, type_id, params):
        if set(params) - self.vendor_param_keys(type_id):
            raise exceptions.InvalidMdevRequest(
                'set vendor parameters on', 'mdev ' + mdev_uuid,
                'not allowed for type %s' % type_id)
        with state_file.locked(self.state_path):
            state = self._load_state()
            for m in state['mdevs']:
                if m['uuid'] == mdev_uuid:
                    m['vendor_params'] = dict(params)
                    state_file.write_json(self.state_path, state)
                    return
        raise exceptions.MdevNotFound('set vendor parameters on',
                                      'mdev ' + mdev_uuid)

    def vendor_params(self, mdev_uuid):
        """What a read of the mdev's vgpu_params would show."""
        with state_file.locked(self.state_path):
            for m in self._load_state()['mdevs']:
                if m['uuid'] == mdev_uuid:
                    return m.get('vendor_params', {})
        raise exceptions.MdevNotFound('read', 'mdev ' + mdev_uuid)

    # -- what a reboot, a module unload/load or a hot-unplug does --------
    def reboot(self, persisted=False):
        """The boot id changes and every mdev is gone, or, persisted (as
        libvirt's autostart or mdevctl bring them back), made again at
        boot without their vendor parameters (kernel state of the boot)."""
        with state_file.locked(self.state_path):
            state = self._load_state()
            state['mdevs'] = [
                {k: v for k, v in m.items() if k != 'vendor_params'}
                for m in state['mdevs']] if persisted else []
            state['boot_id'] = str(uuid.uuid4())
            state_file.write_json(self.state_path, state)

    def unplug_parent(self, parent):
        """The parent goes away; the kernel force-removes its mdevs."""
        with state_file.locked(self.state_path):
            state = self._load_state()
            if parent not in state['unplugged']:
                state['unplugged'].append(parent)
            spec = next((s for s in self.specs if s.name == parent), None)
            gone = {n for n, _ in rules.kernel_parents(spec)} if spec \
                else {parent}
            state['mdevs'] = [m for m in state['mdevs']
                              if m['parent'] not in gone]
            state_file.write_json(self.state_path, state)

    def fail_reads(self, parent, type_id=None):
        """Reads of the parent (or of one of its types) fail, as a
        transient sysfs error would, until restore_reads()."""
        with state_file.locked(self.state_path):
            state = self._load_state()
            state['unreadable'].append([parent, type_id])
            state_file.write_json(self.state_path, state)

    def restore_reads(self):
        with state_file.locked(self.state_path):
            state = self._load_state()
            state['unreadable'] = []
            state_file.write_json(self.state_path, state)

    def plug_parent(self, parent):
        with state_file.locked(self.state_path):
            state = self._load_state()
            state['unplugged'] = [p for p in state['unplugged'] if p != parent]
            state_file.write_json(self.state_path, state)
