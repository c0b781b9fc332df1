"""The commands as a user runs them: separate processes, one state dir."""
import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import uuid

import pytest

from tests.functional.conftest import embedded_only
from tests.functional.conftest import placement_ini
from tests import sysfs_tree
from vgpu_placement.drivers.simulated import profile as sim_profile
from vgpu_placement.placement import flavor
from vgpu_placement.placement import provider_tree


def run(args, conf_path=None, check=True):
    argv = [sys.executable, '-m', 'vgpu_placement.cmd.cli']
    if conf_path:
        argv += ['--config-file', str(conf_path)]
    proc = subprocess.run(argv + args, capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def one_line_error(proc, starts, returncode=1):
    assert proc.returncode == returncode, proc.stderr[:1000]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert lines[0].startswith(starts), lines[0]
    return lines[0]


def host_of(conf_path):
    return re.search(r'host = (\S+)', conf_path.read_text()).group(1)


@pytest.fixture
def sysfs_host(tmp_path):
    """A copied sysfs tree (kernel samples + one mdev) and its config."""
    tree = sysfs_tree.kernel_samples(tmp_path / 'sys')
    tree.add_mdev('mtty', 'mtty-2', str(uuid.uuid4()))
    tree.set_available('mtty', 'mtty-1', 22)
    tree.set_available('mtty', 'mtty-2', 11)
    conf = tmp_path / 'vgpu-placement.conf'
    # Each command is its own process: with the embedded Placement they
    # share its SQLite file under state_path, one after another.
    conf.write_text(
        '[DEFAULT]\nhost = cli-host-%s\ndriver = sysfs\nstate_path = %s\n'
        '[sysfs]\nroot = %s\n%s' % (uuid.uuid4().hex[:8], tmp_path / 'state',
                                    tmp_path / 'sys', placement_ini()))
    return conf


def test_discover_report_status_json_match_the_formula(sysfs_host):
    discovered = json.loads(run(['discover', '--format', 'json'],
                                sysfs_host).stdout)
    expected = {}
    for parent in discovered['parents']:
        name = provider_tree.provider_name(host_of(sysfs_host),
                                           parent['name'])
        expected[name] = {
            'CUSTOM_MDEV_%s' % t['id'].upper().replace('-', '_'):
            t['mdevs'] + t['available_instances'] for t in parent['types']}
    mtty = '%s_mtty_mtty' % host_of(sysfs_host)
    assert expected[mtty] == {'CUSTOM_MDEV_MTTY_1': 22,
                              'CUSTOM_MDEV_MTTY_2': 12}
    first = json.loads(run(['report', '--format', 'json'], sysfs_host).stdout)
    assert first['requests']['writes'] > 0
    # Type classes only: the shared counters are checked elsewhere.
    reported = {p['name']: {rc: inv['total'] for rc, inv in
                            p['inventories'].items()
                            if not rc.startswith('CUSTOM_VGPU_UNITS_')}
                for p in first['providers']}
    assert reported == expected
    second = json.loads(run(['report', '--format', 'json'],
                            sysfs_host).stdout)
    assert second['requests'] == {'reads': 1, 'writes': 0}
    assert second['changes'] == []
    status = json.loads(run(['status', '--format', 'json'],
                            sysfs_host).stdout)
    by_name = {p['name']: p for p in status['providers']}
    assert [m['type'] for m in by_name[mtty]['mdevs']] == ['mtty-2']
    assert by_name[mtty]['inventories']['CUSTOM_MDEV_MTTY_2']['used'] == 0
    state = sysfs_host.parent / 'state'
    for name in os.listdir(state):
        if not name.endswith('.lock'):
            assert os.stat(state / name).st_mode & 0o077 == 0, name


def test_dry_run_then_table_output(sysfs_host):
    dry = run(['report', '--dry-run'], sysfs_host).stdout
    assert 'would make' in dry and 'create' in dry
    out = run(['report'], sysfs_host).stdout
    assert '%s_mtty_mtty' % host_of(sysfs_host) in out
    assert 'CUSTOM_MDEV_MTTY_2' in out


def test_flavor_spec_for_vgpus_on_different_parents(sysfs_host):
    run(['report'], sysfs_host)
    lines = [line for line in run(['flavor-spec', 'mtty-2', '--count', '3'],
                                  sysfs_host).stdout.splitlines()
             if not line.startswith('#')]
    request = flavor.parse_extra_specs(dict(line.split('=', 1)
                                            for line in lines))
    assert request.group_policy == 'isolate'
    assert [g.suffix for g in request.groups] == ['1', '2', '3']
    assert len({(frozenset(g.resources.items()), g.required)
                for g in request.groups}) == 1
    assert request.groups[0].resources['CUSTOM_MDEV_MTTY_2'] == 1
    one_line_error(run(['flavor-spec', 'mtty-2', '--count', '2', '--group',
                        '_A'], sysfs_host, check=False),
                   'vgpu-placement: error: asking for 2 vGPUs')


@pytest.mark.parametrize('args,starts', [
    (['claim', '--limit', '0'], 'claim: error: argument --limit:'),
    (['claim', '--limit', '-1'], 'claim: error: argument --limit:'),
    (['claim', '--limit', '\u00b2'], 'claim: error: argument --limit:'),
    (['flavor-spec', 'mtty-2', '--count', '0'],
     'flavor-spec: error: argument --count:'),
    (['flavor-spec', 'mtty-2', '--count', '65'],
     'flavor-spec: error: argument --count:'),
    (['flavor-spec', 'mtty-2', '--count', '9' * 100000],
     'flavor-spec: error: argument --count:'),
])
def test_limit_and_count_out_of_range_are_one_usage_line(sysfs_host, args,
                                                         starts):
    run(['report'], sysfs_host)
    if args[0] == 'claim':
        args += ['--instance', str(uuid.uuid4()),
                 'resources1:CUSTOM_MDEV_MTTY_1=1']
    line = one_line_error(run(args, sysfs_host, check=False),
                          'vgpu-placement ' + starts, returncode=2)
    assert len(line) < 200, line[:300]


@pytest.mark.parametrize('command', ['claim', 'realize', 'release'])
def test_instance_with_a_trailing_newline_is_refused(sysfs_host, command):
    args = [command, '--instance', '%s\n' % uuid.uuid4()]
    if command == 'claim':
        args.append('resources1:CUSTOM_MDEV_MTTY_1=1')
    one_line_error(run(args, sysfs_host, check=False),
                   'vgpu-placement: error: --instance ')


@pytest.mark.parametrize('args,words', [
    # 20,000 request groups: the whole query used to be the error line.
    (['resources%d:CUSTOM_MDEV_MTTY_1=1' % i for i in range(1, 20001)] +
     ['group_policy=isolate'], 'at most 1000'),
    (['resources1:CUSTOM_MDEV_MTTY_1=1'] + ['hw:k%d=1' % i
                                            for i in range(20000)],
     'at most 1000'),
    (['resources1:CUSTOM_' + 'A' * 100000 + '=1'], 'at most 255'),
    (['resources1:CUSTOM_MDEV_MTTY_1=' + '1' * 100000], 'amount'),
    (['resources1' + 'A' * 100000 + '=1'], 'malformed'),
    (['x' * 100000], 'KEY=VALUE'),
    (['--instance', 'x' * 100000, 'resources1:VGPU=1'], 'not a UUID'),
], ids=['groups', 'foreign-specs', 'class', 'amount', 'key', 'item',
        'instance'])
def test_huge_input_gives_a_short_error_line(sysfs_host, args, words):
    run(['report'], sysfs_host)
    if '--instance' not in args:
        args = ['--instance', str(uuid.uuid4())] + args
    line = one_line_error(run(['claim'] + args, sysfs_host, check=False),
                          'vgpu-placement: error: ')
    assert words in line and len(line) < 300, line[:300]


@pytest.mark.parametrize('text,starts', [
    ('[devices]\nenabled_mdev_types = nvidia-999\n',
     'vgpu-placement: error: [devices] enabled_mdev_types: type nvidia-999'),
    ('[DEFAULT]\ndriver = magic\n',
     'vgpu-placement: error: [DEFAULT] driver:'),
    ('[agent]\nreport_interval = soon\n',
     'vgpu-placement: error: [agent] report_interval:'),
    ('[mdev_mtty-1]\nmdev_class = MEMORY_MB\n',
     'vgpu-placement: error: [mdev_mtty-1] mdev_class:'),
    ('[mdev_mtty-1]\ndevice_addresses = mtty\n'
     '[mdev_mtty-2]\ndevice_addresses = mtty\n',
     'vgpu-placement: error: [mdev_mtty-2] device_addresses:'),
    # Every type reported (empty list), two of one parent given one class.
    ('[mdev_mtty-1]\nmdev_class = VGPU\n[mdev_mtty-2]\nmdev_class = VGPU\n',
     'vgpu-placement: error: [mdev_mtty-2] mdev_class:'),
    ('[DEFAULT\nbroken', 'vgpu-placement: configuration error:'),
])
def test_misconfiguration_is_one_line(sysfs_host, text, starts):
    with open(sysfs_host, 'a') as f:
        f.write(text)
    one_line_error(run(['report'], sysfs_host, check=False), starts)


def test_missing_config_file_is_one_line(tmp_path):
    one_line_error(run(['discover'], tmp_path / 'nope.conf', check=False),
                   'vgpu-placement: configuration error:')


@embedded_only
def test_placement_unreachable_is_one_line(sysfs_host):
    with open(sysfs_host, 'a') as f:
        # Port 9 (discard) on loopback: nothing listens, refused at once.
        f.write('enabled = false\n[placement]\nauth_type = admin_token\n'
                'endpoint = http://127.0.0.1:9\ntoken = admin\n')
    line = one_line_error(run(['report'], sysfs_host, check=False),
                          'vgpu-placement: error: Placement is unreachable')
    assert '127.0.0.1:9' in line or 'Unable to establish' in line


@embedded_only
def test_no_credentials_is_one_line(sysfs_host):
    with open(sysfs_host, 'a') as f:
        f.write('enabled = false\n')
    one_line_error(run(['report'], sysfs_host, check=False),
                   'vgpu-placement: error: [placement] auth_type:')


def test_agent_reports_then_stops_cleanly_on_sigterm(sysfs_host):
    with open(sysfs_host, 'a') as f:
        f.write('[agent]\nreport_interval = 3600\n')
    agent = subprocess.Popen(
        [sys.executable, '-m', 'vgpu_placement.cmd.agent', '--config-file',
         str(sysfs_host)], stderr=subprocess.PIPE, text=True)
    # Its stderr read by a thread, so that every wait here is bounded.
    lines = queue.Queue()

    def read():
        for line in agent.stderr:
            lines.put(line)
        lines.put(None)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        seen = []
        while not seen or 'report done' not in seen[-1]:
            line = lines.get(timeout=120)       # the first report
            assert line is not None, 'the agent ended: %s' % ''.join(seen)
            seen.append(line)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0
        reader.join(timeout=60)
        assert not reader.is_alive()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=60)
    rest = ''.join(iter(lines.get_nowait, None))
    assert 'agent stopped' in rest and 'Traceback' not in rest


def test_agent_refuses_to_start_misconfigured(sysfs_host):
    with open(sysfs_host, 'a') as f:
        f.write('[devices]\nenabled_mdev_types = mtty-9\n')
    proc = subprocess.run(
        [sys.executable, '-m', 'vgpu_placement.cmd.agent', '--config-file',
         str(sysfs_host)], capture_output=True, text=True, timeout=120)
    one_line_error(proc, 'vgpu-placement-agent: error: [devices] '
                         'enabled_mdev_types:')


def test_demo_runs_and_shows_a_quiet_second_report(tmp_path):
    out = run(['demo', '--state-dir', str(tmp_path / 'demo')]).stdout
    assert 'Second report (nothing changed on the host): 0 change(s), ' \
           '1 read(s), 0 write(s)' in out
    # Three mtty-2 instances take 6 of mtty's 24 ports: what a mtty-1
    # flavor can get shrinks with them, and grows back when two are
    # released.
    assert re.search(r'_mtty +mtty-1 +24 -> 18\n', out), out
    assert re.search(r'_mtty +mtty-1 +18 -> 22\n', out), out
    # One 2 GB vGPU on the T4 closes the other framebuffer sizes.
    assert re.search(r' nvidia-230 +16 -> 0\n', out), out
    assert '--config-file' in out and 'status' in out


def test_demo_runs_on_a_mixed_size_vendor_vfio_profile(tmp_path):
    out = run(['demo', '--profile', 'nvidia-l40s-vfio-mixed', '--state-dir',
               str(tmp_path / 'demo')]).stdout
    assert 'Second report (nothing changed on the host): 0 change(s)' in out
    # Every instance got a vGPU on a virtual function of the one GPU.
    made = re.findall(r'mdev \S+ \((nvidia-\d+) on (0000:41:\S+)\)', out)
    assert len(made) == 8, out
    assert len({vf for _t, vf in made}) == 8
    # Mixed-size mode: vGPUs of different framebuffer sizes share it, and
    # the framebuffer counter shrinks by exactly their sizes.
    specs, _ = sim_profile.load_profile(
        sim_profile.find('nvidia-l40s-vfio-mixed'))
    size = {t.id: t.size // 1024 for t in specs[0].types}
    assert len({size[t] for t, _vf in made}) > 1, made
    # The framebuffer counter offers at most what is left (less where a
    # mix of claims before the next report could fail: README), and says
    # that its FREE is this report window's.
    used = sum(size[t] for t, _vf in made)
    fb = re.search(r'CUSTOM_VGPU_UNITS_NVIDIA_FRAMEBUFFER +48 +\d+ +%d '
                   r'+(\d+) \(this window\)\n' % used, out)
    assert fb and int(fb.group(1)) <= 48 - used, out
    # Half released: the released types' flavors get more room back.
    released = out.split('Releasing every other instance')[1]
    grown = re.findall(r' (nvidia-\d+) +(\d+) -> (\d+)\n', released)
    assert {t for t, _vf in made[::2]} <= {
        t for t, a, b in grown if int(b) > int(a)}, out
    assert 'flavor-spec %s' % made[0][0] in out


def test_demo_refuses_an_unknown_profile_and_keeps_the_state_dir(tmp_path):
    state = tmp_path / 'demo'
    state.mkdir()
    (state / 'keep').write_text('mine')
    proc = run(['demo', '--profile', 'nvidia-l41s', '--state-dir',
                str(state)], check=False)
    line = one_line_error(proc, "vgpu-placement: error: --profile "
                                "'nvidia-l41s' is not a shipped profile")
    assert 'nvidia-l40s-vfio-mixed' in line
    assert (state / 'keep').read_text() == 'mine'


@pytest.mark.parametrize('ledger', ['directory', 'negative-version'])
def test_reports_go_on_whatever_the_ledger_holds(sysfs_host, tmp_path,
                                                 ledger):
    """A ledger no release wrote (a directory in its place, a schema
    version below 0): reports go on, saying so; what needs the ledger
    stops with one line naming it."""
    import sqlite3
    state = tmp_path / 'state'
    state.mkdir(exist_ok=True)
    path = state / 'ledger.sqlite'
    if ledger == 'directory':
        path.mkdir()
    else:
        conn = sqlite3.connect(str(path))
        conn.execute('PRAGMA user_version = -1')
        conn.commit()
        conn.close()
    proc = run(['report'], sysfs_host, check=False)
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert 'the ownership ledger %s' % path in proc.stderr
    one_line_error(run(['reconcile'], sysfs_host, check=False),
                   'vgpu-placement: error: the ownership ledger %s' % path)


@pytest.mark.parametrize('content', [b'not a database' * 100,
                                     b'SQLite format 3\x00' + b'\xff' * 5000])
def test_an_embedded_database_holding_garbage_is_one_line(tmp_path,
                                                          content):
    """The demo's embedded Placement on a file that is not a database, or
    a damaged one: one line naming the file, no traceback."""
    database = tmp_path / 'placement.sqlite'
    database.write_bytes(content)
    conf = tmp_path / 'vgpu-placement.conf'
    conf.write_text('[DEFAULT]\nhost = garbage-db\ndriver = simulated\n'
                    'state_path = %s\n[simulated]\nprofile = kernel-samples\n'
                    '[embedded_placement]\nenabled = true\ndatabase = %s\n'
                    % (tmp_path / 'state', database))
    one_line_error(run(['report'], conf, check=False),
                   'vgpu-placement: error: the embedded Placement database '
                   '%s' % database)
    assert database.read_bytes() == content         # left as it was


@pytest.mark.parametrize('text,option', [
    ('[mdev_mtty-1]\nmax_instances = 0\n', '[mdev_mtty-1] max_instances'),
    ('[mdev_mtty-1]\nmax_instances = %d\n' % 10 ** 30,
     '[mdev_mtty-1] max_instances'),
    ('[placement]\nconnect_retries = -1\n', '[placement] connect_retries'),
    ('[DEFAULT]\nhost = a/b?x=1\n', '[DEFAULT] host'),
    ('[DEFAULT]\nstate_path = {afile}/state\n', '[DEFAULT] state_path'),
    ('[DEFAULT]\nstate_path = {loop}/state\n', '[DEFAULT] state_path'),
    ('[embedded_placement]\nenabled = false\n[placement]\nauth_type = '
     'admin_token\nendpoint = http://127.0.0.1:9\ntoken = admin\n'
     'valid_interfaces = "internal\n', '[placement] valid_interfaces'),
], ids=['max-instances-0', 'max-instances-huge', 'connect-retries',
        'host', 'state-under-a-file', 'state-in-a-link-loop',
        'valid-interfaces'])
def test_bad_values_are_one_line_naming_the_option(sysfs_host, tmp_path,
                                                   text, option):
    afile, loop = tmp_path / 'afile', tmp_path / 'loop'
    afile.write_text('')
    loop.symlink_to(loop)
    with open(sysfs_host, 'a') as f:
        f.write(text.format(afile=afile, loop=loop))
    line = one_line_error(run(['report'], sysfs_host, check=False),
                          'vgpu-placement: error: %s:' % option)
    assert 'LocationInfo' not in line


def test_the_log_file_is_made_private(sysfs_host, tmp_path):
    log = tmp_path / 'vgpu-placement.log'
    with open(sysfs_host, 'a') as f:
        f.write('[DEFAULT]\nlog_file = %s\n' % log)
    run(['report'], sysfs_host)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_capacity_counts_what_claims_then_get(sysfs_host):
    """The command's figure for a type is how many claims of the type's
    flavor Placement then grants on the host (no realize between: the
    figure is Placement's, one flavor at a time)."""
    run(['report'], sysfs_host)
    host = host_of(sysfs_host)
    answer = json.loads(run(['capacity', '--format', 'json'],
                            sysfs_host).stdout)
    mtty2 = next(f for f in answer['flavors'] if f['flavor'] == 'mtty-2')
    fits = mtty2['per_host'][host]
    assert mtty2['next_gpu'] == '%s_mtty_mtty' % host
    specs = ['%s=%s' % kv for kv in mtty2['extra_specs'].items()]
    for _ in range(fits):
        run(['claim', '--instance', str(uuid.uuid4())] + specs, sysfs_host)
    refused = run(['claim', '--instance', str(uuid.uuid4())] + specs,
                  sysfs_host, check=False)
    one_line_error(refused, 'vgpu-placement: error: no host can give')
    table = run(['capacity', '--extra-spec', specs[0], '--extra-spec',
                 specs[1]], sysfs_host).stdout
    assert re.search(r'^given\s+cloud\s+0\s+-$', table, re.M), table


def test_capacity_of_a_flavor_without_a_vgpu_is_one_line(sysfs_host):
    run(['report'], sysfs_host)
    one_line_error(run(['capacity', '--extra-spec', 'resources:VCPU=2'],
                       sysfs_host, check=False),
                   'vgpu-placement: error: the flavor asks for no vGPU')


def test_capacity_draws_every_gpu_and_class_it_reports(sysfs_host,
                                                       tmp_path):
    run(['report'], sysfs_host)
    host = host_of(sysfs_host)
    status = json.loads(run(['status', '--format', 'json'],
                            sysfs_host).stdout)['providers']
    picture = tmp_path / 'capacity.svg'
    run(['capacity', '--output', str(picture)], sysfs_host)
    text = picture.read_text()
    assert text.lstrip().startswith('<?xml')
    for rp in status:
        short = rp['name'][len(host) + 1:]
        for rc, inv in rp['inventories'].items():
            # Each bar is labelled host, GPU and class, with its figures.
            assert '%s  %s  %s' % (host, short, rc) in text
            assert '%d/%d/%d' % (inv['used'], inv['reserved'],
                                 inv['total']) in text
    one_line_error(run(['capacity', '--output', str(tmp_path / 'c.txt')],
                       sysfs_host, check=False),
                   'vgpu-placement: error: --output')
