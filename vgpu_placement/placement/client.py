"""Placement REST calls through a keystoneauth1 adapter, counted.

Errors become the project's typed exceptions: PlacementConflict for 409
(with Placement's error code), PlacementUnavailable when it cannot be
reached or answers 5xx, PlacementError otherwise.

Writes are never sent twice blindly. keystoneauth's ``connect_retries``
re-sends a request after any connection failure, a read timeout or a
connection dropped after the request went out included: a write only
delayed would then land twice (a PUT /allocations re-applied after its
consumer was released). Reads keep keystoneauth's retries; a write is
retried here, as many times and with the same doubling wait, only when
its connection was never made (refused, no route, connect timeout); any
other failure is PlacementUnavailable at once, for the caller to read
back what happened (``scheduler.Scheduler._put_checked``).
"""
import dataclasses
import os
import socket
import time

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
import requests
from urllib3 import exceptions as urllib3_exc

from vgpu_placement import exceptions
from vgpu_placement.placement import shapes

RETRY_DELAY = 0.5       # seconds before a write's first retry (doubles)
MAX_RETRY_DELAY = 60.0  # keystoneauth's own cap

# 1.39 is the newest microversion of openstack-placement 13.0.0 to 16.0.0
# (2025.1 to 2026.2); from 1.38 on, allocation writes must carry
# consumer_type. A service older than Yoga answers 406 to it.
MICROVERSION = '1.39'
OLDEST_PLACEMENT = '7.0.0 (Yoga)'


@dataclasses.dataclass
class RequestCount:
    reads: int = 0
    writes: int = 0

    def as_dict(self):
        return {'reads': self.reads, 'writes': self.writes}


def _causes(error):
    """The error and every error it came from (context, cause, reason,
    wrapped arguments), each once."""
    seen, stack = set(), [error]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend([e.__cause__, e.__context__, getattr(e, 'reason', None)])
        stack.extend(getattr(e, 'args', ()))


# Failures of the connection itself: the request never left.
_NOT_SENT = (requests.exceptions.ConnectTimeout,
             urllib3_exc.NewConnectionError, urllib3_exc.ConnectTimeoutError,
             ConnectionRefusedError, socket.gaierror)


def never_sent(error):
    """True when a keystoneauth connection error surely means the request
    never reached the server: the connection itself was refused, found no
    route or timed out. A read timeout or a dropped connection may come
    after the server took the request."""
    causes = list(_causes(error))
    return any(isinstance(c, _NOT_SENT) for c in causes) and not any(
        isinstance(c, requests.exceptions.ReadTimeout) for c in causes)


class PlacementClient:

    def __init__(self, adapter, sleep=time.sleep):
        self.adapter = adapter
        self.sleep = sleep
        self.count = RequestCount()

    def _send(self, method, path, kwargs):
        """The adapter's response; a write is retried only while its
        connection was never made (see the module's docstring)."""
        if method == 'GET':
            return self.adapter.request(path, method, **kwargs)
        retries = getattr(self.adapter, 'connect_retries', None) or 0
        fixed = getattr(self.adapter, 'connect_retry_delay', None)
        delay = fixed or RETRY_DELAY     # 0 or unset: doubling, as ksa
        while True:
            try:
                return self.adapter.request(path, method, connect_retries=0,
                                            **kwargs)
            except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout) as e:
                if retries <= 0 or not never_sent(e):
                    raise
            retries -= 1
            self.sleep(delay)
            if not fixed:
                delay = min(delay * 2, MAX_RETRY_DELAY)

    @property
    def endpoint(self):
        try:
            return self.adapter.get_endpoint()
        except ks_exc.ClientException:
            return None

    def request(self, method, path, body=None, microversion=MICROVERSION,
                ok=(200, 201, 204), shape=None):
        """The answer's JSON object (None when empty). ``shape``
        (placement.shapes): what the caller will read of it; an answer of
        another shape is PlacementUnavailable, said in one line."""
        if method == 'GET':
            self.count.reads += 1
        else:
            self.count.writes += 1
        kwargs = {'microversion': microversion, 'raise_exc': False}
        if body is not None:
            kwargs['json'] = body
        try:
            resp = self._send(method, path, kwargs)
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout,
                ks_exc.DiscoveryFailure, ks_exc.EndpointNotFound,
                ks_exc.UnknownConnectionError) as e:
            raise exceptions.PlacementUnavailable(
                'Placement is unreachable (%s %s): %s'
                % (method, path, _first_line(e)))
        except ks_exc.ClientException as e:
            # Any other keystoneauth failure (TLS, auth, ...): no answer
            # from Placement either, said in one line.
            raise exceptions.PlacementUnavailable(
                'Placement %s %s failed: %s: %s'
                % (method, path, type(e).__name__, _first_line(e)))
        if resp.status_code in ok:
            if not resp.content:
                return None
            try:
                body = resp.json()
            except ValueError:
                raise exceptions.PlacementUnavailable(
                    'Placement %s %s answered %s with a body that is not '
                    'JSON (a proxy?)' % (method, path, resp.status_code))
            if not isinstance(body, dict):
                # Every Placement answer is a JSON object.
                raise exceptions.PlacementUnavailable(
                    'Placement %s %s answered %s with JSON that is not an '
                    'object (%s)' % (method, path, resp.status_code,
                                     type(body).__name__))
            wrong = shape and shapes.check(body, shape)
            if wrong:
                raise exceptions.PlacementUnavailable(
                    'Placement %s %s answered %s with JSON of the wrong '
                    'shape: %s' % (method, path, resp.status_code, wrong))
            return body
        code = detail = None
        try:
            error = resp.json()['errors'][0]
            code, detail = error.get('code'), error.get('detail')
        except (ValueError, KeyError, IndexError, TypeError):
            detail = resp.text[:200]
        if resp.status_code == 409:
            raise exceptions.PlacementConflict(method, path, 409, code, detail)
        if resp.status_code == 406 and 'version' in (detail or '').lower():
            raise exceptions.PlacementTooOld(microversion,
                                             self._max_microversion(),
                                             OLDEST_PLACEMENT)
        if resp.status_code >= 500:
            raise exceptions.PlacementUnavailable(
                'Placement %s %s answered %s: %s' % (
                    method, path, resp.status_code, (detail or '').strip()))
        raise exceptions.PlacementError(method, path, resp.status_code, code,
                                        detail)

    def _max_microversion(self):
        """The newest microversion the service's root document offers,
        or None where it cannot be read."""
        try:
            resp = self.adapter.request('/', 'GET', raise_exc=False)
            return resp.json()['versions'][0]['max_version']
        except (ks_exc.ClientException, ValueError, KeyError, IndexError,
                TypeError):
            return None

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def put(self, path, body, **kw):
        return self.request('PUT', path, body, **kw)

    def post(self, path, body, **kw):
        return self.request('POST', path, body, **kw)

    def delete(self, path, **kw):
        return self.request('DELETE', path, **kw)


def _first_line(error):
    return (str(error).splitlines() or [''])[0]


def _check_tls_files(conf):
    """Each TLS file named must be readable now, not at the first request
    (where it fails as an unreachable Placement)."""
    for option in ('cafile', 'certfile', 'keyfile'):
        path = conf.placement[option]
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise exceptions.ConfigError(
                '[placement] %s' % option,
                '%s is not a readable file' % path,
                'give the path of a PEM file this user can read')


def adapter_from_conf(conf):
    """A keystoneauth1 adapter from the [placement] options, as Nova does."""
    group = 'placement'
    _check_tls_files(conf)
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, group)
    except ks_exc.NoMatchingPlugin as e:
        raise exceptions.ConfigError(
            '[placement] auth_type', str(e),
            'use an installed keystoneauth1 plugin, e.g. password, '
            'v3applicationcredential or admin_token')
    except ks_exc.MissingRequiredOptions as e:
        raise exceptions.ConfigError(
            '[placement] auth_type',
            'the auth plugin needs %s' % ', '.join(
                o.dest for o in e.options),
            'set them in [placement]')
    if auth is None:
        raise exceptions.ConfigError(
            '[placement] auth_type', 'no credentials for Placement',
            'set auth_type (e.g. password) and its options, or enable '
            '[embedded_placement]')
    session = ks_loading.load_session_from_conf_options(conf, group,
                                                        auth=auth)
    try:
        return ks_loading.load_adapter_from_conf_options(
            conf, group, session=session, auth=auth)
    except TypeError as e:
        # keystoneauth's word for a bad interface name.
        if 'valid_interfaces' not in str(e):
            raise
        raise exceptions.ConfigError(
            '[placement] valid_interfaces', _first_line(e),
            'list some of public, internal and admin')
