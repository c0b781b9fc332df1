"""Find the simulated-host profiles shipped in etc/vgpu-placement/profiles."""
import os
import sys

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
