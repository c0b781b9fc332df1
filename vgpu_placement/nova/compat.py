"""Where the project reaches into Nova beyond a public hook (scheduler side).

Each entry names the Nova function it wraps and the releases it was read
against; a new Nova release is checked here first (and by the Nova tier).

* ``nova/scheduler/client/report.py``
  ``SchedulerReportClient.get_allocation_candidates(context, resources)``
  returns ``(allocation_requests, provider_summaries, version)`` or None
  (``@safe_connect``). Nova keeps the summaries local to
  ``SchedulerManager.select_destinations`` and gives filters and weighers
  only each host's candidates; the wrapper keeps them for the request
  being scheduled in this thread. Read against nova 34.0.0.
* ``nova/scheduler/utils.py`` ``claim_resources(ctx, client, spec_obj,
  instance_uuid, alloc_req, allocation_request_version=None)`` returns
  True when Placement took the claim; in a multi-create request the
  manager claims one instance after another from the same summaries, so
  the wrapper adds each claim taken to the usage kept. Read against nova
  34.0.0.

Both wrappers only observe: the call, its arguments and its answer are
Nova's own, and nothing raised while observing reaches Nova.
"""
import functools
import logging
import threading

from vgpu_placement.placement import packing

LOG = logging.getLogger(__name__)
_MARK = '_vgpu_placement_wrapped'
_local = threading.local()


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
    """Wrap ``owner.name`` so that ``observer(args, answer)`` sees each
    call's arguments and answer; done once per process."""
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
