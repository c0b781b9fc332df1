"""A simulated host that behaves like the kernel, errno for errno.

The host is described by a profile file (YAML, see etc/vgpu-placement/
profiles/) and its mdevs live in a state file, so that separate commands see
one host. The arithmetic here mirrors the kernel drivers' own code (mtty's
port pool, mbochs' memory pool, the mdev core's instance counter, GVT-g's
pools and id limit, NVIDIA's equal-size rule, NVIDIA SR-IOV virtual
functions holding one vGPU each; NVIDIA's vendor-specific VFIO layout,
in equal-size, mixed-size and MIG-backed modes); it is deliberately
separate from vgpu_placement.model.capacity, which predicts what this host will
say.

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
import dataclasses
import errno as errno_mod
import re
import uuid

import yaml

from vgpu_placement.drivers import base
from vgpu_placement.drivers.nvidia import models as nvidia_models
from vgpu_placement.drivers.nvidia import names as nvidia
from vgpu_placement.drivers.simulated import profiles
from vgpu_placement import exceptions
from vgpu_placement.model import discovered
from vgpu_placement import state_file

RULES = ('pool', 'independent', 'exclusive', 'sriov', 'vfio', 'vfio-mixed',
         'vfio-mig')
# One parent per virtual function, one vGPU on each at most.
VF_RULES = ('sriov', 'vfio', 'vfio-mixed', 'vfio-mig')
VENDOR_VFIO_RULES = ('vfio', 'vfio-mixed', 'vfio-mig')


@dataclasses.dataclass(frozen=True)
class TypeSpec:
    id: str
    name: str
    description: str
    cost: dict          # pool rule: units of each pool one instance takes
    max: int            # independent / exclusive rules: per-type maximum
    size: int           # exclusive rule: instances of one size coexist
    placement_size: int = 0     # vfio-mixed: slots one instance takes
    placement_ids: tuple = ()   # vfio-mixed: where it may start, in order
    gi_profile: str = None      # vfio-mig: GPU-instance profile it needs


@dataclasses.dataclass(frozen=True)
class ParentSpec:
    name: str
    rule: str
    pools: dict         # pool rule: pool name -> size
    max_instances: int  # hidden hard limit (GVT-g's 7); None if none
    full_errno: int     # what create fails with when there is no room
    types: tuple
    physfn: str = None
    vfs: int = 0        # sriov rule: virtual functions, each one parent
    # vfio-mig: {GPU-instance profile: GPU instances the operator made}
    gpu_instances: dict = dataclasses.field(default_factory=dict)

    def type(self, type_id):
        return next((t for t in self.types if t.id == type_id), None)


# -- the kernel's arithmetic (pure) -------------------------------------

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
    for profile, count in sorted(spec.gpu_instances.items()):
        for _ in range(count):
            ids[n] = profile
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
    for gi, profile in sorted(gpu_instance_ids(spec).items()):
        if profile == type_spec.gi_profile and gi not in taken:
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
    if spec.rule in VF_RULES:
        return [(vf, spec.name) for vf in vf_names(spec)]
    return [(spec.name, spec.physfn)]


# -- profile loading ----------------------------------------------------

def _profile_error(path, where, problem):
    return exceptions.HostStateError(
        'simulated host profile %s: %s: %s' % (path, where, problem))


def _int(value, path, where, minimum=0):
    if (not isinstance(value, int) or isinstance(value, bool)
            or value < minimum):
        raise _profile_error(path, where, 'expected an integer >= %d, got %r'
                             % (minimum, value))
    return value


def load_profile(path, _seen=()):
    """Parse a profile into (tuple of ParentSpec, initial mdevs).

    A profile may ``include`` other profiles (by name or path); their
    parents come first.
    """
    if path in _seen:
        raise _profile_error(path, 'include', 'includes itself')
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise exceptions.HostStateError(
            'simulated host profile %s: %s' % (path, e.strerror))
    except yaml.YAMLError as e:
        raise exceptions.HostStateError(
            'simulated host profile %s: not valid YAML (%s)'
            % (path, str(e).splitlines()[0]))
    if not isinstance(doc, dict) or not isinstance(
            doc.get('parents', []), list) or not (
            doc.get('parents') or doc.get('include')):
        raise _profile_error(path, 'top level', "needs a 'parents' list")
    parents, mdevs = [], []
    for name in doc.get('include') or []:
        more, more_mdevs = load_profile(profiles.find(str(name)),
                                        _seen + (path,))
        parents.extend(more)
        mdevs.extend(more_mdevs)
    for i, item in enumerate(doc.get('parents') or []):
        parent, parent_mdevs = _load_parent(path, 'parents[%d]' % i, item)
        if any(p.name == parent.name for p in parents):
            raise _profile_error(path, parent.name, 'parent listed twice')
        parents.append(parent)
        mdevs.extend(parent_mdevs)
    seen = set()
    for m in mdevs:
        if m['uuid'] in seen:
            raise _profile_error(path, m['uuid'], 'mdev UUID listed twice')
        seen.add(m['uuid'])
    return tuple(parents), mdevs


def _load_parent(path, where, item):
    if not isinstance(item, dict):
        raise _profile_error(path, where, 'expected a mapping')
    name = item.get('name')
    if not isinstance(name, str) or not discovered.is_valid_name(name):
        raise _profile_error(path, where, 'invalid parent name %r' % (name,))
    where = name
    capacity = item.get('capacity') or {}
    rule = capacity.get('rule', 'pool')
    if rule not in RULES:
        raise _profile_error(path, where, 'capacity rule %r is not one of %s'
                             % (rule, ', '.join(RULES)))
    pools = {str(k): _int(v, path, '%s pool %s' % (where, k))
             for k, v in (capacity.get('pools') or {}).items()}
    if rule == 'pool' and not pools:
        raise _profile_error(path, where, "the pool rule needs 'pools'")
    errname = capacity.get('errno', 'ENOSPC')
    if errname not in ('ENOSPC', 'EUSERS'):
        raise _profile_error(path, where, 'errno must be ENOSPC or EUSERS')
    max_instances = capacity.get('max_instances')
    if max_instances is not None:
        max_instances = _int(max_instances, path, where + ' max_instances', 1)
    types = []
    for t in item.get('types') or []:
        type_id = t.get('id') if isinstance(t, dict) else None
        if (not isinstance(type_id, str)
                or not discovered.is_valid_name(type_id)):
            raise _profile_error(path, where,
                                 'invalid type id %r' % (type_id,))
        cost = {str(k): _int(v, path, '%s %s cost' % (where, type_id))
                for k, v in (t.get('cost') or {}).items()}
        if rule == 'pool':
            unknown = set(cost) - set(pools)
            if unknown or not any(cost.values()):
                raise _profile_error(
                    path, '%s %s' % (where, type_id),
                    'cost must name pools of this parent (%s)'
                    % ', '.join(sorted(pools)))
        type_max = t.get('max', 0)
        if rule != 'pool':
            _int(type_max, path, '%s %s max' % (where, type_id), 1)
        if rule in ('exclusive', 'sriov') + VENDOR_VFIO_RULES:
            _int(t.get('size'), path, '%s %s size' % (where, type_id), 1)
        placement = t.get('placement') or {}
        if rule == 'vfio-mixed':
            _int(placement.get('size'), path, '%s %s placement size'
                 % (where, type_id), 1)
            ids = placement.get('ids')
            if not isinstance(ids, list) or not ids:
                raise _profile_error(path, '%s %s' % (where, type_id),
                                     'vfio-mixed needs placement ids')
            for i in ids:
                _int(i, path, '%s %s placement id' % (where, type_id))
        if rule in VENDOR_VFIO_RULES and not re.fullmatch(
                r'nvidia-[1-9][0-9]{0,9}', type_id):
            raise _profile_error(path, '%s %s' % (where, type_id),
                                 'vendor VFIO type ids are nvidia-<ID>')
        if rule == 'vfio-mig' and not isinstance(t.get('gi_profile'), str):
            raise _profile_error(path, '%s %s' % (where, type_id),
                                 'vfio-mig types need a gi_profile')
        types.append(TypeSpec(
            id=type_id, name=str(t.get('name') or type_id),
            description=str(t.get('description') or ''), cost=cost,
            max=type_max, size=t.get('size', 0),
            placement_size=placement.get('size', 0),
            placement_ids=tuple(placement.get('ids') or ()),
            gi_profile=t.get('gi_profile')))
    spec = ParentSpec(
        name=name, rule=rule, pools=pools, max_instances=max_instances,
        full_errno=getattr(errno_mod, errname),
        types=tuple(sorted(types, key=lambda t: t.id)),
        physfn=item.get('physfn'),
        vfs=_int(capacity.get('vfs', 0), path, where + ' vfs') if
        rule in VF_RULES else 0,
        gpu_instances={str(k): _int(v, path, '%s gpu_instances %s'
                                    % (where, k))
                       for k, v in (capacity.get('gpu_instances') or
                                    {}).items()})
    if rule in VF_RULES and (not spec.vfs
                             or not discovered.is_pci_address(name)):
        raise _profile_error(path, where, 'the %s rule needs a PCI '
                             'address and vfs >= 1' % rule)
    mdevs = []
    for m in item.get('mdevs') or []:
        try:
            mdev_uuid = discovered.canonical_uuid(m.get('uuid'))
        except (AttributeError, ValueError):
            raise _profile_error(path, where, 'invalid mdev %r' % (m,))
        if spec.type(m.get('type')) is None:
            raise _profile_error(path, where, 'mdev %s has unknown type %r'
                                 % (mdev_uuid, m.get('type')))
        mdevs.append({'uuid': mdev_uuid, 'parent': name, 'type': m['type']})
    return spec, mdevs


class SimulatedDriver(base.Driver):
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
                % ', '.join(profiles.shipped()))
        self.profile_path = profiles.find(conf.simulated.profile)
        self.state_path = conf.simulated.state_file
        self.specs, self._initial_mdevs = load_profile(self.profile_path)

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
        names = {name for name, _ in kernel_parents(spec)}
        return [m['type'] for m in state['mdevs'] if m['parent'] in names]

    def _spec_of(self, state, parent):
        for spec in self._present_specs(state):
            if any(name == parent for name, _ in kernel_parents(spec)):
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
            for name, physfn in kernel_parents(spec):
                if (name, None) in failing:
                    unreadable.add(name)     # not listed at all
                    continue
                mdevs = tuple(sorted(
                    (discovered.Mdev(m['uuid'], m['type'], name,
                                     m.get('placement'))
                     for m in state['mdevs'] if m['parent'] == name),
                    key=lambda m: m.uuid))
                if spec.rule in VENDOR_VFIO_RULES:
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
        names = {name for name, _ in kernel_parents(spec)}
        return [m for m in state['mdevs'] if m['parent'] in names]

    def _vfio_type(self, spec, state, type_spec, busy):
        """A type as the nvidia_vfio driver reports it with NVML: 1 on a
        free virtual function whose GPU can take it now, else 0."""
        shown = 0 if busy or vfio_where(
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
        where = None if type_spec is None else vfio_where(
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
        count = available_instances(spec, existing, type_spec)
        return min(count, 1) if spec.rule == 'sriov' else count

    def guest_gets_parent(self, parent):
        spec = next((s for s in self.specs if any(
            name == parent for name, _ in kernel_parents(s))), None)
        return spec is not None and spec.rule in VENDOR_VFIO_RULES

    def create_mdev(self, parent, type_id, mdev_uuid):
        target = '%s of type %s on %s' % (mdev_uuid, type_id, parent)
        mdev_uuid = base.checked_uuid(mdev_uuid, 'create', target)
        with state_file.locked(self.state_path):
            state = self._load_state()
            spec = self._spec_of(state, parent)
            if spec is not None and spec.rule in VENDOR_VFIO_RULES:
                return self._create_vfio(state, spec, parent, type_id,
                                         mdev_uuid, target)
            type_spec = spec.type(type_id) if spec else None
            if type_spec is None:
                # Writing to a create file that does not exist.
                raise exceptions.MdevNotFound(
                    'create', target, 'no such parent or type')
            if any(m['uuid'] == mdev_uuid for m in state['mdevs']):
                raise exceptions.MdevExists('create', target)
            refused = refuse_create(spec, self._mdev_types(state, spec),
                                    type_spec)
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

    def model_detectors(self):
        """NVIDIA's GPUs (the simulated ones too): their capacity is shared as
        drivers/nvidia/models.py says."""
        return nvidia_models.DETECTORS

    def vendor_param_keys(self, type_id):
        return nvidia.VGPU_PARAMS if nvidia.is_nvidia_type(type_id) \
            else frozenset()

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
            gone = {n for n, _ in kernel_parents(spec)} if spec else {parent}
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
