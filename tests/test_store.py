"""What only the SQLite store has: its file, WAL, migrations, schema and online backup, on real
files in tmp_path. What every store must do is in tests/store_contract/ (run on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.store import MIGRATIONS_DIR, Store
from detectors.errors import VigilError

T, M = "telegram", "matrix"
PDQ = "f" * 64
SHA = "0123456789abcdef" * 4


def hexes(i: int) -> tuple[str, str]:
    """A distinct (pdq, sha256) pair per number."""
    return f"{i:064x}", f"{i + 1:064x}"


def raw(path: Path) -> sqlite3.Connection:
    """A second, plain connection to the same file, to look at what was really written."""
    return sqlite3.connect(path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "vigil.sqlite3"


@pytest.fixture
async def store(db_path: Path):
    s = await Store.open(db_path)
    yield s
    await s.close()


SHIPPED = max(int(f.name[:4]) for f in MIGRATIONS_DIR.glob("*.sql"))  # the newest shipped version
NEXT = SHIPPED + 1


def migrations_with(tmp_path: Path, extra: dict[str, str]) -> Path:
    """The shipped migrations plus ``extra`` files, in a folder of their own."""
    d = tmp_path / f"migrations{len(list(tmp_path.glob('migrations*')))}"
    shutil.copytree(MIGRATIONS_DIR, d)
    for name, sql in extra.items():
        (d / name).write_text(sql)
    return d


def applied(path: Path) -> list[tuple[int, str, str]]:
    with raw(path) as c:
        return c.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()


# --- connection and migrations ------------------------------------------------------------


async def test_migrations_apply_once_and_reopen_applies_only_new(tmp_path: Path, db_path: Path) -> None:
    s = await Store.open(db_path)
    assert await s.schema_version() == SHIPPED
    await s.close()
    first = applied(db_path)
    assert [v for v, _, _ in first] == list(range(1, SHIPPED + 1))
    assert (first[0][0], first[0][1]) == (1, "initial")

    async with await Store.open(db_path):
        pass
    assert applied(db_path) == first  # nothing re-applied

    extra = migrations_with(
        tmp_path,
        {
            f"{NEXT:04d}_notes.sql": (
                "CREATE TABLE notes (id INTEGER PRIMARY KEY, t TEXT CHECK (length(t) <= 10)) STRICT;"
            )
        },
    )
    async with await Store.open(db_path, migrations_dir=extra) as s:
        assert await s.schema_version() == NEXT
    now = applied(db_path)
    assert now[:SHIPPED] == first  # the shipped ones kept their original rows and times
    assert (now[-1][0], now[-1][1]) == (NEXT, "notes")
    with raw(db_path) as c:
        assert c.execute("SELECT name FROM sqlite_schema WHERE name = 'notes'").fetchone() == ("notes",)
        assert c.execute("PRAGMA user_version").fetchone() == (NEXT,)

    async with await Store.open(db_path, migrations_dir=extra):
        pass
    assert applied(db_path) == now


async def test_failed_migration_changes_nothing(tmp_path: Path, db_path: Path) -> None:
    async with await Store.open(db_path):
        pass
    name = f"{NEXT:04d}_broken.sql"
    bad = migrations_with(
        tmp_path, {name: "CREATE TABLE half (x INTEGER) STRICT;\nINSERT INTO no_such_table VALUES (1);"}
    )
    with pytest.raises(StoreError, match=f"{name} failed and was rolled back"):
        await Store.open(db_path, migrations_dir=bad)
    assert [v for v, _, _ in applied(db_path)] == list(range(1, SHIPPED + 1))
    with raw(db_path) as c:
        assert c.execute("SELECT name FROM sqlite_schema WHERE name = 'half'").fetchone() is None
    async with await Store.open(db_path) as s:  # still usable
        assert await s.schema_version() == SHIPPED


async def test_database_from_a_newer_vigil_refuses_to_open(tmp_path: Path, db_path: Path) -> None:
    newer = migrations_with(tmp_path, {f"{NEXT:04d}_future.sql": "CREATE TABLE future (x INTEGER) STRICT;"})
    async with await Store.open(db_path, migrations_dir=newer):
        pass
    with pytest.raises(StoreError) as err:
        await Store.open(db_path)
    msg = str(err.value)
    assert (
        str(db_path) in msg
        and "newer Vigil" in msg
        and f"schema version {NEXT}" in msg
        and f"knows up to {SHIPPED}" in msg
    )
    assert isinstance(err.value, VigilError)
    assert [v for v, _, _ in applied(db_path)] == list(range(1, NEXT + 1))  # untouched


async def test_misnamed_migration_file_is_refused(tmp_path: Path, db_path: Path) -> None:
    d = migrations_with(tmp_path, {"2_oops.sql": "SELECT 1;"})
    with pytest.raises(StoreError, match="misnamed"):
        await Store.open(db_path, migrations_dir=d)
    assert not db_path.exists()


async def test_non_sqlite_file_gives_a_clear_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_text("these are notes, not a database\n" * 200)
    with pytest.raises(StoreError) as err:
        await Store.open(db_path)
    msg = str(err.value)
    assert str(db_path) in msg and "not a Vigil database or it is damaged" in msg and "backup" in msg


async def test_damaged_database_pages_give_a_clear_error(db_path: Path) -> None:
    async with await Store.open(db_path) as s:
        for i in range(300):
            await s.add_audit(platform=T, chat_id="1", kind="scan", label="clean", findings={"n": i})
    data = bytearray(db_path.read_bytes())
    assert len(data) > 4 * 4096
    data[2 * 4096 : 3 * 4096] = b"\xa5" * 4096  # overwrite a whole b-tree page
    db_path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged"):
        await Store.open(db_path)


async def test_folder_instead_of_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder"):
        await Store.open(tmp_path)


async def test_database_and_backup_files_are_private(store: Store, db_path: Path, tmp_path: Path) -> None:
    await store.set_contact(T, "7", display_name="Ana")  # names people: owner only
    copy = await store.backup(tmp_path / "copy.sqlite3")
    for f in (db_path, db_path.with_name(db_path.name + "-wal"), copy):
        assert f.stat().st_mode & 0o077 == 0, f
    await store.close()
    await store.close()  # a second close is harmless


async def test_connection_settings(store: Store, db_path: Path) -> None:
    with raw(db_path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # persistent, seen by any connection
    conn = store._db.conn  # the store's own connection: per-connection settings
    assert tuple(await (await conn.execute("PRAGMA foreign_keys")).fetchone()) == (1,)
    assert tuple(await (await conn.execute("PRAGMA busy_timeout")).fetchone()) == (5000,)
    assert tuple(await (await conn.execute("PRAGMA synchronous")).fetchone()) == (1,)  # NORMAL


# --- schema: no room for image bytes --------------------------------------------------------


def _tables(path: Path) -> dict[str, str]:
    with raw(path) as c:
        return dict(
            c.execute(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )


async def test_no_column_can_hold_image_bytes(store: Store, db_path: Path) -> None:
    tables = _tables(db_path)
    assert {
        "groups",
        "contacts",
        "exemptions",
        "lists",
        "entries",
        "follows",
        "audit",
        "reviews",
        "alerts",
        "work",
        "actions",
        "state",
        "schema_migrations",
    } <= set(tables)
    with raw(db_path) as c:
        strict = {row[1]: row[5] for row in c.execute("PRAGMA table_list") if row[0] == "main"}
        for table, sql in tables.items():
            assert strict[table] == 1, f"{table} is not STRICT, so a TEXT column could take a BLOB"
            for col in c.execute(f"PRAGMA table_xinfo({table})"):
                name, decl = col[1], col[2].upper()
                assert decl in ("INTEGER", "TEXT"), f"{table}.{name} is {decl}"
                if decl == "TEXT":
                    bounded = re.search(rf"length\({name}\)\s*(<=|=|BETWEEN)", sql) or re.search(
                        rf"\b{name} IN \(", sql
                    )
                    assert bounded, f"{table}.{name} has no length bound"
        # STRICT in action: bytes are refused even where text fits
        with pytest.raises(sqlite3.IntegrityError, match="BLOB"):
            c.execute("INSERT INTO state (key, value, updated_at) VALUES ('k', x'ffd8ffe0', 'now')")
        # and a long text (an image as base64) does not fit anywhere free-form
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            c.execute("INSERT INTO state (key, value, updated_at) VALUES ('k', ?, 'now')", ("A" * 100_000,))


# --- the work table's upgrade -----------------------------------------------------------------


async def test_work_recorded_with_a_revision_keeps_its_version_after_the_upgrade(tmp_path: Path, db_path: Path) -> None:
    old = tmp_path / "migrations-old"
    shutil.copytree(MIGRATIONS_DIR, old)
    for f in old.glob("*.sql"):
        if int(f.name[:4]) >= 4:
            f.unlink()
    async with await Store.open(db_path, migrations_dir=old):
        pass
    with raw(db_path) as c:
        c.execute(
            "INSERT INTO work (platform, chat_id, message_id, revision, payload, enqueued_at)"
            " VALUES ('telegram', '-100', '9', 0, '{}', '2026-01-01'), ('telegram', '-100', '9', 1700000000,"
            " '{\"revision\": 1700000000}', '2026-01-01')"
        )
        c.commit()
    async with await Store.open(db_path) as s:
        items = await s.pending_work()
        assert [i.variant for i in items] == ["", "rev:1700000000"]
        assert await s.enqueue_work(T, "-100", "9", {"variant": "rev:1700000000"}) == items[1].id


# --- backup --------------------------------------------------------------------------------


async def test_backup_while_another_task_writes(store: Store, tmp_path: Path) -> None:
    lst = await store.group_list(T, "-100", "block")
    for i in range(50):
        pdq, sha = hexes(i)
        await store.add_entry(lst.id, pdq=pdq, sha256=sha)
    with raw(store.path) as c:  # enough pages that the copy is not trivial
        c.executemany(
            "INSERT INTO entries (list_id, pdq, sha256, added_at) VALUES (?, ?, ?, 'x')",
            [(lst.id, *hexes(i)) for i in range(50, 20_000)],
        )
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            await store.add_audit(platform=T, chat_id="-100", kind="scan", label="clean", findings={"n": written})
            await store.set_state("counter", str(written))
            written += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    while written < 20:
        await asyncio.sleep(0.001)
    dest = tmp_path / "backups" / "vigil-backup.sqlite3"
    dest.parent.mkdir()
    assert await store.backup(dest) == dest
    at_backup = written
    while written < at_backup + 20:  # writes go on after the backup
        await asyncio.sleep(0.001)
    stop.set()
    await task

    assert not dest.with_name(dest.name + ".partial").exists()
    with raw(dest) as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert c.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        audits = c.execute("SELECT count(*) FROM audit").fetchone()[0]
        counter = int(c.execute("SELECT value FROM state WHERE key = 'counter'").fetchone()[0])
        assert c.execute("SELECT count(*) FROM entries").fetchone() == (20_000,)
    assert 20 <= audits < written  # a snapshot taken in the middle of the writes
    assert counter in (audits - 1, audits - 2)  # consistent: state and audit from the same moment
    async with await Store.open(dest) as copy:
        assert await copy.schema_version() == SHIPPED
        assert len(await copy.entries(lst.id)) == 20_000

    with pytest.raises(StoreError, match="is the database itself"):
        await store.backup(store.path)
    with pytest.raises(StoreError, match="does not exist"):
        await store.backup(tmp_path / "missing" / "b.sqlite3")
