"""How NVIDIA GPUs share their capacity: the detectors NVIDIA's drivers
contribute to the model chain (model/detect.py).

Every type of the parent must be NVIDIA's (``names.is_nvidia_type``) and
no model configured, except for the equal-size rule, which an operator
may name. In order: MIG-backed types (a Pool per GPU-instance profile and
one of VFs), mixed-size mode (mixed.py), the equal-size rule from the
types' descriptions or, without them, from their names and the board's
framebuffer; and an NVIDIA GPU none of these describes is closed while
claims are pending, never a pool inferred from counts (it would let
sizes mix). doc/source/reference/nvidia-vgpu.rst has the facts.
"""
import re

from vgpu_placement.drivers.nvidia import mixed
from vgpu_placement.drivers.nvidia import names
from vgpu_placement.model import base
from vgpu_placement.model import exclusive
from vgpu_placement.model import pool


def _is_nvidia(facts):
    types = facts.parent.types
    return bool(types) and all(names.is_nvidia_type(t.id) for t in types)


def mig_from_types(parent):
    """MIG-backed types: a Pool of the GPU instances of each profile and
    of the virtual functions; None unless every type names its profile."""
    pools, costs = {}, {}
    for t in parent.types:
        info = t.vgpu
        if info is None or info.gi_profile is None or info.gi_count is None \
                or not re.fullmatch(r'[A-Za-z0-9_.+]{1,40}', info.gi_profile):
            return None
        name = 'gi_' + info.gi_profile
        if pools.get(name, info.gi_count) != info.gi_count:
            return None         # two counts for one profile: unsure
        pools[name] = info.gi_count
        costs[t.id] = {name: 1}
    if parent.members:
        pools['slots'] = len(parent.members)
        for cost in costs.values():
            cost['slots'] = 1
    return pool.reportable(pool.Pool(pools, costs, None,
                                     'MIG GPU instances'))


def _vgpu_kind(facts, wanted, builder, missing):
    """NVML's figures of one kind (GPU instances, placements) on every
    type: the model they give, or a closed one when some are missing."""
    if facts.override is not None or not _is_nvidia(facts) or not any(
            t.vgpu is not None and wanted(t.vgpu)
            for t in facts.parent.types):
        return None
    model = builder(facts.parent)
    if model is not None:
        return model, model.how
    return pool.Pool({}, {}), missing


def _mig(facts):
    return _vgpu_kind(
        facts, lambda vgpu: vgpu.gi_profile, mig_from_types,
        'MIG-backed types without GPU-instance counts: types close while '
        'claims are pending')


def _mixed(facts):
    return _vgpu_kind(
        facts, lambda vgpu: vgpu.placement_ids, mixed.mixed_from_types,
        'mixed-size mode without every placement known: types close while '
        'claims are pending')


def _equal_size(facts):
    if facts.override not in (None, base.EXCLUSIVE) or \
            not _is_nvidia(facts):
        return None
    types = facts.parent.types
    model = exclusive.exclusive_from_descriptions(types, facts.existing,
                                                  facts.slots)
    if model is not None:
        return model, 'equal-size rule from type descriptions'
    named = names.equal_size_from_names({t.id: t.name for t in types})
    if named is not None and all(n * named[1][t] <= base.PLACEMENT_INT_MAX
                                 for t, n in named[0].items()):
        return exclusive.Exclusive(named[0], named[1], facts.slots), (
            'equal-size rule from type names and the board\'s '
            'framebuffer (no descriptions)')
    return None


def _unknown(facts):
    if facts.override is None and _is_nvidia(facts):
        return pool.Pool({}, {}), (
            'NVIDIA types without descriptions, NVML or a known board: '
            'types close while claims are pending')
    return None


DETECTORS = (_mig, _mixed, _equal_size, _unknown)


class NvidiaGpus:
    """Mixed into a driver whose hosts may hold NVIDIA GPUs (every
    shipped driver): their capacity rules and their vendor parameters."""

    def model_detectors(self):
        return DETECTORS

    def vendor_param_keys(self, type_id):
        return names.VGPU_PARAMS if names.is_nvidia_type(type_id) \
            else frozenset()
