"""Checks of the configuration's values, made once at start-up (every
command, the agent, and the Nova driver's load): a bad value fails there,
in one line naming the option, not deep inside a library later.

Contract: ``check_values(conf)`` reads every static option once and
checks what oslo.config cannot (the host name, the state directory, the
log files); ``check_file(option, path)`` says whether a file can be
written or made. Both raise exceptions.ConfigError.
"""
import os
import re
import stat

from oslo_config import cfg

from vgpu_placement.conf import opts as conf_opts
from vgpu_placement import exceptions

# Placement names are at most 200 characters, and a parent's provider is
# <host>_pci_0000_84_00_0: the host name must leave room for the suffix.
HOST_MAX_LENGTH = 200 - len('_pci_0000_84_00_0')


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


def check_file(option, path, make_dirs=False):
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
        check_file('[DEFAULT] log_file',
                   os.path.join(conf.log_dir or '', conf.log_file))


def _one_line(error):
    return exceptions.config_text(error)
