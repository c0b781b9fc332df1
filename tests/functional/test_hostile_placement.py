"""A Placement answering well-formed JSON of the wrong shape: every command
that reads such an answer ends with one line naming the request and where
the shape differs, never a traceback or "unexpected error".

The commands run as users run them (separate processes) against the real
embedded Placement served on loopback HTTP, through a proxy that changes
one part of one kind of answer."""
import http.client
import http.server
import json
import pathlib
import re
import subprocess
import sys
import threading
import uuid

import pytest

from tests.conftest import make_conf
from tests.functional.conftest import embedded_only
from tests.functional.conftest import served_conf
from vgpu_placement.placement import client as client_mod
from vgpu_placement.placement import embedded
from vgpu_placement.placement import flavor
from vgpu_placement.placement import scheduler


class ManglingProxy:
    """Forwards every request to ``upstream`` (host, port); an answer to a
    GET whose path matches ``rule[0]`` is passed to ``rule[1]`` (a
    function changing the decoded JSON in place) first. ``mangled``
    counts the answers changed."""

    def __init__(self, upstream):
        self.rule = None
        self.mangled = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(*upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ('host', 'connection')}
                conn.request(self.command, self.path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                rule = proxy.rule
                if rule and self.command == 'GET' and data and \
                        re.search(rule[0], self.path):
                    answer = json.loads(data)
                    rule[1](answer)
                    data = json.dumps(answer).encode()
                    proxy.mangled += 1
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ('content-length', 'connection',
                                           'transfer-encoding', 'date',
                                           'server'):
                        self.send_header(key, value)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(placement_db, tmp_path, host):
    with embedded.LoopbackServer(placement_db) as server:
        proxy = ManglingProxy(('127.0.0.1', server.port))
        conf = served_conf(tmp_path, host, proxy.url)
        try:
            yield proxy, conf
        finally:
            proxy.close()


def tmp_state(conf):
    return pathlib.Path(re.search(r'state_path = (\S+)',
                                  conf.read_text()).group(1))


def cli(conf, *args):
    return subprocess.run(
        [sys.executable, '-m', 'vgpu_placement.cmd.cli', '--config-file',
         str(conf)] + list(args), capture_output=True, text=True,
        timeout=300)


def _first_provider_a_list(answer):
    answer['resource_providers'][0] = list(answer['resource_providers'][0])


def _every_value_a_list(key):
    def mangle(answer):
        answer[key] = {k: [v] for k, v in answer[key].items()}
    return mangle


def _set(key, value):
    def mangle(answer):
        answer[key] = value
    return mangle


# (what is changed, path of the answers changed, change, commands).
CASES = [
    ('a provider is a list', r'^/resource_providers\?in_tree',
     _first_provider_a_list, [['report'], ['status']]),
    ('inventories a list', r'/inventories$', _set('inventories', []),
     [['report'], ['status']]),
    ('traits an object', r'/traits$', _set('traits', {}), [['status']]),
    ('a generation a string', r'/traits$',
     _set('resource_provider_generation', '7'), [['report']]),
    ('allocations on a provider hold lists', r'/resource_providers/.*/'
     r'allocations$', _every_value_a_list('allocations'),
     [['reconcile']]),
    ('a consumer\'s allocations a list', r'^/allocations/',
     _set('allocations', []), [['realize', '--instance', None]]),
    ('provider summaries a list', r'^/allocation_candidates',
     _set('provider_summaries', []), [['claim', '--instance', None]]),
]


@embedded_only
def test_answers_of_the_wrong_shape_are_one_line(hostile, host):
    proxy, conf = hostile
    assert cli(conf, 'report').returncode == 0
    spec = json.loads(cli(conf, 'flavor-spec', 'mdpy-hd', '--format',
                          'json').stdout)['extra_specs']
    specs = ['%s=%s' % kv for kv in sorted(spec.items())]
    # An instance claimed on this host (the shared Placement holds other
    # tests' hosts too), so that realize, release and reconcile read its
    # allocations.
    instance = str(uuid.uuid4())
    client = client_mod.PlacementClient(client_mod.adapter_from_conf(
        make_conf(conf.read_text())))
    [root] = client.get('/resource_providers?name=%s' % host)[
        'resource_providers']
    scheduler.claim(client, flavor.parse_extra_specs(spec), instance, 'p',
                    'u', in_tree=root['uuid'])
    failures = []
    for what, path, mangle, commands in CASES:
        proxy.rule = (path, mangle)
        for args in commands:
            args = [instance if a is None else a for a in args]
            if args[0] == 'claim':
                args = args + specs
            # Each command reads every answer afresh: no cache of an
            # earlier command's reads spares it the changed one.
            for cache in tmp_state(conf).glob('placement-cache*.json'):
                cache.unlink()
            before = proxy.mangled
            proc = cli(conf, *args)
            lines = proc.stderr.strip().splitlines()
            if not (proc.returncode == 1 and len(lines) == 1 and
                    'wrong shape' in lines[0] and
                    lines[0].startswith('vgpu-placement: error: Placement '
                                        'GET') and
                    proxy.mangled > before):
                failures.append((what, args[0], proc.returncode,
                                 proc.stderr[-600:]))
    assert failures == [], '\n'.join(map(repr, failures))
    # A release that cannot read the instance's allocations frees its
    # vGPUs and owes the release, as when Placement is down; nothing is
    # lost: the next reconcile makes it.
    proxy.rule = (r'^/allocations/', _set('allocations', []))
    proc = cli(conf, 'release', '--instance', instance)
    assert proc.returncode == 1 and 'reconcile will release' in proc.stdout
    assert 'wrong shape' in proc.stderr and 'Traceback' not in proc.stderr
    proxy.rule = None
    assert cli(conf, 'reconcile').returncode == 0
    conn = http.client.HTTPConnection(*proxy.server.server_address)
    conn.request('GET', '/allocations/%s' % instance,
                 headers={'X-Auth-Token': 'admin'})
    assert json.loads(conn.getresponse().read())['allocations'] == {}
    conn.close()
