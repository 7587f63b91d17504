"""Index snapshots and the live followers of the change logs: the PostgreSQL twin of
bot/store/snapshots.py (migration 0009)."""

from __future__ import annotations

from datetime import timedelta

from bot.store import checks
from bot.store.changes import log_of
from bot.store.postgres.db import PgDatabase, fetchall, fetchone
from bot.store.records import ChangeKind
from bot.store.snapshots import (
    KEEP_SNAPSHOTS,
    SnapshotInfo,
    bound_seconds,
    follower_args,
    joined,
    part_count,
    parts_of,
    snapshot_args,
    stored_time,
    turn_key,
)


class PgSnapshotsMixin:
    _db: PgDatabase

    def _ago(self, seconds: float) -> str:
        return checks.timestamp(stored_time(self._db.now()) - timedelta(seconds=seconds))

    async def save_index_snapshot(self, kind: ChangeKind, seq: int, fmt: int, data: bytes) -> SnapshotInfo:
        """Stores a snapshot covering ``kind``'s log up to ``seq``; keeps the latest ``KEEP_SNAPSHOTS``."""
        k, last, fmt, data = snapshot_args(kind, seq, fmt, data)
        now = self._db.now()
        async with self._db.write() as c:
            row = await fetchone(
                c,
                "INSERT INTO index_snapshots (kind, seq, format, size, parts, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (str(k), last, fmt, len(data), part_count(data), now),
            )
            assert row is not None
            sid = int(row["id"])
            for part, text in parts_of(data):  # one part's text at a time
                await c.execute(
                    "INSERT INTO index_snapshot_parts (snapshot_id, part, data) VALUES (%s, %s, %s)", (sid, part, text)
                )
            await c.execute(
                "DELETE FROM index_snapshots WHERE kind = %s AND id NOT IN "
                "(SELECT id FROM index_snapshots WHERE kind = %s ORDER BY seq DESC, id DESC LIMIT %s)",
                (str(k), str(k), KEEP_SNAPSHOTS),
            )
        return SnapshotInfo(sid, k, last, fmt, len(data), stored_time(now))

    async def latest_index_snapshot(self, kind: ChangeKind) -> SnapshotInfo | None:
        k = log_of(kind)[0]
        async with self._db.read() as c:
            row = await fetchone(
                c,
                "SELECT id, seq, format, size, created_at FROM index_snapshots WHERE kind = %s "
                "ORDER BY seq DESC, id DESC LIMIT 1",
                (str(k),),
            )
        if row is None:
            return None
        return SnapshotInfo(
            int(row["id"]), k, int(row["seq"]), int(row["format"]), int(row["size"]), stored_time(row["created_at"])
        )

    async def index_snapshot_data(self, snapshot_id: int) -> bytes | None:
        sid = checks.record_id("snapshot_id", snapshot_id)
        async with self._db.read() as c:
            head = await fetchone(c, "SELECT parts FROM index_snapshots WHERE id = %s", (sid,))
            rows = await fetchall(
                c, "SELECT data FROM index_snapshot_parts WHERE snapshot_id = %s ORDER BY part", (sid,)
            )
        if head is None or len(rows) != int(head["parts"]):
            return None
        return joined([str(r["data"]) for r in rows])

    async def record_follower(self, process: str, role: str, kind: ChangeKind, seq: int) -> None:
        pid, role, k, last = follower_args(process, role, kind, seq)
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO change_followers (process, kind, role, seq, seen_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (process, kind) DO UPDATE SET role = excluded.role, seq = excluded.seq, "
                "seen_at = excluded.seen_at",
                (pid, str(k), role, last, self._db.now()),
            )

    async def live_floor(self, kind: ChangeKind, within: float) -> int | None:
        k = log_of(kind)[0]
        since = self._ago(bound_seconds("within", within))
        async with self._db.read() as c:
            row = await fetchone(
                c, "SELECT min(seq) AS m FROM change_followers WHERE kind = %s AND seen_at >= %s", (str(k), since)
            )
        return None if row is None or row["m"] is None else int(row["m"])

    async def forget_followers(self, older_than: float) -> int:
        before = self._ago(bound_seconds("older_than", older_than))
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM change_followers WHERE seen_at < %s", (before,))
            return int(cur.rowcount)

    async def take_snapshot_turn(self, kind: ChangeKind, process: str, lease: float) -> bool:
        k = log_of(kind)[0]
        pid = follower_args(process, "all", k, 0)[0]
        until = self._ago(-bound_seconds("lease", lease))
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO state AS s (key, value, updated_at) VALUES (%s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
                " value = excluded.value, updated_at = excluded.updated_at"
                " WHERE s.value = excluded.value OR s.updated_at < %s",
                (turn_key(k), pid, until, now),
            )
            row = await fetchone(c, "SELECT value FROM state WHERE key = %s", (turn_key(k),))
        return row is not None and row["value"] == pid
