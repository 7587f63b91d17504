"""The change logs a running process follows: one for hash lists, one for protected photos.

Triggers write a row (ids only) for every change whoever makes it: the bot, `vigil hash`,
`vigil protect`, a purge, another worker. Rows are numbered in commit order (SQLite has one
writer; PostgreSQL takes a lock before numbering). Every process keeps the number of the last
row it applied and reads the rows after it (bot/follow.py); nobody deletes a row because they
applied it, since another process may not have yet. Rows go only when old (``prune_changes``),
and the highest number pruned is kept: a process whose last number is below it missed rows
and is told so (``ChangesPruned``), and loads everything again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiosqlite

from bot.errors import BadStoreValue, StoreError
from bot.store import checks
from bot.store.db import Database
from bot.store.records import Change, ChangeKind, ChangeOp

CHANGE_CHUNK = 5000  # rows per read

# the log of each kind: (table, parent column, item column)
TABLES: dict[ChangeKind, tuple[str, str, str]] = {
    ChangeKind.LISTS: ("list_changes", "list_id", "entry_id"),
    ChangeKind.PROTECTED: ("protected_changes", "owner_id", "photo_id"),
}


class ChangesPruned(StoreError):
    """Changes a follower had not applied were pruned from the log: it must load everything again."""

    def __init__(self, kind: ChangeKind, seen: int, pruned: int) -> None:
        self.kind, self.seen, self.pruned = kind, seen, pruned
        super().__init__(
            f"the {kind} change log was pruned up to change {pruned}, past change {seen} applied here; "
            "load everything from the store again"
        )


def horizon_key(kind: ChangeKind) -> str:
    """The state key holding the highest change number pruned from ``kind``'s log."""
    return f"changes:{kind}:pruned"


def log_of(kind: object) -> tuple[ChangeKind, str, str, str]:
    try:
        k = ChangeKind(kind if isinstance(kind, str) else "")
    except ValueError:
        raise BadStoreValue("kind", kind, f"one of {', '.join(ChangeKind)}") from None
    return (k, *TABLES[k])


def seq_number(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadStoreValue(field, value, "a whole number, 0 or more")
    return value


def as_change(row: tuple[int, str, int, int | None]) -> Change:
    return Change(int(row[0]), ChangeOp(row[1]), int(row[2]), None if row[3] is None else int(row[3]))


class ChangesMixin:
    """Reading and pruning the change logs (migrations 0002 and 0006)."""

    _db: Database

    async def last_change(self, kind: ChangeKind) -> int:
        """The number of ``kind``'s latest change (0: none logged yet); a follower that loads
        everything reads it first and applies the changes after it."""
        k, table, _, _ = log_of(kind)
        async with self._db.read() as c:
            row = await (await c.execute(f"SELECT coalesce(max(seq), 0) FROM {table}")).fetchone()
            pruned = await self._pruned(c, k)
        return max(int(row[0]) if row else 0, pruned)

    async def changes_since(self, kind: ChangeKind, seq: int, limit: int = CHANGE_CHUNK) -> list[Change]:
        """``kind``'s changes after ``seq``, oldest first, at most ``limit``. Raises
        ``ChangesPruned`` when some of them were pruned already (load everything again)."""
        k, table, parent, item = log_of(kind)
        after = seq_number("seq", seq)
        size = checks.record_id("limit", limit)
        async with self._db.read() as c:
            rows = await c.execute_fetchall(
                f"SELECT seq, op, {parent}, {item} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?", (after, size)
            )
            # read after the rows: a prune between the two reads shows here
            pruned = await self._pruned(c, k)
        if pruned > after:
            raise ChangesPruned(k, after, pruned)
        return [as_change(tuple(r)) for r in rows]

    async def prune_changes(self, kind: ChangeKind, upto: int) -> int:
        """Deletes ``kind``'s changes up to and including ``upto`` (every follower is past them:
        the caller saw ``upto`` long enough ago) and remembers how far the log was pruned;
        returns how many rows went."""
        k, table, _, _ = log_of(kind)
        last = seq_number("upto", upto)
        async with self._db.write() as c:
            cur = await c.execute(f"DELETE FROM {table} WHERE seq <= ?", (last,))
            await c.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT),"
                " updated_at = excluded.updated_at",
                (horizon_key(k), str(last), self._db.now()),
            )
            return int(cur.rowcount)

    async def change_notices(self) -> AsyncIterator[ChangeKind]:
        """The kind of each change log that grew, as the database tells it (PostgreSQL's NOTIFY).
        SQLite tells nothing: the iterator ends at once and followers rely on their polls."""
        none: tuple[ChangeKind, ...] = ()
        for kind in none:
            yield kind

    @staticmethod
    async def _pruned(c: aiosqlite.Connection, kind: ChangeKind) -> int:
        row = await (await c.execute("SELECT value FROM state WHERE key = ?", (horizon_key(kind),))).fetchone()
        return int(row[0]) if row else 0
