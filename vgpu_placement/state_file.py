"""Small JSON state files: 0600, replaced atomically, locked across processes."""
import contextlib
import json
import os
import tempfile

from oslo_concurrency import lockutils


def _ensure_dir(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return directory


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


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


def locked(path):
    """An inter-process lock guarding ``path`` (other processes wait)."""
    directory = _ensure_dir(path)
    return lockutils.lock(os.path.basename(path) + '.lock', external=True,
                          lock_path=directory)
