"""Reading and pruning the change logs: the PostgreSQL twin of bot/store/changes.py (migrations
0001 and 0003 number the rows in commit order)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import AsyncConnection

from bot.errors import StoreError
from bot.store import checks
from bot.store.changes import CHANGE_CHUNK, ChangesPruned, horizon_key, log_of, seq_number
from bot.store.postgres.db import CONNECT_TIMEOUT, PgDatabase, fetchall, fetchone
from bot.store.records import Change, ChangeKind, ChangeOp


class PgChangesMixin:
    _db: PgDatabase

    async def last_change(self, kind: ChangeKind) -> int:
        """The number of ``kind``'s latest change (0: none logged yet)."""
        k, table, _, _ = log_of(kind)
        async with self._db.read() as c:
            row = await fetchone(c, f"SELECT coalesce(max(seq), 0) AS m FROM {table}")
            pruned = await _pruned(c, k)
        assert row is not None
        return max(int(row["m"]), pruned)

    async def changes_since(self, kind: ChangeKind, seq: int, limit: int = CHANGE_CHUNK) -> list[Change]:
        """``kind``'s changes after ``seq``, oldest first, at most ``limit``. Raises ``ChangesPruned``."""
        k, table, parent, item = log_of(kind)
        after = seq_number("seq", seq)
        size = checks.record_id("limit", limit)
        async with self._db.read() as c:
            found = await fetchall(
                c,
                f"SELECT seq, op, {parent} AS parent, {item} AS item FROM {table} WHERE seq > %s ORDER BY seq LIMIT %s",
                (after, size),
            )
            pruned = await _pruned(c, k)  # after the rows: a prune between the two reads shows here
        if pruned > after:
            raise ChangesPruned(k, after, pruned)
        return [Change(int(r["seq"]), ChangeOp(r["op"]), int(r["parent"]), r["item"]) for r in found]

    async def prune_changes(self, kind: ChangeKind, upto: int) -> int:
        """Deletes ``kind``'s changes up to and including ``upto``; remembers how far."""
        k, table, _, _ = log_of(kind)
        last = seq_number("upto", upto)
        async with self._db.write() as c:
            cur = await c.execute(f"DELETE FROM {table} WHERE seq <= %s", (last,))
            await c.execute(
                "INSERT INTO state AS s (key, value, updated_at) VALUES (%s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
                " value = greatest(s.value::bigint, excluded.value::bigint)::text, updated_at = excluded.updated_at",
                (horizon_key(k), str(last), self._db.now()),
            )
            return int(cur.rowcount)

    async def change_notices(self) -> AsyncIterator[ChangeKind]:
        """The kind of each change log that grew: the triggers NOTIFY ``vigil_changes`` in the
        transaction that logs the change (migration 0008), so a notice comes after the commit.
        One connection of its own, outside the pool, for as long as the iterator runs; a lost
        connection raises ``StoreError`` (listen again; changes meanwhile are found by the polls)."""
        try:
            conn = await AsyncConnection.connect(self._db.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise StoreError(f"cannot listen for change notices at {self._db.shown}: {exc}") from None
        try:
            await conn.execute(f"LISTEN {NOTICE_CHANNEL}")
            async for notice in conn.notifies():
                if notice.payload in KINDS:  # anything else on the channel is not ours to act on
                    yield ChangeKind(notice.payload)
        except psycopg.Error as exc:
            raise StoreError(f"change notices from {self._db.shown} stopped: {exc}") from None
        finally:
            await conn.close()
        raise StoreError(f"change notices from {self._db.shown} stopped: the connection closed")


NOTICE_CHANNEL = "vigil_changes"  # the payload is the log's kind: "lists" or "protected"
KINDS = frozenset(str(k) for k in ChangeKind)


async def _pruned(c: AsyncConnection[Any], kind: ChangeKind) -> int:
    row = await fetchone(c, "SELECT value FROM state WHERE key = %s", (horizon_key(kind),))
    return int(row["value"]) if row else 0
