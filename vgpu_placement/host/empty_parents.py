"""What each parent offered when it last had no mdevs.

A capacity model for a driver we do not know is inferred from how a
parent's counts fall as mdevs are made (model.detect): that needs
the counts of the empty parent, which are gone once it is in use. They are
kept in ``empty-parents.json`` under the state path, written only when
they change; a malformed file is discarded and rebuilt.
"""
import os

from vgpu_placement import state_file


def _valid(data):
    return isinstance(data, dict) and all(
        isinstance(types, dict) and
        all(isinstance(n, int) for n in types.values())
        for types in data.values())


def path_in(state_path):
    return os.path.join(state_path, 'empty-parents.json')


def remember(path, snapshot):
    """Record the empty parents of ``snapshot``; return everything known:
    {parent name: {type id: available_instances when empty}}."""
    seen = state_file.read_checked(path, _valid) or {}
    changed = False
    for parent in snapshot.parents:
        if parent.types and not parent.mdevs:
            now = {t.id: t.available_instances for t in parent.types}
            if seen.get(parent.name) != now:
                seen[parent.name], changed = now, True
    if changed:
        state_file.write_json(path, seen)
    return seen
