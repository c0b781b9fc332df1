"""What every command shares: config loading and one-line errors."""
import json
import logging
import sys

from oslo_config import cfg
from oslo_log import log as oslo_logging

from vgpu_placement import conf as conf_mod
from vgpu_placement.conf import opts as conf_opts
from vgpu_placement import exceptions

PROG = 'vgpu-placement'


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
    oslo_logging.setup(conf, 'vgpu-placement')
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


def _one_line(error):
    return ' '.join(str(error).split())


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


def run(func, args, prog=PROG):
    """Run a command; errors become one line on stderr and exit 1."""
    try:
        return func(args) or 0
    except exceptions.VgpuPlacementError as e:
        print('%s: error: %s' % (prog, _one_line(e)), file=sys.stderr)
    except cfg.Error as e:
        print('%s: configuration error: %s' % (prog, _one_line(e)),
              file=sys.stderr)
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
        print('%s: unexpected error: %s: %s (run with --debug for details)'
              % (prog, type(e).__name__, _one_line(e)), file=sys.stderr)
    return 1
