"""Small JSON state files: 0600, replaced atomically, locked across
processes."""
import contextlib
import json
import logging
import os
import stat
import tempfile

from oslo_concurrency import lockutils

LOG = logging.getLogger(__name__)

_warned_dirs = set()


def _ensure_dir(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return directory


# Files only this project writes in a state directory.
OWN_FILES = frozenset(('ledger.sqlite', 'ledger.sqlite.created',
                       'placement-cache.json', 'empty-parents.json',
                       'nvidia-vfio.json'))


def tighten_dir(directory):
    """Make an existing state directory private (0700).

    makedirs(mode=0o700) only applies to a directory it creates; one made
    before (by hand, a package, an older release) keeps its mode. A
    directory that is not ours, or sticky and shared like /tmp, is left
    as it is: said once.
    """
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return          # made 0700 when first written
    mode = stat.S_IMODE(st.st_mode)
    try:
        entries = set(os.listdir(directory))
    except OSError:
        entries = None
    # Only a directory that is ours: empty, or holding our state. A
    # state_path set to /var/lib by mistake must not lock the host out.
    ours = entries is not None and (not entries or entries & OWN_FILES)
    if st.st_uid == os.geteuid() and not mode & stat.S_ISVTX and ours:
        if mode != 0o700:
            os.chmod(directory, 0o700)
            LOG.info('state directory %s: mode %04o -> 0700', directory, mode)
    elif mode & 0o077 and directory not in _warned_dirs:
        _warned_dirs.add(directory)
        LOG.warning('state directory %s is shared (mode %04o, owner uid %d): '
                    'state files stay 0600, but use a directory of its own',
                    directory, mode, st.st_uid)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def read_checked(path, valid):
    """The JSON in path if valid(data) says it has the right shape; else
    None, with one warning naming the file, which is removed: for state
    that can be rebuilt (a corrupt file must not stop every command, nor
    warn at every report). Absent: None, silently.
    """
    missing = object()
    try:
        data = read_json(path, missing)
    except ValueError as e:
        problem = 'not JSON (%s)' % ' '.join(str(e).split())
    else:
        if data is missing:
            return None
        if valid(data):
            return data
        problem = 'not in the expected format'
    LOG.warning('%s is %s: discarded, to be rebuilt', path, problem)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return None


def write_json(path, data):
    """Write data so that a crash leaves either the old or the new file."""
    directory = _ensure_dir(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-')
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    sync_dir(directory)


def sync_dir(directory):
    """Make a rename in ``directory`` durable: until the directory itself
    is synced, a power loss can bring back the old name."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def external_lock(name, lock_path):
    """lockutils' inter-process lock ``name`` in ``lock_path``, its file 0600.

    lockutils creates the lock file with the umask's mode (0644), and
    anyone who can open a lock file can flock it and stall us: made here
    first, it has ours. O_NOFOLLOW: never a file a symlink points to.
    """
    os.makedirs(lock_path, mode=0o700, exist_ok=True)
    # lockutils' own naming of the file (a '/' in the name becomes '_').
    path = os.path.join(lock_path, name.replace(os.sep, '_'))
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.fchmod(fd, 0o600)    # made by an older release
    finally:
        os.close(fd)
    return lockutils.lock(name, external=True, lock_path=lock_path)


def locked(path):
    """An inter-process lock guarding ``path`` (other processes wait)."""
    return external_lock(os.path.basename(path) + '.lock', _ensure_dir(path))
