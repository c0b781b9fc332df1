"""Traits from what a type says about itself in its description.

NVIDIA: "num_heads=4, frl_config=60, framebuffer=2048M,
max_resolution=7680x4320, max_instance=4"; GVT-g: "resolution: 1920x1200"
lines; mbochs: "virtual display, 16 MB video memory"; mdpy: "virtual
display, 1920x1080 framebuffer". Standard names come from os-traits; what
it lacks becomes a CUSTOM_ trait.
"""
import re

import os_traits

from vgpu_placement.model import parse

_PAIR_RE = re.compile(r'([a-z_]+)\s*[=:]\s*([^,\n]+)')
_RES_RE = re.compile(r'\b(\d{2,5})x(\d{2,5})\b')

MANAGED = 'CUSTOM_VGPU_PLACEMENT_MANAGED'
# On a managed provider whose device is gone (kept for caches like
# nova-compute's; see placement.sync).
RETIRED = 'CUSTOM_VGPU_PLACEMENT_RETIRED'
# On a managed provider whose shared counters bound what one report
# window may grant (Model.window_limits: NVIDIA's mixed-size mode): there
# the type classes carry the model's capacity, the counters a window's.
WINDOW_CAPPED = 'CUSTOM_VGPU_PLACEMENT_WINDOW_CAPPED'


def parse_description(description):
    """Return {'heads': int, 'resolution': (w, h), 'framebuffer_mb': int}."""
    pairs = {k: v.strip() for k, v in _PAIR_RE.findall(description)}
    props = {}
    # ASCII digits: str.isdigit() takes '²', which int() refuses.
    if re.fullmatch(r'[0-9]{1,4}', pairs.get('num_heads', '')):
        props['heads'] = int(pairs['num_heads'])
    res = _RES_RE.search(pairs.get('max_resolution') or
                         pairs.get('resolution') or description)
    if res:
        props['resolution'] = (int(res.group(1)), int(res.group(2)))
    mb = parse.framebuffer_mb(description)
    if mb is not None:
        props['framebuffer_mb'] = mb
    return props


_STANDARD = frozenset(os_traits.get_traits('HW_GPU_'))


def _standard_or_custom(name):
    return name if name in _STANDARD else os_traits.normalize_name(name)


def capability_traits(description):
    """Traits saying what an mdev of a type with this description offers."""
    props = parse_description(description)
    traits = set()
    if 'heads' in props:
        traits.add(_standard_or_custom(
            'HW_GPU_MAX_DISPLAY_HEADS_%d' % props['heads']))
    if 'resolution' in props:
        traits.add(_standard_or_custom(
            'HW_GPU_RESOLUTION_W%dH%d' % props['resolution']))
    if 'framebuffer_mb' in props:
        traits.add('CUSTOM_VGPU_FRAMEBUFFER_%dMB' % props['framebuffer_mb'])
    return traits


def type_trait(type_id):
    return os_traits.normalize_name('MDEV_TYPE_' + type_id)


def parent_traits(mdev_types):
    """Traits of a parent provider reporting these types.

    Each type's id is a trait. A capability trait is set only when every
    type reported there has it, so whichever type a claim gets, the trait
    holds for it.
    """
    traits = {MANAGED}
    traits.update(type_trait(t.id) for t in mdev_types)
    shared = None
    for mdev_type in mdev_types:
        caps = capability_traits(mdev_type.description)
        shared = caps if shared is None else shared & caps
    return frozenset(traits | (shared or set()))
