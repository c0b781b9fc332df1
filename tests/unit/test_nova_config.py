"""Nova's own [devices] / [mdev_*] / [vgpu_*] configs, read as Nova reads them.

Each row is a config from Nova's documentation or unit tests and the
type -> parent -> resource class mapping it gives. Sources are in
openstack/nova at master 00a030403f (2026-08-21, the 34.0.0 cycle; the
vGPU paths last changed in f412fac1ae): nova/conf/devices.py,
doc/source/admin/virtual-gpu.rst, nova/virt/libvirt/driver.py
(_get_supported_vgpu_types, _get_vgpu_type_per_pgpu,
_get_resource_class_for_device, _get_gpu_inventories) and
nova/tests/unit/virt/libvirt/test_driver.py.
"""
import collections
import logging

from oslo_log import versionutils
import pytest

from tests.conftest import make_conf
from tests import sysfs_tree
from vgpu_placement.conf import type_config
from vgpu_placement.drivers.mdev import sysfs
from vgpu_placement.model import discovered
from vgpu_placement.placement import provider_tree

# The four GPUs of Nova's "How to discover a GPU type" listing, and an A40
# whose SR-IOV virtual functions each offer one nvidia-558.
GPU84, GPU85, GPU86, GPU87 = GPUS = ('0000:84:00.0', '0000:85:00.0',
                                     '0000:86:00.0', '0000:87:00.0')
A40 = '0000:41:00.0'
A40_VFS = ('0000:41:00.4', '0000:41:00.5', '0000:41:00.6', '0000:41:00.7')


@pytest.fixture
def snapshot(tmp_path):
    tree = sysfs_tree.SysfsTree(tmp_path)
    for gpu in GPUS:
        tree.add_parent(gpu, {t: dict(available=4) for t in (
            'nvidia-35', 'nvidia-36', 'nvidia-37')})
    for vf in A40_VFS:
        tree.add_parent(vf, {'nvidia-558': dict(available=1)}, physfn=A40)
    # Grouped as the reporter groups them (report.Reporter.discover).
    return discovered.group_virtual_functions(
        sysfs.SysfsDriver(make_conf(sysfs__root=str(tmp_path))).discover())


def on(parents, rc='VGPU'):
    return dict.fromkeys(parents, rc)


Row = collections.namedtuple('Row', 'source config expected')

DOCS = 'doc/source/admin/virtual-gpu.rst'
CONF = 'nova/conf/devices.py'
DRIVER = 'nova/virt/libvirt/driver.py'
TESTS = 'nova/tests/unit/virt/libvirt/test_driver.py'

TABLE = {
    'one-type': Row(
        DOCS + ':96-102 (Enable GPU types)',
        '[devices]\nenabled_mdev_types = nvidia-35\n',
        {'nvidia-35': on(GPUS)}),
    'two-types-by-address': Row(
        DOCS + ':104-117',
        '[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n'
        '[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0,0000:85:00.0\n'
        '[mdev_nvidia-36]\ndevice_addresses = 0000:86:00.0\n'
        'mdev_class = CUSTOM_NVIDIA_36\n',
        {'nvidia-35': on([GPU84, GPU85]),
         'nvidia-36': on([GPU86], 'CUSTOM_NVIDIA_36')}),
    'legacy-vgpu-group': Row(
        CONF + ':50-60 (help), :92-94 (deprecated_group=vgpu_<type>)',
        '[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n'
        '[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0,0000:85:00.0\n'
        '[vgpu_nvidia-36]\ndevice_addresses = 0000:86:00.0\n',
        {'nvidia-35': on([GPU84, GPU85]), 'nvidia-36': on([GPU86])}),
    'default-type-and-pinned-type': Row(
        CONF + ':35-36, :62-70; ' + DRIVER + ':8734-8738, :8801-8805',
        '[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n'
        '[mdev_nvidia-35]\n'
        '[mdev_nvidia-36]\ndevice_addresses = 0000:86:00.0\n',
        {'nvidia-35': on([GPU84, GPU85, GPU87]), 'nvidia-36': on([GPU86])}),
    'default-type-listed-second': Row(
        TESTS + ':29227 test_get_vgpu_type_per_pgpu_with_default_type',
        '[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n'
        '[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0\n',
        {'nvidia-35': on([GPU84]), 'nvidia-36': on([GPU85, GPU86, GPU87])}),
    'second-default-dropped': Row(
        CONF + ':43-45; ' + DRIVER + ':8735-8747; ' + TESTS +
        ':29131 test_get_supported_vgpu_types_with_duplicate_default_type',
        '[devices]\nenabled_mdev_types = nvidia-35, nvidia-36, nvidia-37\n'
        '[mdev_nvidia-37]\ndevice_addresses = 0000:84:00.0\n',
        {'nvidia-35': on([GPU85, GPU86, GPU87]), 'nvidia-37': on([GPU84])}),
    'gpu-no-type-claims': Row(
        TESTS + ':29215 test_get_vgpu_type_per_pgpu_with_unconfigured_pgpu',
        '[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n'
        '[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0\n'
        '[mdev_nvidia-36]\ndevice_addresses = 0000:85:00.0\n',
        {'nvidia-35': on([GPU84]), 'nvidia-36': on([GPU85])}),
    'sriov-max-instances': Row(
        DOCS + ':419-441 (A40-2Q, no device_addresses)',
        '[devices]\nenabled_mdev_types = nvidia-558\n'
        '[mdev_nvidia-558]\nmax_instances = 24\n',
        {'nvidia-558': on([A40])}),
    'deprecated-enabled-vgpu-types': Row(
        CONF + ':22 (deprecated_name=enabled_vgpu_types)',
        '[devices]\nenabled_vgpu_types = nvidia-35\n',
        {'nvidia-35': on(GPUS)}),
    # Nova bug, not followed: the default type's mdev_class never reaches
    # its GPUs (driver.py:557-558 defaults every address to VGPU; only
    # addressed types fill mdev_class_mapping, :8755, never the default
    # type, :8734-8737; read at :8819), so Nova reports VGPU here. We
    # report the class the operator wrote.
    'default-type-own-class': Row(
        DRIVER + ':557-558, :8734-8737, :8755, :8819 (Nova: VGPU; ours: '
        'its mdev_class)',
        '[devices]\nenabled_mdev_types = nvidia-35\n'
        '[mdev_nvidia-35]\nmdev_class = CUSTOM_NVIDIA_35\n',
        {'nvidia-35': on(GPUS, 'CUSTOM_NVIDIA_35')}),
    # The project's extension: Nova reports nothing (driver.py:8711-8712).
    'empty-list-every-type': Row(
        DRIVER + ':8711-8712 (Nova: nothing; ours: every type)',
        '',
        {'nvidia-35': on(GPUS, 'CUSTOM_MDEV_NVIDIA_35'),
         'nvidia-36': on(GPUS, 'CUSTOM_MDEV_NVIDIA_36'),
         'nvidia-37': on(GPUS, 'CUSTOM_MDEV_NVIDIA_37'),
         'nvidia-558': on([A40], 'CUSTOM_MDEV_NVIDIA_558')}),
}


def mapping(policies, snapshot):
    """{type: {parent: resource class}} as the tree would report it."""
    got = {}
    for parent in snapshot.parents:
        for policy in type_config.types_on_parent(policies, parent):
            got.setdefault(policy.type_id, {})[parent.name] = \
                policy.resource_class
    return got


@pytest.mark.parametrize('name', sorted(TABLE))
def test_nova_documented_config(snapshot, name):
    row = TABLE[name]
    policies = type_config.load_policies(make_conf(row.config), snapshot)
    assert mapping(policies, snapshot) == row.expected, row.source


def test_max_instances_is_kept_host_wide(snapshot):
    policies = type_config.load_policies(
        make_conf(TABLE['sriov-max-instances'].config), snapshot)
    assert policies['nvidia-558'].max_instances == 24


def test_max_instances_caps_the_last_parent_where_nova_leaves_it_out(
        snapshot):
    # driver.py:8913-8927 gives 0000:85:00.0 a total of 0 (its 4 would pass
    # the limit of 6); we report the 2 still allowed. Either never offers
    # more than max_instances.
    policies = type_config.load_policies(make_conf(
        '[devices]\nenabled_mdev_types = nvidia-35\n'
        '[mdev_nvidia-35]\nmax_instances = 6\n'), snapshot)
    caps = provider_tree.host_caps(snapshot, policies)
    assert [caps[gpu].get('nvidia-35') for gpu in GPUS] == [4, 2, 0, 0]


def test_second_default_type_is_dropped_with_a_warning(snapshot, caplog):
    with caplog.at_level(logging.WARNING, logger='vgpu_placement'):
        policies = type_config.load_policies(make_conf(
            TABLE['second-default-dropped'].config), snapshot)
    assert sorted(policies) == ['nvidia-35', 'nvidia-37']
    warning = [r.getMessage() for r in caplog.records
               if 'nvidia-36' in r.getMessage()]
    assert len(warning) == 1 and 'nvidia-35' in warning[0]


@pytest.mark.parametrize('name,says', [
    ('deprecated-enabled-vgpu-types', 'enabled_vgpu_types'),
    ('legacy-vgpu-group', 'vgpu_nvidia-36')])
def test_deprecated_names_are_read_with_oslo_warning(
        snapshot, caplog, monkeypatch, name, says):
    # oslo.log says each deprecation once per process: forget earlier ones.
    monkeypatch.setattr(versionutils, '_deprecated_messages_sent', {})
    with caplog.at_level(logging.WARNING):
        type_config.load_policies(make_conf(TABLE[name].config), snapshot)
    assert any('eprecated' in r.getMessage() and says in r.getMessage()
               for r in caplog.records), caplog.text


def test_a_virtual_parent_goes_by_its_libvirt_name_as_in_nova(tmp_path):
    """Nova's test config for the kernel's mtty sample: the parent is
    written by its libvirt node-device name, mtty_mtty (libvirt registers
    /sys/devices/virtual/mtty/mtty so; nova/tests/unit/virt/libvirt/
    test_driver.py uses device_addresses = mtty_mtty), and its provider is
    <nodename>_mtty_mtty (driver.py: '%s_%s' % (nodename, pgpu_dev_id))."""
    tree = sysfs_tree.kernel_samples(tmp_path)
    del tree
    conf = make_conf(
        '[devices]\nenabled_mdev_types = mtty-2, mdpy-hd\n'
        '[mdev_mtty-2]\ndevice_addresses = mtty_mtty\n'
        '[mdev_mdpy-hd]\ndevice_addresses = mdpy\n',
        sysfs__root=str(tmp_path))
    snap = sysfs.SysfsDriver(conf).discover()
    policies = type_config.load_policies(conf, snap)
    assert policies['mtty-2'].device_addresses == {'mtty'}
    desired = provider_tree.build_tree('cn1', snap, policies)
    assert {c.name: sorted(c.plan.classes) for c in desired.children} == {
        'cn1_mtty_mtty': ['mtty-2'], 'cn1_mdpy_mdpy': ['mdpy-hd']}
