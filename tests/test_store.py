"""The store on real SQLite files in tmp_path."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.errors import BadStoreValue, StoreError, UnknownRecord
from bot.store import MIGRATIONS_DIR, Store
from detectors.errors import VigilError

T, M = "telegram", "matrix"
PDQ = "f" * 64
SHA = "0123456789abcdef" * 4


def hexes(i: int) -> tuple[str, str]:
    """A distinct (pdq, sha256) pair per number."""
    return f"{i:064x}", f"{i + 1:064x}"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


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

    extra = migrations_with(tmp_path, {f"{NEXT:04d}_notes.sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, t TEXT CHECK (length(t) <= 10)) STRICT;"})
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
    bad = migrations_with(tmp_path, {name: "CREATE TABLE half (x INTEGER) STRICT;\nINSERT INTO no_such_table VALUES (1);"})
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
    assert str(db_path) in msg and "newer Vigil" in msg and f"schema version {NEXT}" in msg and f"knows up to {SHIPPED}" in msg
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
    data[2 * 4096:3 * 4096] = b"\xa5" * 4096  # overwrite a whole b-tree page
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
        return dict(c.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall())


async def test_no_column_can_hold_image_bytes(store: Store, db_path: Path) -> None:
    tables = _tables(db_path)
    assert {"groups", "contacts", "exemptions", "lists", "entries", "follows", "audit", "reviews",
            "alerts", "work", "actions", "state", "schema_migrations"} <= set(tables)
    with raw(db_path) as c:
        strict = {row[1]: row[5] for row in c.execute("PRAGMA table_list") if row[0] == "main"}
        for table, sql in tables.items():
            assert strict[table] == 1, f"{table} is not STRICT, so a TEXT column could take a BLOB"
            for col in c.execute(f"PRAGMA table_xinfo({table})"):
                name, decl = col[1], col[2].upper()
                assert decl in ("INTEGER", "TEXT"), f"{table}.{name} is {decl}"
                if decl == "TEXT":
                    bounded = re.search(rf"length\({name}\)\s*(<=|=|BETWEEN)", sql) or re.search(rf"\b{name} IN \(", sql)
                    assert bounded, f"{table}.{name} has no length bound"
        # STRICT in action: bytes are refused even where text fits
        with pytest.raises(sqlite3.IntegrityError, match="BLOB"):
            c.execute("INSERT INTO state (key, value, updated_at) VALUES ('k', x'ffd8ffe0', 'now')")
        # and a long text (an image as base64) does not fit anywhere free-form
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            c.execute("INSERT INTO state (key, value, updated_at) VALUES ('k', ?, 'now')", ("A" * 100_000,))


async def test_bytes_in_json_fields_are_refused_and_nothing_is_written(store: Store, db_path: Path) -> None:
    with pytest.raises(BadStoreValue, match="findings"):
        await store.add_audit(platform=T, chat_id="1", kind="scan", label="nudity", findings={"image": b"\xff\xd8\xff"})
    with pytest.raises(BadStoreValue, match="payload"):
        await store.enqueue_work(T, "1", "2", {"media": b"\x89PNG"})
    with pytest.raises(BadStoreValue, match="findings"):
        await store.add_audit(platform=T, chat_id="1", kind="scan", label="x", findings={"blob": "A" * 20_000})
    with raw(db_path) as c:
        assert c.execute("SELECT count(*) FROM audit").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM work").fetchone() == (0,)


async def test_bad_values_get_specific_errors(store: Store) -> None:
    with pytest.raises(BadStoreValue, match="platform"):
        await store.upsert_group("whatsapp", "1", "x")
    with pytest.raises(BadStoreValue, match="chat_id"):
        await store.upsert_group(T, "", "x")
    with pytest.raises(BadStoreValue, match="chat_id"):
        await store.upsert_group(T, "x" * 300, "x")
    lst = await store.group_list(T, "1", "block")
    with pytest.raises(BadStoreValue, match="pdq"):
        await store.add_entry(lst.id, pdq="zz" * 32)
    with pytest.raises(BadStoreValue, match="sha256"):
        await store.add_entry(lst.id, sha256="ab")
    with pytest.raises(BadStoreValue, match="at least one"):
        await store.add_entry(lst.id, note="nothing to match")
    with pytest.raises(BadStoreValue, match="pdq_quality"):
        await store.add_entry(lst.id, pdq=PDQ, pdq_quality=101)
    with pytest.raises(UnknownRecord, match="list"):
        await store.add_entry(9999, sha256=SHA)
    with pytest.raises(BadStoreValue, match="kind"):
        await store.group_list(T, "1", "maybe")
    with pytest.raises(BadStoreValue, match="kind"):
        await store.add_audit(platform=T, chat_id="1", kind="gossip", label="x")
    with pytest.raises(UnknownRecord, match="work item"):
        await store.fail_work(12345, "boom")
    with pytest.raises(UnknownRecord, match="action"):
        await store.action_done(12345)
    with pytest.raises(UnknownRecord, match="audit record"):
        await store.record_alert(12345, T, "7", "m1")
    assert await store.entries(lst.id) == []


async def test_integer_ids_are_kept_as_text(store: Store) -> None:
    g = await store.upsert_group(T, -1001234567890, "Club")
    assert g.chat_id == "-1001234567890"
    assert (await store.get_group(T, "-1001234567890")) == g
    with pytest.raises(BadStoreValue):
        await store.upsert_group(T, True, "bool is not an id")


# --- groups, contacts, exemptions ----------------------------------------------------------


async def test_group_upsert_keeps_what_is_not_given(store: Store) -> None:
    g = await store.upsert_group(T, "-100", "Parents 3B", added_by="42", bot_rights={"delete": True})
    assert (g.title, g.added_by, g.bot_rights) == ("Parents 3B", "42", {"delete": True})
    g2 = await store.upsert_group(T, "-100", None)
    assert (g2.title, g2.added_by, g2.bot_rights) == ("Parents 3B", "42", {"delete": True})
    g3 = await store.upsert_group(T, "-100", "Parents 3B (2024)")
    assert g3.title == "Parents 3B (2024)" and g3.created_at == g.created_at
    await store.upsert_group(M, "!room:example.org", "Club")
    assert [x.chat_id for x in await store.list_groups(T)] == ["-100"]
    assert [(x.platform, x.chat_id) for x in await store.list_groups()] == [(M, "!room:example.org"), (T, "-100")]
    long = await store.upsert_group(M, "!long:example.org", "n" * 5000)  # a long room name is cut, not refused
    assert len(long.title) == 256


async def test_settings_merge(store: Store) -> None:
    await store.upsert_group(T, "-100", "Club")
    await store.update_settings(T, "-100", {"mode": "dryrun", "sensitivity": "high"})
    g = await store.update_settings(T, "-100", {"language": "es", "mode": "delete"})
    assert dict(g.settings) == {"mode": "delete", "sensitivity": "high", "language": "es"}
    g = await store.update_settings(T, "-100", {"sensitivity": None})  # back to the default
    assert dict(g.settings) == {"mode": "delete", "language": "es"}
    with pytest.raises(BadStoreValue):
        await store.update_settings(T, "-100", {"mode": b"bytes"})
    with pytest.raises(BadStoreValue):
        await store.update_settings(T, "-100", {1: "x"})  # type: ignore[dict-item]
    assert dict((await store.get_group(T, "-100")).settings) == {"mode": "delete", "language": "es"}
    with pytest.raises(TypeError):
        g.settings["mode"] = "off"  # type: ignore[index]
    # settings for a group not seen yet (e.g. /vigil logchat names it) create it
    g = await store.update_settings(T, "-200", {"logchat": "-300"})
    assert g.title is None and dict(g.settings) == {"logchat": "-300"}


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    await asyncio.gather(
        *(store.update_settings(T, "-100", {f"k{i}": i}) for i in range(40)),
        *(store.add_audit(platform=T, chat_id="-100", kind="scan", label="clean") for _ in range(40)),
    )
    g = await store.get_group(T, "-100")
    assert dict(g.settings) == {f"k{i}": i for i in range(40)}
    assert (await store.counts(T, "-100"))["scans"] == 40


async def test_contacts(store: Store) -> None:
    c = await store.set_contact(T, "7", can_dm=True, language="es", display_name="Ana")
    assert (c.can_dm, c.language, c.display_name) == (True, "es", "Ana")
    c = await store.set_contact(T, "7", can_dm=False)  # blocked the bot: only that changes
    assert (c.can_dm, c.language, c.display_name) == (False, "es", "Ana")
    new = await store.set_contact(M, "@bo:example.org", dm_room="!dm:example.org")
    assert new.can_dm is False and new.dm_room == "!dm:example.org"
    await store.set_contact(T, "8", can_dm=True)
    assert await store.get_contact(T, "9") is None
    got = await store.contacts(T, ["9", "8", "7", 7])
    assert [x.user_id for x in got] == ["7", "8"]
    assert await store.contacts(M, ["7"]) == []
    with pytest.raises(BadStoreValue):
        await store.set_contact(T, "7", can_dm="yes")  # type: ignore[arg-type]


async def test_owner_hint_is_sent_once(store: Store) -> None:
    assert await store.owner_hint_sent(T, "-100") is False
    assert await store.mark_owner_hint_sent(T, "-100") is True
    assert await store.mark_owner_hint_sent(T, "-100") is False
    assert await store.owner_hint_sent(T, "-100") is True
    assert await store.owner_hint_sent(T, "-101") is False


async def test_exemptions(store: Store) -> None:
    assert await store.add_exemption(T, "-100", "7") is True
    assert await store.add_exemption(T, "-100", "7") is False
    await store.add_exemption(T, "-100", "8")
    await store.add_exemption(T, "-101", "9")
    assert await store.is_exempt(T, "-100", "7") and not await store.is_exempt(T, "-101", "7")
    assert [e.user_id for e in await store.exemptions(T, "-100")] == ["7", "8"]
    assert await store.remove_exemption(T, "-100", "7") is True
    assert await store.remove_exemption(T, "-100", "7") is False
    assert not await store.is_exempt(T, "-100", "7")


# --- hash lists ----------------------------------------------------------------------------


async def test_group_lists_are_created_on_first_use(store: Store) -> None:
    assert await store.lists_for_group(T, "-100123") == []
    block = await store.group_list(T, "-100123", "block")
    assert (block.name, block.kind, block.scope, block.label, block.platform, block.chat_id) == (
        "group:telegram:-100123:block", "block", "group", "local", T, "-100123")
    assert await store.group_list(T, "-100123", "block") == block
    allow = await store.group_list(T, "-100123", "allow")
    assert allow.id != block.id and allow.name == "group:telegram:-100123:allow"
    assert await store.lists_for_group(T, "-100123") == [block, allow]
    assert await store.get_group(T, "-100123") is not None  # the group row exists for the foreign key


async def test_entries_add_remove_and_repeat(store: Store) -> None:
    lst = await store.group_list(T, "-100", "block")
    e = await store.add_entry(lst.id, pdq=PDQ.upper(), pdq_quality=88, phash="abcd" * 4, sha256=SHA,
                              added_by="7", source_platform=T, source_chat="-100", note="reported")
    assert (e.pdq, e.pdq_quality, e.phash, e.sha256, e.added_by, e.note) == (PDQ, 88, "abcd" * 4, SHA, "7", "reported")
    assert (await store.add_entry(lst.id, sha256=SHA)).id == e.id  # same image again: same entry
    assert (await store.add_entry(lst.id, pdq=PDQ, pdq_quality=88)).id == e.id
    other = await store.add_entry(lst.id, phash="1234")
    assert [x.id for x in await store.entries(lst.id)] == [e.id, other.id]
    assert await store.get_entry(e.id) == e
    assert await store.remove_entry(e.id) is True
    assert await store.remove_entry(e.id) is False
    assert await store.list_sizes() == {lst.id: 1}
    again = await store.add_entry(lst.id, sha256=SHA)
    assert again.id > other.id  # ids are never reused


async def test_deleting_a_list_cascades_to_entries_and_follows(store: Store, db_path: Path) -> None:
    shared = await store.create_list("ncii-es", kind="block", label="ncii", action="delete")
    keep = await store.create_list("spam", kind="block", label="spam", action="review")
    for i in range(5):
        pdq, sha = hexes(i)
        await store.add_entry(shared.id, pdq=pdq, sha256=sha)
    kept_entry = await store.add_entry(keep.id, sha256=SHA)
    await store.follow(T, "-100", shared.id)
    await store.follow(T, "-100", keep.id)
    assert await store.delete_list(shared.id) is True
    assert await store.delete_list(shared.id) is False
    with raw(db_path) as c:
        assert c.execute("SELECT count(*) FROM entries WHERE list_id = ?", (shared.id,)).fetchone() == (0,)
        assert c.execute("SELECT list_id FROM follows").fetchall() == [(keep.id,)]
    assert await store.entries(keep.id) == [kept_entry]
    assert [x.id for x in await store.lists_for_group(T, "-100")] == [keep.id]


async def test_groups_see_only_their_lists_and_followed_instance_lists(store: Store) -> None:
    a_block = await store.group_list(T, "-1", "block")
    b_block = await store.group_list(T, "-2", "block")
    m_block = await store.group_list(M, "-1", "block")  # same chat id on another platform
    ncii = await store.create_list("ncii", kind="block", label="ncii")
    spam = await store.create_list("spam-review", kind="block", label="spam", action="review")
    assert await store.lists_for_group(T, "-1") == [a_block]
    assert await store.follow(T, "-2", ncii.id) is True
    assert await store.follow(T, "-2", ncii.id) is False
    assert await store.lists_for_group(T, "-2") == [b_block, ncii]
    assert await store.lists_for_group(T, "-1") == [a_block]  # A still sees neither B's list nor ncii
    assert await store.lists_for_group(M, "-1") == [m_block]
    with pytest.raises(BadStoreValue, match="instance list"):
        await store.follow(T, "-1", b_block.id)  # another group's own list cannot be followed
    assert await store.lists_for_group(T, "-1") == [a_block]
    await store.follow(T, "-1", spam.id)
    assert await store.lists_for_group(T, "-1") == [a_block, spam]
    assert await store.unfollow(T, "-1", spam.id) is True
    assert await store.unfollow(T, "-1", spam.id) is False
    assert await store.lists_for_group(T, "-1") == [a_block]
    assert [x.id for x in await store.all_lists()] == [a_block.id, b_block.id, m_block.id, ncii.id, spam.id]


async def test_list_creation_rules(store: Store) -> None:
    await store.create_list("deepfakes", kind="block", label="deepfake")
    with pytest.raises(BadStoreValue, match="name"):
        await store.create_list("deepfakes", kind="block", label="deepfake")
    with pytest.raises(BadStoreValue, match="instance list"):
        await store.create_list("x", kind="block", platform=T, chat_id="1")
    with pytest.raises(BadStoreValue, match="label"):
        await store.create_list("y", kind="block", label="Not A Label")
    own = await store.create_list("club-extra", kind="allow", scope="group", platform=T, chat_id="-5")
    assert own.scope == "group" and await store.lists_for_group(T, "-5") == [own]
    assert (await store.list_by_name("deepfakes")).label == "deepfake"


async def test_iter_all_entries_over_50k_rows(store: Store, db_path: Path) -> None:
    a = await store.create_list("bulk-a", kind="block", label="spam")
    b = await store.create_list("bulk-b", kind="allow", label="local")
    # bulk rows straight into the file, as a list import would; one transaction
    rows = [((a.id if i % 3 else b.id), *hexes(i), i % 101, "2024-01-01T00:00:00.000000+00:00") for i in range(50_000)]
    with raw(db_path) as c:
        c.executemany("INSERT INTO entries (list_id, pdq, sha256, pdq_quality, added_at) VALUES (?, ?, ?, ?, ?)", rows)
    seen = [e async for e in store.iter_all_entries()]
    assert len(seen) == 50_000
    ids = [e.id for e in seen]
    assert ids == sorted(set(ids))
    assert [(e.list_id, e.pdq, e.sha256, e.pdq_quality) for e in seen] == [r[:4] for r in rows]
    assert await store.list_sizes() == {a.id: 33_333, b.id: 16_667}
    # chunk edges: a size that divides the count and one that does not
    small = await store.create_list("small", kind="block", label="local")
    await store.delete_list(a.id)
    await store.delete_list(b.id)
    for i in range(12):
        pdq, sha = hexes(100_000 + i)
        await store.add_entry(small.id, pdq=pdq, sha256=sha)
    for size in (1, 4, 5, 12, 13):
        assert len([e async for e in store.iter_all_entries(chunk_size=size)]) == 12


# --- audit, reviews, alerts ---------------------------------------------------------------


async def _scan(store: Store, chat: str = "-100", sender: str = "7", label: str = "nudity", **kw) -> int:
    return await store.add_audit(
        platform=T, chat_id=chat, message_id=kw.pop("message_id", "55"), sender_id=sender, sender_name="Ana",
        kind="scan", label=label, findings={"nudity": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.91}]},
        hashes={"pdq": PDQ, "sha256": SHA}, decision="delete", actions={"delete": True}, **kw,
    )


async def test_audit_records_round_trip(store: Store) -> None:
    aid = await _scan(store, dry_run=True)
    r = await store.audit_record(aid)
    assert (r.platform, r.chat_id, r.message_id, r.sender_id, r.kind, r.label, r.decision, r.dry_run) == (
        T, "-100", "55", "7", "scan", "nudity", "delete", True)
    assert r.findings == {"nudity": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.91}]}
    assert r.hashes == {"pdq": PDQ, "sha256": SHA}
    import json
    assert json.loads(json.dumps(r.findings)) == r.findings  # exportable as is
    assert await store.audit_record(aid + 1) is None
    long_id = "@" + "x" * 240 + ":example.org"  # Matrix ids run to 255 characters
    cmd = await store.add_audit(platform=M, chat_id="!r:example.org", kind="admin_command", label=f"exempt {long_id}", actor=long_id)
    assert (await store.audit_record(cmd)).label == f"exempt {long_id}"
    with pytest.raises(TypeError):
        r.findings["nudity"].append("x")  # type: ignore[union-attr]


async def test_audit_for_group_and_counts(store: Store) -> None:
    clock = Clock()
    store._db._clock = clock
    ids = []
    for label in ("clean", "clean", "nudity", "review"):
        ids.append(await _scan(store, label=label))
        clock.now += timedelta(hours=1)
    await _scan(store, chat="-200", label="clean")
    await store.add_audit(platform=T, chat_id="-100", kind="admin_command", label="settings", actor="1")
    d = await store.record_action(T, "-100", "55", "delete")
    await store.action_done(d.id)
    failed = await store.record_action(T, "-100", "56", "delete")
    await store.action_failed(failed.id, "message too old")
    m = await store.record_action(T, "-100", "55", "mute", {"user": "7"})
    await store.action_done(m.id)
    counts = await store.counts(T, "-100")
    assert counts == {"scans": 4, "clean": 2, "nudity": 1, "review": 1, "deleted": 1, "action:delete": 1, "action:mute": 1}
    assert (await store.counts(T, "-999")) == {"scans": 0, "deleted": 0}
    records = await store.audit_for_group(T, "-100")
    assert [r.id for r in records][:4] == ids and len(records) == 5
    since = await store.audit_for_group(T, "-100", since=datetime(2024, 5, 1, 14, 0, tzinfo=timezone.utc))
    assert [r.id for r in since] == [ids[2], ids[3], records[-1].id]
    assert len(await store.audit_for_group(T, "-100", limit=2)) == 2


async def test_reviews_are_decided_once(store: Store) -> None:
    aid = await _scan(store, label="review")
    r = await store.open_review(aid, T, "-100", "55")
    assert r.state == "open" and (await store.open_review(aid, T, "-100", "55")).id == r.id
    assert await store.get_review(aid) == r
    assert [x.id for x in await store.open_reviews(T, "-100")] == [r.id]
    assert await store.decide_review(r.id, "kept", "1") is True
    assert await store.decide_review(r.id, "deleted", "2") is False
    done = await store.review(r.id)
    assert (done.state, done.decided_by) == ("kept", "1") and done.decided_at is not None
    assert await store.open_reviews(T, "-100") == []
    with pytest.raises(BadStoreValue, match="decision"):
        await store.decide_review(r.id, "maybe", "1")
    with pytest.raises(UnknownRecord):
        await store.open_review(aid + 100, T, "-100", "55")
    assert await store.get_review(aid + 100) is None


async def test_one_alert_per_admin(store: Store) -> None:
    aid = await _scan(store)
    assert await store.record_alert(aid, T, "1", "900") is True
    assert await store.record_alert(aid, T, "1", "901") is False
    assert await store.record_alert(aid, T, "2", None) is True
    alerts = await store.alerts_for(aid)
    assert [(a.user_id, a.message_id) for a in alerts] == [("1", "900"), ("2", None)]
    other = await _scan(store)
    assert await store.record_alert(other, T, "1", "902") is True  # another record: alerted again


async def test_retention_deletes_exactly_the_old_records(store: Store, db_path: Path) -> None:
    clock = Clock()
    store._db._clock = clock
    start = clock.now
    ids = []
    for day in range(10):
        clock.now = start + timedelta(days=day)
        ids.append(await _scan(store))
    await store.open_review(ids[1], T, "-100", "55")
    await store.record_alert(ids[1], T, "1", "9")
    await store.record_alert(ids[7], T, "1", "9")
    deleted = await store.delete_audit_before(start + timedelta(days=4))
    assert deleted == 4
    assert [r.id for r in await store.audit_for_group(T, "-100")] == ids[4:]
    assert await store.get_review(ids[1]) is None and await store.alerts_for(ids[1]) == []
    assert len(await store.alerts_for(ids[7])) == 1
    assert await store.delete_audit_before(start + timedelta(days=4)) == 0
    # a naive cutoff is read as UTC
    assert await store.delete_audit_before(datetime(2024, 5, 6, 12, 0)) == 1


async def test_purge_removes_that_users_data_and_nothing_else(store: Store, db_path: Path) -> None:
    lst = await store.group_list(T, "-100", "block")
    ncii = await store.create_list("ncii", kind="block", label="ncii")
    for user in ("7", "8"):
        aid = await _scan(store, sender=user, message_id=f"m{user}")
        await store.open_review(aid, T, "-100", f"m{user}")
        await store.record_alert(aid, T, "1", "900")
        await store.set_contact(T, user, can_dm=True, display_name=f"user {user}")
        await store.add_exemption(T, "-100", user)
        await store.add_entry(lst.id, sha256=hexes(int(user))[1], added_by=user, source_platform=T, source_chat="-100")
        await store.add_entry(ncii.id, pdq=hexes(int(user))[0], added_by=user)
        await store.record_action(T, "-100", f"m{user}", "ban", {"user": user})
    await store.record_alert(aid, T, "7", "901")  # 7 is an admin too, alerted about 8's image
    cmd = await store.add_audit(platform=T, chat_id="-100", kind="admin_command", label="settings", actor="7")
    await store.set_contact(M, "7", can_dm=True)  # same id on another platform is someone else
    nine = await _scan(store, sender="9")
    review = await store.open_review(nine, T, "-100", "55")
    await store.decide_review(review.id, "kept", "7")

    with raw(db_path) as c:
        before = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("audit", "contacts", "exemptions", "entries", "alerts", "actions", "reviews")}
    counts = await store.purge_user(T, "7")
    assert (counts.audit, counts.contacts, counts.exemptions, counts.entries, counts.alerts, counts.actions, counts.anonymised) == (1, 1, 1, 2, 1, 1, 2)
    with raw(db_path) as c:
        after = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before}
        assert c.execute("SELECT count(*) FROM audit WHERE sender_id = '7' OR actor = '7'").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM entries WHERE added_by = '7'").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM reviews WHERE decided_by = '7'").fetchone() == (0,)
    # the alert to admin 1 about user 7's record went with the record
    assert after == {"audit": before["audit"] - 1, "contacts": before["contacts"] - 1, "exemptions": before["exemptions"] - 1,
                     "entries": before["entries"] - 2, "alerts": before["alerts"] - 2, "actions": before["actions"] - 1,
                     "reviews": before["reviews"] - 1}
    assert (await store.audit_record(cmd)).actor is None
    assert await store.get_contact(T, "8") is not None and await store.get_contact(M, "7") is not None
    assert await store.is_exempt(T, "-100", "8")
    assert [e.added_by for e in await store.entries(lst.id)] == ["8"]
    assert [a.sender_id for a in await store.audit_for_group(T, "-100") if a.kind == "scan"] == ["8", "9"]
    assert (await store.purge_user(T, "7")).total == 0


# --- durable work ------------------------------------------------------------------------


def payload(message: str, variant: str = "") -> dict:
    return {"chat": {"id": "-100", "title": "Club"}, "message_id": message, "sender": {"id": "7", "name": "Ana"},
            "media": {"kind": "photo", "file_id": f"F{message}", "extra": {"sizes": [90, 320]}}, "variant": variant}


async def test_enqueue_is_idempotent_per_variant(store: Store) -> None:
    w = await store.enqueue_work(T, "-100", "55", payload("55"))
    assert await store.enqueue_work(T, "-100", "55", payload("55")) == w
    edited = await store.enqueue_work(T, "-100", "55", payload("55", variant="edit:901"))
    assert edited != w
    # a second edit in the same second is another version (edits are known by their update, not their time)
    again = await store.enqueue_work(T, "-100", "55", payload("55", variant="edit:902"))
    assert again not in (w, edited)
    assert await store.enqueue_work(T, "-100", "55", payload("55", variant="edit:902")) == again
    assert await store.finish_work(again) is True
    assert [i.id for i in await store.pending_work()] == [w, edited]
    assert await store.finish_work(w) is True
    assert await store.finish_work(w) is False
    assert await store.enqueue_work(T, "-100", "55", payload("55")) == w  # a replayed update is recognised
    assert (await store.work_item(w)).finished
    assert [i.id for i in await store.pending_work()] == [edited]
    with pytest.raises(BadStoreValue, match="variant"):
        await store.enqueue_work(T, "-100", "56", {"variant": "x" * 201})


async def test_work_recorded_with_a_revision_keeps_its_version_after_the_upgrade(tmp_path: Path, db_path: Path) -> None:
    old = tmp_path / "migrations-old"
    shutil.copytree(MIGRATIONS_DIR, old)
    for f in old.glob("*.sql"):
        if int(f.name[:4]) >= 4:
            f.unlink()
    async with await Store.open(db_path, migrations_dir=old):
        pass
    with raw(db_path) as c:
        c.execute("INSERT INTO work (platform, chat_id, message_id, revision, payload, enqueued_at)"
                  " VALUES ('telegram', '-100', '9', 0, '{}', '2026-01-01'), ('telegram', '-100', '9', 1700000000,"
                  " '{\"revision\": 1700000000}', '2026-01-01')")
        c.commit()
    async with await Store.open(db_path) as s:
        items = await s.pending_work()
        assert [i.variant for i in items] == ["", "rev:1700000000"]
        assert await s.enqueue_work(T, "-100", "9", {"variant": "rev:1700000000"}) == items[1].id


async def test_work_survives_a_restart(db_path: Path) -> None:
    s = await Store.open(db_path)
    done = await s.enqueue_work(T, "-100", "1", payload("1"))
    failing = await s.enqueue_work(T, "-100", "2", payload("2"))
    fresh = await s.enqueue_work(M, "!r:example.org", "$ev", payload("$ev"))
    await s.finish_work(done)
    assert await s.fail_work(failing, "PlatformError: timeout") == 1
    assert await s.fail_work(failing, RuntimeError("x" * 5000)) == 2  # long errors are cut, not refused
    act = await s.record_action(T, "-100", "2", "delete")
    await s.set_state("telegram:offset", "1234567")
    await s.close()

    s = await Store.open(db_path)
    try:
        pending = await s.pending_work()
        assert [i.id for i in pending] == [failing, fresh]
        assert pending[0].attempts == 2 and pending[0].last_error.endswith("...") and len(pending[0].last_error) == 2000
        assert pending[0].payload == payload("2")
        assert [i.id for i in await s.pending_work(M)] == [fresh]
        assert [i.id for i in await s.pending_work(max_attempts=2)] == [fresh]
        assert (await s.work_item(done)).payload == {}  # the ids are dropped once handled
        assert [a.id for a in await s.pending_actions()] == [act.id]
        assert await s.get_state("telegram:offset") == "1234567"
    finally:
        await s.close()


async def test_record_action_is_idempotent(store: Store) -> None:
    a = await store.record_action(T, "-100", "55", "delete", {})
    again = await store.record_action(T, "-100", "55", "delete", {})
    assert again.id == a.id and again.state == "pending"
    await store.action_done(a.id)
    after = await store.record_action(T, "-100", "55", "delete", {})
    assert (after.id, after.state, after.attempts) == (a.id, "done", 1)
    mute = await store.record_action(T, "-100", "55", "mute", {"user": "7", "until": "2024-05-02T00:00:00+00:00"})
    assert mute.id != a.id and mute.params == {"user": "7", "until": "2024-05-02T00:00:00+00:00"}
    changed = await store.record_action(T, "-100", "55", "mute", {"user": "7", "until": "later"})
    assert changed.params["until"] == "2024-05-02T00:00:00+00:00"  # the first intent stands
    await store.action_failed(mute.id, "no right")
    failed = await store.get_action(mute.id)
    assert (failed.state, failed.last_error) == ("failed", "no right")
    assert await store.pending_actions() == []


async def test_prune_work_keeps_pending_items(store: Store) -> None:
    clock = Clock()
    store._db._clock = clock
    old = await store.enqueue_work(T, "-100", "1", payload("1"))
    stuck = await store.enqueue_work(T, "-100", "2", payload("2"))
    await store.finish_work(old)
    a = await store.record_action(T, "-100", "1", "delete")
    await store.action_done(a.id)
    pending_action = await store.record_action(T, "-100", "2", "delete")
    clock.now += timedelta(days=30)
    recent = await store.enqueue_work(T, "-100", "3", payload("3"))
    await store.finish_work(recent)
    counts = await store.prune_work_before(clock.now - timedelta(days=1))
    assert (counts.work, counts.actions) == (1, 1)
    assert await store.work_item(old) is None and await store.work_item(recent) is not None
    assert [i.id for i in await store.pending_work()] == [stuck]
    assert [x.id for x in await store.pending_actions()] == [pending_action.id]


async def test_state_values(store: Store) -> None:
    assert await store.get_state("matrix:since") is None
    await store.set_state("matrix:since", "s72594_4483_1934")
    await store.set_state("matrix:since", "s72595_4483_1934")
    assert await store.get_state("matrix:since") == "s72595_4483_1934"
    await store.set_state("empty", "")
    assert await store.get_state("empty") == ""
    assert await store.delete_state("matrix:since") is True
    assert await store.get_state("matrix:since") is None
    with pytest.raises(BadStoreValue):
        await store.set_state("k", "v" * 5000)


# --- backup --------------------------------------------------------------------------------


async def test_backup_while_another_task_writes(store: Store, tmp_path: Path) -> None:
    lst = await store.group_list(T, "-100", "block")
    for i in range(50):
        pdq, sha = hexes(i)
        await store.add_entry(lst.id, pdq=pdq, sha256=sha)
    with raw(store.path) as c:  # enough pages that the copy is not trivial
        c.executemany("INSERT INTO entries (list_id, pdq, sha256, added_at) VALUES (?, ?, ?, 'x')",
                      [(lst.id, *hexes(i)) for i in range(50, 20_000)])
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
