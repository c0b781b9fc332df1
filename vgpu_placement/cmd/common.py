"""What every command shares: config loading and one-line errors."""
import json
import logging
import os
import sys

from oslo_config import cfg
from oslo_log import log as oslo_logging

from vgpu_placement import conf as conf_mod
from vgpu_placement.conf import checks
from vgpu_placement import exceptions
from vgpu_placement.placement import embedded
from vgpu_placement import redact
from vgpu_placement import state_file

PROG = 'vgpu-placement'
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
    checks.check_values(conf)
    embedded.check_conf(conf)
    if conf.log_file:
        # oslo.log would make it with the umask's mode (0644): logs name
        # instances and hosts, so the file is made 0600 first.
        os.close(os.open(os.path.join(conf.log_dir or '', conf.log_file),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    oslo_logging.setup(conf, 'vgpu-placement')
    redact.redact_handlers()
    state_file.tighten_dir(conf.state_path)
    return conf


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
