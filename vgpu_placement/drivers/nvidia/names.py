"""What the project knows of NVIDIA vGPU types, with no I/O (pure).

Type ids: the mdev layout and the vendor-specific VFIO layout both name a
type ``nvidia-<ID>`` (``is_nvidia_type``).

Vendor parameters: ``VGPU_PARAMS``, the keys of ``vgpu_params`` (each
takes an integer) that an operator may set per type; tenants never can.
The privileged write checks them again.

Names: what a type's name says, when nothing else does. A type name is
``[GRID |NVIDIA ]<board>-<GB><series>`` for a time-sliced type (``GRID
T4-4Q``, ``NVIDIA L40S-4Q``) and ``<board>-<slices>-<GB>C`` for a
MIG-backed one (``A100-3-20C``). In equal-size mode a GPU holds at most
``board framebuffer // type framebuffer`` vGPUs of a type: NVIDIA's
tables list exactly that as "Maximum vGPUs per GPU" for every Q-series
type, and the largest Q type of each board is its whole framebuffer.

BOARD_FRAMEBUFFER_GB comes from NVIDIA Virtual GPU Software User Guide,
"Virtual GPU Types for Supported GPUs": for each board, the frame buffer
of its largest Q-series type (per physical GPU on multi-GPU boards: M10,
M60, A16). Boards sold with two memory sizes under one type prefix (V100,
A100, H100) are left out: their name does not say which one a host has.
"""
import re

VGPU_PARAMS = frozenset((
    'frame_rate_limiter', 'disable_vnc', 'enable_uvm', 'enable_debugging',
    'enable_profiling', 'loglevel', 'intervaltime', 'vgaintervaltime'))


def is_nvidia_type(type_id):
    return type_id.startswith('nvidia-')


BOARD_FRAMEBUFFER_GB = {
    'M6': 8, 'M10': 8, 'M60': 8,
    'P4': 8, 'P6': 16, 'P40': 24,
    'T4': 16, 'RTX6000': 24, 'RTX8000': 48,
    'A2': 16, 'A10': 24, 'A16': 16, 'A40': 48,
    'RTXA5000': 24, 'RTXA5500': 24, 'RTXA6000': 48,
    'L2': 24, 'L4': 24, 'L20': 48, 'L40': 48, 'L40S': 48,
}

# Time-sliced: <board>-<GB><series>; MIG-backed: <board>-<slices>-<GB>C...
_TIMESLICED_RE = re.compile(r'(?:(?:GRID|NVIDIA) )?([A-Za-z0-9 _]{1,32})'
                            r'-([0-9]{1,4})[QABC]')
_MIG_RE = re.compile(r'-[0-9]{1,2}-([0-9]{1,4})[QABC](?:ME|NOME|MEALL|GFX)?$')
_TIMESLICED_SIZE_RE = re.compile(r'-([0-9]{1,4})[QABC]$')


def framebuffer_gb(name):
    """(GB, MIG-backed?) read from a type name, or None."""
    for regex, mig in ((_MIG_RE, True), (_TIMESLICED_SIZE_RE, False)):
        found = regex.search(name)
        if found and int(found.group(1)):
            return int(found.group(1)), mig
    return None


def board_framebuffer_gb(name):
    """The framebuffer of the board a time-sliced type name names (GB),
    or None for a name of another shape or a board not in the table."""
    found = _TIMESLICED_RE.fullmatch(name.strip())
    if not found:
        return None
    board = re.sub(r'[ _]', '', found.group(1)).upper()
    return BOARD_FRAMEBUFFER_GB.get(board)


def equal_size_from_names(names):
    """({type: framebuffer MB}, {type: max vGPUs per GPU}) of time-sliced
    types whose names give their size and their board, or None when one
    of ``names`` ({type: name}) does not, or the boards disagree."""
    sizes, maxima, boards = {}, {}, set()
    for type_id, name in names.items():
        size = framebuffer_gb(name)
        board = board_framebuffer_gb(name)
        if size is None or size[1] or board is None or size[0] > board:
            return None
        boards.add(board)
        sizes[type_id] = size[0] * 1024
        maxima[type_id] = board // size[0]
    if len(boards) != 1:
        return None
    return sizes, maxima
