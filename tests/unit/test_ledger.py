"""The ownership ledger: a lost or corrupt file is said, never papered over."""
import os
import stat

import pytest

from vgpu_placement import exceptions
from vgpu_placement.host import ledger as ledger_mod


def record(uuid='6b1d8f2a-52c4-5e0b-9c7e-3f4a1d2b8e61'):
    return ledger_mod.Record(uuid, 'c', 'mtty', 'mtty', 'mtty-1',
                             ledger_mod.ACTIVE, 'boot')


def test_records_round_trip_and_files_are_private(tmp_path):
    path = str(tmp_path / 'state' / 'ledger.sqlite')
    ledger = ledger_mod.Ledger(path)
    ledger.put(record())
    assert ledger.get(record().uuid) == record()
    assert ledger.get('00000000-0000-0000-0000-000000000000') is None
    for name in os.listdir(tmp_path / 'state'):
        mode = stat.S_IMODE(os.stat(tmp_path / 'state' / name).st_mode)
        assert mode == 0o600, name


@pytest.mark.parametrize('damage', ['deleted', 'truncated'])
def test_a_lost_ledger_is_refused_until_the_loss_is_accepted(tmp_path,
                                                             damage):
    path = str(tmp_path / 'ledger.sqlite')
    ledger_mod.Ledger(path).put(record())
    if damage == 'deleted':
        os.unlink(path)
    else:
        open(path, 'w').close()
    with pytest.raises(ledger_mod.LedgerLost) as err:
        ledger_mod.Ledger(path)
    assert path in str(err.value) and 'accept-lost-ledger' in str(err.value)
    assert ledger_mod.Ledger(path, accept_loss=True).records() == []
    assert ledger_mod.Ledger(path).records() == []   # accepted: new ledger


def test_a_corrupt_ledger_names_its_file(tmp_path):
    path = str(tmp_path / 'ledger.sqlite')
    with open(path, 'wb') as f:
        f.write(b'this is not a database' * 100)
    with pytest.raises(exceptions.HostStateError) as err:
        ledger_mod.Ledger(path)
    assert path in str(err.value)


def test_a_ledger_from_before_schema_versions_is_migrated(tmp_path):
    import sqlite3
    path = str(tmp_path / 'ledger.sqlite')
    # As the first releases wrote it: the tables, no user_version.
    conn = sqlite3.connect(path)
    conn.executescript(ledger_mod._SCHEMA)
    conn.execute('INSERT INTO mdevs VALUES (?,?,?,?,?,?,?,?)',
                 (record().uuid, 'c', 'mtty', 'mtty', 'mtty-1',
                  ledger_mod.ACTIVE, 'boot', 0.0))
    conn.commit()
    conn.close()
    assert ledger_mod.Ledger(path).records() == [record()]
    conn = sqlite3.connect(path)
    assert conn.execute('PRAGMA user_version').fetchone()[0] == \
        ledger_mod.SCHEMA_VERSION >= 1
    conn.close()


def test_a_ledger_from_a_newer_release_is_refused_untouched(tmp_path):
    import sqlite3
    path = str(tmp_path / 'ledger.sqlite')
    ledger_mod.Ledger(path).put(record())
    conn = sqlite3.connect(path)
    conn.execute('PRAGMA user_version = %d' % (ledger_mod.SCHEMA_VERSION + 1))
    conn.commit()
    conn.close()
    with pytest.raises(ledger_mod.LedgerTooNew) as err:
        ledger_mod.Ledger(path)
    assert path in str(err.value) and 'newer' in str(err.value)
    conn = sqlite3.connect(path)
    assert conn.execute('SELECT uuid FROM mdevs').fetchall() == [
        (record().uuid,)]
    conn.close()


def test_freed_notes_are_kept_until_forgotten(tmp_path):
    ledger = ledger_mod.Ledger(str(tmp_path / 'ledger.sqlite'))
    a = ledger_mod.Record('u1', 'c1', 'gpu', 'gpu', 't', ledger_mod.ACTIVE,
                          'b')
    b = ledger_mod.Record('u2', 'c2', 'gpu', 'gpu', 't', ledger_mod.ACTIVE,
                          'b')
    ledger.note_freed(a)
    ledger.note_freed(b)
    assert [n.uuid for n in ledger.freed()] == ['u1', 'u2']
    ledger.forget_freed(['u1'])
    assert [(n.consumer, n.device, n.type) for n in ledger.freed()] == [
        ('c2', 'gpu', 't')]
    ledger.note_departed('c2')
    ledger.owe_release('c2')
    ledger.wanted_here('c2')         # realized again: every note goes
    assert (ledger.freed(), ledger.departed(), ledger.releases_owed()) == (
        [], [], [])


@pytest.mark.parametrize('make', ['directory', 'negative-version'])
def test_a_ledger_no_release_wrote_is_one_clear_error(tmp_path, make):
    """Neither a directory where the ledger goes nor a schema version no
    release writes is a crash: one HostStateError naming the file (the
    agent then reports on, as for any unusable ledger)."""
    import sqlite3
    path = str(tmp_path / 'ledger.sqlite')
    if make == 'directory':
        os.mkdir(path)
    else:
        conn = sqlite3.connect(path)
        conn.execute('PRAGMA user_version = -1')
        conn.commit()
        conn.close()
    with pytest.raises(exceptions.HostStateError) as err:
        ledger_mod.Ledger(path)
    assert path in str(err.value)
