"""vgpu-placement: discover, report, status and the demo."""
import argparse
import sys

from vgpu_placement.cmd import common
from vgpu_placement.cmd import demo
from vgpu_placement.cmd import views
from vgpu_placement import drivers
from vgpu_placement import flavor
from vgpu_placement import report


def cmd_discover(args):
    conf = common.load_conf(args)
    snapshot = drivers.load_driver(conf.driver, conf).discover()
    if args.format == 'json':
        common.print_json(views.snapshot_data(snapshot))
    else:
        print(views.snapshot_table(snapshot))


def cmd_report(args):
    conf = common.load_conf(args)
    reporter = report.Reporter(conf)
    result = reporter.report(dry_run=args.dry_run)
    changes = [c.as_dict() for c in result.changes]
    data = {'host': conf.host, 'dry_run': args.dry_run,
            'requests': result.requests.as_dict(), 'changes': changes}
    if not args.dry_run:
        data['providers'] = views.provider_data(
            reporter.placement_view(refresh=False))
    if args.format == 'json':
        common.print_json(data)
        return
    verb = 'would make' if args.dry_run else 'made'
    for change in changes:
        print('%-11s %s %s' % (change['action'], change['provider'],
                               change['detail']))
    print('%s: %d change(s); %s %d read(s), %d write(s)' % (
        conf.host, len(changes), verb, result.requests.reads,
        result.requests.writes))
    if not args.dry_run:
        print(views.provider_table(data['providers']))


def cmd_status(args):
    conf = common.load_conf(args)
    reporter = report.Reporter(conf)
    snapshot = reporter.discover()
    data = views.provider_data(reporter.placement_view(), snapshot,
                               conf.host)
    if args.format == 'json':
        common.print_json({'host': conf.host, 'providers': data})
    else:
        print(views.provider_table(data))


def cmd_flavor_spec(args):
    conf = common.load_conf(args)
    reporter = report.Reporter(conf)
    desired = reporter.desired_tree(reporter.discover())
    spec = flavor.extra_specs_for_type(desired, args.type, args.group)
    if args.format == 'json':
        common.print_json(spec)
        return
    for key, value in sorted(spec['extra_specs'].items()):
        print('%s=%s' % (key, value))
    print('# Placement query: %s' % spec['placement_query'])
    print('# providers offering it: %s' % ', '.join(spec['providers']))


def build_parser():
    parser = argparse.ArgumentParser(
        prog=common.PROG,
        description='Report mediated-device (vGPU) types to OpenStack '
                    'Placement.')
    common.add_config_args(parser)
    sub = parser.add_subparsers(dest='command', required=True)

    def command(name, func, help_text, formats=True):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if formats:
            p.add_argument('--format', choices=('table', 'json'),
                           default='table')
        p.set_defaults(func=func)
        return p

    command('discover', cmd_discover,
            'List parent devices, their mdev types and mdevs.')
    p = command('report', cmd_report,
                'Sync this host\'s provider tree to Placement once.')
    p.add_argument('--dry-run', action='store_true',
                   help='print what would change; write nothing')
    command('status', cmd_status,
            'Per provider: inventories, reserved, usage and mdevs.')
    p = command('flavor-spec', cmd_flavor_spec,
                'Print the flavor extra specs asking for one mdev of a '
                'type, with its shared-counter cost.')
    p.add_argument('type', help='mdev type id, e.g. mtty-2')
    p.add_argument('--group', default='1',
                   help='request group suffix (default: %(default)s)')
    p = command('demo', demo.run, demo.__doc__.splitlines()[0],
                formats=False)
    demo.add_arguments(p)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return common.run(args.func, args)


if __name__ == '__main__':
    sys.exit(main())
