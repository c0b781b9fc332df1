"""Where the project reaches into Nova beyond a public hook.

Each entry names the Nova function it relies on and the releases it was
read against (nova 31.3.1, 32.2.1, 33.0.2 and 34.0.0 unless it says
otherwise); a new Nova release is read against this module first, and
the Nova tier run on it (tools/nova-tier/run-tests --release N).

Compute side (vgpu_placement.nova.driver), checked when the driver starts
(``missing``: nova-compute refuses to start, naming what is gone):

* PRIVATE_METHODS: the libvirt driver's private methods the driver
  overrides, with the parameters it passes on;
* HOST_METHODS: what it calls on the driver's ``_host``
  (nova/virt/libvirt/host.py ``Host``);
* MIGRATE_DATA_FIELDS: the ``LibvirtLiveMigrateData`` fields
  (nova/objects/migrate_data.py) a live migration's two sides exchange;
* NOVA_NAMES (``missing_names``): Nova's other functions and classes it
  calls.

The decisions themselves (reconcile, report, reshape, adoption) are
vgpu_placement.nova.node's, which reaches Nova only through callables
the driver hands it.

Scheduler side (vgpu_placement.nova.scheduler):

* ``nova/scheduler/client/report.py``
  ``SchedulerReportClient.get_allocation_candidates(context, resources)``
  returns ``(allocation_requests, provider_summaries, version)`` or None
  (``@safe_connect``). Nova keeps the summaries local to
  ``SchedulerManager.select_destinations`` and gives filters and weighers
  only each host's candidates; the wrapper keeps them for the request
  being scheduled in this thread.
* ``nova/scheduler/utils.py`` ``claim_resources(ctx, client, spec_obj,
  instance_uuid, alloc_req, allocation_request_version=None)`` returns
  True when Placement took the claim; in a multi-create request the
  manager claims one instance after another from the same summaries, so
  the wrapper adds each claim taken to the usage kept.

Both wrappers only observe: the call, its arguments and its answer are
Nova's own, and nothing raised while observing reaches Nova.
"""
import functools
import importlib
import inspect
import logging
import threading

from vgpu_placement.placement import packing

LOG = logging.getLogger(__name__)
_MARK = '_vgpu_placement_wrapped'
_local = threading.local()

# nova/virt/libvirt/driver.py LibvirtDriver: method -> the parameters the
# override relies on, in order after self.
PRIVATE_METHODS = {
    # Makes a guest's mdevs from its allocations (spawn,
    # finish_migration, a live migration's destination). Nova calls it in
    # the thread of spawn, finish_migration or _hard_reboot, with the
    # allocations only: the driver names the instance through a
    # thread-local set around those three.
    '_allocate_mdevs': ('allocations',),
    # Adds a guest's mdev hostdevs to its config (every path that
    # defines a guest, through _get_guest_config).
    '_guest_add_mdevs': ('guest', 'chosen_mdevs'),
    # {mdev uuid: instance uuid} from the guests' XML, read when a guest
    # is defined again and by the source of a live migration.
    '_get_all_assigned_mediated_devices': ('instance',),
    # Destroys the guest keeping its disks (through destroy(), in the
    # same thread: the driver keeps the mdevs then), and defines it again.
    '_hard_reboot': ('context', 'instance'),
}
# nova/virt/libvirt/host.py Host.
HOST_METHODS = ('get_hostname', 'get_connection', 'list_guests',
                'has_min_version')
MIGRATE_DATA_FIELDS = ('source_mdev_types', 'target_mdevs',
                       'pci_dev_map_src_dst')
# Nova's other names the driver calls, by module path: the servers and
# moves of this host (nova/objects/instance.py, migration.py), Nova's
# report client (nova/scheduler/client/report.py), the PCI device_spec
# parser (nova/pci/whitelist.py) and the guest's PCI hostdev config
# (nova/virt/libvirt/config.py).
NOVA_NAMES = (
    'nova.objects.InstanceList.get_by_host',
    'nova.objects.MigrationList.get_in_progress_by_host_and_node',
    'nova.scheduler.client.report.report_client_singleton',
    'nova.pci.whitelist.Whitelist',
    'nova.virt.libvirt.config.LibvirtConfigGuestHostdevPCI',
)


def missing(driver_cls, host_cls, migrate_data_cls):
    """What this Nova lacks of the entries above, as 'Class.name' strings
    (empty: the driver can run)."""
    gone = []
    for name, params in PRIVATE_METHODS.items():
        method = getattr(driver_cls, name, None)
        try:
            found = list(inspect.signature(method).parameters)[1:]
        except (TypeError, ValueError):
            found = None
        if found is None or found[:len(params)] != list(params):
            gone.append('%s.%s(%s)' % (driver_cls.__name__, name,
                                       ', '.join(params)))
    gone += ['%s.%s' % (host_cls.__name__, name) for name in HOST_METHODS
             if not callable(getattr(host_cls, name, None))]
    fields = getattr(migrate_data_cls, 'fields', {})
    gone += ['%s.%s' % (migrate_data_cls.__name__, name)
             for name in MIGRATE_DATA_FIELDS if name not in fields]
    return gone


def missing_names(names=NOVA_NAMES):
    """The dotted names (module, then attributes) that do not resolve."""
    gone = []
    for name in names:
        parts = name.split('.')
        found = None
        for cut in range(len(parts) - 1, 0, -1):
            try:
                found = importlib.import_module('.'.join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                found = getattr(found, attr, None)
            break
        if found is None:
            gone.append(name)
    return gone


class Scheduling:
    """What one scheduling request has seen: its provider summaries as
    packing.Provider objects, with the claims taken since added. Owned by
    the thread running that request (Nova runs select_destinations in one
    thread, from the candidates query to the last claim)."""

    def __init__(self, request_id):
        self.request_id = request_id
        self.providers = {}

    def saw(self, summaries):
        # A second query of the same request (Nova's PCPU fallback)
        # adds its providers.
        self.providers.update(packing.providers_from_summaries(summaries))

    def took(self, allocations):
        for rp, alloc in allocations.items():
            provider = self.providers.get(rp)
            if provider is None:
                continue
            for rc, n in alloc.get('resources', {}).items():
                provider.used[rc] = provider.used.get(rc, 0) + n


def current():
    """The Scheduling of the request this thread schedules, or None."""
    return getattr(_local, 'scheduling', None)


def _request_id(context):
    return getattr(context, 'request_id', None) or id(context)


def _saw_candidates(context, answer):
    scheduling = current()
    request_id = _request_id(context)
    if scheduling is None or scheduling.request_id != request_id:
        scheduling = _local.scheduling = Scheduling(request_id)
    if answer:
        scheduling.saw(answer[1])


def _took_claim(context, alloc_req, claimed):
    scheduling = current()
    if claimed and scheduling is not None and \
            scheduling.request_id == _request_id(context):
        scheduling.took(alloc_req.get('allocations', {}))


def _observe(owner, name, observer):
    """Wrap ``owner.name`` so that ``observer(args, kwargs, answer)``
    sees each call's arguments and answer; done once per process."""
    original = getattr(owner, name)
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        answer = original(*args, **kwargs)
        try:
            observer(args, kwargs, answer)
        except Exception:
            LOG.exception('vgpu-placement: observing %s failed (the '
                          'packing filter and weigher go without it)', name)
        return answer
    setattr(wrapper, _MARK, True)
    setattr(owner, name, wrapper)


def observe_scheduling():
    """Install both observers (idempotent). Called by the filter and the
    weigher when nova-scheduler loads them."""
    from nova.scheduler.client import report
    from nova.scheduler import utils

    _observe(report.SchedulerReportClient, 'get_allocation_candidates',
             lambda args, kwargs, answer: _saw_candidates(
                 kwargs.get('context', args[1] if len(args) > 1 else None),
                 answer))
    _observe(utils, 'claim_resources',
             lambda args, kwargs, answer: _took_claim(
                 kwargs.get('ctx', args[0] if args else None),
                 kwargs.get('alloc_req', args[4] if len(args) > 4 else {}),
                 answer))
