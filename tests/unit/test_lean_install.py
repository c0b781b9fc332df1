"""A compute host's install carries no Placement server.

The embedded Placement is the extra 'embedded' (setup.cfg [extras]); the
base requirements name none of its packages, and no module of the project
imports them at load time. Without the extra, a configuration that enables
the embedded Placement stops the commands with one line naming the extra.

"Without the extra" is simulated in a child interpreter by making the
server's top-level modules unimportable (``sys.modules[name] = None``, which
is what the import system reads as "not installed"): a fresh virtualenv
would need the network.
"""
import configparser
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
EXTRA_HINT = "pip install 'vgpu-placement[embedded]'"

# The Placement server and what only it pulls in (openstack-placement
# 16.0.0's requirements that no base requirement needs), by distribution
# and by top-level module.
SERVER_DISTRIBUTIONS = {
    'openstack-placement', 'sqlalchemy', 'oslo.db', 'keystonemiddleware',
    'wsgi-intercept', 'webob', 'routes', 'microversion-parse',
    'oslo.policy', 'oslo.middleware', 'oslo.upgradecheck', 'jsonschema',
    'alembic', 'pastedeploy', 'paste'}
SERVER_MODULES = (
    'placement', 'sqlalchemy', 'oslo_db', 'keystonemiddleware',
    'wsgi_intercept', 'webob', 'routes', 'microversion_parse',
    'oslo_policy', 'oslo_middleware', 'oslo_upgradecheck', 'jsonschema',
    'alembic', 'paste')

# Run in a child: hide the server (optionally), run CODE, then print the
# server modules that got imported.
CHILD = r'''
import sys
hidden = sys.argv[1].split(',') if sys.argv[1] else []
for name in hidden:
    sys.modules[name] = None
server = sys.argv[2].split(',')
code = sys.argv[3]
try:
    exec(code)
finally:
    loaded = sorted(m for m, mod in sys.modules.items()
                    if mod is not None and m.split('.')[0] in server)
    print('SERVER-MODULES:' + ','.join(loaded), file=sys.stderr)
'''


IMPORT_ALL = '''
import importlib, pkgutil, vgpu_placement
for m in pkgutil.walk_packages(vgpu_placement.__path__, 'vgpu_placement.',
                               onerror=lambda name: None):
    try:
        importlib.import_module(m.name)
    except ModuleNotFoundError as e:
        if (e.name or '').startswith('vgpu_placement'):
            raise
        print('skipped %s (no %s)' % (m.name, e.name), file=sys.stderr)
        continue
    print(m.name)
'''


def run_child(code, hide=True, args=()):
    proc = subprocess.run(
        [sys.executable, '-c', CHILD,
         ','.join(SERVER_MODULES) if hide else '',
         ','.join(SERVER_MODULES), code] + list(args),
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = proc.stderr.splitlines()
    marker = [ln for ln in lines if ln.startswith('SERVER-MODULES:')]
    assert marker, proc.stderr[-2000:]
    loaded = [m for m in marker[-1].split(':', 1)[1].split(',') if m]
    rest = '\n'.join(ln for ln in lines if not ln.startswith(
        'SERVER-MODULES:'))
    return proc.returncode, loaded, proc.stdout, rest


def requirement_names(lines):
    names = []
    for line in lines:
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-'):
            names.append(re.match(r'[A-Za-z0-9._-]+', line).group(0).lower())
    return names


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read().splitlines()


def embedded_extra():
    parser = configparser.RawConfigParser()
    parser.read(os.path.join(ROOT, 'setup.cfg'))
    return [ln.strip() for ln in parser['extras']['embedded'].splitlines()
            if ln.strip() and not ln.strip().startswith('#')]


def test_base_requirements_name_no_server_package():
    base = requirement_names(read('requirements.txt'))
    assert 'keystoneauth1' in base          # the file was read
    assert not SERVER_DISTRIBUTIONS & set(base)


def test_embedded_extra_holds_the_server_and_tests_install_it():
    extra = embedded_extra()
    assert {'openstack-placement', 'sqlalchemy', 'wsgi-intercept'} <= set(
        requirement_names(extra))
    # The README's test command installs -e . -r test-requirements.txt:
    # the same pins, so that the tests get the embedded Placement.
    tests = {ln.strip() for ln in read('test-requirements.txt')}
    assert [r for r in extra if r not in tests] == []


def test_no_module_imports_the_server_at_load_time():
    # Every module of the package, the embedded Placement's included:
    # importing it must not pull the server in. Modules that live inside
    # another program (the Nova virt driver needs nova) are skipped when
    # that program is not installed here.
    rc, loaded, out, err = run_child(IMPORT_ALL, hide=False)
    assert rc == 0, err
    imported = out.split()
    assert 'vgpu_placement.cmd.agent' in imported
    assert 'vgpu_placement.placement.embedded' in imported
    assert loaded == []


@pytest.mark.parametrize('module,prog,command', [
    ('vgpu_placement.cmd.cli', 'vgpu-placement', ['report']),
    ('vgpu_placement.cmd.cli', 'vgpu-placement', ['demo']),
    ('vgpu_placement.cmd.agent', 'vgpu-placement-agent', []),
])
def test_embedded_enabled_without_the_extra_is_one_line(
        tmp_path, module, prog, command):
    state = tmp_path / 'state'
    conf = tmp_path / 'vgpu.conf'
    conf.write_text('[DEFAULT]\nhost = lean\ndriver = simulated\n'
                    'state_path = %s\n[simulated]\nprofile = demo-host\n'
                    '[embedded_placement]\nenabled = true\n' % state)
    if command == ['demo']:
        # The demo writes its own config enabling the embedded Placement.
        argv = ['demo', '--state-dir', str(state)]
    else:
        argv = ['--config-file', str(conf)] + command
    code = ('import sys\nfrom %s import main\nsys.exit(main(%r))'
            % (module, argv))
    rc, loaded, out, err = run_child(code)
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        '%s: error: [embedded_placement] enabled: ' % prog), lines[0]
    assert lines[0].endswith(EXTRA_HINT), lines[0]
    assert loaded == []
    # Stopped before anything was made in the state path.
    assert not os.path.exists(state / 'placement.sqlite')


def test_check_installed_names_what_is_missing(monkeypatch):
    from vgpu_placement import exceptions
    from vgpu_placement.placement import embedded

    embedded.check_installed()          # the test environment has it
    monkeypatch.setattr(embedded, 'SERVER_MODULES',
                        ('placement', 'no_such_module_for_this_test'))
    with pytest.raises(exceptions.ConfigError) as e:
        embedded.check_installed()
    assert '(no module no_such_module_for_this_test)' in str(e.value)
    assert str(e.value).endswith(EXTRA_HINT)
