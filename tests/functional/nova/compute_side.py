"""nova-compute's side of a shared Placement, one step per command.

Runs in a Nova's own virtualenv (``.cache/nova-venv*``), never in the
project's: that release's SchedulerReportClient driven as its
``ResourceTracker._update_to_placement`` drives it, for a compute node
whose virt driver reports the node's own resources and no vGPU (the
project reports those).

    python compute_side.py URL HOSTNAME COMPUTE_NODE_UUID

reads one command a line on stdin -- periodic, refresh (as if
``resource_provider_association_refresh`` had passed), restart (a new
report client: nova-compute restarted), quit -- and answers each with one
JSON line: {"ok", "error", "reads", "writes"}.
"""
import json
import logging
import os
import sys
import tempfile
import warnings

ROOT_INVENTORY = {
    'VCPU': {'total': 8, 'reserved': 0, 'min_unit': 1, 'max_unit': 8,
             'step_size': 1, 'allocation_ratio': 4.0},
    'MEMORY_MB': {'total': 16384, 'reserved': 512, 'min_unit': 1,
                  'max_unit': 16384, 'step_size': 1,
                  'allocation_ratio': 1.0},
}
# What ResourceTracker._get_traits always sets on the compute node (Nova
# 34: COMPUTE_NODE, OWNER_NOVA), plus one driver capability.
ROOT_TRAITS = ['COMPUTE_NODE', 'OWNER_NOVA', 'COMPUTE_IMAGE_TYPE_QCOW2']


def counted(client, counts):
    """Count the report client's requests by method."""
    for method in ('get', 'post', 'put', 'delete'):
        original = getattr(client, method)

        def wrapper(*args, _original=original, _method=method, **kwargs):
            counts['reads' if _method == 'get' else 'writes'] += 1
            return _original(*args, **kwargs)
        setattr(client, method, wrapper)
    return client


def main(url, host, root_uuid):
    warnings.simplefilter('ignore')
    # Eventlet or native threads, as nova-compute chooses them before the
    # rest of Nova is imported (nova/cmd/compute.py, or nova/cmd/__init__
    # in Nova 31), each release its own way.
    import nova.cmd.compute  # noqa: F401
    logging.basicConfig(level=logging.CRITICAL)
    fd, conf_file = tempfile.mkstemp(suffix='.conf')
    with os.fdopen(fd, 'w') as f:
        f.write('[placement]\nauth_type = admin_token\nendpoint = %s\n'
                'token = admin\n' % url)
    import nova.conf
    from nova import context as nova_context
    from nova import exception
    from nova.scheduler.client import report

    nova.conf.CONF(['--config-file', conf_file], project='nova',
                   default_config_files=[])
    os.unlink(conf_file)
    ctx = nova_context.get_admin_context()
    counts = {'reads': 0, 'writes': 0}
    client = counted(report.SchedulerReportClient(), counts)

    def periodic():
        # ResourceTracker._update_to_placement, with its retry on a
        # generation conflict (4 attempts).
        for attempt in range(4):
            try:
                # Nova 34's resource tracker reads the subtree; 31 to
                # 33's, the tree.
                ensure_root = getattr(
                    client, 'get_provider_subtree_and_ensure_root',
                    client.get_provider_tree_and_ensure_root)
                tree = ensure_root(ctx, root_uuid, name=host)
                client.get_allocations_for_provider_tree(ctx, host)
                tree.update_inventory(host, ROOT_INVENTORY)
                tree.update_traits(host, ROOT_TRAITS)
                client.update_from_provider_tree(ctx, tree)
                return
            except exception.ResourceProviderUpdateConflict:
                if attempt == 3:
                    raise

    for line in sys.stdin:
        op = line.strip()
        counts.update(reads=0, writes=0)
        answer = {'ok': True, 'error': None}
        try:
            if op == 'periodic':
                periodic()
            elif op == 'refresh':
                client._association_refresh_time = {
                    u: 0 for u in client._association_refresh_time}
            elif op == 'restart':
                client = counted(report.SchedulerReportClient(), counts)
            elif op == 'quit':
                break
            else:
                raise ValueError('unknown command %r' % op)
        except Exception as e:      # noqa: reported to the test
            answer = {'ok': False, 'error': '%s: %s' % (
                type(e).__name__, ' '.join(str(e).split()))}
        answer.update(counts)
        print(json.dumps(answer), flush=True)


if __name__ == '__main__':
    main(*sys.argv[1:4])
