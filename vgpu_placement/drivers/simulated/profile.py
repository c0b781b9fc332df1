"""A simulated host's profile: the YAML file that describes its GPUs
(etc/vgpu-placement/profiles/), loaded into ParentSpec and TypeSpec and
checked, with a clear error naming the file and the entry."""
import dataclasses
import errno as errno_mod
import os
import re
import sys

import yaml

from vgpu_placement import exceptions
from vgpu_placement.model import discovered


# A checkout (or an editable install): etc/ beside the package.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
SEARCH_PATH = (
    os.path.join(_CHECKOUT, 'etc', 'vgpu-placement', 'profiles'),
    os.path.join(sys.prefix, 'etc', 'vgpu-placement', 'profiles'),
    '/etc/vgpu-placement/profiles',
)


def find(name_or_path):
    """A path as given, or a shipped profile by name (demo-host)."""
    if os.sep in name_or_path or os.path.exists(name_or_path):
        return name_or_path
    for directory in SEARCH_PATH:
        candidate = os.path.join(directory, name_or_path + '.yaml')
        if os.path.exists(candidate):
            return candidate
    return name_or_path      # the loader reports it missing, by this name


def shipped():
    names = set()
    for directory in SEARCH_PATH:
        if os.path.isdir(directory):
            names.update(f[:-5] for f in os.listdir(directory)
                         if f.endswith('.yaml'))
    return sorted(names)


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
        more, more_mdevs = load_profile(find(str(name)),
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
