"""Which types are reported where, and as what: config checked against the
host.

Every misconfiguration raises ConfigError naming the option and the fix.
"""
import dataclasses
import logging
import re

import os_resource_classes as orc
from oslo_config import cfg

from vgpu_placement.conf import devices as devices_conf
from vgpu_placement import exceptions
from vgpu_placement.model import base as model_base
from vgpu_placement.model import discovered
from vgpu_placement.model import parse
from vgpu_placement import once

LOG = logging.getLogger(__name__)
# For what a process would otherwise log at every report.
_say_once = once.SayOnce(LOG)

# provider_tree.counter_class names the shared counters of a parent so:
# a type reported as one would have its inventory replaced by the counter.
COUNTER_CLASS_PREFIX = 'CUSTOM_VGPU_UNITS_'
# Vendor parameter values: unsigned 32-bit, in ASCII digits only (int()
# alone also takes signs, '1_000' and other scripts' digits).
_PARAM_VALUE_RE = re.compile(r'[0-9]{1,10}')
_PARAM_VALUE_MAX = 2 ** 32 - 1


@dataclasses.dataclass(frozen=True)
class TypePolicy:
    type_id: str
    resource_class: str
    device_addresses: frozenset      # empty: every parent offering the type
    max_instances: int = None
    vendor_params: tuple = ()        # ((key, int value), ...) sorted
    # Without device_addresses: parents other listed types claim (Nova's
    # default type goes to "the GPUs that aren't used by other types").
    excluded: frozenset = frozenset()
    live_migratable: bool = False    # nova-compute: VF vGPUs (see opt)

    def applies_to(self, parent):
        """True if reported on this discovered.ParentDevice (a physical GPU
        matches its own address or any of its virtual functions')."""
        names = {parent.name} | set(parent.members)
        if self.device_addresses:
            return bool(self.device_addresses & names)
        # A GPU with one virtual function claimed is left whole to that
        # type: one parent here is one provider, it cannot be split.
        return not self.excluded & names


def default_class(type_id):
    """CUSTOM_MDEV_<TYPE>: the class of a type nobody configured."""
    return orc.normalize_name('MDEV_' + type_id)


def _group_option(type_id, option):
    return '[%s] %s' % (devices_conf.mdev_group_name(type_id), option)


def _check_class(type_id, rc):
    if rc.startswith(COUNTER_CLASS_PREFIX):
        raise exceptions.ConfigError(
            _group_option(type_id, 'mdev_class'),
            '%s is a shared counter class (%s...)' % (
                rc, COUNTER_CLASS_PREFIX),
            'use VGPU or another CUSTOM_* name')
    if rc == orc.VGPU or parse.is_custom_name(rc):
        return rc
    raise exceptions.ConfigError(
        _group_option(type_id, 'mdev_class'),
        '%r is not a valid class for a vGPU type' % rc,
        'use VGPU or a name matching CUSTOM_[A-Z0-9_]+')


def parse_vendor_params(type_id, items, allowed):
    """[key=value] from config -> ((key, int), ...), checked against the
    driver's allow-list for the type."""
    option = _group_option(type_id, 'vendor_params')
    params = {}
    for item in items:
        key, sep, value = item.partition('=')
        key, value = key.strip(), value.strip()
        if not sep or key not in allowed:
            raise exceptions.ConfigError(
                option, '%r is not an allowed parameter for %s' % (
                    item, type_id),
                'use key=value with key one of: %s' % (
                    ', '.join(sorted(allowed)) or 'none for this type'))
        if key in params:
            raise exceptions.ConfigError(
                option, '%s is given twice' % key, 'give each key once')
        if not (_PARAM_VALUE_RE.fullmatch(value) and
                int(value) <= _PARAM_VALUE_MAX):
            raise exceptions.ConfigError(
                option, '%s=%r is not an integer from 0 to %d' % (
                    key, value, _PARAM_VALUE_MAX),
                'give a plain decimal number')
        params[key] = int(value)
    return tuple(sorted(params.items()))


def load_policies(conf, snapshot, param_keys=None):
    """Return {type_id: TypePolicy} for the types to report on this host.

    Listed types are read as Nova's libvirt driver reads them (README,
    "Coming from Nova's [devices] vGPU support"); none listed: every type.
    param_keys(type_id) gives the driver's vendor parameter allow-list.
    """
    param_keys = param_keys or (lambda type_id: frozenset())
    offered = snapshot.type_ids()
    enabled = list(conf.devices.enabled_mdev_types)
    explicit = bool(enabled)
    missing = []
    for type_id in enabled:
        if not discovered.is_valid_name(type_id):
            raise exceptions.ConfigError(
                '[devices] enabled_mdev_types',
                '%r is not an mdev type id' % type_id,
                'list type ids such as nvidia-35 or mtty-2')
        if type_id not in offered:
            missing.append(type_id)
    if len(set(enabled)) != len(enabled):
        raise exceptions.ConfigError(
            '[devices] enabled_mdev_types', 'a type is listed twice',
            'list each type once')
    for type_id in missing:
        if not snapshot.unreadable:
            raise exceptions.ConfigError(
                '[devices] enabled_mdev_types',
                'type %s is not offered by any parent device on this host'
                % type_id,
                'remove it or use one of: %s'
                % (', '.join(offered) or 'none (no mdev parents found)'))
        # It may be on a parent this scan could not read: not reported
        # this time, and no reason to stop.
        LOG.warning('[devices] enabled_mdev_types lists %s, which no '
                    'readable parent offers (unreadable: %s); not reported '
                    'this time', type_id, ', '.join(sorted(
                        snapshot.unreadable)))
    # Every listed type's group is read, an unreported one's too: the
    # parents it claims are not the default type's.
    devices_conf.register_dynamic_opts(conf, enabled or offered)
    groups = {t: conf[devices_conf.mdev_group_name(t)]
              for t in enabled or offered}
    for type_id, group in groups.items():
        _check_values(devices_conf.mdev_group_name(type_id), group,
                      devices_conf.mdev_type_opts(type_id))
    address_owner = _address_owners(groups, snapshot)
    if explicit:
        type_ids = [t for t in _nova_types(enabled, groups)
                    if t not in missing]
    else:
        type_ids = offered

    policies = {}
    for type_id in type_ids:
        group = groups[type_id]
        rc = group.mdev_class or (orc.VGPU if explicit
                                  else default_class(type_id))
        default_type = explicit and not group.device_addresses
        policies[type_id] = TypePolicy(
            type_id, _check_class(type_id, rc),
            _addresses(group, snapshot), group.max_instances,
            parse_vendor_params(type_id, group.vendor_params,
                                param_keys(type_id)),
            frozenset(address_owner) if default_type else frozenset(),
            group.live_migratable)
    return check_collisions(policies, snapshot)


def parent_named(address, snapshot):
    """The parent a device_addresses entry names, as the kernel names it:
    Nova writes a virtual parent by its libvirt node-device name
    (mtty_mtty for mtty); PCI addresses are the same in both."""
    names = {p.name for p in snapshot.parents}
    if address in names:
        return address
    return next((n for n in sorted(names)
                 if discovered.nodedev_name(n) == address), address)


def _addresses(group, snapshot):
    return frozenset(parent_named(a, snapshot)
                     for a in group.device_addresses)


def _address_owners(groups, snapshot):
    """{address: type id} from each group's device_addresses, checked."""
    address_owner = {}
    for type_id, group in groups.items():
        for address in sorted(_addresses(group, snapshot)):
            if not discovered.is_valid_name(address):
                raise exceptions.ConfigError(
                    _group_option(type_id, 'device_addresses'),
                    '%r is not a PCI address or device name' % address,
                    'use addresses such as 0000:84:00.0')
            if address in address_owner:
                raise exceptions.ConfigError(
                    _group_option(type_id, 'device_addresses'),
                    '%s is also listed under [%s]'
                    % (address, devices_conf.mdev_group_name(
                        address_owner[address])),
                    'list each parent device under one type only')
            address_owner[address] = type_id
            if not any(address == p.name or address in p.members
                       for p in snapshot.parents):
                LOG.warning('%s lists %s, which is not an mdev parent on '
                            'this host', _group_option(
                                type_id, 'device_addresses'), address)
    return address_owner


def _check_values(name, group, opts):
    """Read each option of a type's group once: a bad value is one line
    naming [mdev_<type>] and the option."""
    for opt in opts:
        try:
            getattr(group, opt.dest)
        except (cfg.ConfigFileValueError, ValueError) as e:
            raise exceptions.ConfigError(
                '[%s] %s' % (name, opt.dest), exceptions.config_text(e),
                'fix the value in the configuration file')


def _nova_types(enabled, groups):
    """The listed types Nova uses: all with device_addresses, and the first
    without (its default type); later ones without are dropped, as Nova's
    _get_supported_vgpu_types drops them."""
    used, default = [], None
    for type_id in enabled:
        if groups[type_id].device_addresses:
            used.append(type_id)
        elif default is None:
            default = type_id
            used.append(type_id)
        else:
            LOG.warning('[devices] enabled_mdev_types: %s is not '
                        'reported: like %s, listed before it, it has no '
                        'device_addresses, and only the first such type is '
                        'used (as in Nova); give it device_addresses',
                        type_id, default)
    return used


def types_on_parent(policies, parent):
    """The policies of the types reported on this parent, by type id."""
    return [policies[t.id] for t in parent.types
            if t.id in policies and policies[t.id].applies_to(parent)]


def check_collisions(policies, snapshot):
    """``policies`` less the types that cannot be reported: two types on
    one parent must not share a resource class. When the operator gave
    one of them that class (mdev_class), it is a configuration error;
    when both got it by default (type ids differing only in case or
    punctuation, as a driver may name them), neither is reported, said
    once, and the rest of the host is."""
    clashing = {}                       # class -> type ids
    for parent in snapshot.parents:
        seen = {}
        for policy in types_on_parent(policies, parent):
            other = seen.setdefault(policy.resource_class, policy.type_id)
            if other == policy.type_id:
                continue
            if policy.resource_class == default_class(policy.type_id) == \
                    default_class(other):
                clashing.setdefault(policy.resource_class, set()).update(
                    (policy.type_id, other))
                continue
            raise exceptions.ConfigError(
                _group_option(policy.type_id, 'mdev_class'),
                '%s is also the class of type %s on parent %s'
                % (policy.resource_class, other, parent.name),
                'give each type its own mdev_class, or split the parents '
                'between them with device_addresses')
    for rc, type_ids in sorted(clashing.items()):
        _say_once(logging.WARNING, ('clash', rc, tuple(sorted(type_ids))),
                  'types %s are all reported as %s by default: none of '
                  'them is reported; give each its own [mdev_<type>] '
                  'mdev_class', ', '.join(sorted(type_ids)), rc)
    dropped = set().union(*clashing.values())
    return {t: p for t, p in policies.items() if t not in dropped}


def load_model_choices(conf):
    """{parent or '*': model name} from [capacity] models."""
    choices = {}
    for entry in conf.capacity.models:
        parent, sep, name = entry.rpartition('=')
        if not sep or name not in model_base.MODELS or not (
                parent == '*' or discovered.is_valid_name(parent)):
            raise exceptions.ConfigError(
                '[capacity] models', 'bad entry %r' % entry,
                'write <parent>=<model> with model one of %s'
                % ', '.join(model_base.MODELS))
        if parent in choices:
            raise exceptions.ConfigError(
                '[capacity] models', '%s is listed twice' % parent,
                'give each parent one model')
        choices[parent] = name
    return choices
