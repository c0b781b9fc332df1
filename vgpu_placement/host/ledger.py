"""The ownership ledger: which mdevs this host created, for whom.

A SQLite file (mode 0600, WAL) shared by every process of the host. Work
is recorded in two phases -- creating then active, removing then gone --
with the kernel's boot id, so that after a crash or a reboot reconcile
knows what was ours and how far it got. An mdev not in the ledger (and
whose UUID is not one we derive for a consumer) is never ours to touch.
"""
import contextlib
import dataclasses
import os
import sqlite3
import stat
import time
import urllib.parse

from vgpu_placement import exceptions

CREATING, ACTIVE, REMOVING = 'creating', 'active', 'removing'

# The ledger outlives many upgrades. Its schema version is SQLite's
# user_version; _MIGRATIONS[n] takes a version n-1 ledger to version n, in
# the one transaction that opens it. Version 1 is the schema below; a
# ledger from before versions were kept (user_version 0) already has it.
SCHEMA_VERSION = 1
_MIGRATIONS = {1: ()}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mdevs (
    uuid TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    device TEXT NOT NULL,        -- the provider's device (physical GPU)
    parent TEXT NOT NULL,        -- the kernel parent it lives on (a VF)
    type TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('creating', 'active', 'removing')),
    boot_id TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS mdevs_consumer ON mdevs (consumer);
CREATE TABLE IF NOT EXISTS releases (   -- Placement releases still owed
    consumer TEXT PRIMARY KEY,
    since REAL NOT NULL
);
-- mdevs freed for good whose consumer may still hold its claim (Nova
-- reports before it deletes a server's allocations): that claim is
-- waiting for nothing. Added beside version 1 (older releases ignore it).
-- Consumers whose guest left this host (a live migration's source,
-- after post_live_migration_at_source): their mdevs are freed at the
-- source's cleanup, or at the next start if that never came. Added beside
-- version 1 (older releases ignore it).
CREATE TABLE IF NOT EXISTS departed (
    consumer TEXT PRIMARY KEY,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS freed (
    uuid TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    device TEXT NOT NULL,
    type TEXT NOT NULL,
    since REAL NOT NULL
);
"""


@dataclasses.dataclass(frozen=True)
class Record:
    uuid: str
    consumer: str
    device: str
    parent: str
    type: str
    state: str
    boot_id: str


@dataclasses.dataclass(frozen=True)
class Freed:
    """An mdev freed for good (its consumer's free or release)."""
    uuid: str
    consumer: str
    device: str
    type: str


class LedgerLost(exceptions.HostStateError):
    """The ledger this host had is gone or empty."""


class LedgerTooNew(exceptions.HostStateError):
    """The ledger was written by a newer release."""


def path_in(state_path):
    """Where a host keeps its ledger."""
    return os.path.join(state_path, 'ledger.sqlite')


def _marker(path):
    # Written once the ledger exists: remembers that there was one.
    return path + '.created'


class Ledger:
    """The ownership ledger at ``path``.

    A host that had a ledger and finds it missing or emptied has lost the
    record of which mdevs belong to whom: opening it then raises
    LedgerLost, and nothing that needs the ledger (realize, release,
    reconcile) runs until the operator restores the file or accepts the
    loss (``accept_loss=True``: a new, empty ledger; reconcile then only
    adopts mdevs it can derive from allocations, it cannot remove any).
    A file that is not a ledger raises HostStateError naming it.
    """

    def __init__(self, path, accept_loss=False):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            found = os.stat(path)
        except FileNotFoundError:
            found = None
        if found is not None and not stat.S_ISREG(found.st_mode):
            raise exceptions.HostStateError(
                'the ownership ledger %s is not a file; move it aside '
                '(or restore the ledger there)' % path)
        empty = found is None or found.st_size == 0
        if empty and os.path.exists(_marker(path)) and not accept_loss:
            raise LedgerLost(
                'the ownership ledger %s is missing or empty, but this '
                'host had one: which mdevs belong to which instance is '
                'lost. Restore it from a backup, or accept the loss with '
                '"vgpu-placement reconcile --accept-lost-ledger" (mdevs '
                'nobody can claim are then left on the host)' % path)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            with self._connect() as conn:
                conn.execute('PRAGMA journal_mode=WAL')
                self._migrate(conn)
                conn.execute('SELECT uuid, consumer, device, parent, type, '
                             'state, boot_id, updated FROM mdevs LIMIT 1')
        except LedgerTooNew:
            raise
        except exceptions.HostStateError as e:
            raise exceptions.HostStateError(
                '%s; restore it from a backup or move it aside' % e)
        if not os.path.exists(_marker(path)):
            os.close(os.open(_marker(path), os.O_WRONLY | os.O_CREAT,
                             0o600))

    def _migrate(self, conn):
        version = conn.execute('PRAGMA user_version').fetchone()[0]
        if version < 0:
            raise exceptions.HostStateError(
                'the ownership ledger %s has schema version %d, which no '
                'release writes' % (self.path, version))
        if version > SCHEMA_VERSION:
            raise LedgerTooNew(
                'the ownership ledger %s has schema version %d, newer than '
                'this release reads (%d): run the release that wrote it, '
                'or a newer one' % (self.path, version, SCHEMA_VERSION))
        conn.executescript(_SCHEMA)
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute('PRAGMA user_version = %d' % SCHEMA_VERSION)

    @contextlib.contextmanager
    def _connect(self):
        # SQLite makes the -wal/-shm files with the umask: keep them 0600.
        old = os.umask(0o077)
        try:
            # mode=rw: a ledger removed behind our back stays removed
            # (noticed as lost), never silently re-made empty here.
            conn = sqlite3.connect(
                'file:%s?mode=rw' % urllib.parse.quote(
                    os.path.abspath(self.path)), uri=True, timeout=60,
                isolation_level='IMMEDIATE')
        except sqlite3.Error as e:
            raise exceptions.HostStateError(
                'the ownership ledger %s: %s' % (self.path, e))
        finally:
            os.umask(old)
        try:
            with conn:
                yield conn
        except sqlite3.DatabaseError as e:
            raise exceptions.HostStateError(
                'the ownership ledger %s: %s' % (self.path, e))
        finally:
            conn.close()

    def records(self, consumer=None):
        query, args = 'SELECT uuid, consumer, device, parent, type, state, ' \
            'boot_id FROM mdevs', ()
        if consumer is not None:
            query, args = query + ' WHERE consumer = ?', (consumer,)
        with self._connect() as conn:
            rows = conn.execute(query + ' ORDER BY uuid', args).fetchall()
        return [Record(*row) for row in rows]

    def get(self, mdev_uuid):
        found = [r for r in self.records() if r.uuid == mdev_uuid]
        return found[0] if found else None

    def put(self, record):
        with self._connect() as conn:
            conn.execute(
                'INSERT OR REPLACE INTO mdevs VALUES (?,?,?,?,?,?,?,?)',
                dataclasses.astuple(record) + (time.time(),))

    def set_state(self, mdev_uuid, state, boot_id=None):
        with self._connect() as conn:
            if boot_id is None:
                conn.execute('UPDATE mdevs SET state = ?, updated = ? '
                             'WHERE uuid = ?', (state, time.time(), mdev_uuid))
            else:
                conn.execute('UPDATE mdevs SET state = ?, boot_id = ?, '
                             'updated = ? WHERE uuid = ?',
                             (state, boot_id, time.time(), mdev_uuid))

    def forget(self, mdev_uuid):
        with self._connect() as conn:
            conn.execute('DELETE FROM mdevs WHERE uuid = ?', (mdev_uuid,))

    def owe_release(self, consumer):
        with self._connect() as conn:
            conn.execute('INSERT OR IGNORE INTO releases VALUES (?, ?)',
                         (consumer, time.time()))

    def releases_owed(self):
        with self._connect() as conn:
            return [r[0] for r in conn.execute(
                'SELECT consumer FROM releases ORDER BY since')]

    def released(self, consumer):
        with self._connect() as conn:
            conn.execute('DELETE FROM releases WHERE consumer = ?',
                         (consumer,))

    def wanted_here(self, consumer):
        """The consumer wants its vGPUs on this host now: no release owed
        for it, no note that its guest left, none that its claims wait
        for nothing (one transaction; realize runs it first)."""
        with self._connect() as conn:
            for table in ('releases', 'departed', 'freed'):
                conn.execute('DELETE FROM %s WHERE consumer = ?' % table,
                             (consumer,))

    def note_departed(self, consumer):
        with self._connect() as conn:
            conn.execute('INSERT OR IGNORE INTO departed VALUES (?, ?)',
                         (consumer, time.time()))

    def departed(self):
        """Consumers whose guest left this host, oldest first."""
        with self._connect() as conn:
            return [r[0] for r in conn.execute(
                'SELECT consumer FROM departed ORDER BY since, consumer')]

    def arrived(self, consumer):
        """Forget that the consumer's guest left (freed, or back)."""
        with self._connect() as conn:
            conn.execute('DELETE FROM departed WHERE consumer = ?',
                         (consumer,))

    def note_freed(self, record):
        """``record``'s mdev is gone for good, its claim maybe not yet."""
        with self._connect() as conn:
            conn.execute('INSERT OR REPLACE INTO freed VALUES (?,?,?,?,?)',
                         (record.uuid, record.consumer, record.device,
                          record.type, time.time()))

    def freed(self):
        """[Freed] noted and not forgotten, oldest first."""
        with self._connect() as conn:
            return [Freed(*row) for row in conn.execute(
                'SELECT uuid, consumer, device, type FROM freed '
                'ORDER BY since, uuid')]

    def forget_freed(self, uuids):
        """Forget the notes of these mdevs (their claims are gone)."""
        with self._connect() as conn:
            conn.executemany('DELETE FROM freed WHERE uuid = ?',
                             [(u,) for u in uuids])


def owned_mdevs(ledger):
    """UUIDs of every mdev ``ledger`` (a Ledger, or None for a host that
    never had one) holds, whatever their state: the mdevs that realize
    claims. Any other mdev on the host is someone else's."""
    return frozenset() if ledger is None else frozenset(
        r.uuid for r in ledger.records())


def never_had(path):
    """True when ``path`` shows no sign of a ledger: neither the file nor
    the marker its creation leaves beside it (both go with a wiped state
    directory: MdevManager then asks the host too)."""
    return not os.path.exists(path) and not os.path.exists(_marker(path))


def open_existing(path):
    """The Ledger at ``path``, or None when this host never had one (a
    report need not create it). LedgerLost/HostStateError as Ledger()."""
    if never_had(path):
        return None
    return Ledger(path)
