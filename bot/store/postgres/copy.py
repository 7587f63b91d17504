"""Copying an SQLite install into an empty PostgreSQL store (``vigil migrate-store``).

One PostgreSQL transaction: the copy appears whole or not at all. Rows go in with COPY, table
by table in foreign-key order, with their ids, from one read transaction on the SQLite file
(a consistent snapshot even if something writes to it meanwhile; stop the bot for a clean cut).
Identity sequences then continue after the highest id copied, and the change logs start
empty (a bot starting on the copy loads every list, then follows changes from there).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from bot.errors import StoreError
from bot.store.postgres import PostgresStore
from bot.store.postgres.db import fetchall, fetchone

# foreign-key order; the change logs are left out on purpose (see above), schema_migrations belongs to each
TABLES = (
    "groups",
    "contacts",
    "exemptions",
    "lists",
    "entries",
    "entry_features",
    "follows",
    "audit",
    "reviews",
    "alerts",
    "work",
    "actions",
    "state",
    "protected_owners",
    "protected_photos",
    "reports",
    "report_reporters",
    "ignored_reporters",
    "report_alerts",
    "circles",
    "circle_members",
    "mutes",
)
# columns PostgreSQL has and SQLite has not: they take their default in the copy
PG_ONLY = {"work": {"taken_by"}}  # a process's claim on an item: none in a stopped install
WITH_IDS = (
    "lists",
    "entries",
    "audit",
    "reviews",
    "alerts",
    "work",
    "actions",
    "protected_owners",
    "protected_photos",
    "reports",
    "circles",
)
BATCH = 5000


async def copy_from_sqlite(
    source: Path, target: PostgresStore, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copies every table of the SQLite file ``source`` (already at this Vigil's schema) into
    ``target``, which must hold no data yet; returns the rows copied per table."""
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True, check_same_thread=False)
    try:
        return await _copy(conn, target, progress)
    finally:
        conn.close()


async def _copy(
    src: sqlite3.Connection, target: PostgresStore, progress: Callable[[str, int], None] | None
) -> dict[str, int]:
    db = target._db
    await asyncio.to_thread(src.execute, "BEGIN")  # one snapshot of the whole file
    counts: dict[str, int] = {}
    async with db.write() as c:
        for table in TABLES:
            row = await fetchone(c, f"SELECT EXISTS (SELECT 1 FROM {table}) AS used")  # fixed names
            if row is not None and row["used"]:
                raise StoreError(
                    f"the PostgreSQL database at {target.location} already holds data (table {table}); "
                    f"migrate-store copies into an empty database only: create a new one"
                )
        for table in TABLES:
            pg_only = PG_ONLY.get(table, set())
            pg_columns = [
                r["column_name"]
                for r in await fetchall(
                    c,
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND table_schema = current_schema() ORDER BY ordinal_position",
                    (table,),
                )
                if r["column_name"] not in pg_only
            ]
            sqlite_columns = [
                r[1] for r in await asyncio.to_thread(lambda: src.execute(f"PRAGMA table_info({table})").fetchall())
            ]
            if sorted(pg_columns) != sorted(sqlite_columns):
                raise StoreError(
                    f"table {table} differs between the SQLite file ({', '.join(sorted(sqlite_columns))}) and "
                    f"PostgreSQL ({', '.join(sorted(pg_columns))}); run the same Vigil version on both"
                )
            cols = ", ".join(pg_columns)
            cursor = await asyncio.to_thread(src.execute, f"SELECT {cols} FROM {table}")
            n = 0
            async with c.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                while True:
                    batch = await asyncio.to_thread(cursor.fetchmany, BATCH)
                    if not batch:
                        break
                    for values in batch:
                        await copy.write_row(values)
                    n += len(batch)
                    if progress is not None:
                        progress(table, n)
            counts[table] = n
            if table in WITH_IDS:
                await c.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false)"
                    f" FROM {table}"
                )
        # written by the triggers during the copy; the copy is the starting point, not a change,
        # and the SQLite file's pruning marks mean nothing to these new logs
        await c.execute("DELETE FROM list_changes")
        await c.execute("DELETE FROM protected_changes")
        await c.execute("DELETE FROM state WHERE key LIKE 'changes:%'")
    await asyncio.to_thread(src.execute, "ROLLBACK")
    return counts
