"""The Placement client turns every failure into one typed, one-line error."""
import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import make_conf
from vgpu_placement import exceptions
from vgpu_placement.placement import client as client_mod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def admin_token(endpoint, extra=''):
    return make_conf('[placement]\nauth_type = admin_token\nendpoint = %s\n'
                     'token = admin\nconnect_retries = 0\n%s'
                     % (endpoint, extra))


def new_client(endpoint, extra=''):
    return client_mod.PlacementClient(
        client_mod.adapter_from_conf(admin_token(endpoint, extra)))


@contextlib.contextmanager
def serving(handle):
    """127.0.0.1:<port> where every request (any method) is handed to
    ``handle(handler)``, a BaseHTTPRequestHandler."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def _handle(self):
            handle(self)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def http_server(status, body, content_type):
    """127.0.0.1:<port> answering every request with this status and
    body."""
    def answer(handler):
        handler.send_response(status)
        handler.send_header('Content-Type', content_type)
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return serving(answer)


def one_line(err):
    text = str(err.value)
    assert '\n' not in text
    return text


def test_a_proxy_answering_html_with_200():
    with http_server(200, b'<html>login</html>', 'text/html') as port:
        client = new_client('http://127.0.0.1:%d' % port)
        with pytest.raises(exceptions.PlacementUnavailable) as err:
            client.get('/x')
    assert one_line(err) == ('Placement GET /x answered 200 with a body '
                             'that is not JSON (a proxy?)')


@pytest.mark.parametrize('body', [b'[]', b'"ok"', b'42', b'null'])
def test_json_that_is_not_an_object_is_one_line(body):
    with http_server(200, body, 'application/json') as port:
        client = new_client('http://127.0.0.1:%d' % port)
        with pytest.raises(exceptions.PlacementUnavailable) as err:
            client.get('/resource_providers')
    assert one_line(err).startswith(
        'Placement GET /resource_providers answered 200 with JSON that is '
        'not an object')


_TLS_PROBE = """
import sys
from tests.unit.test_client import new_client
try:
    new_client(sys.argv[1]).get('/resource_providers')
except Exception as e:
    print(type(e).__name__, str(e).replace(chr(10), ' '))
"""


def test_tls_to_a_plain_http_server_is_placement_unavailable():
    # keystoneauth raises its SSLError: any ClientException is one line.
    # In a process of its own: the embedded Placement of the functional
    # tests replaces urllib3's HTTPS connections in this one.
    with http_server(200, b'{}', 'application/json') as port:
        probe = subprocess.run(
            [sys.executable, '-c', _TLS_PROBE, 'https://127.0.0.1:%d' % port],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
    kind, _, text = probe.stdout.strip().partition(' ')
    assert kind == 'PlacementUnavailable', probe.stdout + probe.stderr
    assert 'GET /resource_providers' in text


def test_a_hung_placement_times_out():
    # A listening socket completes connections in the kernel and never
    # answers, as a SIGSTOPped Placement does.
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(8)
        client = new_client('http://127.0.0.1:%d' % listener.getsockname()[1],
                            'timeout = 1\n')
        outcome = []

        def call():
            try:
                client.get('/resource_providers')
            except Exception as e:       # noqa: checked below
                outcome.append(e)
        thread = threading.Thread(target=call, daemon=True)
        start = time.monotonic()
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), 'the request hangs'
    assert time.monotonic() - start < 10
    assert len(outcome) == 1
    assert isinstance(outcome[0], exceptions.PlacementUnavailable)


@contextlib.contextmanager
def dropping_server():
    """(port, methods seen) of a server that reads each request whole,
    notes its method, and closes the connection without an answer: as a
    Placement that applied a write and died, or a proxy that timed out."""
    seen = []

    def drop(handler):
        length = int(handler.headers.get('Content-Length') or 0)
        handler.rfile.read(length)
        seen.append(handler.command)
        handler.close_connection = True
    with serving(drop) as port:
        yield port, seen


def test_a_write_that_may_have_arrived_is_never_sent_again():
    """connect_retries re-sends reads, never a write the server may have
    taken: a delayed PUT /allocations would land twice."""
    with dropping_server() as (port, seen):
        writer = new_client('http://127.0.0.1:%d' % port,
                            'connect_retries = 3\n')
        # One retry of a read (keystoneauth waits 0.5 s before it).
        reader = new_client('http://127.0.0.1:%d' % port,
                            'connect_retries = 1\n')
        for method, call, sent in (
                ('PUT', lambda: writer.put(
                    '/allocations/x', {'allocations': {}}), 1),
                ('POST', lambda: writer.post('/resource_providers', {}), 1),
                ('DELETE', lambda: writer.delete('/allocations/x'), 1),
                ('GET', lambda: reader.get('/resource_providers'), 2)):
            del seen[:]
            with pytest.raises(exceptions.PlacementUnavailable) as err:
                call()
            assert method in str(err.value)
            assert seen == [method] * sent


def test_a_write_whose_connection_was_never_made_is_retried():
    """Refused: the request never left, so the write is tried again, as
    many times as connect_retries says, the wait doubling."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]       # closed: connections refused
    waits = []
    client = client_mod.PlacementClient(client_mod.adapter_from_conf(
        make_conf('[placement]\nauth_type = admin_token\nendpoint = '
                  'http://127.0.0.1:%d\ntoken = admin\nconnect_retries = '
                  '3\n' % port)), sleep=waits.append)
    with pytest.raises(exceptions.PlacementUnavailable) as err:
        client.put('/allocations/x', {'allocations': {}})
    assert 'unreachable (PUT /allocations/x)' in str(err.value)
    assert waits == [0.5, 1.0, 2.0]


def test_the_session_waits_30_seconds_by_default():
    adapter = client_mod.adapter_from_conf(admin_token('http://127.0.0.1:1'))
    assert adapter.session.timeout == 30


def test_unknown_auth_type():
    conf = make_conf('[placement]\nauth_type = passwrod\n')
    with pytest.raises(exceptions.ConfigError) as err:
        client_mod.adapter_from_conf(conf)
    assert one_line(err).startswith('[placement] auth_type:')
    assert 'passwrod' in str(err.value)


@pytest.mark.parametrize('option', ['cafile', 'certfile', 'keyfile'])
def test_missing_tls_files(tmp_path, option):
    conf = admin_token('https://127.0.0.1:1', '%s = %s\n' % (
        option, tmp_path / 'missing.pem'))
    with pytest.raises(exceptions.ConfigError) as err:
        client_mod.adapter_from_conf(conf)
    assert one_line(err).startswith('[placement] %s:' % option)


def test_directory_as_cafile(tmp_path):
    conf = admin_token('https://127.0.0.1:1', 'cafile = %s\n' % tmp_path)
    with pytest.raises(exceptions.ConfigError) as err:
        client_mod.adapter_from_conf(conf)
    assert one_line(err).startswith('[placement] cafile:')


def test_readable_cafile_is_accepted(tmp_path):
    (tmp_path / 'ca.pem').write_text('not checked here')
    conf = admin_token('https://127.0.0.1:1', 'cafile = %s\n'
                       % (tmp_path / 'ca.pem'))
    assert client_mod.adapter_from_conf(conf).session.verify == str(
        tmp_path / 'ca.pem')
