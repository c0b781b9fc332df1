"""vgpu-placement capacity: how many more servers of each flavor fit.

Reads every host's GPU providers from Placement (any host's; only
Placement credentials are needed) and answers, one flavor at a time,
how many more servers Placement can grant per GPU, per host and in the
whole cloud, and which GPU the next one would take (placement.headroom
says what the figures mean). Flavors: the extra specs given with
``--extra-spec``, else one per mdev type this host reports, as
``flavor-spec`` prints them (``--count`` vGPUs each).
"""
from vgpu_placement.cmd import capacity_plot
from vgpu_placement.cmd import common
from vgpu_placement import exceptions
from vgpu_placement.placement import cloud
from vgpu_placement.placement import flavor
from vgpu_placement.placement import headroom
from vgpu_placement.service import standalone

NOTES = (
    'one flavor at a time, no other claim meanwhile; vGPU providers only '
    '(the hosts\' CPU and memory are not counted)',
    'from Placement\'s figures (the last report, less what was granted '
    'since); (N now): what Placement grants before the next report, on a '
    'GPU whose counters cap each report window (NVIDIA mixed-size)',
)


def add_arguments(p, max_count):
    p.add_argument('--extra-spec', dest='extra_specs', action='append',
                   default=[], metavar='KEY=VALUE',
                   help='a flavor\'s extra spec (repeat it); without it, '
                        'one flavor per type this host reports')
    p.add_argument('--output', metavar='FILE',
                   help='also draw every GPU\'s classes (used, reserved, '
                        'free) into FILE, .svg or .png (needs the extra '
                        'plot: matplotlib)')
    p.add_argument('--count', type=max_count, default=1,
                   help='vGPUs per server of the types\' flavors, each on '
                        'a different GPU (default: %(default)s)')


def _flavors(args, conf, parse_specs):
    """[(name, extra specs)]."""
    if args.extra_specs:
        return [('given', parse_specs(args.extra_specs))]
    reporter = standalone.reporter_for(conf)
    desired = reporter.desired_tree(reporter.discover())
    types = sorted({t for child in desired.children
                    for t in child.plan.classes})
    if not types:
        raise exceptions.VgpuPlacementError(
            'this host reports no mdev type: give the flavor with '
            '--extra-spec KEY=VALUE')
    return [(t if args.count == 1 else '%s x%d' % (t, args.count),
             flavor.extra_specs_for_type(desired, t, count=args.count)[
                 'extra_specs']) for t in types]


def run(args, parse_specs):
    conf = common.load_conf(args)
    flavors = _flavors(args, conf, parse_specs)
    gpus = cloud.read_gpus(standalone.placement_client(conf))
    if args.output:
        capacity_plot.write(args.output, gpus)
    out = []
    for name, specs in flavors:
        got = headroom.headroom(flavor.parse_extra_specs(specs), gpus)
        out.append({'flavor': name, 'extra_specs': specs,
                    'cloud': got.cloud, 'per_host': got.per_host,
                    'per_gpu': got.per_gpu, 'this_window': got.this_window,
                    'next_gpu': got.next_gpu})
    if args.format == 'json':
        common.print_json({'flavors': out, 'notes': list(NOTES)})
        return
    host_of = {g.name: g.host for g in gpus}
    rows = []
    for f in out:
        rows.append([f['flavor'], 'cloud', f['cloud'],
                     f['next_gpu'] or '-'])
        for host, n in sorted(f['per_host'].items()):
            rows.append(['', 'host %s' % host, n, ''])
            for gpu, m in sorted(f['per_gpu'].items()):
                if host_of[gpu] == host:
                    now = f['this_window'].get(gpu)
                    rows.append(['', '  %s' % gpu, m if now is None else
                                 '%d (%d now)' % (m, now), ''])
    print(common.table(['FLAVOR', 'WHERE', 'FITS', 'NEXT ON'], rows)
          if rows else 'no flavor')
    for note in NOTES:
        print('# %s' % note)
