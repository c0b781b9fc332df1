#!/usr/bin/env python3
"""Discovery cost on a synthetic sysfs tree of a large host.

A host of G physical GPUs x 32 SR-IOV virtual functions x 24 NVIDIA types
(one mdev on every fourth VF), laid out as the kernel lays it out. For each
size, the median of --runs of:

  baseline  only reading the files discovery needs (list the bus, the type
            directories and each VF's entries; read available_instances,
            name, description, device_api; readlink mdev_type and physfn);
  ours      the sysfs driver's discover() + grouping of the VFs under their
            GPU + the capacity model + the desired provider tree, by a new
            driver (a first scan: every file read);
  rescan    the same by a driver that has scanned the host before, as the
            agent does every period (a type's name, description and
            device_api are remembered while its directory lives: only
            available_instances is read again),

all in the same run, alternating. Prints the ratios to the baseline
(target <= 1.5 at 8 GPUs) and the cost per type directory (linear: flat
across sizes).

    python3 benches/discovery.py [--runs 7] [--gpus 1,4,8,16]
"""
import os
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from tests.conftest import make_conf  # noqa: E402
from tests import sysfs_tree  # noqa: E402
from vgpu_placement.conf import type_config  # noqa: E402
from vgpu_placement.drivers.mdev import sysfs  # noqa: E402
from vgpu_placement.drivers.nvidia import models as nvidia_models  # noqa
from vgpu_placement.model import detect  # noqa: E402
from vgpu_placement.model import discovered  # noqa: E402
from vgpu_placement.placement import provider_tree  # noqa: E402

VFS = 32
SIZES_GB = (1, 2, 3, 4, 6, 8, 12, 16, 24, 48)


def nvidia_types():
    """24 A40-like types: Q and B and A series of several sizes."""
    types = {}
    n = 0
    for series in ('Q', 'B', 'A'):
        for gb in SIZES_GB:
            if len(types) == 24:
                break
            mx = min(VFS, 48 // gb)
            types['nvidia-%d' % (600 + n)] = dict(
                available=1, name='NVIDIA A40-%d%s' % (gb, series),
                description='num_heads=4, frl_config=60, framebuffer=%dM, '
                            'max_resolution=7680x4320, max_instance=%d'
                            % (gb * 1024, mx))
            n += 1
    return types


def build_host(root, gpus, mdevs=True):
    """The large host's sysfs tree under ``root`` (a tests.sysfs_tree
    SysfsTree): ``gpus`` GPUs x VFS VFs x 24 types, with an mdev of the
    first type on every fourth VF unless ``mdevs`` is false."""
    tree = sysfs_tree.SysfsTree(root)
    types = nvidia_types()
    first = sorted(types)[0]
    for g in range(gpus):
        pf = '0000:%02x:00.0' % (0x10 + g)
        for i in range(VFS):
            n = 4 + i
            vf = '0000:%02x:%02x.%d' % (0x10 + g, n // 8, n % 8)
            tree.add_parent(vf, types, physfn=pf)
            if mdevs and i % 4 == 0:
                tree.add_mdev(vf, first, str(uuid.uuid4()))
    return tree


def read_only(root):
    """The baseline: the same files, read and thrown away."""
    bus = os.path.join(root, 'class', 'mdev_bus')
    for parent in os.listdir(bus):
        pdir = os.path.join(bus, parent)
        tdir = os.path.join(pdir, 'mdev_supported_types')
        for entry in os.listdir(pdir):
            if len(entry) == 36:
                os.readlink(os.path.join(pdir, entry, 'mdev_type'))
        try:
            os.readlink(os.path.join(pdir, 'physfn'))
        except OSError:
            pass
        for type_id in os.listdir(tdir):
            for name in ('available_instances', 'device_api', 'name',
                         'description'):
                with open(os.path.join(tdir, type_id, name), 'rb') as f:
                    f.read(4096)


def ours(conf, driver):
    snapshot = discovered.group_virtual_functions(driver.discover())
    policies = type_config.load_policies(conf, snapshot)
    return provider_tree.build_tree(
        'bench', snapshot, policies,
        choose_model=lambda p: detect.choose_model(
            p, vendor=nvidia_models.DETECTORS)[0])


median_time = common.median_time


def main():
    parser = common.arg_parser(__doc__)
    parser.add_argument('--runs', type=int, default=7)
    parser.add_argument('--gpus', default='1,4,8,16', type=common.int_list,
                        help='sizes (physical GPUs); 8 is the issue\'s host')
    common.add_smoke(parser, runs=1, gpus='1')
    args = common.parse(parser)
    sizes = args.gpus
    base_dirs = sizes[0] * VFS * 24
    print('%6s %8s %6s %12s %10s %7s %10s %7s %15s' % (
        'GPUs', 'typedirs', 'scale', 'baseline ms', 'ours ms', 'ratio',
        'rescan ms', 'ratio', 'ours us/typedir'))
    for gpus in sizes:
        with tempfile.TemporaryDirectory(prefix='bench-sysfs-') as root:
            build_host(root, gpus)
            conf = make_conf(sysfs__root=root)
            driver = sysfs.SysfsDriver(conf)
            tree = ours(conf, driver)        # warm the page cache, check
            assert len(tree.children) == gpus
            base, mine, again = [], [], []
            for _ in range(args.runs):
                base.append(median_time(lambda: read_only(root), 1))
                mine.append(median_time(lambda: ours(
                    conf, sysfs.SysfsDriver(conf)), 1))
                again.append(median_time(lambda: ours(conf, driver), 1))
            b, m, r = (statistics.median(x) for x in (base, mine, again))
            dirs = gpus * VFS * 24
            print('%6d %8d %5.0fx %12.1f %10.1f %7.2f %10.1f %7.2f %15.1f'
                  % (gpus, dirs, dirs / base_dirs, b * 1000, m * 1000,
                     m / b, r * 1000, r / b, m / dirs * 1e6))
    print('runs: %d per size, medians; %d VFs per GPU, 24 types, one mdev '
          'on every 4th VF' % (args.runs, VFS))


if __name__ == '__main__':
    main()
