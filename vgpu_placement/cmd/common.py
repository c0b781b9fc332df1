"""What every command shares: config loading and one-line errors."""
import json
import logging
import os
import re
import stat
import sys

from oslo_config import cfg
from oslo_log import log as oslo_logging

from vgpu_placement import conf as conf_mod
from vgpu_placement.conf import opts as conf_opts
from vgpu_placement import exceptions
from vgpu_placement import redact
from vgpu_placement import state_file

PROG = 'vgpu-placement'
# Placement names are at most 200 characters, and a parent's provider is
# <host>_pci_0000_84_00_0: the host name must leave room for the suffix.
HOST_MAX_LENGTH = 200 - len('_pci_0000_84_00_0')
# An error line stays readable (and a runaway message bounded).
MAX_ERROR_LINE = 500


def add_config_args(parser):
    parser.add_argument('--config-file', action='append', default=[],
                        metavar='PATH',
                        help='configuration file (repeatable)')
    parser.add_argument('--config-dir', metavar='DIR',
                        help='directory of *.conf files')
    parser.add_argument('--debug', action='store_true',
                        help='log debug messages; show tracebacks')


def load_conf(args, prog=PROG, quiet=True):
    """Parse the config files named by args into a fresh ConfigOpts.

    Without --config-file, oslo.config's usual places are searched
    (~/.vgpu-placement/, /etc/vgpu-placement/, ...). Logs go to stderr,
    so that stdout holds only what the command prints; ``quiet`` keeps
    our INFO lines out of a one-shot command's output.
    """
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf.set_default('use_stderr', True)
    levels = oslo_logging.get_default_log_levels() + [
        'alembic=WARN', 'placement=WARN']
    if quiet:
        # Connection retries are keystoneauth warnings; a command that
        # still fails says so in its one error line.
        levels += ['vgpu_placement=WARN', 'keystoneauth.session=ERROR']
    conf.set_default('default_log_levels', levels)
    argv = []
    for path in args.config_file:
        argv += ['--config-file', path]
    if args.config_dir:
        argv += ['--config-dir', args.config_dir]
    conf(argv, project='vgpu-placement', prog=prog)
    if args.debug:
        conf.set_override('debug', True)
    check_values(conf)
    if conf.log_file:
        # oslo.log would make it with the umask's mode (0644): logs name
        # instances and hosts, so the file is made 0600 first.
        os.close(os.open(os.path.join(conf.log_dir or '', conf.log_file),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    oslo_logging.setup(conf, 'vgpu-placement')
    redact.redact_handlers()
    state_file.tighten_dir(conf.state_path)
    return conf


def check_values(conf):
    """Read every static option once, so a bad value fails at start-up."""
    for group, opts in conf_opts.list_opts():
        name = getattr(group, 'name', group)
        if name.startswith('mdev_$'):
            continue
        section = conf if name == 'DEFAULT' else conf[name]
        for opt in opts:
            try:
                getattr(section, opt.dest)
            except cfg.NoSuchOptError:
                continue        # auth plugin options not loaded yet
            except (cfg.ConfigFileValueError, ValueError) as e:
                raise exceptions.ConfigError(
                    '[%s] %s' % (name, opt.dest), _one_line(e),
                    'fix the value in the configuration file')
    _check_host(conf.host)
    _check_state_path(conf.state_path)
    if conf.embedded_placement.enabled:
        # The server is an optional extra: imported only when enabled.
        from vgpu_placement.placement import embedded
        embedded.check_installed()
        _check_file('[embedded_placement] database',
                    conf.embedded_placement.database, make_dirs=True)
    _check_log_files(conf)


def _check_host(host):
    option = '[DEFAULT] host'
    if not host:
        raise exceptions.ConfigError(option, 'empty',
                                     'give this host\'s name')
    if len(host) > HOST_MAX_LENGTH:
        raise exceptions.ConfigError(
            option, '%d characters, more than %d' % (
                len(host), HOST_MAX_LENGTH),
            'use a shorter name (Placement names are at most 200 '
            'characters, <host>_pci_0000_84_00_0 included)')
    if any(c.isspace() or not c.isprintable() for c in host):
        raise exceptions.ConfigError(
            option, '%r holds whitespace or a control character' % host,
            'give the name as Nova knows the host')
    odd = sorted(set(re.sub(r'[A-Za-z0-9._:-]', '', host)))
    if odd:
        # Provider names go into Placement queries (?name=...).
        raise exceptions.ConfigError(
            option, '%r holds %s' % (host, ' '.join(odd)),
            'give the host name as Nova knows it (letters, digits, '
            '".", "-", "_", ":")')


def _check_state_path(path):
    option = '[DEFAULT] state_path'
    if not os.path.isabs(path):
        # Relative to wherever each command happens to start.
        raise exceptions.ConfigError(
            option, '%s is not an absolute path' % path,
            'give an absolute directory such as /var/lib/vgpu-placement')
    real = os.path.realpath(path)
    if any(real == top or real.startswith(top + '/')
           for top in ('/proc', '/sys')):
        raise exceptions.ConfigError(
            option, '%s is in a kernel file system' % path,
            'give a directory on disk such as /var/lib/vgpu-placement')
    # The directory, or the nearest of its parents that exists, must be a
    # directory reached without a loop (it is created if missing).
    probe = path
    while True:
        try:
            found = os.stat(probe)
            break
        except FileNotFoundError:
            probe = os.path.dirname(probe)
        except OSError as e:
            raise exceptions.ConfigError(
                option, '%s: %s' % (path, e.strerror),
                'give a directory (it is created if missing)')
    if not stat.S_ISDIR(found.st_mode):
        raise exceptions.ConfigError(
            option, '%s is not a directory' % probe,
            'give a directory (it is created if missing)')


def _check_file(option, path, make_dirs=False):
    """path must be a file we can write, or one we can create (with
    make_dirs, its missing directories too): said now, naming the option,
    rather than as an OSError from deep inside a library."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        ok = os.path.isfile(path) and os.access(path, os.W_OK)
    else:
        parent = os.path.dirname(path)
        while make_dirs and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        ok = os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK)
    if not ok:
        raise exceptions.ConfigError(
            option, 'cannot write %s' % path,
            'give a path in a directory this user can write')


def _check_log_files(conf):
    # oslo.log opens <log_dir>/<log_file> (or <log_dir>/<program>.log) and
    # makes no directory.
    if conf.log_dir and not (os.path.isdir(conf.log_dir) and os.access(
            conf.log_dir, os.W_OK | os.X_OK)):
        raise exceptions.ConfigError(
            '[DEFAULT] log_dir', '%s is not a directory this user can '
            'write' % conf.log_dir, 'create it or give another directory')
    if conf.log_file:
        _check_file('[DEFAULT] log_file',
                    os.path.join(conf.log_dir or '', conf.log_file))


def _one_line(error):
    return exceptions.config_text(error)


def print_json(data):
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


def table(headers, rows):
    """Plain fixed-width table as a string."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows])
              for i, h in enumerate(headers)]
    line = lambda cells: '  '.join(
        c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(headers), line(['-' * w for w in widths])]
    out += [line(r) for r in rows]
    return '\n'.join(out)


def _print_error(line):
    """One line on stderr: no password, at most MAX_ERROR_LINE long."""
    line = redact.redact(' '.join(line.split()))
    if len(line) > MAX_ERROR_LINE:
        line = line[:MAX_ERROR_LINE - 3] + '...'
    print(line, file=sys.stderr)


def run(func, args, prog=PROG):
    """Run a command; errors become one line on stderr and exit 1."""
    try:
        return func(args) or 0
    except exceptions.VgpuPlacementError as e:
        _print_error('%s: error: %s' % (prog, e))
    except cfg.Error as e:
        _print_error('%s: configuration error: %s' % (
            prog, exceptions.config_text(e)))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. head) went away: nothing left to say.
        sys.stderr.close()
        return 1
    except Exception as e:          # noqa: a bug, still one line
        if getattr(args, 'debug', False):
            raise
        logging.getLogger(prog).debug('unexpected error', exc_info=True)
        _print_error('%s: unexpected error: %s: %s (run with --debug for '
                     'details)' % (prog, type(e).__name__, e))
    return 1
