"""vgpu-placement: discover, report, status and the demo."""
import argparse
import sys

from vgpu_placement.cmd import common
from vgpu_placement.cmd import demo
from vgpu_placement.cmd import views
from vgpu_placement import drivers
from vgpu_placement import exceptions
from vgpu_placement import flavor
from vgpu_placement import host as host_mod
from vgpu_placement import model
from vgpu_placement import report
from vgpu_placement import scheduler


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
    spec = flavor.extra_specs_for_type(desired, args.type, args.group,
                                       args.count)
    if args.format == 'json':
        common.print_json(spec)
        return
    for key, value in sorted(spec['extra_specs'].items()):
        print('%s=%s' % (key, value))
    print('# Placement query: %s' % spec['placement_query'])
    print('# providers offering it: %s' % ', '.join(spec['providers']))


def _instance(value):
    try:
        return model.canonical_uuid(value)
    except ValueError:
        raise exceptions.VgpuPlacementError(
            '--instance %r is not a UUID' % value)


def _extra_specs(items):
    specs = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise exceptions.VgpuPlacementError(
                'extra spec %r: write KEY=VALUE, e.g. '
                'resources1:CUSTOM_MDEV_MTTY_2=1' % item)
        specs[key] = value
    return specs


def cmd_claim(args):
    conf = common.load_conf(args)
    request = flavor.parse_extra_specs(_extra_specs(args.extra_specs))
    client = report.placement_client(conf)
    got = scheduler.claim(client, request, _instance(args.instance),
                          args.project_id, args.user_id, limit=args.limit)
    data = {'instance': got.consumer, 'allocations': got.allocations,
            'attempts': got.attempts, 'request': request.query()}
    if args.format == 'json':
        common.print_json(data)
        return
    for rp, resources in sorted(got.allocations.items()):
        print('%s  %s' % (rp, ', '.join('%s=%d' % kv for kv in
                                        sorted(resources.items()))))
    print('claimed for %s in %d attempt(s)' % (got.consumer, got.attempts))


def _host(args):
    conf = common.load_conf(args)
    return host_mod.Host(report.Reporter(conf))


def cmd_realize(args):
    done = _host(args).realize(_instance(args.instance))
    if args.format == 'json':
        common.print_json({'instance': args.instance,
                           'mdevs': [r.as_dict() for r in done]})
        return
    for r in done:
        print('%s  %s on %s' % (r.uuid, r.type_id, r.parent))
        print('  ' + host_mod.hostdev_xml(r.uuid))


def cmd_release(args):
    freed, released = _host(args).release(_instance(args.instance))
    data = {'instance': args.instance, 'freed_mdevs': freed,
            'allocations_released': released}
    if args.format == 'json':
        common.print_json(data)
    else:
        print('freed %d mdev(s); allocations %s' % (len(freed), (
            'released' if released else
            'still held: Placement unreachable, reconcile will release')))
    return 0 if released else 1


def cmd_reconcile(args):
    summary = _host(args).reconcile()
    if args.format == 'json':
        common.print_json(summary)
    else:
        for key, uuids in sorted(summary.items()):
            print('%-12s %d %s' % (key, len(uuids), ' '.join(uuids)))


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
                'type (or --count of them on different parents), with its '
                'shared-counter cost.')
    p.add_argument('type', help='mdev type id, e.g. mtty-2')
    p.add_argument('--group', default='1',
                   help='request group suffix (default: %(default)s)')
    p.add_argument('--count', type=int, default=1,
                   help='vGPUs, each on a different parent: that many '
                        'numbered groups from --group on, group_policy='
                        'isolate (default: %(default)s)')
    p = command('claim', cmd_claim,
                'Scheduler side: claim vGPUs in Placement for an instance '
                'from flavor extra specs.')
    p.add_argument('--instance', required=True, help='instance UUID')
    p.add_argument('--project-id', default='vgpu-placement-cli')
    p.add_argument('--user-id', default='vgpu-placement-cli')
    p.add_argument('--limit', type=int, default=50,
                   help='candidates asked of Placement')
    p.add_argument('extra_specs', nargs='+', metavar='KEY=VALUE',
                   help='e.g. resources1:CUSTOM_MDEV_MTTY_2=1')
    for name, func, text in (
            ('realize', cmd_realize, 'Host side: create (or find again) '
             'the mdevs of an instance\'s allocations on this host.'),
            ('release', cmd_release, 'Free an instance\'s mdevs on this '
             'host and release its allocations.')):
        p = command(name, func, text)
        p.add_argument('--instance', required=True, help='instance UUID')
    command('reconcile', cmd_reconcile,
            'Make the host, the ledger and Placement agree (after a crash '
            'or a reboot).')
    p = command('demo', demo.run, demo.__doc__.splitlines()[0],
                formats=False)
    demo.add_arguments(p)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return common.run(args.func, args)


if __name__ == '__main__':
    sys.exit(main())
