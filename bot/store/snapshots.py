"""Index snapshots and the live followers of the change logs (migration 0011).

A snapshot is a built in-memory index as bytes (detectors/index_snapshot.py), covering its
change log up to ``seq``: a process starting loads the newest one and applies the changes
after it, instead of building the index from every row (bot/snapshots.py). Its bytes are kept
in parts of ``PART_BYTES`` as base64 text (no column holds bytes: nothing image-shaped can be
stored), written in the transaction that adds the snapshot's row, so a reader sees a whole
snapshot or none; the latest ``KEEP_SNAPSHOTS`` per kind are kept.

Each running process records, per log, the change it applied last and when it was last seen
(``record_follower``). The log is pruned below the oldest change a process seen within a
bound applied (``live_floor``), so a lagging worker keeps what it still needs, and a dead one
stops holding the log once its heartbeat is older than the bound.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.changes import log_of, seq_number
from bot.store.db import Database
from bot.store.records import ChangeKind

PART_BYTES = 24 * 1024 * 1024  # bytes per stored part of a snapshot (32 MiB of base64 text, the column's bound)
KEEP_SNAPSHOTS = 2  # per kind: the newest, and the one before while a process may still be reading it
MAX_SNAPSHOT_BYTES = 16 * 1024**3  # a snapshot larger than this is refused (100,000 photos take ~3.5 GB)


@dataclass(frozen=True)
class SnapshotInfo:
    """A stored snapshot, without its bytes."""

    id: int
    kind: ChangeKind
    seq: int  # the change log is applied up to here in it
    format: int
    size: int  # bytes
    created_at: datetime


def snapshot_args(kind: object, seq: object, fmt: object, data: object) -> tuple[ChangeKind, int, int, bytes]:
    k = log_of(kind)[0]
    last = seq_number("seq", seq)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise BadStoreValue("format", fmt, "a whole number, 1 or more")
    if not isinstance(data, bytes) or len(data) > MAX_SNAPSHOT_BYTES:
        raise BadStoreValue("data", type(data).__name__, f"bytes, at most {MAX_SNAPSHOT_BYTES}")
    return k, last, fmt, data


def follower_args(process: object, role: object, kind: object, seq: object) -> tuple[str, str, ChangeKind, int]:
    if not isinstance(process, str) or not 1 <= len(process) <= 128:
        raise BadStoreValue("process", process, "a process id of 1 to 128 characters")
    if not isinstance(role, str) or not 1 <= len(role) <= 32:
        raise BadStoreValue("role", role, "a role name of 1 to 32 characters")
    return process, role, log_of(kind)[0], seq_number("seq", seq)


def bound_seconds(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 366 * 86400:
        raise BadStoreValue(field, value, "a number of seconds above 0, at most a year")
    return float(value)


def turn_key(kind: ChangeKind) -> str:
    """The state key of the lease on writing ``kind``'s snapshots: (holder, until when)."""
    return f"snapshots:{kind}:writer"


def parts_of(data: bytes) -> Iterator[tuple[int, str]]:
    """The stored parts, numbered: base64 text, since no column holds bytes (nothing image-shaped is
    stored); made one at a time as they are written, so the text of only one is held at once."""
    for part, at in enumerate(range(0, len(data), PART_BYTES)):
        yield part, base64.b64encode(data[at : at + PART_BYTES]).decode("ascii")


def part_count(data: bytes) -> int:
    return -(-len(data) // PART_BYTES)


def joined(parts: list[str]) -> bytes:
    return b"".join(base64.b64decode(p) for p in parts)


def stored_time(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class SnapshotsMixin:
    """Index snapshots and change-log followers on SQLite."""

    _db: Database

    def _ago(self, seconds: float) -> str:
        return checks.timestamp(stored_time(self._db.now()) - timedelta(seconds=seconds))

    async def save_index_snapshot(self, kind: ChangeKind, seq: int, fmt: int, data: bytes) -> SnapshotInfo:
        """Stores a snapshot of ``kind``'s index covering its log up to ``seq``; keeps the latest
        ``KEEP_SNAPSHOTS`` of the kind (by ``seq``) and deletes older ones."""
        k, last, fmt, data = snapshot_args(kind, seq, fmt, data)
        now = self._db.now()
        async with self._db.write() as c:
            cur = await c.execute(
                "INSERT INTO index_snapshots (kind, seq, format, size, parts, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (str(k), last, fmt, len(data), part_count(data), now),
            )
            sid = int(cur.lastrowid or 0)
            for part, text in parts_of(data):
                await c.execute(
                    "INSERT INTO index_snapshot_parts (snapshot_id, part, data) VALUES (?, ?, ?)", (sid, part, text)
                )
            await c.execute(
                "DELETE FROM index_snapshots WHERE kind = ? AND id NOT IN "
                "(SELECT id FROM index_snapshots WHERE kind = ? ORDER BY seq DESC, id DESC LIMIT ?)",
                (str(k), str(k), KEEP_SNAPSHOTS),
            )
        return SnapshotInfo(sid, k, last, fmt, len(data), stored_time(now))

    async def latest_index_snapshot(self, kind: ChangeKind) -> SnapshotInfo | None:
        """The newest stored snapshot of ``kind`` (the highest ``seq``), or None."""
        k = log_of(kind)[0]
        async with self._db.read() as c:
            row = await (
                await c.execute(
                    "SELECT id, seq, format, size, created_at FROM index_snapshots WHERE kind = ? "
                    "ORDER BY seq DESC, id DESC LIMIT 1",
                    (str(k),),
                )
            ).fetchone()
        if row is None:
            return None
        return SnapshotInfo(int(row[0]), k, int(row[1]), int(row[2]), int(row[3]), stored_time(row[4]))

    async def index_snapshot_data(self, snapshot_id: int) -> bytes | None:
        """A snapshot's bytes, whole; None when it is gone (a newer one replaced it)."""
        sid = checks.record_id("snapshot_id", snapshot_id)
        async with self._db.read() as c:
            head = await (await c.execute("SELECT parts FROM index_snapshots WHERE id = ?", (sid,))).fetchone()
            rows = list(
                await c.execute_fetchall(
                    "SELECT data FROM index_snapshot_parts WHERE snapshot_id = ? ORDER BY part", (sid,)
                )
            )
        if head is None or len(rows) != int(head[0]):
            return None
        return joined([str(r[0]) for r in rows])

    async def record_follower(self, process: str, role: str, kind: ChangeKind, seq: int) -> None:
        """This process (``process``, its ``role``) has applied ``kind``'s log up to ``seq``, now."""
        pid, role, k, last = follower_args(process, role, kind, seq)
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO change_followers (process, kind, role, seq, seen_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (process, kind) DO UPDATE SET role = excluded.role, seq = excluded.seq, "
                "seen_at = excluded.seen_at",
                (pid, str(k), role, last, self._db.now()),
            )

    async def live_floor(self, kind: ChangeKind, within: float) -> int | None:
        """The oldest change of ``kind`` applied by a process seen in the last ``within`` seconds
        (None: no live process): the log is to be kept from just after it."""
        k = log_of(kind)[0]
        since = self._ago(bound_seconds("within", within))
        async with self._db.read() as c:
            row = await (
                await c.execute(
                    "SELECT min(seq) FROM change_followers WHERE kind = ? AND seen_at >= ?", (str(k), since)
                )
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def forget_followers(self, older_than: float) -> int:
        """Forgets processes not seen for ``older_than`` seconds (they stopped or died); returns how many rows went."""
        before = self._ago(bound_seconds("older_than", older_than))
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM change_followers WHERE seen_at < ?", (before,))
            return int(cur.rowcount)

    async def take_snapshot_turn(self, kind: ChangeKind, process: str, lease: float) -> bool:
        """Whether ``process`` is the one to write ``kind``'s snapshots now: it takes (or keeps) a
        lease of ``lease`` seconds unless another process holds one that has not run out."""
        k = log_of(kind)[0]
        pid = follower_args(process, "all", k, 0)[0]
        until = self._ago(-bound_seconds("lease", lease))
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " value = excluded.value, updated_at = excluded.updated_at"
                " WHERE state.value = excluded.value OR state.updated_at < ?",
                (turn_key(k), pid, until, now),
            )
            row = await (await c.execute("SELECT value FROM state WHERE key = ?", (turn_key(k),))).fetchone()
        return row is not None and row[0] == pid
