"""vgpu-placement: discover, report, status, capacity and the demo."""
import argparse
import functools
import re
import sys

from vgpu_placement.cmd import capacity
from vgpu_placement.cmd import common
from vgpu_placement.cmd import demo
from vgpu_placement.cmd import views
from vgpu_placement import drivers
from vgpu_placement import exceptions
from vgpu_placement.host import ledger as ledger_mod
from vgpu_placement.model import discovered
from vgpu_placement.placement import flavor
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone


def cmd_discover(args):
    conf = common.load_conf(args)
    snapshot = drivers.load_driver(conf.driver, conf).discover()
    if args.format == 'json':
        common.print_json(views.snapshot_data(snapshot))
    else:
        print(views.snapshot_table(snapshot))


def cmd_report(args):
    conf = common.load_conf(args)
    reporter = standalone.reporter_for(conf)
    result = reporter.report(dry_run=args.dry_run,
                             delete_retired=args.delete_retired)
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
    reporter = standalone.reporter_for(conf)
    snapshot = reporter.discover()
    data = views.provider_data(reporter.placement_view(), snapshot,
                               conf.host)
    if args.format == 'json':
        common.print_json({'host': conf.host, 'providers': data})
    else:
        print(views.provider_table(data))


def cmd_flavor_spec(args):
    conf = common.load_conf(args)
    reporter = standalone.reporter_for(conf)
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
        return discovered.canonical_uuid(value)
    except ValueError:
        raise exceptions.VgpuPlacementError(
            '--instance %s is not a UUID' % flavor.quote(value))


def _extra_specs(items):
    specs = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise exceptions.VgpuPlacementError(
                'extra spec %s: write KEY=VALUE, e.g. '
                'resources1:CUSTOM_MDEV_MTTY_2=1' % flavor.quote(item))
        specs[key] = value
    return specs


def cmd_claim(args):
    # Checked before any work: a bad argument costs nothing.
    instance = _instance(args.instance)
    conf = common.load_conf(args)
    request = flavor.parse_extra_specs(_extra_specs(args.extra_specs))
    client = standalone.placement_client(conf)
    got = scheduler.claim(client, request, instance,
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


def _host(args, accept_lost_ledger=False):
    """The host's MdevManager; with ``accept_lost_ledger``, on a ledger
    that may start empty where one was lost (the operator said so)."""
    conf = common.load_conf(args)
    ledger = ledger_mod.Ledger(ledger_mod.path_in(conf.state_path),
                               accept_loss=True) \
        if accept_lost_ledger else None
    return standalone.manager_for(standalone.reporter_for(conf),
                                  ledger=ledger)


def cmd_realize(args):
    instance = _instance(args.instance)
    host = _host(args)
    done = host.realize(instance)
    # The driver knows the layout: on NVIDIA's vendor-specific VFIO the
    # vGPU is its VF, which the guest gets as a PCI hostdev.
    xml = {r.uuid: host.driver.hostdev_xml(r.uuid, r.parent) for r in done}
    if args.format == 'json':
        common.print_json({'instance': instance, 'mdevs': [
            dict(r.as_dict(), xml=xml[r.uuid]) for r in done]})
        return
    for r in done:
        print('%s  %s on %s' % (r.uuid, r.type_id, r.parent))
        print('  ' + xml[r.uuid])


def cmd_release(args):
    instance = _instance(args.instance)
    freed, released = _host(args).release(instance)
    data = {'instance': instance, 'freed_mdevs': freed,
            'allocations_released': released}
    if args.format == 'json':
        common.print_json(data)
    else:
        print('freed %d mdev(s); allocations %s' % (len(freed), (
            'released' if released else
            'still held: Placement unreachable, reconcile will release')))
    return 0 if released else 1


def cmd_reconcile(args):
    summary = _host(args, args.accept_lost_ledger).reconcile()
    if args.format == 'json':
        common.print_json(summary)
    else:
        for key, uuids in sorted(summary.items()):
            print('%-12s %d %s' % (key, len(uuids), ' '.join(uuids)))


# More vGPUs than any server has GPUs; each is a request group Placement
# combines with every other.
MAX_COUNT = 64


def _whole_number(low, high):
    """argparse type: an ASCII whole number from low to high."""
    def parse(text):
        # Not int() alone: it takes ' 5', '+5', '5_0' and other scripts'
        # digits, and a 5000-digit value raises a ValueError of its own.
        if re.fullmatch(r'[0-9]{1,10}', text, re.ASCII) and \
                low <= int(text) <= high:
            return int(text)
        raise argparse.ArgumentTypeError(
            'must be a whole number from %d to %d, not %s'
            % (low, high, flavor.quote(text)))
    return parse


class _Parser(argparse.ArgumentParser):
    """A usage error is one line, like every other error (the usage is
    what --help is for)."""

    def error(self, message):
        message = ' '.join(message.split())
        if len(message) > 200:          # e.g. unrecognized arguments
            message = message[:197] + '...'
        self.exit(2, '%s: error: %s (see %s --help)\n' % (
            self.prog, message, self.prog))


def build_parser():
    parser = _Parser(
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
    p.add_argument('--delete-retired', action='store_true',
                   help='also delete the providers of devices that are '
                        'gone and hold no allocation (restart or refresh '
                        'nova-compute first: it may have them cached)')
    command('status', cmd_status,
            'Per provider: inventories, reserved, usage and mdevs.')
    p = command('flavor-spec', cmd_flavor_spec,
                'Print the flavor extra specs asking for one mdev of a '
                'type (or --count of them on different parents), with its '
                'shared-counter cost.')
    p.add_argument('type', help='mdev type id, e.g. mtty-2')
    p.add_argument('--group', default='1',
                   help='request group suffix (default: %(default)s)')
    p.add_argument('--count', type=_whole_number(1, MAX_COUNT), default=1,
                   help='vGPUs, each on a different parent: that many '
                        'numbered groups from --group on, group_policy='
                        'isolate; at most %d (default: %%(default)s)'
                        % MAX_COUNT)
    p = command('capacity', functools.partial(capacity.run,
                                              parse_specs=_extra_specs),
                'How many more servers of each flavor fit, per GPU, per '
                'host and in the cloud, from Placement.')
    capacity.add_arguments(p, _whole_number(1, MAX_COUNT))
    p = command('claim', cmd_claim,
                'Scheduler side: claim vGPUs in Placement for an instance '
                'from flavor extra specs.')
    p.add_argument('--instance', required=True, help='instance UUID')
    p.add_argument('--project-id', default='vgpu-placement-cli')
    p.add_argument('--user-id', default='vgpu-placement-cli')
    p.add_argument('--limit', type=_whole_number(1, flavor.MAX_INT),
                   default=50,
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
    p = command('reconcile', cmd_reconcile,
                'Make the host, the ledger and Placement agree (after a '
                'crash or a reboot).')
    p.add_argument('--accept-lost-ledger', action='store_true',
                   help='the ownership ledger was lost (deleted or '
                        'emptied): start a new one; mdevs whose instance '
                        'holds allocations are adopted again, the others '
                        'are left on the host')
    p = command('demo', demo.run, demo.__doc__.splitlines()[0],
                formats=False)
    demo.add_arguments(p)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return common.run(args.func, args)


if __name__ == '__main__':
    sys.exit(main())
