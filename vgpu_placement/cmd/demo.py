"""Run the main job on a simulated host against an embedded Placement.

The demo host (etc/vgpu-placement/profiles/demo-host.yaml) has the kernel's
three sample drivers and a T4-like NVIDIA card. The demo discovers it,
reports it to a Placement running in this process (SQLite in --state-dir),
reports again (nothing to write), schedules a stream of flavors (claim in
Placement, realize the mdevs on the host), shows the offers shrink, then
releases half and shows them grow. Its config file is left in --state-dir
to explore further.

``--profile NAME`` runs it on another shipped profile (e.g.
nvidia-l40s-vfio-mixed): the instances are then three of that host's
types, those with the most room, in turn; a claim Placement refuses is
shown as such and the demo goes on.
"""
import os
import shutil
import tempfile
import uuid

from vgpu_placement.drivers.simulated import profile as sim_profile

from vgpu_placement.cmd import common
from vgpu_placement.cmd import views
from vgpu_placement import exceptions
from vgpu_placement.placement import flavor
from vgpu_placement.placement import provider_tree
from vgpu_placement.placement import scheduler
from vgpu_placement.service import standalone

DEMO_HOST = 'demo-host'


def add_arguments(parser):
    parser.add_argument(
        '--state-dir',
        default=os.path.join(tempfile.gettempdir(), 'vgpu-placement-demo'),
        help='where the demo keeps its config, simulated host and '
             'Placement database (emptied first; default: %(default)s)')
    parser.add_argument(
        '--profile', default=DEMO_HOST,
        help='the shipped simulated-host profile to run on (default: '
             '%(default)s; see etc/vgpu-placement/profiles/)')


def _checked_profile(name):
    """A shipped profile's name, or a one-line error naming them."""
    shipped = sim_profile.shipped()
    if name not in shipped:
        raise exceptions.VgpuPlacementError(
            '--profile %s is not a shipped profile; one of: %s'
            % (flavor.quote(name), ', '.join(shipped)))
    return name


def _write_config(state_dir, profile=DEMO_HOST):
    path = os.path.join(state_dir, 'vgpu-placement.conf')
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              'w') as f:
        f.write('[DEFAULT]\nhost = %s\ndriver = simulated\nstate_path = %s\n'
                '[simulated]\nprofile = %s\n'
                '[embedded_placement]\nenabled = true\n'
                % (DEMO_HOST, state_dir, profile))
    return path


def _step(title):
    print('\n== %s' % title)


def _report(reporter, title):
    result = reporter.report()
    _step('%s: %d change(s), %d read(s), %d write(s)' % (
        title, len(result.changes), result.requests.reads,
        result.requests.writes))
    for change in result.changes:
        print('  %-11s %s %s' % (change.action, change.provider,
                                 change.detail))
    return result


def _offers(reporter, desired):
    """{(provider, type): how many more of the type's flavor Placement
    would grant there (its class and counters together)}."""
    view = dict(reporter.placement_view(refresh=False))
    return {(child.name, type_id): provider_tree.grantable(
        view[child.name]['inventories'], view[child.name]['usages'],
        child.plan.request(type_id))
        for child in desired.children if child.name in view
        for type_id in child.plan.classes}


def _show_offer_changes(before, after):
    for key in sorted(before):
        if before[key] != after.get(key):
            print('  %-28s %-26s %3d -> %d' % (key + (before[key],
                                                      after.get(key, 0))))


# A stream of instances: (flavor name, mdev type).
STREAM = [('vgpu.serial2', 'mtty-2'), ('vgpu.serial2', 'mtty-2'),
          ('vgpu.display-large', 'mbochs-large'),
          ('vgpu.t4-2q', 'nvidia-231'), ('vgpu.t4-2q', 'nvidia-231'),
          ('vgpu.display-hd', 'mdpy-hd'), ('vgpu.serial2', 'mtty-2'),
          ('vgpu.t4-2b', 'nvidia-223')]
STREAM_LENGTH = len(STREAM)


def _stream_for(desired, offers, length=STREAM_LENGTH):
    """Another profile's stream: its three types with the most room
    (what Placement would grant of each), in turn."""
    room = {}
    for (_name, type_id), n in offers.items():
        room[type_id] = room.get(type_id, 0) + n
    picked = sorted((t for t in room if room[t] > 0),
                    key=lambda t: (-room[t], t))[:3]
    if not picked:
        raise exceptions.VgpuPlacementError(
            'the profile offers no vGPU type with room to demonstrate')
    return [('vgpu.' + picked[i % len(picked)], picked[i % len(picked)])
            for i in range(length)]


def run(args):
    # Checked before the state dir is emptied: a typo costs nothing.
    profile = _checked_profile(getattr(args, 'profile', DEMO_HOST))
    state_dir = os.path.abspath(args.state_dir)
    if os.path.isdir(state_dir):
        shutil.rmtree(state_dir)
    os.makedirs(state_dir, mode=0o700)
    args.config_file = [_write_config(state_dir, profile)]
    conf = common.load_conf(args)
    reporter = standalone.reporter_for(conf)
    host = standalone.manager_for(reporter)

    _step('The simulated host, as the driver discovers it')
    print(views.snapshot_table(reporter.driver.discover()))

    result = _report(reporter, 'First report to Placement')
    print(views.provider_table(views.provider_data(
        reporter.placement_view(refresh=False))))
    _report(reporter, 'Second report (nothing changed on the host)')

    stream = STREAM if profile == DEMO_HOST else _stream_for(
        result.desired, _offers(reporter, result.desired))
    _step('Flavors (vgpu-placement flavor-spec TYPE prints these)')
    specs = {}
    for name, type_id in sorted(set(stream)):
        specs[name] = flavor.extra_specs_for_type(result.desired, type_id)
        print('  %-20s %s' % (name, ' '.join(
            '%s=%s' % kv for kv in sorted(specs[name][
                'extra_specs'].items()))))

    before = _offers(reporter, result.desired)
    _step('Scheduling %d instances: claim in Placement, realize on the '
          'host' % len(stream))
    instances = []
    for name, _type_id in stream:
        instance = str(uuid.uuid4())
        request = flavor.parse_extra_specs(specs[name]['extra_specs'])
        try:
            scheduler.claim(reporter.client, request, instance, 'demo',
                            'demo')
        except scheduler.NoValidHost:
            # Refused up front, as the scheduler would: nothing to undo.
            print('  %s %-20s refused by Placement: no allocation '
                  'candidate' % (instance[:8], name))
            continue
        for done in host.realize(instance):
            print('  %s %-20s mdev %s (%s on %s)' % (
                instance[:8], name, done.uuid, done.type_id, done.parent))
        instances.append(instance)
    _step('How many more of each type\'s flavor Placement would grant, '
          'before -> after (the other types on a GPU shrink too)')
    after = _offers(reporter, result.desired)
    _show_offer_changes(before, after)
    print(views.provider_table(views.provider_data(
        reporter.placement_view(refresh=False), reporter.discover(),
        conf.host)))

    _step('Releasing every other instance: mdevs removed, allocations '
          'released, offers grow back')
    for instance in instances[::2]:
        host.release(instance)
    _show_offer_changes(after, _offers(reporter, result.desired))

    explore = 'mtty-1' if profile == DEMO_HOST else stream[0][1]
    # The flavor's whole request: its type and the counters it pays.
    explore_specs = ' '.join('%s=%s' % kv for kv in sorted(
        flavor.extra_specs_for_type(result.desired, explore)[
            'extra_specs'].items()))
    print('\nExplore further with the same host and Placement:\n'
          '  vgpu-placement --config-file %s status\n'
          '  vgpu-placement --config-file %s capacity\n'
          '  vgpu-placement --config-file %s flavor-spec %s\n'
          '  vgpu-placement --config-file %s claim --instance $(uuidgen) '
          '%s\n'
          % (args.config_file[0], args.config_file[0], args.config_file[0],
             explore, args.config_file[0], explore_specs))
