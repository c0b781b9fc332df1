"""Bad values stop every command at start-up with one line naming the option;
secrets never reach an error line or a log."""
import argparse
import logging
import os
import stat
import sys

from oslo_config import cfg
import pytest

from tests.conftest import make_conf
from vgpu_placement.cmd import common
from vgpu_placement.conf import checks
from vgpu_placement import exceptions
from vgpu_placement.placement import provider_tree
from vgpu_placement import redact

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SECRET_URL = 'http://user:s3cret@127.0.0.1:1/placement'


@pytest.fixture(autouse=True)
def keep_logging():
    """load_conf sets up oslo.log on the root logger: put it back after."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    levels = {name: lg.level for name, lg in
              logging.root.manager.loggerDict.items()
              if isinstance(lg, logging.Logger)}
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook = hook
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger):
            lg.setLevel(levels.get(name, logging.NOTSET))


def load(tmp_path, text='', quiet=True):
    """common.load_conf on a file: state_path under tmp_path unless set."""
    if 'state_path' not in text:
        text = '[DEFAULT]\nstate_path = %s\n%s' % (tmp_path / 'state', text)
    path = tmp_path / 'test.conf'
    path.write_text(text)
    args = argparse.Namespace(config_file=[str(path)], config_dir=None,
                              debug=False)
    return common.load_conf(args, quiet=quiet)


def error(tmp_path, text, starts):
    with pytest.raises(exceptions.ConfigError) as err:
        load(tmp_path, text)
    line = str(err.value)
    assert '\n' not in line
    assert line.startswith(starts + ':'), line
    return line


# -- [DEFAULT] state_path ---------------------------------------------------

def test_state_path_that_is_a_file(tmp_path):
    (tmp_path / 'afile').write_text('x')
    error(tmp_path, '[DEFAULT]\nstate_path = %s\n' % (tmp_path / 'afile'),
          '[DEFAULT] state_path')


@pytest.mark.parametrize('path', ['/proc/vgpu', '/sys/kernel/vgpu', '/proc',
                                  '/sys/../sys/x'])
def test_state_path_under_proc_or_sys(tmp_path, path):
    error(tmp_path, '[DEFAULT]\nstate_path = %s\n' % path,
          '[DEFAULT] state_path')


def test_state_path_must_be_absolute(tmp_path):
    line = error(tmp_path, '[DEFAULT]\nstate_path = var/state\n',
                 '[DEFAULT] state_path')
    assert 'absolute' in line


def test_good_state_path_loads(tmp_path):
    conf = load(tmp_path)
    assert conf.state_path == str(tmp_path / 'state')


def test_an_existing_state_dir_is_made_private(tmp_path):
    (tmp_path / 'state').mkdir()
    os.chmod(tmp_path / 'state', 0o755)
    load(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / 'state').st_mode) == 0o700


# -- [embedded_placement] database, [DEFAULT] log_file / log_dir ------------

def test_embedded_database_in_a_directory_that_cannot_be_made(tmp_path):
    (tmp_path / 'afile').write_text('x')
    error(tmp_path, '[embedded_placement]\nenabled = true\ndatabase = '
          '%s\n' % (tmp_path / 'afile' / 'sub' / 'placement.sqlite'),
          '[embedded_placement] database')


def test_embedded_database_that_is_a_directory(tmp_path):
    error(tmp_path, '[embedded_placement]\nenabled = true\ndatabase = '
          '%s\n' % tmp_path, '[embedded_placement] database')


def test_embedded_database_not_checked_when_disabled(tmp_path):
    (tmp_path / 'afile').write_text('x')
    load(tmp_path, '[embedded_placement]\ndatabase = %s\n'
         % (tmp_path / 'afile' / 'placement.sqlite'))


def test_embedded_database_in_a_directory_still_to_make(tmp_path):
    load(tmp_path, '[embedded_placement]\nenabled = true\ndatabase = %s\n'
         % (tmp_path / 'new' / 'deeper' / 'placement.sqlite'))


@pytest.mark.parametrize('where', ['missing-dir/agent.log', '.'])
def test_log_file_not_writable(tmp_path, where):
    error(tmp_path, '[DEFAULT]\nlog_file = %s\n' % (tmp_path / where),
          '[DEFAULT] log_file')


def test_log_dir_not_writable(tmp_path):
    (tmp_path / 'afile').write_text('x')
    error(tmp_path, '[DEFAULT]\nlog_dir = %s\n' % (tmp_path / 'afile'),
          '[DEFAULT] log_dir')
    error(tmp_path, '[DEFAULT]\nlog_dir = %s\n' % (tmp_path / 'nope'),
          '[DEFAULT] log_dir')


def test_log_file_in_log_dir(tmp_path):
    (tmp_path / 'logs').mkdir()
    load(tmp_path, '[DEFAULT]\nlog_dir = %s\nlog_file = agent.log\n'
         % (tmp_path / 'logs'))
    logging.getLogger('vgpu_placement').warning('written')
    assert 'written' in (tmp_path / 'logs' / 'agent.log').read_text()
    error(tmp_path, '[DEFAULT]\nlog_dir = %s\nlog_file = nodir/agent.log\n'
          % (tmp_path / 'logs'), '[DEFAULT] log_file')


# -- [DEFAULT] host -----------------------------------------------------------

@pytest.mark.parametrize('host', ['', ' ', 'compute 1', 'compute\t1',
                                  'compute\x01', 'compute\x7f'])
def test_host_empty_or_with_whitespace_or_control_characters(tmp_path, host):
    # A config file cannot hold every character: set it as the CLI would
    # read it, then check as load_conf does.
    conf = make_conf(host=host, state_path=str(tmp_path))
    with pytest.raises(exceptions.ConfigError) as err:
        checks.check_values(conf)
    assert str(err.value).startswith('[DEFAULT] host:')


def test_host_empty_in_a_file(tmp_path):
    error(tmp_path, '[DEFAULT]\nhost =\n', '[DEFAULT] host')


def test_host_long_enough_to_push_child_names_past_placement_limit(
        tmp_path):
    longest = 'h' * checks.HOST_MAX_LENGTH
    # Every PCI parent's provider name still fits Placement's 200.
    assert len(provider_tree.provider_name(longest, '0000:84:00.0')) == 200
    assert load(tmp_path, '[DEFAULT]\nhost = %s\n' % longest).host == longest
    line = error(tmp_path, '[DEFAULT]\nhost = %s\n' % (longest + 'h'),
                 '[DEFAULT] host')
    assert str(checks.HOST_MAX_LENGTH) in line


# -- [agent] intervals --------------------------------------------------------

@pytest.mark.parametrize('option, top', [('report_interval', 86400),
                                         ('max_backoff', 86400),
                                         ('reconcile_interval', 7 * 86400)])
def test_agent_intervals_have_a_maximum(tmp_path, option, top):
    assert getattr(load(tmp_path, '[agent]\n%s = %d\n' % (option, top))
                   .agent, option) == top
    error(tmp_path, '[agent]\n%s = 99999999999\n' % option,
          '[agent] %s' % option)
    error(tmp_path, '[agent]\n%s = %d\n' % (option, top + 1),
          '[agent] %s' % option)


# -- [placement] timeout ----------------------------------------------------

def test_placement_timeout_defaults_to_30_seconds():
    assert make_conf().placement.timeout == 30


def test_sample_config_shows_the_timeout_default():
    with open(os.path.join(ROOT, 'etc', 'vgpu-placement',
                           'vgpu-placement.conf.sample')) as f:
        sample = f.read()
    placement = sample.split('\n[placement]\n')[1].split('\n[')[0]
    assert '\n#timeout = 30\n' in placement


# -- redaction and the one error line -----------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('to http://user:pw@127.0.0.1:1/x failed',
     'to http://user:***@127.0.0.1:1/x failed'),
    ('https://admin:p@ss:w0rd@placement:8778',
     'https://admin:***@placement:8778'),
    ('http://tok3n@host/', 'http://***@host/'),
    ("'http://u:@h' and http://v:x@k/?q=a@b",
     "'http://u:***@h' and http://v:***@k/?q=a@b"),
    ('http://127.0.0.1:8778/placement mail@example.org',
     'http://127.0.0.1:8778/placement mail@example.org'),
    ('', ''),
    (None, None),
])
def test_redact(text, expected):
    assert redact.redact(text) == expected


def _raise(error):
    def func(args):
        raise error
    return func


@pytest.mark.parametrize('error', [
    exceptions.PlacementUnavailable('Placement is unreachable: Unable to '
                                    'establish connection to %s' % SECRET_URL),
    cfg.Error('bad %s' % SECRET_URL),
    RuntimeError('odd %s' % SECRET_URL),
])
def test_error_lines_hide_passwords(capsys, error):
    assert common.run(_raise(error), argparse.Namespace(debug=False)) == 1
    err = capsys.readouterr().err
    assert 's3cret' not in err
    assert 'http://user:***@127.0.0.1:1/placement' in err
    assert len(err.strip().splitlines()) == 1


def test_error_line_is_capped(capsys):
    error = exceptions.VgpuPlacementError('x' * 5000 + SECRET_URL)
    common.run(_raise(error), argparse.Namespace(debug=False))
    line = capsys.readouterr().err.rstrip('\n')
    assert line.startswith('vgpu-placement: error: xxx')
    assert line.endswith('...') and len(line) <= 500


def test_logs_hide_passwords_of_every_logger(tmp_path):
    load(tmp_path, '[DEFAULT]\nlog_file = %s\n' % (tmp_path / 'agent.log'),
         quiet=False)
    # keystoneauth's retry warning, and one of ours with a traceback.
    logging.getLogger('keystoneauth.session').warning(
        'Failure: Unable to establish connection to %s. Retrying in 0.5s.',
        SECRET_URL)
    log = logging.getLogger('vgpu_placement.cmd.agent')
    try:
        raise exceptions.PlacementUnavailable('down: %s' % SECRET_URL)
    except exceptions.PlacementUnavailable as e:
        log.exception('report cycle failed')
        # oslo.log appends the exception being handled to this line.
        log.warning('Placement unavailable: %s', e)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / 'agent.log').read_text()
    assert 'Retrying in 0.5s' in text and 'report cycle failed' in text
    assert 'Placement unavailable' in text
    assert 'down: http://user:***@127.0.0.1:1/placement' in text
    assert 's3cret' not in text
