"""Run the main job on a simulated host against an embedded Placement.

The demo host (etc/vgpu-placement/profiles/demo-host.yaml) has the kernel's
three sample drivers and a T4-like NVIDIA card. The demo discovers it,
reports it to a Placement running in this process (SQLite in --state-dir),
reports again (nothing to write), creates mdevs and reports the shrunken
offer. Its config file is left in --state-dir to explore further.
"""
import os
import shutil
import tempfile
import uuid

from vgpu_placement.cmd import common
from vgpu_placement.cmd import views
from vgpu_placement import report

DEMO_HOST = 'demo-host'


def add_arguments(parser):
    parser.add_argument(
        '--state-dir',
        default=os.path.join(tempfile.gettempdir(), 'vgpu-placement-demo'),
        help='where the demo keeps its config, simulated host and '
             'Placement database (emptied first; default: %(default)s)')


def _write_config(state_dir):
    path = os.path.join(state_dir, 'vgpu-placement.conf')
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              'w') as f:
        f.write('[DEFAULT]\nhost = %s\ndriver = simulated\nstate_path = %s\n'
                '[simulated]\nprofile = demo-host\n'
                '[embedded_placement]\nenabled = true\n'
                % (DEMO_HOST, state_dir))
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


def run(args):
    state_dir = os.path.abspath(args.state_dir)
    if os.path.isdir(state_dir):
        shutil.rmtree(state_dir)
    os.makedirs(state_dir, mode=0o700)
    args.config_file = [_write_config(state_dir)]
    conf = common.load_conf(args)
    reporter = report.Reporter(conf)

    _step('The simulated host, as the driver discovers it')
    print(views.snapshot_table(reporter.driver.discover()))

    _report(reporter, 'First report to Placement')
    print(views.provider_table(views.provider_data(
        reporter.placement_view(refresh=False))))
    _report(reporter, 'Second report (nothing changed on the host)')

    created = [('mtty', 'mtty-2'), ('mtty', 'mtty-2'), ('mbochs',
               'mbochs-large'), ('0000:84:00.0', 'nvidia-231')]
    _step('Creating mdevs: %s' % ', '.join(
        '%s on %s' % (t, p) for p, t in created))
    for parent, type_id in created:
        reporter.driver.create_mdev(parent, type_id, str(uuid.uuid4()))
    print('  mtty-2 takes 2 of mtty\'s 24 ports, so mtty-1 shrinks too;'
          ' one 2 GB vGPU on the T4 closes every other framebuffer size.')
    _report(reporter, 'Report after the creates')
    snapshot = reporter.discover()
    print(views.provider_table(views.provider_data(
        reporter.placement_view(refresh=False), snapshot, conf.host)))

    print('\nExplore further with the same host and Placement:\n'
          '  vgpu-placement --config-file %s status\n'
          '  vgpu-placement --config-file %s discover --format json'
          % (args.config_file[0], args.config_file[0]))
