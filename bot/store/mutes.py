"""Matrix timed mutes (Matrix has none of its own): who Vigil lowered in which room, to which level,
the level to give back, and until when. Ids, levels and times only.

In the store rather than a file beside the device, so every process of a cluster records its mutes
in one place and the one process that reads the platforms lifts them (bot/platforms/matrix_state.py).
``take_mute`` is a conditional delete: when two processes race to lift the same mute, only the one
whose delete removed the row lifts it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.db import Database
from bot.store.members import as_utc

MAX_LEVEL = 2**53 - 1  # Matrix power levels are integers in the canonical-JSON range
MAX_EXPIRED = 1000  # the most mutes one look at the expired returns


@dataclass(frozen=True)
class MuteRecord:
    """Vigil lowered ``user``'s level in ``room`` to ``level`` until ``until``; ``previous`` is restored."""

    room: str
    user: str
    level: int
    previous: int | None  # None: the user was not listed (had the room's default level)
    until: datetime  # UTC


def power_level(field: str, value: object, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not -MAX_LEVEL <= value <= MAX_LEVEL:
        allowed = f"an integer power level between -{MAX_LEVEL} and {MAX_LEVEL}"
        raise BadStoreValue(field, value, allowed + (" or None" if optional else ""))
    return value


def checked(mute: MuteRecord) -> tuple[str, str, int, int | None, str]:
    """The record's values for SQL, each checked (the until as stored text)."""
    if not isinstance(mute, MuteRecord):
        raise BadStoreValue("mute", mute, "a MuteRecord")
    level = power_level("level", mute.level)
    assert level is not None
    return (
        checks.ident("room", mute.room),
        checks.ident("user", mute.user),
        level,
        power_level("previous", mute.previous, optional=True),
        checks.timestamp(mute.until),
    )


def expired_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_EXPIRED:
        raise BadStoreValue("limit", limit, f"an integer from 1 to {MAX_EXPIRED}")
    return limit


def _mute(row: sqlite3.Row) -> MuteRecord:
    previous = row["previous"]
    return MuteRecord(
        row["room_id"],
        row["user_id"],
        int(row["level"]),
        None if previous is None else int(previous),
        as_utc(row["until"]),
    )


class MutesMixin:
    _db: Database

    async def record_mute(self, mute: MuteRecord) -> None:
        """Records the mute (a new one for the same member and room replaces it)."""
        values = checked(mute)
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO mutes (room_id, user_id, level, previous, until) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (room_id, user_id) DO UPDATE SET level = excluded.level,"
                " previous = excluded.previous, until = excluded.until",
                values,
            )

    async def restore_mute(self, mute: MuteRecord) -> bool:
        """Puts back a mute taken for a lift that failed, unless a newer one was recorded meanwhile."""
        values = checked(mute)
        async with self._db.write() as c:
            cur = await c.execute(
                "INSERT INTO mutes (room_id, user_id, level, previous, until) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                values,
            )
            return cur.rowcount > 0

    async def mute_of(self, room: str, user: str) -> MuteRecord | None:
        r, u = checks.ident("room", room), checks.ident("user", user)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM mutes WHERE room_id = ? AND user_id = ?", (r, u))).fetchone()
        return None if row is None else _mute(row)

    async def expired_mutes(self, now: datetime, limit: int = 100) -> list[MuteRecord]:
        """Mutes whose time ran out by ``now``, the longest over first."""
        n = expired_limit(limit)
        async with self._db.read() as c:
            rows = await c.execute_fetchall(
                "SELECT * FROM mutes WHERE until <= ? ORDER BY until LIMIT ?", (checks.timestamp(now), n)
            )
        return [_mute(row) for row in rows]

    async def take_mute(self, room: str, user: str, until: datetime | None = None) -> MuteRecord | None:
        """Deletes the mute and returns it; with ``until``, only the mute that runs until then (not one
        made again meanwhile). None when there was none: another process took it first."""
        r, u = checks.ident("room", room), checks.ident("user", user)
        sql, params = "DELETE FROM mutes WHERE room_id = ? AND user_id = ?", [r, u]
        if until is not None:
            sql, params = sql + " AND until = ?", [*params, checks.timestamp(until)]
        async with self._db.write() as c:
            row = await (await c.execute(sql + " RETURNING *", params)).fetchone()
        return None if row is None else _mute(row)

    async def forget_mutes(self, user: str) -> int:
        """`vigil purge --user`: the person's mute records in every room."""
        u = checks.ident("user", user)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM mutes WHERE user_id = ?", (u,))
            return cur.rowcount
