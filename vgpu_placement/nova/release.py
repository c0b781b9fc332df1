"""Which Nova releases the compute driver runs on, checked at its start.

The driver leans on Nova's private members (``_allocate_mdevs``,
``_guest_add_mdevs``, ``_get_all_assigned_mediated_devices``,
``_hard_reboot``, ``_host``): a release the Nova tier has not run could
move any of them, and would fail in the middle of a spawn or a move. So
a release outside SUPPORTED is refused before nova-compute starts, in one
line. Pure: no Nova import here.
"""
import re

# Nova's major versions the Nova tier runs (tools/nova-tier/run-tests
# --release N), with their release names.
SUPPORTED = {31: '2025.1 Epoxy', 32: '2025.2 Flamingo', 33: '2026.1 Gazpacho',
             34: '2026.2 Hibiscus'}

_VERSION_RE = re.compile(r'([0-9]{1,4})\.[0-9]{1,4}(?:\.[0-9]{1,4})?')


def refusal(version):
    """None when Nova ``version`` ('34.0.0', nova.version's
    version_string) is one the driver runs on; else the one line that
    says why not."""
    found = _VERSION_RE.match(version or '')
    if found is not None and int(found.group(1)) in SUPPORTED:
        return None
    return ('vgpu-placement: Nova %s is not supported: the compute driver '
            'runs on Nova %s' % (version or '(no version)', ', '.join(
                '%d.x (%s)' % kv for kv in sorted(SUPPORTED.items()))))
