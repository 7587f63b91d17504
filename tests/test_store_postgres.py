"""What only the PostgreSQL store has: its schema (no room for image bytes), its migrations and its
pool, against the real server the suite starts. The shared behaviour is in tests/store_contract/."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC
from pathlib import Path

import psycopg
import pytest

from bot.errors import StoreError
from bot.store.postgres import MIGRATIONS_DIR, PostgresStore
from bot.store.records import ChangeKind

SHIPPED = max(int(f.name[:4]) for f in MIGRATIONS_DIR.glob("*.sql"))
NEXT = SHIPPED + 1


def migrations_with(tmp_path: Path, extra: dict[str, str]) -> Path:
    d = tmp_path / f"migrations{len(list(tmp_path.glob('migrations*')))}"
    shutil.copytree(MIGRATIONS_DIR, d)
    for name, sql in extra.items():
        (d / name).write_text(sql)
    return d


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as c:
        return c.execute(sql, params).fetchall()


def applied(url: str) -> list[tuple[int, str]]:
    return query(url, "SELECT version, name FROM schema_migrations ORDER BY version")


async def test_no_column_can_hold_image_bytes(postgres_url: str) -> None:
    async with await PostgresStore.open(postgres_url):
        pass
    columns = query(
        postgres_url,
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, column_name",
    )
    tables = {t for t, _, _ in columns}
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
        "entry_features",
        "list_changes",
        "protected_changes",
        "protected_owners",
        "protected_photos",
        "schema_migrations",
    } <= tables
    checks: dict[str, str] = {}
    for table, definition in query(
        postgres_url,
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c'",
    ):
        checks[table] = checks.get(table, "") + " " + definition
    for table, column, kind in columns:
        assert kind in ("text", "bigint", "integer", "boolean", "jsonb", "timestamp with time zone"), (
            table,
            column,
            kind,
        )
        if kind in ("text", "jsonb"):
            sql = checks.get(table, "")
            bounded = (
                f"length({column}" in sql
                or f"({column} ~ " in sql
                or f"{column} = ANY" in sql
                or f"length(({column})::text)" in sql
            )
            assert bounded, f"{table}.{column} ({kind}) has no bound"
    with pytest.raises(psycopg.errors.CheckViolation):
        query(postgres_url, "INSERT INTO state (key, value, updated_at) VALUES ('k', %s, now())", ("A" * 100_000,))
    with pytest.raises(psycopg.errors.CheckViolation):
        query(
            postgres_url,
            "INSERT INTO audit (at, platform, chat_id, kind, label, findings) VALUES"
            " (now(), 'telegram', '1', 'scan', 'x', %s::jsonb)",
            ('{"image": "' + "A" * 40_000 + '"}',),
        )


async def test_migrations_apply_once_and_a_failed_one_changes_nothing(postgres_url: str, tmp_path: Path) -> None:
    async with await PostgresStore.open(postgres_url) as s:
        assert await s.schema_version() == SHIPPED
    first = applied(postgres_url)
    assert first[0] == (1, "initial") and [v for v, _ in first] == list(range(1, SHIPPED + 1))
    async with await PostgresStore.open(postgres_url):
        pass
    assert applied(postgres_url) == first
    bad = migrations_with(
        tmp_path, {f"{NEXT:04d}_broken.sql": "CREATE TABLE half (x integer);\nINSERT INTO nowhere VALUES (1);"}
    )
    with pytest.raises(StoreError, match="broken.sql failed and was rolled back"):
        await PostgresStore.open(postgres_url, migrations_dir=bad)
    assert applied(postgres_url) == first
    assert query(postgres_url, "SELECT to_regclass('half')") == [(None,)]
    good = migrations_with(tmp_path, {f"{NEXT:04d}_notes.sql": "CREATE TABLE notes (t text CHECK (length(t) <= 9));"})
    async with await PostgresStore.open(postgres_url, migrations_dir=good) as s:
        assert await s.schema_version() == NEXT
    with pytest.raises(StoreError) as err:  # this Vigil knows less than the database: refuse, touch nothing
        await PostgresStore.open(postgres_url)
    assert "newer Vigil" in str(err.value) and f"schema version {NEXT}" in str(err.value)


async def test_two_processes_opening_at_once_migrate_once(postgres_url: str) -> None:
    import asyncio

    stores = await asyncio.gather(*(PostgresStore.open(postgres_url) for _ in range(4)))
    for s in stores:
        await s.close()
    assert [v for v, _ in applied(postgres_url)] == list(range(1, SHIPPED + 1))


@pytest.mark.parametrize("kind", list(ChangeKind))
async def test_changes_are_numbered_in_commit_order(postgres_url: str, kind: ChangeKind) -> None:
    """A reader that has seen change N must never later find a change below N: a second writer
    waits for the first one's commit before it takes its number (lists and protected photos alike)."""
    import asyncio

    fp = "QUJDREVGR0hJSktMTU5PUA=="
    async with await PostgresStore.open(postgres_url) as store:
        lst = await store.create_list("l", kind="block")
        owner = await store.operator_owner("Bea", create=True)
        start = await store.last_change(kind)
        with psycopg.connect(postgres_url) as slow:  # a writer whose transaction stays open a while
            if kind is ChangeKind.LISTS:
                slow.execute(
                    "INSERT INTO entries (list_id, sha256, added_at) VALUES (%s, %s, now())", (lst.id, "a" * 64)
                )
                second = asyncio.create_task(store.add_entry(lst.id, sha256="b" * 64))
            else:
                slow.execute(
                    "INSERT INTO protected_photos (owner_id, source, fingerprint, added_at)"
                    " VALUES (%s, 'operator', %s, now())",
                    (owner.id, fp),
                )
                second = asyncio.create_task(store.add_protected_photo(owner.id, fp, source="operator"))
            slow_pid = slow.info.backend_pid
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:  # the second writer is waiting for the first one's lock, not numbering ahead of it
                waiting = query(
                    postgres_url,
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND NOT l.granted AND a.pid != %s",
                    (slow_pid,),
                )[0][0]
                if waiting:
                    break
                assert not second.done() and loop.time() < deadline, "the second writer did not wait"
                await asyncio.sleep(0.02)
            assert await store.changes_since(kind, start) == []  # nothing committed yet
            slow.commit()
            made = await second
        changes = await store.changes_since(kind, start)
        assert [c.item for c in changes] == [made.id - 1, made.id]


# --- several processes on one inbox -----------------------------------------------------------


async def test_two_processes_never_take_the_same_item_and_a_dead_ones_claim_lapses(postgres_url: str) -> None:
    from datetime import datetime

    now = datetime.now(UTC)
    async with await PostgresStore.open(postgres_url) as a, await PostgresStore.open(postgres_url) as b:
        first = await a.enqueue_work("telegram", "g", 1, {"variant": ""})
        second = await a.enqueue_work("telegram", "g", 2, {"variant": ""})
        item, _ = await a.next_work("telegram", "g", now)
        assert item.id == first and await a.start_work(first) == 1
        # b sees the chat held: no item (not even the next one: the chat's order holds), a time to look again
        held, again = await b.next_work("telegram", "g", now)
        assert held is None and again is not None and datetime.fromisoformat(again) > now
        assert await b.start_work(first) is None
        assert (await a.work_item(first)).attempts == 1  # b's try counted nothing
        assert await a.finish_work(first) is True
        item, _ = await b.next_work("telegram", "g", now)
        assert item.id == second and await b.start_work(second) == 1
        # both racing for the same fresh items: exactly one gets each
        ids = [await a.enqueue_work("telegram", "race", m, {"variant": ""}) for m in range(20)]
        got = await asyncio.gather(*(s.start_work(i) for i in ids for s in (a, b)))
        assert [sorted(got[2 * k : 2 * k + 2], key=str) for k in range(len(ids))] == [[1, None]] * len(ids)
    # b's process is gone (its connections closed, its claims not cleared): another takes its item at once
    async with await PostgresStore.open(postgres_url) as c:
        assert query(postgres_url, "SELECT taken_by IS NOT NULL FROM work WHERE id = %s", (second,)) == [(True,)]
        item, later = await c.next_work("telegram", "g", now)
        assert (item.id, later) == (second, None)
        assert await c.start_work(second) == 2  # the dead attempt still counts
