"""Turn snapshots and Placement views into JSON-able data and tables."""
from vgpu_placement.cmd import common
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import traits as traits_mod


def snapshot_data(snapshot):
    return {
        'parents': [{
            'name': p.name,
            'physfn': p.physfn,
            'types': [{
                'id': t.id, 'name': t.name, 'description': t.description,
                'device_api': t.device_api,
                'available_instances': t.available_instances,
                'mdevs': p.count_mdevs(t.id)} for t in p.types],
            'mdevs': [{'uuid': m.uuid, 'type': m.type_id}
                      for m in p.mdevs],
        } for p in snapshot.parents],
        'warnings': list(snapshot.warnings),
    }


def snapshot_table(snapshot):
    rows = []
    for p in snapshot.parents:
        for t in p.types:
            rows.append([p.name, t.id, t.name, p.count_mdevs(t.id),
                         t.available_instances, t.description or '-'])
    if not rows:
        return 'no mediated-device parents on this host'
    text = common.table(['PARENT', 'TYPE', 'NAME', 'MDEVS', 'AVAILABLE',
                         'DESCRIPTION'], rows)
    for warning in snapshot.warnings:
        text += '\nwarning: %s' % warning
    return text


def provider_data(view, snapshot=None, host=None):
    """view: [(name, provider)] from Reporter.placement_view().

    With the host's snapshot, each provider lists its device's mdevs.
    """
    mdevs_by_name = {}
    if snapshot is not None:
        for p in snapshot.parents:
            mdevs_by_name[provider_tree.provider_name(host, p.name)] = [
                {'uuid': m.uuid, 'type': m.type_id} for m in p.mdevs]
    out = []
    for name, rp in view:
        entry = {
            'name': name, 'uuid': rp['uuid'],
            'generation': rp['generation'],
            'inventories': {
                rc: dict(inv, used=rp['usages'].get(rc, 0))
                for rc, inv in sorted(rp['inventories'].items())},
            'traits': rp['traits'],
        }
        if snapshot is not None:
            entry['mdevs'] = mdevs_by_name.get(name, [])
        out.append(entry)
    return out


def provider_table(data):
    """One row per inventory; the provider's mdev count on its first row.
    A counter of a WINDOW_CAPPED provider (NVIDIA mixed-size) shows its
    FREE as what one report window may grant, not the GPU's capacity:
    said so."""
    with_mdevs = bool(data) and 'mdevs' in data[0]
    rows = []
    for rp in data:
        first = [rp['name']] + ([len(rp['mdevs'])] if with_mdevs else [])
        blank = [''] * len(first)
        capped = traits_mod.WINDOW_CAPPED in rp['traits']
        for rc, inv in rp['inventories'].items() or [('-', None)]:
            # A retired or shrunk class may hold more than it now offers
            # (Placement allows usage above capacity): nothing is free.
            free = None if inv is None else max(
                0, inv['total'] - inv['reserved'] - inv['used'])
            if capped and rc.startswith(provider_tree.COUNTER_PREFIX):
                free = '%d (this window)' % free
            numbers = [''] * 4 if inv is None else [
                inv['total'], inv['reserved'], inv['used'], free]
            rows.append(first + [rc] + numbers)
            first = blank
    headers = ['PROVIDER'] + (['MDEVS'] if with_mdevs else []) + [
        'CLASS', 'TOTAL', 'RESERVED', 'USED', 'FREE']
    return common.table(headers, rows) if rows else 'no providers'
