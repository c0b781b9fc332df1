"""Host side of the real-kernel test tier (standard library only).

Run it through ``tools/kernel-vm/run-tests [pytest args...]``; README.md
beside this file says what it does and which environment variables it reads.

Steps: install the host tools if missing (apt) -> resolve the Debian kernel
version from the apt lists -> build or reuse <checkout>/.cache/kernel-vm/
linux-<version>-amd64/ (vmlinuz + the modules the guest loads, mtty, mbochs
and mdpy built out of tree) -> initramfs -> boot QEMU (TCG) with virtio-9p
shares -> stream the console -> judge by the rc file the guest wrote.
"""
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
from pathlib import Path
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

RECIPE = 1              # bump when the build below changes: caches rebuild
HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
CACHE = CHECKOUT / '.cache' / 'kernel-vm'
SERIES = os.environ.get('KERNEL_VM_SERIES', '6.12')
FLAVOUR = 'amd64'
SAMPLES = ('mtty', 'mbochs', 'mdpy')
# What the guest loads (dependencies are added from modules.dep / .mod.c).
GUEST_MODULES = ('9pnet_virtio', '9p', 'vfio', 'mdev') + SAMPLES
# command (None: special check) -> Debian package
HOST_TOOLS = (('qemu-system-x86_64', 'qemu-system-x86'),
              (None, 'busybox-static'),
              ('pahole', 'pahole'),
              ('gcc-12', 'gcc-12'),
              ('make', 'make'),
              ('dpkg-deb', 'dpkg'))
GUEST_MODULES_DIR = '/run/kernel-vm/modules'
PASS_ENV_PREFIX = 'VGPU_KERNEL_'


class Fail(Exception):
    """Stops the run; the message is printed as one line."""


def say(msg):
    print('kernel tier: %s' % msg, flush=True)


def env_float(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise Fail('%s=%r is not a number' % (name, os.environ[name]))


TIMEOUT = None          # set in main()


# -- running commands ------------------------------------------------------

def _log_file():
    CACHE.mkdir(parents=True, exist_ok=True)
    return open(CACHE / 'setup.log', 'a')


def run(cmd, cwd=None, env=None, check_msg=None):
    """Run quietly; output goes to .cache/kernel-vm/setup.log.

    With check_msg, a failure raises Fail('<check_msg>: <last line>').
    """
    with _log_file() as log:
        log.write('\n$ %s\n' % ' '.join(str(c) for c in cmd))
        log.flush()
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env,
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, errors='replace')
        log.write(proc.stdout)
        log.write(proc.stderr)
    if check_msg and proc.returncode:
        raise Fail('%s: %s' % (check_msg, last_line(proc)))
    return proc


def last_line(proc):
    for text in (proc.stderr, proc.stdout):
        lines = [ln.strip() for ln in (text or '').splitlines()
                 if ln.strip() and not ln.startswith('W: ')]
        if lines:
            return lines[-1]
    return 'exit status %d (see %s)' % (proc.returncode, CACHE / 'setup.log')


class Apt:
    """apt-get update at most once per run."""

    def __init__(self):
        self.updated = False

    def update(self):
        if self.updated:
            return
        self.updated = True
        if not shutil.which('apt-get'):
            raise Fail('no apt-get on this machine')
        say('apt-get update')
        run(['apt-get', 'update'], check_msg='apt-get update failed')


# -- host tools --------------------------------------------------------------

def is_static_elf(path):
    """True for an ELF executable without a program interpreter."""
    try:
        with open(path, 'rb') as f:
            head = f.read(64)
            if head[:4] != b'\x7fELF' or head[4] != 2:      # 64-bit only
                return False
            phoff = int.from_bytes(head[0x20:0x28], 'little')
            phentsize = int.from_bytes(head[0x36:0x38], 'little')
            phnum = int.from_bytes(head[0x38:0x3a], 'little')
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize:i * phentsize + 4],
                          'little') == 3:                  # PT_INTERP
            return False
    return True


def static_busybox():
    for path in ('/bin/busybox', '/usr/bin/busybox', shutil.which('busybox')):
        if path and is_static_elf(path):
            return path
    return None


def missing_tools():
    missing = []
    for command, package in HOST_TOOLS:
        found = static_busybox() if command is None else \
            shutil.which(command)
        if not found:
            missing.append(package)
    return missing


def ensure_host_tools(apt):
    missing = missing_tools()
    if not missing:
        return 0.0
    what = ' '.join(missing)
    if os.geteuid() != 0:
        raise Fail('cannot install %s: not root (install it, then re-run)'
                   % what)
    start = time.monotonic()
    try:
        apt.update()
    except Fail as e:
        raise Fail('cannot install %s: %s' % (what, e))
    say('installing %s (apt-get)' % what)
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    run(['apt-get', 'install', '-y', '--no-install-recommends'] + missing,
        env=env, check_msg='cannot install %s' % what)
    still = missing_tools()
    if still:
        raise Fail('cannot install %s: installed, but still missing '
                   '(busybox must be the static build)' % ' '.join(still))
    return time.monotonic() - start


# -- the host Python, and what the guest must see -------------------------

_PROBE = r'''
import json, os, sys
# The interpreter as invoked, not resolved: a virtualenv's bin/python is a
# link to the base interpreter, which run by its own path knows nothing of
# the virtualenv (its pyvenv.cfg sits beside the link) -- and so nothing of
# the packages installed there. The resolved one is shared too.
out = {"executable": os.path.abspath(sys.executable),
       "resolved": os.path.realpath(sys.executable),
       "version": sys.version.split()[0],
       "prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix,
                    sys.base_exec_prefix],
       "path": [p for p in sys.path if p], "missing": []}
for name in ("pytest", "vgpu_placement", "placement"):
    try:
        mod = __import__(name)
    except Exception as e:
        out["missing"].append("%s (%s: %s)" % (name, type(e).__name__, e))
    else:
        if name == "vgpu_placement":
            out["project"] = os.path.dirname(os.path.dirname(
                os.path.realpath(mod.__file__)))
import importlib.util
# Loaded by name in the guest (plugin autoload is off there): the per-test
# timeout of setup.cfg then applies in the kernel tier too.
out["timeout_plugin"] = importlib.util.find_spec("pytest_timeout") is not None
print(json.dumps(out))
'''


def probe_python():
    proc = subprocess.run([sys.executable, '-c', _PROBE], cwd=CHECKOUT,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)
    if proc.returncode:
        raise Fail('the Python at %s does not run: %s'
                   % (sys.executable, last_line(proc)))
    info = json.loads(proc.stdout)
    if info['missing']:
        raise Fail('the Python at %s cannot import %s'
                   % (info['executable'], '; '.join(info['missing'])))
    if info.get('project') != str(CHECKOUT):
        raise Fail('vgpu_placement imports from %s, not from this checkout '
                   '%s' % (info.get('project'), CHECKOUT))
    return info


def _inside(path, parent):
    return path == parent or path.startswith(parent.rstrip('/') + '/')


def guest_shares(info):
    """[(path, 'ro'|'rw')] to mount in the guest root, parents first, and
    the top-level links (bin -> usr/bin, ...) to recreate."""
    links, wanted = [], [('/usr', 'ro'), ('/etc', 'ro')]
    for name in ('bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'):
        top = '/' + name
        if os.path.islink(top):
            links.append((name, os.readlink(top)))
        elif os.path.isdir(top):
            wanted.append((top, 'ro'))          # not a merged-/usr host
    candidates = info['prefixes'] + info['path'] + [
        os.path.dirname(info['executable']),
        os.path.dirname(info['resolved'])]
    for path in candidates:
        path = os.path.realpath(path)
        if os.path.isfile(path):
            path = os.path.dirname(path)        # python311.zip and the like
        if os.path.isdir(path):
            wanted.append((path, 'ro'))
    wanted.append((str(CHECKOUT), 'rw'))
    modes = {}
    for path, mode in wanted:
        if path == '/':
            raise Fail('the guest cannot share the whole host root (a '
                       'Python path is /)')
        if any(_inside(path, top) for top in ('/proc', '/sys', '/dev')):
            raise Fail('cannot share %s: the guest has its own %s'
                       % (path, '/' + path.split('/')[1]))
        if re.search(r'\s', path):
            raise Fail('path with white space not supported: %r' % path)
        if modes.get(path) != 'rw':
            modes[path] = mode
    shares = []
    for path in sorted(modes):
        outer = [p for p, m in shares if _inside(path, p)]
        # Covered by a share above it, unless it must be writable there.
        if outer and not (modes[path] == 'rw' and
                          dict(shares)[outer[-1]] == 'ro'):
            continue
        shares.append((path, modes[path]))
    return shares, links


# -- the kernel: resolve, download, build, cache -----------------------------

def apt_candidate(package):
    proc = run(['apt-cache', 'policy', package])
    m = re.search(r'Candidate:\s*(\S+)', proc.stdout)
    return None if not m or m.group(1) == '(none)' else m.group(1)


def image_abi(version):
    """ABI name (6.12.117+deb12) of the amd64 image at this version."""
    upstream = version.split('-')[0]
    names = run(['apt-cache', 'pkgnames', 'linux-image-%s' % upstream]) \
        .stdout.split()
    pattern = re.compile(r'^linux-image-(%s[^-]*)-%s-unsigned$'
                         % (re.escape(upstream), FLAVOUR))
    for name in sorted(names):
        m = pattern.match(name)
        if not m:
            continue
        madison = run(['apt-cache', 'madison', name]).stdout
        if re.search(r'\|\s*%s\s*\|' % re.escape(version), madison):
            return m.group(1)
    return None


def resolve_kernel(apt):
    """(version, abi) from the apt lists; KERNEL_VM_KERNEL pins a version."""
    pin = os.environ.get('KERNEL_VM_KERNEL')
    while True:
        version = pin or apt_candidate('linux-source-%s' % SERIES)
        abi = image_abi(version) if version else None
        if abi:
            return version, abi
        if apt.updated:
            raise Fail('no Debian kernel %s found in the apt lists (%s)' % (
                pin or SERIES,
                'no linux-image-*-%s-unsigned at %s' % (FLAVOUR, version)
                if version else 'no linux-source-%s' % SERIES))
        apt.update()


def kernel_dir(version):
    return CACHE / ('linux-%s-%s' % (re.sub(r'[^A-Za-z0-9.+_-]', '_',
                                            version), FLAVOUR))


def cached_kernel(kdir):
    try:
        stamp = json.loads((kdir / 'stamp.json').read_text())
    except (OSError, ValueError):
        return None
    if stamp.get('recipe') != RECIPE or not (kdir / 'vmlinuz').is_file():
        return None
    for name in stamp['order']:
        if not (kdir / 'modules' / (name + '.ko')).is_file():
            return None
    return stamp


class DownloadFailed(Exception):
    pass


def _norm(name):
    return name.replace('-', '_')


def _module_name(path):
    return _norm(os.path.basename(path).split('.ko')[0])


def _module_bytes(path):
    path = str(path)
    if path.endswith('.xz'):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith('.gz'):
        with gzip.open(path) as f:
            return f.read()
    if path.endswith('.zst'):
        return subprocess.run(['zstd', '-dc', path], check=True,
                              stdout=subprocess.PIPE).stdout
    with open(path, 'rb') as f:
        return f.read()


def _depends(path):
    """The module's own list of dependencies (its .modinfo depends=)."""
    m = re.search(rb'(?:^|\0)depends=([^\0]*)', _module_bytes(path))
    return [_norm(d) for d in (m.group(1).decode() if m else '').split(',')
            if d]


def load_order(moddir, build):
    """Module names in load order, dependencies first, built-ins left out,
    and {name: path of its .ko file}.  (The package has no modules.dep:
    depmod makes it at install time.)"""
    files = {_module_name(p): p for p in (moddir / 'kernel').rglob('*.ko*')}
    for sample in SAMPLES:
        files[sample] = build / (sample + '.ko')
    builtin = set()
    if (moddir / 'modules.builtin').exists():
        builtin = {_module_name(ln.strip()) for ln in
                   (moddir / 'modules.builtin').read_text().splitlines()}
    order = []

    def add(name, chain=()):
        if name in order or name in builtin:
            return
        if name not in files:
            raise Fail('kernel module %s (needed by %s) is neither in the '
                       'image nor built in' % (
                           name, ' <- '.join(chain) or 'the guest'))
        for dep in _depends(files[name]):
            add(dep, chain + (name,))
        order.append(name)

    for name in GUEST_MODULES:
        add(name)
    return order, files


def _copy_module(src, dst):
    with open(dst, 'wb') as out:
        out.write(_module_bytes(src))


def build_kernel(kdir, version, abi):
    """Download the Debian packages, build the samples, keep what boots."""
    work = Path(str(kdir) + '.building')
    shutil.rmtree(work, ignore_errors=True)
    debs, root, src, build = (work / d for d in ('debs', 'root', 'src',
                                                 'build'))
    for d in (debs, root, src, build):
        d.mkdir(parents=True)
    start = time.monotonic()
    packages = ['linux-image-%s-%s-unsigned' % (abi, FLAVOUR),
                'linux-headers-%s-%s' % (abi, FLAVOUR),
                'linux-headers-%s-common' % abi,
                'linux-kbuild-%s' % abi,
                'linux-source-%s' % SERIES]
    say('downloading %s (%s)' % (' '.join(packages), version))
    proc = run(['apt-get', 'download'] + ['%s=%s' % (p, version)
                                          for p in packages], cwd=debs)
    if proc.returncode:
        raise DownloadFailed(last_line(proc))
    t_download = time.monotonic() - start

    def deb(prefix):
        found = sorted(debs.glob(prefix + '_*.deb'))
        if not found:
            raise Fail('apt-get download gave no %s package' % prefix)
        return found[0]

    # The sample sources, streamed out of the source tarball (the longest
    # step), while the image and headers unpack.
    inner = './usr/src/linux-source-%s.tar.xz' % SERIES
    stream = subprocess.Popen(
        ['sh', '-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xO "$2" | '
         'tar -C "$3" -xJ --wildcards "*/samples/vfio-mdev/*"', 'sh',
         str(deb('linux-source-%s' % SERIES)), inner, str(src)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    for prefix in packages[:-1]:
        run(['dpkg-deb', '-x', deb(prefix), root],
            check_msg='cannot unpack %s' % prefix)
    err = stream.communicate()[1]
    samples = next(src.glob('*/samples/vfio-mdev'), None)
    if samples is None or not (samples / 'mtty.c').exists():
        raise Fail('no samples/vfio-mdev in linux-source-%s: %s'
                   % (SERIES, (err or '').strip().splitlines()[-1:]))
    t_unpack = time.monotonic() - start - t_download

    headers = root / 'usr' / 'src' / ('linux-headers-%s-%s' % (abi, FLAVOUR))
    common = root / 'usr' / 'src' / ('linux-headers-%s-common' % abi)
    # Its Makefile includes the common one by absolute /usr/src path.
    (headers / 'Makefile').write_text('include %s/Makefile\n' % common)
    for name in SAMPLES + ('mdpy-defs.h',):
        src_name = name if name.endswith('.h') else name + '.c'
        shutil.copy(samples / src_name, build / src_name)
    (build / 'Kbuild').write_text('obj-m += %s\n' % ' '.join(
        s + '.o' for s in SAMPLES))
    say('building %s out of tree' % ', '.join(SAMPLES))
    run(['make', '-s', '-j%d' % (os.cpu_count() or 1), '-C', headers,
         'M=%s' % build, 'modules'],
        check_msg='building the mdev samples failed')
    t_build = time.monotonic() - start - t_download - t_unpack

    moddir = next((p for p in (root / 'lib' / 'modules',
                               root / 'usr' / 'lib' / 'modules')
                   if p.is_dir()), None)
    moddir = moddir and next(moddir.iterdir())
    vmlinuz = next(root.glob('boot/vmlinuz-*'), None)
    if moddir is None or vmlinuz is None:
        raise Fail('the linux-image package has no vmlinuz or modules')
    order, files = load_order(moddir, build)

    staging = Path(str(kdir) + '.new')
    shutil.rmtree(staging, ignore_errors=True)
    (staging / 'modules').mkdir(parents=True)
    shutil.copyfile(vmlinuz, staging / 'vmlinuz')
    for name in order:
        _copy_module(files[name], staging / 'modules' / (name + '.ko'))
    (staging / 'modules' / 'order').write_text(''.join(
        n + '\n' for n in order))
    stamp = {'recipe': RECIPE, 'version': version, 'abi': abi,
             'flavour': FLAVOUR, 'kernel_release': moddir.name,
             'order': order, 'built': time.strftime('%Y-%m-%dT%H:%M:%S'),
             'seconds': {'download': round(t_download, 1),
                         'unpack': round(t_unpack, 1),
                         'build': round(t_build, 1)}}
    (staging / 'stamp.json').write_text(json.dumps(stamp, indent=1) + '\n')
    shutil.rmtree(kdir, ignore_errors=True)
    os.rename(staging, kdir)
    shutil.rmtree(work, ignore_errors=True)
    # Other kernels' caches are stale now.
    for other in CACHE.glob('linux-*'):
        if other != kdir:
            shutil.rmtree(other, ignore_errors=True)
    return stamp


def ensure_kernel(apt):
    """(kernel dir, stamp, built_now)."""
    for _attempt in range(2):
        try:
            version, abi = resolve_kernel(apt)
        except Fail as e:
            # Offline, or lists without this series: a cached kernel will do.
            found = sorted((k for k in CACHE.glob('linux-*-%s' % FLAVOUR)
                            if cached_kernel(k)),
                           key=lambda k: k.stat().st_mtime)
            if not found:
                raise
            say('%s; using the cached %s' % (e, found[-1].name))
            return found[-1], cached_kernel(found[-1]), False
        kdir = kernel_dir(version)
        stamp = cached_kernel(kdir)
        if stamp:
            return kdir, stamp, False
        try:
            return kdir, build_kernel(kdir, version, abi), True
        except DownloadFailed as e:
            if apt.updated:
                raise Fail('cannot download the kernel packages %s: %s'
                           % (version, e))
            apt.update()        # stale lists: the archive moved on
    raise Fail('cannot download the kernel packages')


# -- initramfs --------------------------------------------------------------

def _cpio(entries):
    """newc archive of [(name, mode, data, rdev)]."""
    out = io.BytesIO()

    def pad(n):
        out.write(b'\0' * ((4 - n % 4) % 4))

    for ino, (name, mode, data, rdev) in enumerate(
            entries + [('TRAILER!!!', 0, b'', (0, 0))], start=1):
        nameb = name.encode() + b'\0'
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(nameb), 0)
        header = b'070701' + b''.join(b'%08X' % f for f in fields)
        out.write(header + nameb)
        pad(len(header) + len(nameb))
        out.write(data)
        pad(len(data))
    return out.getvalue()


def ensure_initramfs(kdir):
    init = (HERE / 'guest' / 'init').read_bytes()
    busybox = Path(static_busybox()).read_bytes()
    modules = kdir / 'modules'
    digest = hashlib.sha256(init + busybox + (kdir / 'stamp.json')
                            .read_bytes()).hexdigest()[:16]
    out = kdir / ('initramfs-%s.cpio.gz' % digest)
    if out.exists():
        return out
    d, x, f = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, \
        stat.S_IFREG | 0o644
    entries = [(n, d, b'', (0, 0)) for n in (
        'bin', 'dev', 'proc', 'sys', 'tmp', 'job', 'newroot', 'lib',
        'lib/mdevmods')]
    entries += [('dev/console', stat.S_IFCHR | 0o600, b'', (5, 1)),
                ('init', x, init, (0, 0)), ('bin/busybox', x, busybox,
                                            (0, 0))]
    for path in sorted(modules.iterdir()):
        entries.append(('lib/mdevmods/' + path.name, f, path.read_bytes(),
                        (0, 0)))
    tmp = out.with_suffix('.tmp')
    with gzip.open(tmp, 'wb', compresslevel=1) as g:
        g.write(_cpio(entries))
    for old in kdir.glob('initramfs-*.cpio.gz'):
        old.unlink()
    os.rename(tmp, out)
    return out


# -- boot and judge --------------------------------------------------------

_ANSI = re.compile(r'\x1b(\[[0-9;?]*[A-Za-z]|[()][0-9A-Za-z]|[c78=>])')


def guest_job(run_dir, info, pytest_args):
    exe = info['executable']
    env = {'PATH': ':'.join([os.path.dirname(exe), '/usr/local/sbin',
                             '/usr/local/bin', '/usr/sbin', '/usr/bin',
                             '/sbin', '/bin']),
           'HOME': '/tmp/home', 'TMPDIR': '/tmp', 'USER': 'root',
           'LOGNAME': 'root', 'LANG': 'C.UTF-8', 'COLUMNS': '100',
           'PYTHONDONTWRITEBYTECODE': '1', 'PYTHONUNBUFFERED': '1',
           # Every plugin import costs seconds under TCG: none is loaded
           # unless asked for with -p NAME (only pytest_timeout is).
           'PYTEST_DISABLE_PLUGIN_AUTOLOAD': '1'}
    for key, value in os.environ.items():
        if key.startswith(PASS_ENV_PREFIX):
            env[key] = value
    env.update({'VGPU_KERNEL_TIER': '1',
                'VGPU_KERNEL_MODULES': GUEST_MODULES_DIR})
    args = list(pytest_args)
    # tests/kernel unless the arguments name kernel tests themselves.
    if not any(a.split('::')[0].rstrip('/').startswith('tests/kernel')
               for a in args):
        args.insert(0, 'tests/kernel')
    plugins = ['-p', 'pytest_timeout'] if info.get('timeout_plugin') else []
    job = {'cwd': str(CHECKOUT), 'mkdirs': ['/tmp/home'], 'env': env,
           'argv': [exe, '-m', 'pytest', '-p', 'no:cacheprovider'] +
           plugins + args}
    (run_dir / 'job.json').write_text(json.dumps(job, indent=1))
    return run_dir / 'job.json'


def boot(kdir, initrd, info, pytest_args):
    """Boot, stream the console, return (pytest rc or None, why, seconds)."""
    shares, links = guest_shares(info)
    runs = CACHE / 'runs'
    run_dir = runs / str(os.getpid())
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    job = guest_job(run_dir, info, pytest_args)
    (run_dir / 'guest.env').write_text(
        "KV_SHARES='%s'\nKV_LINKS='%s'\nKV_PYTHON='%s'\n"
        "KV_PYTHON_FILE='%s'\nKV_JOB='%s'\n" % (
            ' '.join('kv%d:%s:%s' % (i, mode, path)
                     for i, (path, mode) in enumerate(shares)),
            ' '.join('%s:%s' % link for link in links),
            info['executable'], info['resolved'], job))
    cmd = ['qemu-system-x86_64', '-accel', 'tcg',
           '-cpu', os.environ.get('KERNEL_VM_CPU', 'max'),
           '-m', os.environ.get('KERNEL_VM_MEMORY', '2048'),
           '-smp', str(min(2, os.cpu_count() or 1)),
           '-nographic', '-no-reboot', '-nic', 'none',
           '-kernel', str(kdir / 'vmlinuz'), '-initrd', str(initrd),
           '-append', 'console=ttyS0 panic=-1 quiet loglevel=2 '
                      'vgpu_kernel_tier=1']
    for i, (path, mode) in enumerate(shares + [(str(run_dir), 'rw')]):
        tag = 'kv%d' % i if i < len(shares) else 'kvjob'
        cmd += ['-virtfs', 'local,path=%s,mount_tag=%s,security_model=none%s'
                % (path.replace(',', ',,'), tag,
                   ',readonly=on' if mode == 'ro' else '')]
    say('booting %s under QEMU (TCG), shares: %s' % (
        kdir.name, ', '.join('%s (%s)' % s for s in shares)))
    start = time.monotonic()
    errors = []
    stderr = open(run_dir / 'qemu.stderr', 'w+')
    console = open(run_dir / 'console.log', 'w')
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=stderr,
                            start_new_session=True)

    def pump():
        for raw in iter(proc.stdout.readline, b''):
            line = _ANSI.sub('', raw.decode('utf-8', 'replace')) \
                .replace('\r', '').rstrip('\n')
            console.write(line + '\n')
            if line.startswith('KERNEL-VM-ERROR:'):
                errors.append(line.split(':', 1)[1].strip())
            print(line, flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    why = None
    try:
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        why = 'the guest did not finish within %d s; QEMU killed' % TIMEOUT
    except KeyboardInterrupt:
        why = 'interrupted; QEMU killed'
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(10)
    seconds = time.monotonic() - start
    console.close()
    rc = None
    try:
        rc = int((run_dir / 'rc').read_text().strip())
    except (OSError, ValueError):
        pass
    if why is None and errors:
        why = 'guest set-up failed: %s' % errors[-1]
    if why is None and rc is None:
        stderr.seek(0)
        qemu_err = [ln.strip() for ln in stderr.read().splitlines()
                    if ln.strip() and 'warning:' not in ln]
        if proc.returncode:
            why = 'QEMU exited %d: %s' % (proc.returncode, (
                qemu_err or ['no message'])[-1])
        else:
            why = 'pytest did not run in the guest (no rc file)'
    stderr.close()
    # Keep the last run's logs for a look afterwards.
    last = CACHE / 'last-run'
    shutil.rmtree(last, ignore_errors=True)
    os.rename(run_dir, last)
    with contextlib.suppress(OSError):
        runs.rmdir()
    return rc, why, seconds


def main(argv):
    global TIMEOUT
    t0 = time.monotonic()
    try:
        TIMEOUT = env_float('KERNEL_VM_TIMEOUT', 900)
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / 'setup.log').write_text('')     # this run's commands only
        apt = Apt()
        t_tools = ensure_host_tools(apt)
        info = probe_python()
        with open(CACHE / 'lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kdir, stamp, built = ensure_kernel(apt)
            initrd = ensure_initramfs(kdir)
        setup = time.monotonic() - t0
        detail = 'cold: built %s' % ', '.join(
            '%s %.1f s' % kv for kv in stamp['seconds'].items()) \
            if built else 'cached'
        if t_tools:
            detail += '; host tools installed in %.1f s' % t_tools
        say('set-up %.1f s (%s; kernel %s, Python %s)' % (
            setup, detail, stamp['version'], info['version']))
        rc, why, seconds = boot(kdir, initrd, info, argv)
    except Fail as e:
        say(str(e))
        return 1
    say('boot-to-result %.1f s' % seconds)
    logs = CACHE / 'last-run'
    if _inside(str(logs), os.getcwd()):
        logs = os.path.relpath(logs)
    if why:
        say('FAILED: %s (logs: %s)' % (why, logs))
        return 1
    if rc == 5:
        say('FAILED: pytest collected no tests in the guest (exit 5)')
        return 5
    if rc:
        say('FAILED: pytest in the guest exited %d (logs: %s)' % (rc, logs))
        return rc
    say('passed')
    return 0


def entry(argv):
    try:
        return main(argv)
    except Exception as e:          # a bug here: still one clear last line
        import traceback
        traceback.print_exc()
        say('FAILED: harness error: %s: %s' % (type(e).__name__, e))
        return 1


if __name__ == '__main__':
    sys.exit(entry(sys.argv[1:]))
