"""The real-kernel tier: tests against a real kernel's mdev sysfs.

They run only inside the QEMU guest that ``tools/kernel-vm/run-tests``
boots (Debian's kernel with the mtty, mbochs and mdpy sample drivers): the
harness sets VGPU_KERNEL_TIER=1 there. Anywhere else this folder is not
even collected, so a plain ``python3 -m pytest`` on a host stays quiet and
never writes to the host's /sys.

Helpers for tests:
* ``kernel_view()``: what the kernel shows, read straight from sysfs
  without the project's code;
* the ``kconf`` / ``driver`` / ``reporter`` fixtures: the project's sysfs
  driver and Reporter on the real /sys, with the session's embedded
  Placement and a host name of the test's own;
* ``check_inventories()``: Placement holds existing + available for every
  parent and type, read from Placement with a client of its own;
* ``tests.kernel.kmod``: rmmod/insmod of the sample drivers
  (VGPU_KERNEL_MODULES names the guest's folder of .ko files).
"""
import errno
import os
import re

import pytest

from vgpu_placement.host import tree_builder
from vgpu_placement.model import discovered
from vgpu_placement.placement import provider_tree
from vgpu_placement.service import standalone

IN_GUEST = os.environ.get('VGPU_KERNEL_TIER') == '1'

if not IN_GUEST:
    collect_ignore_glob = ['test_*.py']

BUS = '/sys/class/mdev_bus'
DEVICES = '/sys/bus/mdev/devices'
CMDLINE_MARK = 'vgpu_kernel_tier=1'
SAMPLE_MODULES = ('mtty', 'mbochs', 'mdpy')

# Kernel operations whose outcome a test checked against the kernel; the
# total is printed at the end of the session.
STEPS = {'count': 0}


def count_step(n=1):
    STEPS['count'] += n


def pytest_report_header(config):
    if IN_GUEST:
        return 'kernel tier: guest kernel %s, parents: %s' % (
            os.uname().release, ' '.join(sorted(os.listdir(BUS)))
            if os.path.isdir(BUS) else '(none)')
    # Only seen when tests/kernel is named on the command line.
    return ('tests/kernel runs only in the kernel-tier VM: '
            'tools/kernel-vm/run-tests [pytest args]')


def pytest_terminal_summary(terminalreporter):
    if IN_GUEST and STEPS['count']:
        terminalreporter.write_line(
            'kernel tier: %d kernel-checked steps' % STEPS['count'])


# -- reading the kernel without the project's code ---------------------------

def read(path):
    with open(path) as f:
        return f.read()


def type_dir(parent, type_id):
    return os.path.join(BUS, parent, 'mdev_supported_types', type_id)


def create_file(parent, type_id):
    return os.path.join(type_dir(parent, type_id), 'create')


def available(parent, type_id):
    return int(read(os.path.join(type_dir(parent, type_id),
                                 'available_instances')))


def kernel_view():
    """{'available': {parent: {type: n}}, 'mdevs': {uuid: (parent, type)}}

    mdevs come from /sys/bus/mdev/devices (the driver lists parent
    folders instead); parent and type from the resolved links.
    """
    avail = {}
    for parent in sorted(os.listdir(BUS)):
        types = os.listdir(os.path.join(BUS, parent, 'mdev_supported_types'))
        avail[parent] = {t: available(parent, t) for t in sorted(types)}
    mdevs = {}
    for name in os.listdir(DEVICES):
        dev = os.path.realpath(os.path.join(DEVICES, name))
        mdevs[name] = (os.path.basename(os.path.dirname(dev)),
                       os.path.basename(os.path.realpath(
                           os.path.join(dev, 'mdev_type'))))
    return {'available': avail, 'mdevs': mdevs}


def write_once(path, data):
    """One write(2), as `echo` does; OSError on failure."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)


def remove_all_mdevs():
    for name in os.listdir(DEVICES):
        try:
            write_once(os.path.join(DEVICES, name, 'remove'), '1')
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):
                raise
    left = os.listdir(DEVICES)
    assert not left, 'mdevs left after removing all: %s' % left


# -- expectations ------------------------------------------------------------

def resource_class(type_id):
    """CUSTOM_MDEV_<TYPE>, computed here, not by the project."""
    return 'CUSTOM_MDEV_' + re.sub(r'[^A-Z0-9_]', '_', type_id.upper())


def expected_inventories(host, view):
    """{provider name: {class: existing + available}} from a kernel view,
    leaving out totals of 0 (Placement refuses them)."""
    out = {}
    for parent, types in view['available'].items():
        counts = {}
        for p, t in view['mdevs'].values():
            if p == parent:
                counts[t] = counts.get(t, 0) + 1
        out[provider_tree.provider_name(host, parent)] = {
            resource_class(t): counts.get(t, 0) + n
            for t, n in types.items() if counts.get(t, 0) + n > 0}
    return out


def placement_providers(placement, host):
    """{child provider name: {'inventories', 'usages'}} read straight from
    Placement (None if the host has no root provider)."""
    roots = placement.get('/resource_providers?name=%s' % host)[
        'resource_providers']
    if not roots:
        return None
    root = roots[0]['uuid']
    out = {}
    for rp in placement.get('/resource_providers?in_tree=%s' % root)[
            'resource_providers']:
        if rp['uuid'] == root:
            continue
        base = '/resource_providers/%s' % rp['uuid']
        out[rp['name']] = {
            'inventories': placement.get(base + '/inventories')[
                'inventories'],
            'usages': placement.get(base + '/usages')['usages']}
    return out


def type_totals(inventories):
    """{provider: {CUSTOM_MDEV_* class: total}}: the per-type classes only
    (a parent may also carry shared counter classes)."""
    return {name: {rc: inv['total'] for rc, inv in invs.items()
                   if rc.startswith('CUSTOM_MDEV_')}
            for name, invs in inventories.items()}


@pytest.fixture
def check_inventories(placement, host, kconf, driver):
    """check_inventories(view=None, reporter=None): for every parent and
    type, what Placement offers matches the kernel's numbers. A parent
    whose claims Placement's accounting carries (claims pay their
    counters: ParentPlan.carried) offers a flavor of each type (its class
    and counters) exactly what the kernel's available_instances says, or
    less by the claims granted and not made yet; any other parent holds
    total = existing mdevs + available_instances, and a type with a total
    of 0 has no inventory or a closed one (reserved == total). Read from
    Placement with a client of its own, or, given a reporter that just
    reported, from its cache of what Placement holds (cheaper). Returns
    {provider: {class: existing + available}} of the types with a total
    above 0."""
    builder = tree_builder.TreeBuilder(kconf, driver)

    def check(view=None, reporter=None):
        view = view or kernel_view()
        expected = expected_inventories(host, view)
        if reporter is None:
            got = placement_providers(placement, host)
        else:
            got = dict(reporter.placement_view(refresh=False))
        assert got is not None, 'no provider %s in Placement' % host
        # A retired provider (its device gone, nothing in use) stays,
        # empty, for nova-compute's cache.
        got = {name: p for name, p in got.items()
               if p['inventories'] or name in expected}
        assert sorted(got) == sorted(expected)
        children = {c.name: c for c in builder.desired_tree(
            discovered.group_virtual_functions(driver.discover())).children}
        for name, want in expected.items():
            invs, usages = got[name]['inventories'], got[name]['usages']
            child = children.get(name)
            plan = child and child.plan
            if plan is not None and plan.carried(usages):
                waiting = any(plan.pending(usages).values())
                for type_id in plan.classes:
                    offered = provider_tree.grantable(
                        invs, usages, plan.request(type_id))
                    can = view['available'][child.device][type_id]
                    assert offered <= can and (waiting or offered == can), (
                        '%s %s: a flavor gets %d, the kernel can create %d'
                        % (name, type_id, offered, can))
                continue
            have = {rc: inv for rc, inv in invs.items()
                    if rc.startswith('CUSTOM_MDEV_')}
            assert {rc: inv['total'] for rc, inv in have.items()
                    if rc in want} == want, name
            for rc, inv in have.items():
                if rc not in want:
                    assert inv['reserved'] == inv['total'], (
                        '%s on %s: nothing can be created, yet it is open: '
                        '%s' % (rc, name, inv))
        count_step()
        return expected
    return check


# -- fixtures ----------------------------------------------------------------

@pytest.fixture(scope='session', autouse=True)
def kernel_guest():
    """Refuse to touch a /sys that is not the kernel-tier guest's."""
    if CMDLINE_MARK not in read('/proc/cmdline').split():
        pytest.exit('VGPU_KERNEL_TIER=1 but this is not the kernel-tier '
                    'guest (no %s on the kernel command line): refusing to '
                    'create and remove mdevs here' % CMDLINE_MARK,
                    returncode=3)
    assert os.path.isdir(BUS), 'no %s in the guest' % BUS


@pytest.fixture(autouse=True)
def clean_mdevs():
    """Every test starts and ends with the samples loaded and no mdev."""
    from tests.kernel import kmod
    for name in SAMPLE_MODULES:
        if not kmod.is_loaded(name):
            kmod.insmod(name)
    remove_all_mdevs()
    yield
    for name in SAMPLE_MODULES:
        if not kmod.is_loaded(name):
            kmod.insmod(name)
    remove_all_mdevs()


@pytest.fixture(scope='session')
def placement_db(tmp_path_factory):
    from vgpu_placement.placement import embedded
    path = str(tmp_path_factory.mktemp('placement') / 'placement.sqlite')
    embedded.start(path)
    return path


@pytest.fixture
def placement(placement_db):
    """A Placement client of the test's own (not the Reporter's)."""
    from vgpu_placement.placement import client as client_mod
    from vgpu_placement.placement import embedded
    return client_mod.PlacementClient(embedded.adapter(placement_db))


_HOSTS = {'n': 0}


@pytest.fixture
def host(request):
    """A host (root provider) name of this test's own."""
    _HOSTS['n'] += 1
    name = re.sub(r'[^A-Za-z0-9-]', '-', request.node.name)[:60]
    return 'kt%d-%s' % (_HOSTS['n'], name)


@pytest.fixture
def kconf(tmp_path, host, placement_db):
    from tests.conftest import make_conf
    return make_conf(driver='sysfs', sysfs__root='/sys', host=host,
                     state_path=str(tmp_path),
                     embedded_placement__enabled=True,
                     embedded_placement__database=placement_db)


@pytest.fixture
def driver(kconf):
    from vgpu_placement import drivers
    return drivers.load_driver('sysfs', kconf)


@pytest.fixture
def reporter(kconf, driver):
    return standalone.reporter_for(kconf, driver=driver)
